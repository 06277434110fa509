#include "controller/serving/auth/auth_stats.h"

#include <spdlog/spdlog.h>

namespace eventbuffer::controller {

AuthStats AuthCounters::Snapshot() const {
  auto get = [](const std::atomic<std::uint64_t>& c) {
    return c.load(std::memory_order_relaxed);  // independent counters
  };
  AuthStats s;
  s.frontproxy_success = get(frontproxy_success);
  s.frontproxy_failure = get(frontproxy_failure);
  s.x509_success = get(x509_success);
  s.x509_failure = get(x509_failure);
  s.token_success = get(token_success);
  s.token_failure = get(token_failure);
  s.unauthenticated = get(unauthenticated);
  s.always_allowed = get(always_allowed);
  s.token_cache_hits = get(token_cache_hits);
  s.token_cache_coalesced = get(token_cache_coalesced);
  s.token_cache_misses = get(token_cache_misses);
  s.token_review_errors = get(token_review_errors);
  s.allowed = get(allowed);
  s.denied = get(denied);
  s.sar_cache_hits = get(sar_cache_hits);
  s.sar_cache_coalesced = get(sar_cache_coalesced);
  s.sar_cache_misses = get(sar_cache_misses);
  s.sar_errors = get(sar_errors);
  return s;
}

ReviewErrorLog::ReviewErrorLog(std::uint32_t max_per_window, std::chrono::seconds window)
    : limiter_(max_per_window, std::chrono::nanoseconds(window).count()) {}

void ReviewErrorLog::Warn(std::string_view message) {
  const std::int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                               std::chrono::steady_clock::now().time_since_epoch())
                               .count();
  WindowRateLimiter::Decision decision;
  {
    std::lock_guard<std::mutex> lock(mu_);
    decision = limiter_.Admit(now);
  }
  if (decision.suppressed_before > 0) {
    spdlog::warn("delegated auth: {} review failures not logged", decision.suppressed_before);
  }
  if (decision.admitted) spdlog::warn("delegated auth: {}", message);
}

}  // namespace eventbuffer::controller
