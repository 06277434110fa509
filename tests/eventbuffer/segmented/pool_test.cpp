// SegmentPool (eventbuffer/segmented/pool.h) on small chunks: alignment, index blocks apart
// from segments, reuse of freed blocks, and concurrent allocate/free. The pool's use of
// large chunks is tested with the chunk reserve in chunks_test.cpp.
#include "eventbuffer/segmented/pool.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <set>
#include <thread>
#include <utility>
#include <vector>

namespace eventbuffer {
namespace {

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
