// AuthStats: what delegated authentication and authorization did, as plain counters for the
// metrics endpoint; AuthCounters: the live atomics behind them; ReviewErrorLog: the
// rate-limited warning for failed reviews.
//
// Thread safety: AuthCounters and ReviewErrorLog may be used from any thread at once.
// Counters are independent of each other and of any other data, so relaxed increments
// and loads are enough; a Snapshot is not one instant across counters.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

#include "controller/rate_limiter.h"
#include "controller/serving/auth/single_flight_cache.h"

namespace eventbuffer::controller {

struct AuthStats {
  // Authentication, by method and result. `failure`: the credential was there but did
  // not authenticate (front proxy: the certificate verified but its CN is not allowed or
  // no user header; x509: the chain did not verify or has no CN; token: the TokenReview
  // said no or failed).
  std::uint64_t frontproxy_success = 0;
  std::uint64_t frontproxy_failure = 0;
  std::uint64_t x509_success = 0;
  std::uint64_t x509_failure = 0;
  std::uint64_t token_success = 0;
  std::uint64_t token_failure = 0;
  std::uint64_t unauthenticated = 0;  // answered 401
  std::uint64_t always_allowed = 0;   // served without authn/authz (always-allow paths)

  // TokenReview cache: answered from the cache, shared with a running review, asked.
  std::uint64_t token_cache_hits = 0;
  std::uint64_t token_cache_coalesced = 0;
  std::uint64_t token_cache_misses = 0;
  std::uint64_t token_review_errors = 0;

  // Authorization.
  std::uint64_t allowed = 0;
  std::uint64_t denied = 0;  // answered 403 (review errors included)
  std::uint64_t sar_cache_hits = 0;
  std::uint64_t sar_cache_coalesced = 0;
  std::uint64_t sar_cache_misses = 0;
  std::uint64_t sar_errors = 0;
};

struct AuthCounters {
  std::atomic<std::uint64_t> frontproxy_success{0};
  std::atomic<std::uint64_t> frontproxy_failure{0};
  std::atomic<std::uint64_t> x509_success{0};
  std::atomic<std::uint64_t> x509_failure{0};
  std::atomic<std::uint64_t> token_success{0};
  std::atomic<std::uint64_t> token_failure{0};
  std::atomic<std::uint64_t> unauthenticated{0};
  std::atomic<std::uint64_t> always_allowed{0};
  std::atomic<std::uint64_t> token_cache_hits{0};
  std::atomic<std::uint64_t> token_cache_coalesced{0};
  std::atomic<std::uint64_t> token_cache_misses{0};
  std::atomic<std::uint64_t> token_review_errors{0};
  std::atomic<std::uint64_t> allowed{0};
  std::atomic<std::uint64_t> denied{0};
  std::atomic<std::uint64_t> sar_cache_hits{0};
  std::atomic<std::uint64_t> sar_cache_coalesced{0};
  std::atomic<std::uint64_t> sar_cache_misses{0};
  std::atomic<std::uint64_t> sar_errors{0};

  static void Add(std::atomic<std::uint64_t>& counter) {
    counter.fetch_add(1, std::memory_order_relaxed);  // a counter, ordered with nothing
  }
  // Counts one cache lookup in the counter of its outcome.
  static void AddLookup(CacheOutcome outcome, std::atomic<std::uint64_t>& hits,
                        std::atomic<std::uint64_t>& coalesced, std::atomic<std::uint64_t>& misses) {
    switch (outcome) {
      case CacheOutcome::kHit:
        return Add(hits);
      case CacheOutcome::kCoalesced:
        return Add(coalesced);
      case CacheOutcome::kMiss:
        return Add(misses);
    }
  }
  AuthStats Snapshot() const;
};

// Logs failed reviews at warn level, at most `max_per_window` lines per `window`, and says
// how many were suppressed in between.
class ReviewErrorLog {
 public:
  explicit ReviewErrorLog(std::uint32_t max_per_window = 5,
                          std::chrono::seconds window = std::chrono::seconds(10));
  // `message` must not hold secrets (tokens).
  void Warn(std::string_view message);

 private:
  std::mutex mu_;
  WindowRateLimiter limiter_;  // guarded by mu_
};

}  // namespace eventbuffer::controller
