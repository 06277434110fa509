// Backoff: exponential backoff with jitter for the list/watch loop, as client-go's
// reflector uses it (about 0.8 s doubling to a 30 s cap, reset after a healthy period).
//
// Thread safety: none; one Backoff belongs to one Watcher loop.
#pragma once

#include <chrono>
#include <cstdint>
#include <random>

namespace eventbuffer::controller {

class Backoff {
 public:
  using Clock = std::chrono::steady_clock;
  struct Options {
    double initial_seconds = 0.8;  // first delay
    double max_seconds = 30.0;     // cap, jitter included
    double factor = 2.0;           // growth per consecutive failure
    double jitter = 0.4;           // the delay is base * (1 - jitter/2 + jitter * U[0,1))
    // When no failure happened for this long, the next failure starts again at initial.
    double reset_after_seconds = 120.0;
  };

  explicit Backoff(Options options, std::uint64_t seed = std::random_device{}());
  Backoff(const Backoff&) = delete;
  Backoff& operator=(const Backoff&) = delete;

  // Records one failure at `now` and returns how long to wait before the next attempt.
  // The delay grows by `factor` per consecutive failure up to `max_seconds`; a failure more
  // than `reset_after_seconds` after the previous one starts again from `initial_seconds`.
  std::chrono::nanoseconds Next(Clock::time_point now);
  // Forgets past failures (called after a healthy period).
  void Reset() { failures_ = 0; }
  // Growth steps taken since the last reset (stops increasing at the cap).
  int failures() const { return failures_; }
  const Options& options() const { return options_; }

 private:
  Options options_;
  std::mt19937_64 rng_;
  int failures_ = 0;
  Clock::time_point last_failure_{};
};

}  // namespace eventbuffer::controller
