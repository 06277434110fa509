// WindowRateLimiter: admits at most N events per fixed window (e.g. 10 log lines a second)
// and counts what it refused, so the caller can say how many were suppressed.
//
// Time is passed in (nanoseconds of a monotonic clock), so tests drive it directly.
//
// Thread safety: none; callers serialise (the mismatch logger holds a mutex).
#pragma once

#include <cstdint>

namespace eventbuffer {

class WindowRateLimiter {
 public:
  struct Decision {
    bool admitted = false;
    // Events refused in windows that have closed since the last report (report once).
    std::uint64_t suppressed_before = 0;
  };

  // REQUIRES: max_per_window >= 1, window_ns >= 1.
  WindowRateLimiter(std::uint32_t max_per_window, std::int64_t window_ns)
      : max_(max_per_window), window_ns_(window_ns) {}

  // One event at now_ns: admitted if the current window has room.
  Decision Admit(std::int64_t now_ns) {
    Decision d;
    d.suppressed_before = Roll(now_ns);
    if (used_ < max_) {
      ++used_;
      d.admitted = true;
    } else {
      ++suppressed_;
    }
    return d;
  }

  // Closes the window if it has ended; returns the count suppressed in it (once), else 0.
  std::uint64_t Poll(std::int64_t now_ns) { return Roll(now_ns); }

  // Refused in the current, still open window.
  std::uint64_t pending_suppressed() const { return suppressed_; }

 private:
  std::uint64_t Roll(std::int64_t now_ns) {
    if (started_ && now_ns - window_start_ < window_ns_) return 0;
    const std::uint64_t closed = suppressed_;
    started_ = true;
    window_start_ = now_ns;
    used_ = 0;
    suppressed_ = 0;
    return closed;
  }

  const std::uint32_t max_;
  const std::int64_t window_ns_;
  bool started_ = false;
  std::int64_t window_start_ = 0;
  std::uint32_t used_ = 0;
  std::uint64_t suppressed_ = 0;
};

}  // namespace eventbuffer
