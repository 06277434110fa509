#include "controller/kube/backoff.h"

#include <algorithm>
#include <cmath>

namespace eventbuffer::controller {

Backoff::Backoff(Options options, std::uint64_t seed) : options_(options), rng_(seed) {}

std::chrono::nanoseconds Backoff::Next(Clock::time_point now) {
  if (failures_ > 0 &&
      now - last_failure_ > std::chrono::duration<double>(options_.reset_after_seconds)) {
    failures_ = 0;
  }
  last_failure_ = now;
  const double base = std::min(options_.max_seconds,
                               options_.initial_seconds * std::pow(options_.factor, failures_));
  // Stop growing the exponent once the cap is reached so it cannot overflow.
  if (base < options_.max_seconds) ++failures_;
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  const double factor = 1.0 - options_.jitter / 2 + options_.jitter * unit(rng_);
  const double seconds = std::clamp(base * factor, 0.0, options_.max_seconds);
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
      std::chrono::duration<double>(seconds));
}

}  // namespace eventbuffer::controller
