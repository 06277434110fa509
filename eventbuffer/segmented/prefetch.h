// PrefetchForWrite: asks the CPU for a cache line in a state it may write, ahead of the
// write. SegmentedSliceMap uses it for the line an append will claim in (the key's slice)
// and the slots it will construct values in.
//
// __builtin_prefetch(p, 1) emits PREFETCHW only when the compiler is told the target has it
// (-mprfchw, -march=broadwell or later); otherwise it falls back to a read prefetch, which
// brings a line another CPU wrote last in shared state, so that the write that follows has
// to move it a second time. So on x86-64 the instruction is issued directly (inline
// assembly) when the CPU reports it (CPUID 0x80000001, ECX bit 8: current AMD CPUs, Intel
// from Broadwell on). Sanitizer builds keep the builtin: they do not look into asm operands.
//
// Thread safety: PrefetchForWrite may be called from any thread at any time; a prefetch
// never faults and changes no memory, so p may point anywhere.
#pragma once

#if defined(__x86_64__)
#include <cpuid.h>
#endif

namespace eventbuffer {
namespace segmented_detail {

#if defined(__x86_64__) && !defined(__PRFCHW__) && !defined(__SANITIZE_THREAD__) && \
    !defined(__SANITIZE_ADDRESS__)
#define KEB_PREFETCHW_ASM 1
// Whether this CPU reports PREFETCHW. Until it is initialized (static initialization of
// another file) it reads false, which only means a read prefetch.
inline const bool kCpuHasPrefetchW = [] {
  unsigned a = 0, b = 0, c = 0, d = 0;
  return __get_cpuid(0x80000001, &a, &b, &c, &d) != 0 && (c & (1u << 8)) != 0;
}();
#endif

// Asks for the line at p in a state this CPU may write.
inline void PrefetchForWrite(const void* p) {
#ifdef KEB_PREFETCHW_ASM
  if (kCpuHasPrefetchW) {
    asm volatile("prefetchw %0" : : "m"(*static_cast<const char*>(p)));
    return;
  }
#endif
  __builtin_prefetch(p, 1, 3);
}

}  // namespace segmented_detail
}  // namespace eventbuffer
