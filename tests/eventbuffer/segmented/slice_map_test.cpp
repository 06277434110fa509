// SegmentedSliceMap specifics: stall reporting, an append in flight across segment
// switches, and the reclamation scheme (nothing a reader can see is destroyed). The index
// is tested in index_test.cpp, the key hash in key_hash_test.cpp, the pool in
// pool_test.cpp; the contract shared with MutexSliceMap in ../slice_map_contract_test.cpp,
// concurrency in ../slice_map_concurrency_test.cpp.
#include "eventbuffer/segmented/slice_map.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstddef>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "eventbuffer/append_stats.h"

namespace eventbuffer {
namespace {

using Map = SegmentedSliceMap<int>;

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

// A value whose move constructor (run by Append between claiming a slot and committing
// it) holds on, for one marked value, until the test lets it go.
struct Held {
  static constexpr int kHold = -1;
  static inline std::atomic<bool> arrived{false};
  static inline std::atomic<bool> release{false};
  int x = 0;
  explicit Held(int v) : x(v) {}
  Held(const Held&) = default;
  Held(Held&& o) noexcept : x(o.x) {
    if (x != kHold) return;
    arrived.store(true);
    while (!release.load()) std::this_thread::yield();
  }
};

TEST(SegmentedSliceMapTest, AnAppendInFlightAcrossSegmentSwitchesBecomesVisible) {
  // One append claims the first slot and stalls before committing. Meanwhile other appends
  // fill the first segment and the three after it, so the key's counts move on from each
  // segment (into its own word) while that slot is still in flight. Readers see nothing
  // behind the missing slot; once it commits, into a segment the key has left, all of it.
  SegmentedSliceMap<Held> m;
  Held::arrived.store(false);
  Held::release.store(false);
  std::thread stalled([&] { m.Append("k", Held(Held::kHold)); });
  while (!Held::arrived.load()) std::this_thread::yield();
  constexpr int kMore = 8 + 16 + 32 + 64 - 1 + 10;  // into the fifth segment
  for (int i = 0; i < kMore; ++i) m.Append("k", Held(i));
  EXPECT_TRUE(m.Read("k").empty());
  // Count goes by position: it may count the append in flight, never more.
  EXPECT_GE(m.Count("k"), static_cast<std::size_t>(kMore));
  EXPECT_LE(m.Count("k"), static_cast<std::size_t>(kMore) + 1);
  EXPECT_FALSE(m.EraseIfEmpty("k"));
  EXPECT_EQ(m.DropFront("k", 5), 0u);  // nothing visible to drop
  Held::release.store(true);
  stalled.join();
  const std::vector<Held> got = m.Read("k");
  ASSERT_EQ(got.size(), static_cast<std::size_t>(kMore) + 1);
  EXPECT_EQ(got[0].x, Held::kHold);
  for (int i = 0; i < kMore; ++i) ASSERT_EQ(got[i + 1].x, i);
  EXPECT_EQ(m.Size(), got.size());
  // Retention over segments the key has left, then erasure of the emptied key.
  EXPECT_EQ(m.DropFront("k", got.size()), got.size());
  EXPECT_TRUE(m.EraseIfEmpty("k"));
  m.Append("k", Held(7));
  ASSERT_EQ(m.Read("k").size(), 1u);
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

// Slices of short keys live in the segment pool's small classes, those of long keys come
// from operator new; both are freed the right way when keys are erased and when the map
// goes (AddressSanitizer checks sizes and use after free).
TEST(SegmentedSliceMapTest, KeysOfEveryLengthAreStoredAndFreed) {
  const std::size_t lengths[] = {0, 1, 23, 24, 200, 215, 216, 217, 248, 300, 1000, 5000};
  {
    Map m;
    for (std::size_t len : lengths) {
      const std::string key(len, static_cast<char>('a' + len % 26));
      for (int i = 0; i < 20; ++i) m.Append(key, static_cast<int>(len) * 100 + i);
    }
    for (std::size_t len : lengths) {
      const std::string key(len, static_cast<char>('a' + len % 26));
      const std::vector<int> got = m.Read(key);
      ASSERT_EQ(got.size(), 20u) << len;
      for (int i = 0; i < 20; ++i) EXPECT_EQ(got[i], static_cast<int>(len) * 100 + i);
    }
    // Erase half of them (slices retired and reclaimed), keep the rest for the destructor.
    for (std::size_t k = 0; k < std::size(lengths); k += 2) {
      const std::string key(lengths[k], static_cast<char>('a' + lengths[k] % 26));
      EXPECT_EQ(m.DropFront(key, 20), 20u);
      EXPECT_TRUE(m.EraseIfEmpty(key));
      EXPECT_EQ(m.Count(key), 0u);
    }
    m.CollectGarbage();
    EXPECT_EQ(m.Size(), 20u * (std::size(lengths) / 2));
    // A re-created key gets a fresh slice from the freed blocks.
    const std::string again(lengths[2], static_cast<char>('a' + lengths[2] % 26));
    m.Append(again, 7);
    EXPECT_EQ(m.Read(again), std::vector<int>{7});
  }
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
