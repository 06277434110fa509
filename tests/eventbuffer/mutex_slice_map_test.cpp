// Tests of MutexSliceMap, the legacy backend: the single-threaded contract and a concurrent
// smoke test. The shared concurrency suite for both backends is in slice_map_concurrency_test.cpp.
#include "eventbuffer/mutex_slice_map.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "eventbuffer/append_stats.h"

namespace eventbuffer {
namespace {

TEST(MutexSliceMapTest, EmptyMapHasNothing) {
  MutexSliceMap<int> m;
  EXPECT_EQ(m.Size(), 0u);
  EXPECT_EQ(m.KeyCount(), 0u);
  EXPECT_TRUE(m.Keys().empty());
  EXPECT_TRUE(m.Read("a").empty());
  EXPECT_EQ(m.Count("a"), 0u);
  EXPECT_EQ(m.DropFront("a", 3), 0u);
  EXPECT_FALSE(m.EraseIfEmpty("a"));
}

TEST(MutexSliceMapTest, AppendKeepsOrderPerKey) {
  MutexSliceMap<int> m;
  for (int i = 0; i < 100; ++i) m.Append(i % 2 ? "odd" : "even", i);
  std::vector<int> odd = m.Read("odd");
  ASSERT_EQ(odd.size(), 50u);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(odd[i], 2 * i + 1);
  std::vector<int> seen;
  m.ForEach("even", [&](const int& v) { seen.push_back(v); });
  ASSERT_EQ(seen.size(), 50u);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(seen[i], 2 * i);
  EXPECT_EQ(m.Size(), 100u);
  EXPECT_EQ(m.KeyCount(), 2u);
  std::vector<std::string> keys = m.Keys();
  std::sort(keys.begin(), keys.end());
  EXPECT_EQ(keys, (std::vector<std::string>{"even", "odd"}));
}

TEST(MutexSliceMapTest, AppendReportsNoStallOnTheFastPath) {
  MutexSliceMap<int> m;
  m.Append("k", 0);
  m.Append("k", 1);  // capacity 1 -> 2 reallocates; the next one fits
  AppendStats stats;
  stats.stall_ns = 12345;
  m.Append("k", 2, &stats);  // reallocation 2 -> 4: a stall, timed
  EXPECT_GE(stats.stall_ns, 0);
  stats.stall_ns = 12345;
  m.Append("k", 3, &stats);  // fits in capacity 4, no contention: exactly 0
  EXPECT_EQ(stats.stall_ns, 0);
}

TEST(MutexSliceMapTest, DropFrontDropsOldestAndDestroysThem) {
  MutexSliceMap<std::shared_ptr<int>> m;
  std::vector<std::weak_ptr<int>> weak;
  for (int i = 0; i < 10; ++i) {
    auto p = std::make_shared<int>(i);
    weak.push_back(p);
    m.Append("k", std::move(p));
  }
  EXPECT_EQ(m.DropFront("k", 3), 3u);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(weak[i].expired()) << i;
  for (int i = 3; i < 10; ++i) EXPECT_FALSE(weak[i].expired()) << i;
  std::vector<std::shared_ptr<int>> rest = m.Read("k");
  ASSERT_EQ(rest.size(), 7u);
  EXPECT_EQ(*rest.front(), 3);
  rest.clear();
  EXPECT_EQ(m.DropFrontWhile("k", [](const std::shared_ptr<int>& p) { return *p < 8; }), 5u);
  EXPECT_EQ(m.Count("k"), 2u);
  EXPECT_EQ(m.Size(), 2u);
  EXPECT_EQ(m.DropFront("k", 100), 2u);
  for (const auto& w : weak) EXPECT_TRUE(w.expired());
  EXPECT_EQ(m.Size(), 0u);
  EXPECT_EQ(m.KeyCount(), 0u);  // the key is still there but holds nothing
  EXPECT_TRUE(m.EraseIfEmpty("k"));
  EXPECT_FALSE(m.EraseIfEmpty("k"));
}

TEST(MutexSliceMapTest, EraseIfEmptyKeepsKeysWithValues) {
  MutexSliceMap<int> m;
  m.Append("k", 1);
  EXPECT_FALSE(m.EraseIfEmpty("k"));
  EXPECT_EQ(m.Read("k"), std::vector<int>{1});
}

TEST(MutexSliceMapTest, RetentionShrinksMemory) {
  MutexSliceMap<int> m;
  for (int i = 0; i < 100000; ++i) m.Append("k", i);
  const std::size_t full = m.MemoryBytes();
  EXPECT_EQ(m.DropFront("k", 99990), 99990u);
  EXPECT_LT(m.MemoryBytes(), full / 10);
  EXPECT_EQ(m.Read("k").front(), 99990);
  for (int i = 0; i < 10; ++i) m.Append("k", -i);
  EXPECT_EQ(m.Count("k"), 20u);
}

TEST(MutexSliceMapTest, ConcurrentAppendsLoseNothing) {
  MutexSliceMap<int> m;
  constexpr int kThreads = 4, kPerThread = 5000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&m, t] {
      for (int i = 0; i < kPerThread; ++i)
        m.Append("k" + std::to_string(i % 7), t * kPerThread + i);
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(m.Size(), static_cast<std::size_t>(kThreads * kPerThread));
  std::vector<int> all;
  for (const auto& k : m.Keys()) {
    auto v = m.Read(k);
    all.insert(all.end(), v.begin(), v.end());
  }
  std::sort(all.begin(), all.end());
  for (int i = 0; i < kThreads * kPerThread; ++i) ASSERT_EQ(all[i], i);
}

}  // namespace
}  // namespace eventbuffer
