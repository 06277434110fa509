// WindowMax: the largest value recorded in the last `window` (e.g. the longest write stall
// in the last 60 s), for a "max" gauge next to a histogram.
//
// The window is split into `slots` equal slices of time in a ring. Each slot is one 64-bit
// word packing the slice's epoch number (upper 24 bits) and the slice's maximum (lower 40
// bits, values capped at 2^40-1, about 18 minutes in nanoseconds), so a slot is reset and
// raised by one compare-and-swap: a reader never sees a new epoch with an old maximum.
//
// Thread safety: Record and Max may be called from any number of threads at once; both are
// lock-free. Max(now) covers the current slice and the slots-1 before it, so the answer
// spans between (slots-1)/slots of the window and the whole window.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

namespace eventbuffer::metrics {

class WindowMax {
 public:
  static constexpr std::int64_t kMaxValue = (std::int64_t{1} << 40) - 1;

  // REQUIRES: window_ns > 0, slots >= 1 and window_ns / slots > 0.
  WindowMax(std::int64_t window_ns, int slots);

  WindowMax(const WindowMax&) = delete;
  WindowMax& operator=(const WindowMax&) = delete;

  // Records `value` (clamped to [0, kMaxValue]) at monotonic time `now_ns`.
  void Record(std::int64_t value, std::int64_t now_ns);
  // The largest value recorded in the window ending at `now_ns`; 0 when none.
  std::int64_t Max(std::int64_t now_ns) const;

  // Monotonic now in nanoseconds (std::chrono::steady_clock), the clock callers normally use.
  static std::int64_t NowNs();

  // Implementation details follow.
 private:
  static constexpr int kValueBits = 40;
  static constexpr std::uint64_t kEpochMask = (std::uint64_t{1} << 24) - 1;

  const std::int64_t slice_ns_;
  const int slots_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> ring_;
};

}  // namespace eventbuffer::metrics
