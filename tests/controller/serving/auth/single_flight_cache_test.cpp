#include "controller/serving/auth/single_flight_cache.h"

#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <thread>
#include <vector>

namespace eventbuffer::controller {
namespace {

using Cache = SingleFlightCache<int>;
using Clock = Cache::Clock;
using std::chrono::seconds;

class SingleFlightCacheTest : public ::testing::Test {
 protected:
  Cache::NowFn Now() {
    return [this] { return Clock::time_point{} + seconds(now_s_.load()); };
  }
  std::atomic<int> now_s_{1000};
};

TEST_F(SingleFlightCacheTest, StoresForTheTtlOfTheValue) {
  Cache cache(10, Now());
  int fetches = 0;
  auto fetch = [&] { return ++fetches; };
  auto ttl = [](int) { return seconds(10); };
  Cache::Outcome outcome;
  EXPECT_EQ(cache.Get("k", fetch, ttl, &outcome), 1);
  EXPECT_EQ(outcome, Cache::Outcome::kMiss);
  now_s_ += 9;
  EXPECT_EQ(cache.Get("k", fetch, ttl, &outcome), 1);
  EXPECT_EQ(outcome, Cache::Outcome::kHit);
  now_s_ += 1;  // expired at exactly ttl
  EXPECT_EQ(cache.Get("k", fetch, ttl, &outcome), 2);
  EXPECT_EQ(outcome, Cache::Outcome::kMiss);
  EXPECT_EQ(fetches, 2);
}

TEST_F(SingleFlightCacheTest, ZeroTtlIsNotStored) {
  Cache cache(10, Now());
  int fetches = 0;
  auto fetch = [&] { return ++fetches; };
  auto ttl = [](int v) { return v == 1 ? seconds(0) : seconds(5); };
  Cache::Outcome outcome;
  EXPECT_EQ(cache.Get("k", fetch, ttl, &outcome), 1);
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_EQ(cache.Get("k", fetch, ttl, &outcome), 2);
  EXPECT_EQ(outcome, Cache::Outcome::kMiss);
  EXPECT_EQ(cache.Get("k", fetch, ttl, &outcome), 2);
  EXPECT_EQ(outcome, Cache::Outcome::kHit);
}

TEST_F(SingleFlightCacheTest, EvictsTheOldestWhenFull) {
  Cache cache(3, Now());
  auto ttl = [](int) { return seconds(100); };
  Cache::Outcome outcome;
  for (int i = 0; i < 4; ++i) {
    cache.Get(
        "k" + std::to_string(i), [i] { return i; }, ttl, &outcome);
  }
  EXPECT_EQ(cache.size(), 3u);
  cache.Get(
      "k0", [] { return 100; }, ttl, &outcome);
  EXPECT_EQ(outcome, Cache::Outcome::kMiss);  // k0 was evicted
  cache.Get(
      "k3", [] { return 100; }, ttl, &outcome);
  EXPECT_EQ(outcome, Cache::Outcome::kHit);
  EXPECT_EQ(cache.size(), 3u);
}

TEST_F(SingleFlightCacheTest, ConcurrentMissesShareOneFetch) {
  Cache cache(10, Now());
  std::atomic<int> fetches{0};
  std::atomic<bool> release{false};
  std::atomic<int> waiting{0};
  auto fetch = [&] {
    fetches.fetch_add(1);
    while (!release.load()) std::this_thread::yield();
    return 42;
  };
  auto ttl = [](int) { return seconds(10); };
  constexpr int kThreads = 16;
  std::vector<std::thread> threads;
  std::atomic<int> coalesced{0};
  std::atomic<int> sum{0};
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&] {
      Cache::Outcome outcome;
      waiting.fetch_add(1);
      sum.fetch_add(cache.Get("k", fetch, ttl, &outcome));
      if (outcome == Cache::Outcome::kCoalesced) coalesced.fetch_add(1);
    });
  }
  // Let every thread reach the cache while the first fetch is still running.
  while (waiting.load() < kThreads) std::this_thread::yield();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  release.store(true);
  for (auto& t : threads) t.join();
  EXPECT_EQ(fetches.load(), 1);
  EXPECT_EQ(sum.load(), 42 * kThreads);
  EXPECT_GE(coalesced.load(), 1);
}

TEST_F(SingleFlightCacheTest, ThrowingFetchReleasesWaitersWithADefaultValue) {
  Cache cache(10, Now());
  auto ttl = [](int) { return seconds(10); };
  Cache::Outcome outcome;
  EXPECT_THROW(cache.Get(
                   "k", []() -> int { throw std::runtime_error("x"); }, ttl, &outcome),
               std::runtime_error);
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_EQ(cache.Get(
                "k", [] { return 7; }, ttl, &outcome),
            7);  // not stuck in flight
  EXPECT_EQ(outcome, Cache::Outcome::kMiss);
}

}  // namespace
}  // namespace eventbuffer::controller
