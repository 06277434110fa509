#include "metrics/window_quantiles.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <thread>
#include <vector>

namespace eventbuffer::metrics {
namespace {

constexpr std::int64_t kSec = 1'000'000'000;

TEST(WindowQuantilesTest, EveryBucketMidpointIsWithinOneSixteenth) {
  for (std::int64_t v = 1; v < (std::int64_t{1} << 40); v = v * 3 / 2 + 1) {
    const double mid = WindowQuantiles::BucketMid(WindowQuantiles::BucketOf(v));
    EXPECT_LE(std::abs(mid - static_cast<double>(v)), static_cast<double>(v) / 16 + 0.5) << v;
  }
  // Buckets are ordered like the values.
  int prev = -1;
  for (std::int64_t v = 0; v < 100000; ++v) {
    const int b = WindowQuantiles::BucketOf(v);
    ASSERT_GE(b, prev);
    ASSERT_LT(b, WindowQuantiles::kBuckets);
    prev = b;
  }
  EXPECT_EQ(WindowQuantiles::BucketOf(-5), 0);
  EXPECT_EQ(WindowQuantiles::BucketOf(std::int64_t{1} << 50), WindowQuantiles::kBuckets - 1);
}

TEST(WindowQuantilesTest, EmptyWindowGivesNaN) {
  WindowQuantiles w(60 * kSec, 6);
  for (double q : w.Quantiles({0.5, 0.99}, 100 * kSec)) EXPECT_TRUE(std::isnan(q));
}

TEST(WindowQuantilesTest, QuantilesMatchExactRanksWithinOneSixteenth) {
  WindowQuantiles w(60 * kSec, 6);
  std::mt19937_64 rng(7);
  std::lognormal_distribution<double> dist(std::log(2000.0), 1.0);
  std::vector<std::int64_t> values;
  const std::int64_t t0 = 1000 * kSec;
  for (int i = 0; i < 50000; ++i) {
    const auto v = static_cast<std::int64_t>(dist(rng)) + 1;
    values.push_back(v);
    w.ObserveAt(v, t0 + i * (kSec / 1000));  // spread over 50 s
  }
  std::sort(values.begin(), values.end());
  const std::vector<double> qs = {0.5, 0.95, 0.99};
  const auto got = w.Quantiles(qs, t0 + 50 * kSec);
  for (std::size_t i = 0; i < qs.size(); ++i) {
    const auto exact =
        static_cast<double>(values[static_cast<std::size_t>(std::ceil(qs[i] * values.size())) - 1]);
    EXPECT_NEAR(got[i], exact, exact / 16 + 1) << "q=" << qs[i];
  }
}

TEST(WindowQuantilesTest, OldSlicesLeaveTheWindow) {
  WindowQuantiles w(60 * kSec, 6);  // 10 s slices
  const std::int64_t t0 = 1000 * kSec;
  for (int i = 0; i < 100; ++i) w.ObserveAt(1'000'000, t0);          // 1 ms, at t0
  for (int i = 0; i < 100; ++i) w.ObserveAt(1'000, t0 + 30 * kSec);  // 1 µs, 30 s later
  EXPECT_NEAR(w.Quantiles({0.99}, t0 + 30 * kSec)[0], 1e6, 1e6 / 16);
  // 60 s after t0 the 1 ms slice is gone: only the 1 µs observations remain.
  EXPECT_NEAR(w.Quantiles({0.99}, t0 + 60 * kSec)[0], 1e3, 1e3 / 16);
  // A later reuse of the same slot starts from zero.
  w.ObserveAt(5'000, t0 + 120 * kSec);
  EXPECT_NEAR(w.Quantiles({0.5}, t0 + 120 * kSec)[0], 5e3, 5e3 / 16);
  EXPECT_TRUE(std::isnan(w.Quantiles({0.5}, t0 + 200 * kSec)[0]));
}

TEST(WindowQuantilesTest, ConcurrentObserversAreAllCounted) {
  WindowQuantiles w(60 * kSec, 6);
  const std::int64_t now = 5000 * kSec;
  w.ObserveAt(1, now);  // open the slice first so that no reset races the writers
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&w, now, t] {
      for (int i = 0; i < 25000; ++i) w.ObserveAt(t == 0 ? 100 : 10'000, now);
    });
  }
  for (auto& t : threads) t.join();
  // 25001 small values (1 and 100) and 75000 of 10 µs: the median is 10 µs, and the 25th
  // percentile is still at the small side.
  const auto q = w.Quantiles({0.2, 0.5}, now);
  EXPECT_NEAR(q[0], 100, 100.0 / 16);
  EXPECT_NEAR(q[1], 10'000, 10'000.0 / 16);
}

TEST(WindowQuantilesTest, ObserveUsesTheMonotonicClock) {
  WindowQuantiles w(60 * kSec, 6);
  w.Observe(4'000);
  EXPECT_NEAR(w.Quantiles({0.5})[0], 4'000, 4'000.0 / 16);
}

}  // namespace
}  // namespace eventbuffer::metrics
