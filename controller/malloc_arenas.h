// LimitMallocArenas: one glibc malloc arena for the whole process, unless MALLOC_ARENA_MAX
// is set in the environment (then glibc's own reading of it stands).
//
// Why: glibc gives threads that meet in malloc arenas of their own (up to 8 per core). The
// buffer's records, index blocks and map segments are made on the watch thread and freed
// on others (retention, readers dropping the last reference), so with several arenas each
// keeps free space the others cannot reuse. One arena holds the same buffer in less memory
// (tests/bench/e2e_bench.sh: about 10 B less RSS per held occurrence on the distinct stream
// and 20 B less with 4 revisions per Event), and small allocations still come from each
// thread's own cache without the arena lock (tests/bench/serving_bench.sh measured no loss
// in ingest or read throughput; docs/storage.md).
//
// Call it first in main(), before any thread starts.
#pragma once

#include <cstdlib>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace eventbuffer::controller {

inline void LimitMallocArenas() {
#if defined(__GLIBC__)
  if (std::getenv("MALLOC_ARENA_MAX") == nullptr) mallopt(M_ARENA_MAX, 1);
#endif
}

}  // namespace eventbuffer::controller
