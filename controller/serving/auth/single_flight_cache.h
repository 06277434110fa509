// SingleFlightCache: a bounded cache of review answers with a time to live per answer, that
// runs at most one fetch per key at a time. Callers that miss while a fetch for the same key
// is running wait for it and share its answer (Go's singleflight), so a burst of requests
// with one token costs one TokenReview, not one per request.
//
// Entries expire `ttl(value)` after their fetch ended (a ttl <= 0 stores nothing: that
// answer is shared with the waiters of its fetch only). When storing would exceed
// `max_entries`, the oldest stored entries are dropped (expired ones go when looked up).
//
// Thread safety: all methods may be called from any thread at once. One mutex guards the
// map; a fetch runs without it.
// Invariants: a key is in `flights_` exactly while its leader runs the fetch; a waiter
// holds a reference to the Flight it waits on, so the leader may drop it from the map.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>

namespace eventbuffer::controller {

// How a lookup was answered.
enum class CacheOutcome {
  kHit,        // a stored, unexpired answer
  kCoalesced,  // waited for the fetch another caller was running
  kMiss,       // ran the fetch itself
};

template <class Value>
class SingleFlightCache {
 public:
  using Clock = std::chrono::steady_clock;
  using NowFn = std::function<Clock::time_point()>;
  using Outcome = CacheOutcome;

  // REQUIRES: max_entries >= 1.
  explicit SingleFlightCache(
      std::size_t max_entries, NowFn now = [] { return Clock::now(); })
      : max_entries_(max_entries), now_(std::move(now)) {}
  SingleFlightCache(const SingleFlightCache&) = delete;
  SingleFlightCache& operator=(const SingleFlightCache&) = delete;

  // The answer for `key`: stored, or shared with a running fetch, or fetch()ed now.
  // `fetch` should not throw; if it does, the caller and the waiters get Value{} (which
  // must therefore mean "failed"), nothing is stored, and the exception is rethrown to the
  // caller that ran it.
  template <class Fetch, class Ttl>
  Value Get(const std::string& key, Fetch&& fetch, Ttl&& ttl, Outcome* outcome) {
    std::shared_ptr<Flight> flight;
    {
      std::unique_lock<std::mutex> lock(mu_);
      auto it = entries_.find(key);
      if (it != entries_.end()) {
        if (now_() < it->second.expires) {
          *outcome = Outcome::kHit;
          return it->second.value;
        }
        EraseLocked(it);
      }
      auto running = flights_.find(key);
      if (running != flights_.end()) {
        std::shared_ptr<Flight> waiting = running->second;
        waiting->done_cv.wait(lock, [&waiting] { return waiting->done; });
        *outcome = Outcome::kCoalesced;
        return waiting->value;
      }
      flight = std::make_shared<Flight>();
      flights_.emplace(key, flight);
    }
    *outcome = Outcome::kMiss;
    Value value{};
    try {
      value = fetch();
    } catch (...) {
      Finish(key, flight, Value{}, Clock::duration::zero());
      throw;
    }
    Finish(key, flight, value, ttl(value));
    return value;
  }

  // Stored entries (expired ones included until they are dropped).
  std::size_t size() const {
    std::lock_guard<std::mutex> lock(mu_);
    return entries_.size();
  }

  // Implementation details follow.
 private:
  struct Flight {
    std::condition_variable done_cv;
    bool done = false;  // guarded by the cache's mu_
    Value value{};      // written once, before done
  };
  struct Entry {
    Value value;
    Clock::time_point expires;
    typename std::list<std::string>::iterator order;  // position in order_
  };
  using Map = std::unordered_map<std::string, Entry>;

  void Finish(const std::string& key, const std::shared_ptr<Flight>& flight, const Value& value,
              Clock::duration ttl) {
    std::lock_guard<std::mutex> lock(mu_);
    if (ttl > Clock::duration::zero()) StoreLocked(key, value, now_() + ttl);
    flight->value = value;
    flight->done = true;
    flights_.erase(key);
    flight->done_cv.notify_all();
  }

  void StoreLocked(const std::string& key, const Value& value, Clock::time_point expires) {
    auto it = entries_.find(key);
    if (it != entries_.end()) EraseLocked(it);
    while (entries_.size() >= max_entries_ && !order_.empty()) {
      EraseLocked(entries_.find(order_.front()));
    }
    order_.push_back(key);
    entries_.emplace(key, Entry{value, expires, std::prev(order_.end())});
  }

  void EraseLocked(typename Map::iterator it) {
    order_.erase(it->second.order);
    entries_.erase(it);
  }

  const std::size_t max_entries_;
  const NowFn now_;
  mutable std::mutex mu_;
  Map entries_;                   // guarded by mu_
  std::list<std::string> order_;  // guarded by mu_; keys of entries_, oldest stored first
  std::unordered_map<std::string, std::shared_ptr<Flight>> flights_;  // guarded by mu_
};

}  // namespace eventbuffer::controller
