// AppendStats: what one Append cost, as both slice maps report it for the metrics.
#pragma once

#include <cstdint>

namespace eventbuffer {

// Filled by MutexSliceMap::Append and SegmentedSliceMap::Append when the caller passes a
// non-null pointer. Measuring must stay cheap: a map times only the slow paths (a lock that
// was not free at once, a vector reallocation or rehash, a segment or index allocation),
// so the fast path adds no clock reads.
struct AppendStats {
  // Nanoseconds this append was stalled: waiting for a lock held by another writer, or
  // doing a structural change (rehash, vector reallocation, segment allocation).
  std::int64_t stall_ns = 0;
};

}  // namespace eventbuffer
