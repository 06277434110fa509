// ChunkReserve (eventbuffer/segmented/chunks.h): ready chunks are aligned, writable,
// faulted in and refilled; and the SegmentPool takes them only once a thread has grown past
// its small chunks (or never, when large chunks are switched off).
#include "eventbuffer/segmented/chunks.h"

#include <gtest/gtest.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "eventbuffer/segmented/pool.h"
#include "eventbuffer/segmented/slice_map.h"

namespace eventbuffer {
namespace {

using segmented_detail::ChunkReserve;
using namespace std::chrono_literals;

std::int64_t ThreadMinorFaults() {
  rusage ru{};
  getrusage(RUSAGE_THREAD, &ru);
  return ru.ru_minflt;
}

// Writes one byte per page of a chunk and expects no page fault: every page was faulted in
// before. (Not checked under ThreadSanitizer: its shadow memory is faulted in on first use.)
void ExpectWritingTakesNoFault(void* chunk) {
  const std::int64_t faults0 = ThreadMinorFaults();
  for (std::size_t off = 0; off < ChunkReserve::kBytes; off += 4096) {
    static_cast<volatile char*>(chunk)[off] = 1;
  }
#if !defined(__SANITIZE_THREAD__)
  EXPECT_EQ(ThreadMinorFaults() - faults0, 0);
#else
  (void)faults0;
#endif
}

// Sets how long freed chunks stay kept, and puts the default back at the end of the scope
// (the reserve is process-wide: a failed test must not leave its setting to the next).
struct KeepFreedFor {
  KeepFreedFor(ChunkReserve& r, std::chrono::milliseconds keep) : reserve(r) {
    reserve.set_keep_freed(keep);
  }
  ~KeepFreedFor() { reserve.set_keep_freed(5000ms); }
  ChunkReserve& reserve;
};

// Reads the reserve's statistics every 10 ms until done(stats) holds or `timeout` has
// passed; returns the last ones read.
template <class Done>
ChunkReserve::Stats PollStats(ChunkReserve& reserve, Done done, std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto s = reserve.GetStats();
  while (!done(s) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
    s = reserve.GetStats();
  }
  return s;
}
bool NoneKept(const ChunkReserve::Stats& s) { return s.kept == 0; }

// Appends n chunks to `taken`, each taken once the filler has its target ready, so that no
// take misses (appenders the filler keeps up with).
void TakeEachWhenReady(ChunkReserve& reserve, std::size_t n, std::vector<void*>& taken) {
  for (std::size_t i = 0; i < n; ++i) {
    ASSERT_TRUE(reserve.WaitUntilFull(60s));
    taken.push_back(reserve.TryTake());
    ASSERT_NE(taken.back(), nullptr);
  }
}
bool Trimmed(const ChunkReserve::Stats& s) { return s.kept == 0 && s.target == 1; }

// Waits until the filler has unmapped every kept chunk (freed by earlier tests in this
// process) and set its target back to one, so that a test starts with none kept and one
// chunk aimed for.
void DropKeptChunks(ChunkReserve& reserve) {
  KeepFreedFor keep(reserve, 0ms);
  PollStats(reserve, Trimmed, 60s);
}

TEST(ChunkReserveTest, ReadyChunksAreAlignedFaultedInAndRefilled) {
  ChunkReserve& reserve = ChunkReserve::Global();
  reserve.Prime();
  DropKeptChunks(reserve);
  ASSERT_TRUE(reserve.WaitUntilFull(60s));
  const auto before = reserve.GetStats();
  EXPECT_TRUE(before.filler_running);
  EXPECT_GE(before.ready, before.target);
  EXPECT_GE(before.target, 1u);

  void* chunk = reserve.TryTake();
  ASSERT_NE(chunk, nullptr);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(chunk) % ChunkReserve::kBytes, 0u);
  // Every page was faulted in by the filler.
  ExpectWritingTakesNoFault(chunk);
  std::memset(chunk, 0x5a, ChunkReserve::kBytes);  // the whole chunk is ours

  // The filler makes a new one to replace it.
  ASSERT_TRUE(reserve.WaitUntilFull(60s));
  const auto after = reserve.GetStats();
  EXPECT_EQ(after.taken, before.taken + 1);
  EXPECT_GE(after.filled, before.filled + 1);
  // Chunks are counted while mapped (ready or held).
  EXPECT_GE(ChunkReserve::MappedBytes(), (after.ready + 1) * ChunkReserve::kBytes);
  reserve.Free(chunk);
}

TEST(ChunkReserveTest, FreedChunksAreKeptReadyThenUnmappedOnceIdle) {
  ChunkReserve& reserve = ChunkReserve::Global();
  reserve.Prime();
  DropKeptChunks(reserve);
  std::vector<void*> taken;
  ASSERT_NO_FATAL_FAILURE(TakeEachWhenReady(reserve, 3, taken));
  for (void* c : taken) std::memset(c, 0x33, ChunkReserve::kBytes);
  ASSERT_TRUE(reserve.WaitUntilFull(60s));
  const auto before = reserve.GetStats();
  const std::size_t mapped = ChunkReserve::MappedBytes();

  // Freed chunks stay mapped, kept apart from the filler's ready ones.
  ASSERT_EQ(before.kept, 0u);
  for (void* c : taken) reserve.Free(c);
  const auto kept = reserve.GetStats();
  EXPECT_EQ(kept.kept, 3u);
  EXPECT_EQ(kept.ready, before.ready);
  EXPECT_EQ(ChunkReserve::MappedBytes(), mapped);
  // The next take gets the chunk freed last, as it was left, and writing it takes no fault;
  // it leaves the filler's ready chunks alone, and after a pause (longer than the 100 ms
  // in which takes count as quick succession) its target too.
  std::this_thread::sleep_for(150ms);
  void* again = reserve.TryTake();
  EXPECT_EQ(again, taken.back());
  ASSERT_NE(again, nullptr);
  const auto reused = reserve.GetStats();
  EXPECT_EQ(reused.reused, before.reused + 1);
  EXPECT_EQ(reused.kept, 2u);
  EXPECT_EQ(reused.ready, before.ready);
  EXPECT_EQ(reused.target, before.target);
  EXPECT_EQ(reused.taken, before.taken);
  EXPECT_EQ(reused.misses, before.misses);
  EXPECT_EQ(static_cast<const unsigned char*>(again)[ChunkReserve::kBytes - 1], 0x33);
  ExpectWritingTakesNoFault(again);
  reserve.Free(again);

  // Once nothing is taken or freed for keep_freed, the kept chunks are unmapped.
  KeepFreedFor keep(reserve, 200ms);
  const auto s = PollStats(reserve, NoneKept, 60s);
  EXPECT_EQ(s.kept, 0u);
  EXPECT_EQ(s.trimmed, kept.trimmed + 3);
  EXPECT_LE(s.mapped_bytes, mapped - 3 * ChunkReserve::kBytes);
}

// Frees alone keep the process from counting as quiet: while a map gives chunks back, none
// of the kept ones is unmapped; once the frees stop, they all are.
TEST(ChunkReserveTest, KeptChunksStayWhileChunksAreBeingFreed) {
  ChunkReserve& reserve = ChunkReserve::Global();
  reserve.Prime();
  DropKeptChunks(reserve);
  constexpr int kChunks = 12;
  std::vector<void*> taken;
  ASSERT_NO_FATAL_FAILURE(TakeEachWhenReady(reserve, kChunks, taken));
  KeepFreedFor keep(reserve, 400ms);
  std::this_thread::sleep_for(200ms);  // past the filler's active window (no take since)
  const auto trimmed0 = reserve.GetStats().trimmed;
  for (void* c : taken) {  // one free every 50 ms: 600 ms in all, longer than keep_freed
    reserve.Free(c);
    std::this_thread::sleep_for(50ms);
  }
  const auto freeing = reserve.GetStats();
  EXPECT_EQ(freeing.trimmed, trimmed0);
  EXPECT_EQ(freeing.kept, static_cast<std::size_t>(kChunks));
  const auto s = PollStats(reserve, NoneKept, 60s);
  EXPECT_EQ(s.trimmed, trimmed0 + kChunks);
}

// While it waits to unmap kept chunks, the filler must still answer a take: a process
// that starts growing again after a pause gets its chunks made at once, not after
// keep_freed (it would grow on small chunks, faulted in by its appenders, meanwhile).
TEST(ChunkReserveTest, ATakeAfterAPauseWakesTheFillerWhileChunksAreKept) {
  ChunkReserve& reserve = ChunkReserve::Global();
  reserve.Prime();
  DropKeptChunks(reserve);
  KeepFreedFor keep(reserve, 600'000ms);
  ASSERT_TRUE(reserve.WaitUntilFull(60s));
  void* c = reserve.TryTake();
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(reserve.WaitUntilFull(60s));
  reserve.Free(c);
  ASSERT_EQ(reserve.GetStats().kept, 1u);
  // Past the filler's active window it waits for the unmap timer, counted as asleep.
  ASSERT_TRUE(PollStats(
                  reserve, [](const ChunkReserve::Stats& s) { return s.filler_asleep; }, 60s)
                  .filler_asleep);
  ASSERT_EQ(reserve.GetStats().kept, 1u);
  // Take the kept chunk, then every ready one: the filler must make new ones well before
  // keep_freed.
  std::vector<void*> taken;
  taken.push_back(reserve.TryTake());
  EXPECT_EQ(taken.back(), c);
  for (;;) {
    const auto s = reserve.GetStats();
    if (s.ready == 0) break;
    taken.push_back(reserve.TryTake());
  }
  const auto filled0 = reserve.GetStats().filled;
  const auto s = PollStats(
      reserve, [filled0](const ChunkReserve::Stats& st) { return st.filled > filled0; }, 120s);
  EXPECT_GT(s.filled, filled0);
  for (void* t : taken) reserve.Free(t);
  DropKeptChunks(reserve);
}

// A map growing on kept chunks takes them as fast as the filler's: kept chunks taken in
// quick succession double the target as misses would, so that the filler has its own
// ready when the kept ones run out.
TEST(ChunkReserveTest, KeptChunksTakenInQuickSuccessionRaiseTheTarget) {
  ChunkReserve& reserve = ChunkReserve::Global();
  reserve.Prime();
  DropKeptChunks(reserve);
  std::vector<void*> taken;
  ASSERT_NO_FATAL_FAILURE(TakeEachWhenReady(reserve, 5, taken));
  ASSERT_EQ(reserve.GetStats().target, 1u);
  for (void* c : taken) reserve.Free(c);
  taken.clear();
  std::this_thread::sleep_for(150ms);
  const auto misses0 = reserve.GetStats().misses;
  std::size_t expected = 1;
  for (int i = 0; i < 5; ++i) {
    taken.push_back(reserve.TryTake());
    ASSERT_NE(taken.back(), nullptr);
    // The first take follows a pause; each later one comes right after the one before.
    if (i > 0) expected = std::min(expected * 2, ChunkReserve::kMaxTarget);
    EXPECT_EQ(reserve.GetStats().target, expected) << "after kept take " << i + 1;
  }
  const auto s = reserve.GetStats();
  EXPECT_EQ(s.kept, 0u);
  EXPECT_EQ(s.misses, misses0);
  // The filler makes its own up to the raised target.
  EXPECT_TRUE(reserve.WaitUntilFull(60s));
  EXPECT_GE(reserve.GetStats().ready, expected);
  for (void* c : taken) reserve.Free(c);
  DropKeptChunks(reserve);
}

TEST(ChunkReserveTest, FreeingBeyondTheCapUnmapsAtOnce) {
  ChunkReserve& reserve = ChunkReserve::Global();
  reserve.Prime();
  DropKeptChunks(reserve);
  // Take more chunks than may be kept (the filler makes them as fast as it can).
  std::vector<void*> taken;
  const auto deadline = std::chrono::steady_clock::now() + 120s;
  while (taken.size() < ChunkReserve::kMaxKept + 4 && std::chrono::steady_clock::now() < deadline) {
    if (void* c = reserve.TryTake()) {
      taken.push_back(c);
    } else {
      ASSERT_TRUE(reserve.WaitUntilFull(60s));
    }
  }
  ASSERT_EQ(taken.size(), ChunkReserve::kMaxKept + 4);
  ASSERT_TRUE(reserve.WaitUntilFull(60s));  // the filler is idle from here on
  const auto before = reserve.GetStats();
  const std::size_t mapped = ChunkReserve::MappedBytes();
  for (void* c : taken) reserve.Free(c);
  const auto after = reserve.GetStats();
  EXPECT_EQ(before.kept, 0u);
  EXPECT_EQ(after.kept, ChunkReserve::kMaxKept);
  EXPECT_EQ(ChunkReserve::MappedBytes(), mapped - 4 * ChunkReserve::kBytes);
  DropKeptChunks(reserve);
}

TEST(ChunkReserveTest, TakingFromAnEmptyReserveReturnsAtOnce) {
  ChunkReserve& reserve = ChunkReserve::Global();
  reserve.Prime();
  DropKeptChunks(reserve);
  ASSERT_TRUE(reserve.WaitUntilFull(60s));
  // Take everything that is ready, then more: those calls find nothing and do not wait.
  std::vector<void*> taken;
  const auto misses0 = reserve.GetStats().misses;
  for (int i = 0; i < 50; ++i) {
    if (void* c = reserve.TryTake()) taken.push_back(c);
  }
  EXPECT_GE(taken.size(), 1u);
  EXPECT_GT(reserve.GetStats().misses, misses0);
  std::set<void*> distinct(taken.begin(), taken.end());
  EXPECT_EQ(distinct.size(), taken.size());
  for (void* c : taken) reserve.Free(c);
}

TEST(ChunkReserveTest, AMissDoublesTheTargetSteadyTakesLowerItAndIdleTrimsIt) {
  ChunkReserve& reserve = ChunkReserve::Global();
  reserve.Prime();
  DropKeptChunks(reserve);
  ASSERT_EQ(reserve.GetStats().target, 1u);
  std::vector<void*> taken;
  ChunkReserve::Stats full;
  {
    // The raising and lowering below must not count as idle: on a loaded machine (or under a
    // sanitizer) filling 16 chunks can take longer than the default keep_freed (5 s), and
    // an idle trim would then reset the target in the middle.
    KeepFreedFor busy(reserve, 600s);
    // Appenders faster than the filler: take until one finds none ready. Each such miss
    // doubles the target, up to kMaxTarget. (Chunks are held until the end: a chunk freed
    // now would be kept and handed out again, which never lowers the target and, taken in
    // quick succession, raises it.)
    std::size_t expected = 1;
    for (int round = 0; expected < ChunkReserve::kMaxTarget || round < 6; ++round) {
      ASSERT_TRUE(reserve.WaitUntilFull(60s));
      EXPECT_GE(reserve.GetStats().ready, expected);
      const auto misses0 = reserve.GetStats().misses;
      while (void* c = reserve.TryTake()) taken.push_back(c);
      const auto raised = reserve.GetStats();
      EXPECT_EQ(raised.misses, misses0 + 1);
      expected = std::min(expected * 2, ChunkReserve::kMaxTarget);
      ASSERT_EQ(raised.target, expected) << "after miss " << round + 1;
    }
    // Appenders the filler keeps up with: kTakesToLower takes that each find one ready lower
    // the target by one.
    ASSERT_NO_FATAL_FAILURE(TakeEachWhenReady(reserve, ChunkReserve::kTakesToLower, taken));
    EXPECT_EQ(reserve.GetStats().target, ChunkReserve::kMaxTarget - 1);
    ASSERT_TRUE(reserve.WaitUntilFull(60s));
    full = reserve.GetStats();
    EXPECT_GE(full.ready, ChunkReserve::kMaxTarget - 1);
  }

  // Idle for keep_freed: the kept chunks and every ready one but one are unmapped, and the
  // target is one again.
  for (void* c : taken) reserve.Free(c);
  const std::size_t mapped = ChunkReserve::MappedBytes();
  KeepFreedFor keep(reserve, 200ms);
  const auto s = PollStats(reserve, Trimmed, 60s);
  EXPECT_EQ(s.kept, 0u);
  EXPECT_EQ(s.target, 1u);
  EXPECT_EQ(s.ready, 1u);
  const std::size_t unmapped = std::min(taken.size(), ChunkReserve::kMaxKept) + full.ready - 1;
  EXPECT_EQ(s.trimmed, full.trimmed + unmapped);
  EXPECT_LE(s.mapped_bytes, mapped - unmapped * ChunkReserve::kBytes);
}

#ifndef KEB_SEGMENT_POOL_PASSTHROUGH
using TestPool = segmented_detail::SegmentPool<1, 4>;
constexpr std::size_t kBlock = 64 * 1024;
const std::size_t kClasses[1] = {kBlock};
constexpr std::size_t kBlocksPerSmallChunk = TestPool::kChunkBytes / kBlock;

TEST(SegmentPoolLargeChunkTest, AGrowingThreadMovesToLargeChunksFromTheReserve) {
  TestPool pool(kClasses, 64);
  std::vector<void*> blocks;
  // Fill the small chunks a thread takes first.
  for (std::size_t i = 0; i < TestPool::kSmallChunks * kBlocksPerSmallChunk; ++i) {
    blocks.push_back(pool.Allocate(0, 1));
  }
  EXPECT_EQ(pool.LargeChunks(), 0u);
  EXPECT_EQ(pool.ReservedBytes(), TestPool::kSmallChunks * TestPool::kChunkBytes);
  // The pool primed the reserve when it was built; once a chunk is ready, the next chunk
  // the thread needs is a large one.
  ASSERT_TRUE(ChunkReserve::Global().WaitUntilFull(60s));
  void* first_in_large = pool.Allocate(0, 1);
  blocks.push_back(first_in_large);
  EXPECT_EQ(pool.LargeChunks(), 1u);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(first_in_large) % ChunkReserve::kBytes, 0u);
  // The large chunk serves the next allocations: no new chunk until it is used up.
  for (std::size_t i = 1; i < ChunkReserve::kBytes / kBlock; ++i) {
    blocks.push_back(pool.Allocate(0, 1));
  }
  EXPECT_EQ(pool.LargeChunks(), 1u);
  EXPECT_EQ(pool.ReservedBytes(),
            TestPool::kSmallChunks * TestPool::kChunkBytes + ChunkReserve::kBytes);
  // Blocks are disjoint and writable.
  std::set<void*> distinct(blocks.begin(), blocks.end());
  EXPECT_EQ(distinct.size(), blocks.size());
  for (void* b : blocks) std::memset(b, 0x11, kBlock);
  for (void* b : blocks) pool.Free(b, 0);
}

TEST(SegmentPoolLargeChunkTest, SwitchedOffLargeChunksAreNeverTaken) {
  TestPool pool(kClasses, 64, /*large_chunks=*/false);
  ChunkReserve::Global().Prime();
  ASSERT_TRUE(ChunkReserve::Global().WaitUntilFull(60s));
  std::vector<void*> blocks;
  for (std::size_t i = 0; i < 3 * TestPool::kSmallChunks * kBlocksPerSmallChunk; ++i) {
    blocks.push_back(pool.Allocate(0, 1));
  }
  EXPECT_EQ(pool.LargeChunks(), 0u);
  EXPECT_EQ(pool.ReservedBytes(), 3 * TestPool::kSmallChunks * TestPool::kChunkBytes);
  for (void* b : blocks) pool.Free(b, 0);
}
#endif

// A map that keeps growing on several threads at once: large chunks come and go between
// the filler and the appenders while nothing is lost (ThreadSanitizer checks the handover).
TEST(SegmentPoolLargeChunkTest, ConcurrentGrowthThroughLargeChunksLosesNothing) {
  struct Value48 {
    std::uint64_t w[6];
  };
  constexpr int kThreads = 3;
  constexpr std::uint64_t kPerThread = 60'000;  // ~2.9 MB of values per thread
  // Large chunks handed out, made by the filler or kept after an earlier test freed them.
  auto handed_out = [] {
    const auto s = ChunkReserve::Global().GetStats();
    return s.taken + s.reused;
  };
  const auto taken0 = handed_out();
  {
    SegmentedSliceMap<Value48> map;
#ifndef KEB_SEGMENT_POOL_PASSTHROUGH
    // The filler only runs on an idle CPU: let it make a chunk before the appenders keep
    // every CPU busy, so that at least one large chunk is taken below.
    ASSERT_TRUE(ChunkReserve::Global().WaitUntilFull(60s));
#endif
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&map, t] {
        for (std::uint64_t i = 0; i < kPerThread; ++i) {
          Value48 v{};
          v.w[0] = static_cast<std::uint64_t>(t);
          v.w[1] = i;
          v.w[5] = i ^ 0x5555;
          map.Append("key-" + std::to_string(i % 3), v);
        }
      });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(map.Size(), kThreads * kPerThread);
    std::vector<std::uint64_t> next(kThreads, 0);
    std::size_t seen = 0;
    for (int k = 0; k < 3; ++k) {
      std::vector<std::uint64_t> last(kThreads, 0);
      std::vector<bool> any(kThreads, false);
      map.ForEach("key-" + std::to_string(k), [&](const Value48& v) {
        ++seen;
        const auto t = static_cast<std::size_t>(v.w[0]);
        ASSERT_LT(t, static_cast<std::size_t>(kThreads));
        ASSERT_EQ(v.w[5], v.w[1] ^ 0x5555) << "torn value";
        ASSERT_EQ(v.w[1] % 3, static_cast<std::uint64_t>(k));
        if (any[t]) {
          ASSERT_GT(v.w[1], last[t]) << "a writer's order was not kept";
        }
        any[t] = true;
        last[t] = v.w[1];
      });
    }
    EXPECT_EQ(seen, kThreads * kPerThread);
  }
#ifndef KEB_SEGMENT_POOL_PASSTHROUGH
  EXPECT_GT(handed_out(), taken0);
#else
  (void)taken0;
#endif
}

}  // namespace
}  // namespace eventbuffer
