#include "metrics/atomic_histogram.h"

#include <gtest/gtest.h>

#include <cmath>
#include <thread>
#include <vector>

namespace eventbuffer::metrics {
namespace {

TEST(AtomicHistogramTest, BucketsAreLessOrEqualAndCumulative) {
  AtomicHistogram h({100, 200, 400});
  h.Observe(100);  // exactly on a bound: that bucket
  h.Observe(101);  // just above: the next one
  h.Observe(400);
  h.Observe(401);  // +Inf only
  h.Observe(-5);   // clamped to 0: first bucket
  const auto s = h.Snapshot();
  ASSERT_EQ(s.bucket.size(), 4u);
  EXPECT_EQ(s.bucket[0].cumulative_count, 2u);
  EXPECT_EQ(s.bucket[1].cumulative_count, 3u);
  EXPECT_EQ(s.bucket[2].cumulative_count, 4u);
  EXPECT_EQ(s.bucket[3].cumulative_count, 5u);
  EXPECT_TRUE(std::isinf(s.bucket[3].upper_bound));
  EXPECT_DOUBLE_EQ(s.bucket[0].upper_bound, 100e-9);
  EXPECT_EQ(s.sample_count, 5u);
  EXPECT_DOUBLE_EQ(s.sample_sum, (100 + 101 + 400 + 401) / 1e9);
  EXPECT_EQ(h.Count(), 5u);
}

TEST(AtomicHistogramTest, ConcurrentObservesAreAllCounted) {
  AtomicHistogram h(AppendLatencyBucketsNs());
  constexpr int kThreads = 12;  // more threads than shards: shards are shared too
  constexpr int kPerThread = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&h, t] {
      for (int i = 0; i < kPerThread; ++i) h.Observe(100 * (1 + (i + t) % 2000));
    });
  }
  // A scrape running alongside must always see a consistent, cumulative snapshot.
  for (int i = 0; i < 50; ++i) {
    const auto s = h.Snapshot();
    for (std::size_t b = 1; b < s.bucket.size(); ++b) {
      ASSERT_LE(s.bucket[b - 1].cumulative_count, s.bucket[b].cumulative_count);
    }
    ASSERT_EQ(s.sample_count, s.bucket.back().cumulative_count);
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(h.Count(), std::uint64_t{kThreads} * kPerThread);
  double expected_sum = 0;
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) expected_sum += 100.0 * (1 + (i + t) % 2000);
  }
  EXPECT_NEAR(h.Snapshot().sample_sum, expected_sum / 1e9, 1e-9);
}

TEST(AtomicHistogramTest, AppendBucketsSpan100NsTo100Ms) {
  const auto b = AppendLatencyBucketsNs();
  ASSERT_FALSE(b.empty());
  EXPECT_EQ(b.front(), 100);
  EXPECT_GE(b.back(), 100'000'000);
  for (std::size_t i = 1; i < b.size(); ++i) EXPECT_EQ(b[i], 2 * b[i - 1]);
}

}  // namespace
}  // namespace eventbuffer::metrics
