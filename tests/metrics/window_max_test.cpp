#include "metrics/window_max.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace eventbuffer::metrics {
namespace {

constexpr std::int64_t kSec = 1'000'000'000;

TEST(WindowMaxTest, EmptyReadsZero) {
  WindowMax w(60 * kSec, 6);
  EXPECT_EQ(w.Max(0), 0);
  EXPECT_EQ(w.Max(1000 * kSec), 0);
}

TEST(WindowMaxTest, KeepsTheLargestInsideTheWindow) {
  WindowMax w(60 * kSec, 6);  // 10 s slices
  const std::int64_t t0 = 1000 * kSec;
  w.Record(5, t0);
  w.Record(9, t0 + 1 * kSec);
  w.Record(3, t0 + 15 * kSec);
  EXPECT_EQ(w.Max(t0 + 20 * kSec), 9);
  // 9 was recorded in the slice starting at t0; it leaves after six slices.
  EXPECT_EQ(w.Max(t0 + 55 * kSec), 9);
  EXPECT_EQ(w.Max(t0 + 60 * kSec), 3);
  EXPECT_EQ(w.Max(t0 + 75 * kSec), 0);
}

TEST(WindowMaxTest, ReusedSlotStartsFromTheNewValue) {
  WindowMax w(60 * kSec, 6);
  const std::int64_t t0 = 1000 * kSec;
  w.Record(100, t0);
  // One full ring later the same slot holds a new slice: the old 100 must not survive.
  w.Record(7, t0 + 60 * kSec);
  EXPECT_EQ(w.Max(t0 + 60 * kSec), 7);
}

TEST(WindowMaxTest, StaleRecordDoesNotOverwriteNewerSlice) {
  WindowMax w(60 * kSec, 6);
  const std::int64_t t0 = 1000 * kSec;
  w.Record(4, t0 + 60 * kSec);
  w.Record(50, t0);  // a late caller with an old timestamp, same slot
  EXPECT_EQ(w.Max(t0 + 60 * kSec), 4);
}

TEST(WindowMaxTest, ValuesAreClamped) {
  WindowMax w(60 * kSec, 6);
  w.Record(-3, 0);
  EXPECT_EQ(w.Max(0), 0);
  w.Record(WindowMax::kMaxValue + 1000, 0);
  EXPECT_EQ(w.Max(0), WindowMax::kMaxValue);
}

TEST(WindowMaxTest, ConcurrentRecordsKeepTheMaximum) {
  WindowMax w(60 * kSec, 6);
  const std::int64_t now = 5000 * kSec;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&w, t, now] {
      for (int i = 0; i < 50000; ++i) w.Record(i * 4 + t, now + (i % 3) * kSec);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(w.Max(now + 3 * kSec), 49999 * 4 + 3);
}

}  // namespace
}  // namespace eventbuffer::metrics
