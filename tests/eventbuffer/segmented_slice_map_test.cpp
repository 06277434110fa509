// SegmentedSliceMap specifics: the index under hash collisions and deep tries, stall
// reporting, and the reclamation scheme (nothing a reader can see is destroyed).
// The contract shared with MutexSliceMap is in slice_map_contract_test.cpp, concurrency in
// slice_map_concurrency_test.cpp.
#include "eventbuffer/segmented_slice_map.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "eventbuffer/append_stats.h"

namespace eventbuffer {
namespace {

using Map = SegmentedSliceMap<int>;

// Every key with the same length has the same 64-bit hash.
std::uint64_t LengthHash(std::string_view k) { return k.size(); }

TEST(SegmentedSliceMapTest, KeysWithEqualHashesStayDistinct) {
  Map m(Map::Options{.root_bits = 4, .hash = &LengthHash});
  const std::vector<std::string> keys = {"aa", "bb", "cc", "dd", "abc", "xyz", "q"};
  for (int round = 0; round < 3; ++round) {
    for (std::size_t i = 0; i < keys.size(); ++i)
      m.Append(keys[i], static_cast<int>(i * 10 + round));
  }
  for (std::size_t i = 0; i < keys.size(); ++i) {
    const int b = static_cast<int>(i * 10);
    EXPECT_EQ(m.Read(keys[i]), (std::vector<int>{b, b + 1, b + 2})) << keys[i];
  }
  EXPECT_TRUE(m.Read("ee").empty());  // same hash, absent
  EXPECT_EQ(m.KeyCount(), keys.size());
  // Erase from the middle of a collision list, then re-add.
  EXPECT_EQ(m.DropFront("bb", 3), 3u);
  EXPECT_TRUE(m.EraseIfEmpty("bb"));
  EXPECT_EQ(m.Read("aa").size(), 3u);
  EXPECT_EQ(m.Read("cc").size(), 3u);
  EXPECT_TRUE(m.Read("bb").empty());
  m.Append("bb", 99);
  EXPECT_EQ(m.Read("bb"), std::vector<int>{99});
  // Drain a whole collision list down to one entry and to none.
  for (const char* k : {"aa", "bb", "cc"}) {
    m.DropFront(k, 10);
    EXPECT_TRUE(m.EraseIfEmpty(k)) << k;
  }
  EXPECT_EQ(m.Read("dd").size(), 3u);
  m.DropFront("dd", 10);
  EXPECT_TRUE(m.EraseIfEmpty("dd"));
  EXPECT_EQ(m.KeyCount(), 3u);
  std::vector<std::string> left = m.Keys();
  std::sort(left.begin(), left.end());
  EXPECT_EQ(left, (std::vector<std::string>{"abc", "q", "xyz"}));
}

TEST(SegmentedSliceMapTest, TinyRootGrowsIntoADeepTrie) {
  Map m(Map::Options{.root_bits = 1});
  constexpr int kKeys = 5000;
  for (int i = 0; i < kKeys; ++i) m.Append("key-" + std::to_string(i), i);
  for (int i = 0; i < kKeys; ++i)
    ASSERT_EQ(m.Read("key-" + std::to_string(i)), std::vector<int>{i});
  EXPECT_EQ(m.KeyCount(), static_cast<std::size_t>(kKeys));
  for (int i = 0; i < kKeys; i += 2) {
    m.DropFront("key-" + std::to_string(i), 1);
    ASSERT_TRUE(m.EraseIfEmpty("key-" + std::to_string(i)));
  }
  EXPECT_EQ(m.KeyCount(), static_cast<std::size_t>(kKeys / 2));
  for (int i = 1; i < kKeys; i += 2) ASSERT_EQ(m.Count("key-" + std::to_string(i)), 1u);
}

TEST(SegmentedSliceMapTest, StallIsReportedOnlyOnSlowPaths) {
  Map m;
  AppendStats stats;
  stats.stall_ns = -1;
  m.Append("k", 0, &stats);  // creates the key: timed
  EXPECT_GE(stats.stall_ns, 0);
  for (int i = 1; i < 8; ++i) {
    stats.stall_ns = -1;
    m.Append("k", i, &stats);  // fits in the first segment (8 slots): no clock read
    EXPECT_EQ(stats.stall_ns, 0) << i;
  }
  stats.stall_ns = -1;
  m.Append("k", 8, &stats);  // first slot of a new segment: timed
  EXPECT_GE(stats.stall_ns, 0);
  EXPECT_EQ(m.Count("k"), 9u);
}

TEST(SegmentedSliceMapTest, ValuesAReaderIsVisitingAreNotDestroyed) {
  SegmentedSliceMap<std::shared_ptr<int>> m;
  std::vector<std::weak_ptr<int>> weak;
  for (int i = 0; i < 100; ++i) {
    auto p = std::make_shared<int>(i);
    weak.push_back(p);
    m.Append("k", std::move(p));
  }
  int visited = 0;
  m.ForEach("k", [&](const std::shared_ptr<int>& p) {
    if (visited++ == 0) {
      // Retention runs while this reader is inside the map: the values are dropped from
      // the map but must stay alive until the reader is done.
      EXPECT_EQ(m.DropFront("k", 100), 100u);
      m.CollectGarbage();
      for (const auto& w : weak) EXPECT_FALSE(w.expired());
    }
    EXPECT_NE(p, nullptr);
  });
  EXPECT_EQ(visited, 100);  // the reader saw the run it started with
  EXPECT_EQ(m.Count("k"), 0u);
  m.CollectGarbage();
  for (const auto& w : weak) EXPECT_TRUE(w.expired());
}

TEST(SegmentedSliceMapTest, ErasedKeysGiveTheirMemoryBack) {
  Map m;
  const std::size_t empty = m.MemoryBytes();
  for (int i = 0; i < 1000; ++i) {
    for (int j = 0; j < 50; ++j) m.Append("key-" + std::to_string(i), j);
  }
  EXPECT_GT(m.MemoryBytes(), empty + 1000 * 50 * sizeof(int));
  for (int i = 0; i < 1000; ++i) {
    ASSERT_EQ(m.DropFront("key-" + std::to_string(i), 50), 50u);
    ASSERT_TRUE(m.EraseIfEmpty("key-" + std::to_string(i)));
  }
  m.CollectGarbage();
  // Only index nodes (never removed while the map lives) may remain.
  EXPECT_LT(m.MemoryBytes() - empty, 1000 * 50u);
  EXPECT_EQ(m.Size(), 0u);
  EXPECT_EQ(m.KeyCount(), 0u);
}

TEST(SegmentedSliceMapTest, SizeCountsAppendsFromManyThreads) {
  Map m;
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&m, t] {
      for (int i = 0; i < 1000; ++i) m.Append("k" + std::to_string((t + i) % 13), i);
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(m.Size(), 8000u);
  std::size_t sum = 0;
  for (const auto& k : m.Keys()) sum += m.Count(k);
  EXPECT_EQ(sum, 8000u);
}

}  // namespace
}  // namespace eventbuffer
