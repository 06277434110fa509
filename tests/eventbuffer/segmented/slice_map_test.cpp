// SegmentedSliceMap specifics: the index under hash collisions and deep tries, stall
// reporting, and the reclamation scheme (nothing a reader can see is destroyed).
// The contract shared with MutexSliceMap is in slice_map_contract_test.cpp, concurrency in
// slice_map_concurrency_test.cpp.
#include "eventbuffer/segmented/slice_map.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "eventbuffer/append_stats.h"
#include "eventbuffer/segmented/pool.h"

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

// The default key hash reads every byte of a key and its length: changing any one byte of
// keys of length 0 to 70 (every path: 1-3, 4-7, 8-16 bytes, and the 16-byte steps with an
// overlapping tail), or the length alone, changes the hash.
TEST(SegmentedSliceMapTest, KeyHashDependsOnEveryByteAndTheLength) {
  using segmented_detail::HashKey;
  std::set<std::uint64_t> by_length;
  for (std::size_t len = 0; len <= 70; ++len) {
    std::string key(len, '\0');
    for (std::size_t i = 0; i < len; ++i) key[i] = static_cast<char>('a' + (i * 7) % 26);
    const std::uint64_t h = HashKey(key);
    EXPECT_TRUE(by_length.insert(h).second) << "length " << len;
    for (std::size_t i = 0; i < len; ++i) {
      for (const unsigned char flip : {0x01, 0x80, 0xff}) {
        std::string other = key;
        other[i] = static_cast<char>(static_cast<unsigned char>(other[i]) ^ flip);
        EXPECT_NE(HashKey(other), h) << "length " << len << ", byte " << i;
      }
    }
  }
  // Zero bytes count too: "", "\0", "\0\0", ... all differ.
  std::set<std::uint64_t> zeros;
  for (std::size_t len = 0; len <= 40; ++len) {
    EXPECT_TRUE(zeros.insert(HashKey(std::string(len, '\0'))).second) << len;
  }
}

// Keys shaped like the controller's (namespace/kind/name, numbered) spread evenly over the
// low bits the root array is indexed by, and over the 4-bit groups above them that index
// the Inner nodes.
TEST(SegmentedSliceMapTest, KeyHashSpreadsNumberedKeysEvenly) {
  using segmented_detail::HashKey;
  constexpr std::size_t kKeys = 1 << 16;
  constexpr std::size_t kBuckets = 1 << 12;  // 16 keys per bucket expected
  for (const unsigned shift : {0u, 16u, 20u, 48u}) {
    std::vector<std::uint32_t> buckets(kBuckets);
    for (std::size_t i = 0; i < kKeys; ++i) {
      const std::string key = "team-" + std::to_string(i % 97) + "/Pod/web-" + std::to_string(i);
      ++buckets[(HashKey(key) >> shift) % kBuckets];
    }
    // Chi-square over 4095 degrees of freedom: about 4095 for a uniform hash, with a
    // standard deviation of about 90; 4800 is more than 7 of them away.
    double chi2 = 0;
    for (std::uint32_t b : buckets) chi2 += (b - 16.0) * (b - 16.0) / 16.0;
    EXPECT_LT(chi2, 4800) << "bits from " << shift;
    EXPECT_LT(*std::max_element(buckets.begin(), buckets.end()), 48u) << "bits from " << shift;
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

// ---- SegmentPool ----

using TestPool = segmented_detail::SegmentPool<2, 4>;
constexpr std::size_t kSmall = 64, kLarge = 48 * 1024;
const std::size_t kTestClasses[2] = {kSmall, kLarge};

TEST(SegmentPoolTest, BlocksAreAlignedAndDisjointAcrossChunks) {
  TestPool pool(kTestClasses, 64);
  std::vector<std::pair<std::uintptr_t, std::size_t>> blocks;
  // Enough of both classes to span several chunks.
  for (int i = 0; i < 3 * static_cast<int>(TestPool::kChunkBytes / kLarge); ++i) {
    for (std::size_t cls : {std::size_t{0}, std::size_t{1}}) {
      void* p = pool.Allocate(cls, 1);
      std::memset(p, 0xab, kTestClasses[cls]);  // the whole block is writable
      blocks.emplace_back(reinterpret_cast<std::uintptr_t>(p), kTestClasses[cls]);
    }
  }
  std::sort(blocks.begin(), blocks.end());
  for (std::size_t i = 0; i < blocks.size(); ++i) {
    EXPECT_EQ(blocks[i].first % 64, 0u);
    if (i + 1 < blocks.size()) {
      EXPECT_LE(blocks[i].first + blocks[i].second, blocks[i + 1].first);
    }
  }
  for (const auto& [p, n] : blocks) pool.Free(reinterpret_cast<void*>(p), n == kSmall ? 0 : 1);
}

// Index blocks (classes from first_index_class on: Slices, Inner nodes) come from chunks
// of their own: allocated in turn with the other kind, each kind still lies packed.
TEST(SegmentPoolTest, IndexBlocksAreCarvedFromChunksOfTheirOwn) {
#ifdef KEB_SEGMENT_POOL_PASSTHROUGH
  GTEST_SKIP() << "AddressSanitizer build: the pool hands every block to operator new/delete";
#else
  // Class 1 (48 KiB) is the index class here, class 0 (64 bytes) the other kind.
  TestPool pool(kTestClasses, 64, /*large_chunks=*/false, /*first_index_class=*/1);
  std::vector<std::uintptr_t> small, index;
  constexpr int kRounds = 200;
  for (int i = 0; i < kRounds; ++i) {
    small.push_back(reinterpret_cast<std::uintptr_t>(pool.Allocate(0, 1)));
    index.push_back(reinterpret_cast<std::uintptr_t>(pool.Allocate(1, 1)));
  }
  // 200 small blocks fit in one chunk: each follows the previous one directly, although
  // 200 index blocks (several chunks) were allocated in between.
  ASSERT_LE(kRounds * kSmall, TestPool::kChunkBytes);
  for (int i = 1; i < kRounds; ++i) EXPECT_EQ(small[i], small[i - 1] + kSmall) << i;
  for (std::uintptr_t in : index) {
    EXPECT_TRUE(in + kLarge <= small.front() || in >= small.back() + kSmall);
  }
  // Within a chunk, index blocks follow each other too.
  const std::size_t per_chunk = TestPool::kChunkBytes / kLarge;
  for (std::size_t i = 1; i < per_chunk; ++i) EXPECT_EQ(index[i], index[i - 1] + kLarge) << i;
  // Without first_index_class both kinds share one bump range, one after the other.
  TestPool shared(kTestClasses, 64, /*large_chunks=*/false);
  const auto a = reinterpret_cast<std::uintptr_t>(shared.Allocate(0, 1));
  const auto b = reinterpret_cast<std::uintptr_t>(shared.Allocate(1, 1));
  const auto c = reinterpret_cast<std::uintptr_t>(shared.Allocate(0, 1));
  EXPECT_EQ(b, a + kSmall);
  EXPECT_EQ(c, b + kLarge);
  for (int i = 0; i < kRounds; ++i) {
    pool.Free(reinterpret_cast<void*>(small[i]), 0);
    pool.Free(reinterpret_cast<void*>(index[i]), 1);
  }
  shared.Free(reinterpret_cast<void*>(a), 0);
  shared.Free(reinterpret_cast<void*>(b), 1);
  shared.Free(reinterpret_cast<void*>(c), 0);
#endif
}

TEST(SegmentPoolTest, FreedBlocksAreReusedBeforeNewChunks) {
#ifdef KEB_SEGMENT_POOL_PASSTHROUGH
  GTEST_SKIP() << "AddressSanitizer build: the pool hands every block to operator new/delete";
#else
  TestPool pool(kTestClasses, 64);
  std::set<void*> first;
  for (int i = 0; i < 20; ++i) first.insert(pool.Allocate(1, 0));
  const std::size_t reserved = pool.ReservedBytes();
  EXPECT_GE(reserved, 20 * kLarge);
  // Freed from another thread (as reclamation does), then reused by thread 0...
  auto free_all = [&pool](const std::set<void*>& blocks) {
    std::thread([&] {
      for (void* p : blocks) pool.Free(p, 1);
    }).join();
  };
  free_all(first);
  std::set<void*> second;
  for (int i = 0; i < 20; ++i) second.insert(pool.Allocate(1, 0));
  EXPECT_EQ(second, first);
  EXPECT_EQ(pool.ReservedBytes(), reserved);
  // ... and by a thread without a local cache (id 9 >= 4).
  free_all(second);
  std::set<void*> third;
  for (int i = 0; i < 20; ++i) third.insert(pool.Allocate(1, 9));
  EXPECT_EQ(third, first);
  EXPECT_EQ(pool.ReservedBytes(), reserved);
  free_all(third);
  // Many cycles of allocate/free do not grow the reserve.
  for (int cycle = 0; cycle < 50; ++cycle) {
    std::vector<void*> v;
    for (int i = 0; i < 20; ++i) v.push_back(pool.Allocate(1, 0));
    for (void* p : v) pool.Free(p, 1);
  }
  EXPECT_EQ(pool.ReservedBytes(), reserved);
#endif
}

// Allocating threads (distinct ids, one of them without a local cache) and a freeing thread
// race; every block carries its holder's stamp, so a block handed out twice is caught.
TEST(SegmentPoolTest, ConcurrentAllocateAndFreeNeverShareABlock) {
  TestPool pool(kTestClasses, 64);
  std::mutex mu;
  std::vector<std::pair<void*, std::size_t>> to_free;
  std::atomic<int> producers{3};
  std::atomic<int> errors{0};
  auto producer = [&](std::uint32_t id) {
    for (std::uint64_t i = 0; i < 3000; ++i) {
      const std::size_t cls = i % 7 == 0 ? 1 : 0;
      auto* p = static_cast<std::uint64_t*>(pool.Allocate(cls, id));
      const std::uint64_t stamp = (std::uint64_t{id} << 32) | i;
      p[0] = stamp;
      p[kTestClasses[cls] / 8 - 1] = stamp;
      if (i % 64 == 0) std::this_thread::yield();
      if (p[0] != stamp || p[kTestClasses[cls] / 8 - 1] != stamp) errors.fetch_add(1);
      std::lock_guard<std::mutex> lock(mu);
      to_free.emplace_back(p, cls);
    }
    producers.fetch_sub(1);
  };
  std::vector<std::thread> threads;
  threads.emplace_back(producer, 0);
  threads.emplace_back(producer, 2);
  threads.emplace_back(producer, 7);  // no local cache: the shared one under the lock
  threads.emplace_back([&] {
    for (;;) {
      const bool last = producers.load() == 0;
      std::vector<std::pair<void*, std::size_t>> batch;
      {
        std::lock_guard<std::mutex> lock(mu);
        batch.swap(to_free);
      }
      for (auto [p, cls] : batch) pool.Free(p, cls);
      if (last) break;
      std::this_thread::yield();
    }
  });
  for (auto& t : threads) t.join();
  EXPECT_EQ(errors.load(), 0);
}

}  // namespace
}  // namespace eventbuffer
