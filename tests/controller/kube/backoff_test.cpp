#include "controller/kube/backoff.h"

#include <gtest/gtest.h>

namespace eventbuffer::controller {
namespace {

using std::chrono::duration;
using std::chrono::seconds;

double Sec(std::chrono::nanoseconds d) { return duration<double>(d).count(); }

TEST(BackoffTest, GrowsExponentiallyWithinJitterBoundsUpToTheCap) {
  Backoff::Options options;  // 0.8 s, x2, 30 s cap, jitter 0.4 (+-20%)
  Backoff backoff(options, 42);
  auto now = Backoff::Clock::time_point{} + seconds(1000);
  double base = 0.8;
  for (int i = 0; i < 12; ++i) {
    const double d = Sec(backoff.Next(now));
    const double expected = std::min(base, 30.0);
    EXPECT_GE(d, expected * 0.8 - 1e-9) << "step " << i;
    EXPECT_LE(d, std::min(expected * 1.2, 30.0) + 1e-9) << "step " << i;
    base *= 2;
    now += seconds(1);
  }
}

TEST(BackoffTest, NeverExceedsTheCapAfterManyFailures) {
  Backoff backoff(Backoff::Options{}, 7);
  auto now = Backoff::Clock::time_point{} + seconds(10);
  for (int i = 0; i < 1000; ++i) {
    EXPECT_LE(Sec(backoff.Next(now)), 30.0);
    now += seconds(1);
  }
}

TEST(BackoffTest, JitterSpreadsDelays) {
  Backoff::Options options;
  double min = 1e9, max = 0;
  for (std::uint64_t seed = 0; seed < 50; ++seed) {
    Backoff backoff(options, seed);
    const double d = Sec(backoff.Next(Backoff::Clock::time_point{} + seconds(5)));
    min = std::min(min, d);
    max = std::max(max, d);
  }
  EXPECT_LT(min, 0.75);
  EXPECT_GT(max, 0.85);
}

TEST(BackoffTest, ResetsAfterAHealthyPeriod) {
  Backoff::Options options;
  options.jitter = 0;
  Backoff backoff(options, 1);
  auto now = Backoff::Clock::time_point{} + seconds(10);
  EXPECT_DOUBLE_EQ(Sec(backoff.Next(now)), 0.8);
  EXPECT_DOUBLE_EQ(Sec(backoff.Next(now + seconds(1))), 1.6);
  EXPECT_DOUBLE_EQ(Sec(backoff.Next(now + seconds(2))), 3.2);
  // No failure for longer than reset_after_seconds: back to the initial delay.
  EXPECT_DOUBLE_EQ(Sec(backoff.Next(now + seconds(200))), 0.8);
}

TEST(BackoffTest, ExplicitResetStartsOver) {
  Backoff::Options options;
  options.jitter = 0;
  Backoff backoff(options, 1);
  auto now = Backoff::Clock::time_point{} + seconds(10);
  backoff.Next(now);
  backoff.Next(now);
  backoff.Reset();
  EXPECT_DOUBLE_EQ(Sec(backoff.Next(now)), 0.8);
}

}  // namespace
}  // namespace eventbuffer::controller
