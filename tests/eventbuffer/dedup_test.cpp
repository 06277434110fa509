#include "eventbuffer/dedup_index.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "eventbuffer/event_buffer.h"
#include "tests/eventbuffer/buffer_test_util.h"

namespace eventbuffer {
namespace {

using testing::MakeEvent;
using testing::PodEvent;

TEST(DedupIndexTest, IdentityIsUidAndResourceVersion) {
  const auto a = MakeEvent("default", "Pod", "p", "u1", "10", 1);
  const auto same = MakeEvent("other", "Pod", "q", "u1", "10", 2, "other message");
  const auto next_rv = MakeEvent("default", "Pod", "p", "u1", "11", 1);
  const auto other_uid = MakeEvent("default", "Pod", "p", "u2", "10", 1);
  EXPECT_EQ(IdOf(*a), IdOf(*same));
  EXPECT_NE(IdOf(*a), IdOf(*next_rv));
  EXPECT_NE(IdOf(*a), IdOf(*other_uid));
  // The boundary between uid and resourceVersion is part of the identity.
  EXPECT_NE(IdOf(*MakeEvent("d", "Pod", "p", "ab", "c", 1)),
            IdOf(*MakeEvent("d", "Pod", "p", "a", "bc", 1)));
}

TEST(DedupIndexTest, TombstonesStayDuplicatesUntilPruned) {
  DedupIndex index;
  const OccurrenceId a{1, 2}, b{3, 4}, c{5, 6};
  EXPECT_TRUE(index.AddTombstone(a, 100'000));
  EXPECT_FALSE(index.AddTombstone(a, 100'000)) << "known already: no second tombstone";
  EXPECT_FALSE(index.AddTombstone(a, 900'000)) << "nor a second time for it";
  EXPECT_TRUE(index.AddTombstone(b, 200'000));
  EXPECT_TRUE(index.AddTombstone(c, 300'000));
  EXPECT_EQ(index.size(), 3u);
  EXPECT_TRUE(index.Contains(a));
  EXPECT_FALSE(index.Contains(OccurrenceId{1, 3}));
  // Age: tombstones older than 150 s go (a keeps its first time, 100 s).
  EXPECT_EQ(index.PruneTombstones(150'000, 100), 1u);
  EXPECT_FALSE(index.Contains(a));
  EXPECT_TRUE(index.Contains(b));
  EXPECT_TRUE(index.Contains(c));
  // Count: beyond the cap the oldest evictions go first.
  EXPECT_EQ(index.PruneTombstones(0, 1), 1u);
  EXPECT_FALSE(index.Contains(b));
  EXPECT_TRUE(index.Contains(c));
  EXPECT_EQ(index.size(), 1u);
  // A forgotten id can be a tombstone again, at the end of the order.
  EXPECT_TRUE(index.AddTombstone(a, 400'000));
  EXPECT_EQ(index.PruneTombstones(0, 1), 1u);
  EXPECT_FALSE(index.Contains(c));
  EXPECT_TRUE(index.Contains(a));
}

TEST(DedupIndexTest, AgreesWithAReferenceModelThroughGrowthAndPruning) {
  DedupIndex index;
  // id -> stored time, and the ids in the order they became tombstones.
  std::map<std::pair<std::uint64_t, std::uint64_t>, std::int64_t> model;
  std::deque<std::pair<std::uint64_t, std::uint64_t>> order;
  std::mt19937_64 rng(42);
  for (int round = 0; round < 40; ++round) {
    for (int i = 0; i < 500; ++i) {
      // Few distinct h2 values force long probe clusters and wrap-around.
      const OccurrenceId id{rng() % 4000, (rng() % 64) << 58 | (rng() % 3)};
      // Not in time order: an eviction from the middle (the per-object limit) may carry an
      // older time than the one before it.
      const std::int64_t t = round * 1000 + static_cast<std::int64_t>(rng() % 3000) - 1500;
      // The index keeps times rounded up to whole seconds (and before 1970 as 0).
      const std::int64_t stored_t = t <= 0 ? 0 : (t + 999) / 1000 * 1000;
      const bool fresh = model.try_emplace({id.h1, id.h2}, stored_t).second;
      if (fresh) order.push_back({id.h1, id.h2});
      ASSERT_EQ(index.AddTombstone(id, t), fresh);
    }
    const std::int64_t cutoff = round * 1000 - 5000;
    const std::size_t cap = 300 + static_cast<std::size_t>(rng() % 600);
    std::size_t expected_forgotten = 0;
    std::deque<std::pair<std::uint64_t, std::uint64_t>> kept;
    for (const auto& k : order) {
      if (model.at(k) < cutoff) {
        model.erase(k);
        ++expected_forgotten;
      } else {
        kept.push_back(k);
      }
    }
    while (kept.size() > cap) {
      model.erase(kept.front());
      kept.pop_front();
      ++expected_forgotten;
    }
    order.swap(kept);
    ASSERT_EQ(index.PruneTombstones(cutoff, cap), expected_forgotten) << round;
    ASSERT_EQ(index.size(), model.size());
    for (const auto& [k, t] : model) {
      ASSERT_TRUE(index.Contains(OccurrenceId{k.first, k.second}));
    }
    for (int i = 0; i < 200; ++i) {
      const OccurrenceId probe{rng() % 4000, (rng() % 64) << 58 | (rng() % 3)};
      ASSERT_EQ(index.Contains(probe), model.count({probe.h1, probe.h2}) == 1);
    }
  }
  // Pruned down to nothing, the table shrinks and stays correct.
  EXPECT_EQ(index.PruneTombstones(0, 0), model.size());
  EXPECT_EQ(index.size(), 0u);
  EXPECT_LE(index.MemoryBytes(), 64u * 16u);
  EXPECT_TRUE(index.AddTombstone(OccurrenceId{7, 7}, 1000));
  EXPECT_TRUE(index.Contains(OccurrenceId{7, 7}));
}

TEST(DedupIndexTest, TombstoneTimesAreRoundedUpToWholeSeconds) {
  DedupIndex index;
  const OccurrenceId a{1, 2}, b{3, 4}, early{5, 6}, late{7, 8};
  ASSERT_TRUE(index.AddTombstone(a, 1'000'001));     // kept as 1001 s
  ASSERT_TRUE(index.AddTombstone(b, 2'000'000));     // a whole second: kept as is
  ASSERT_TRUE(index.AddTombstone(early, -5'000));    // before 1970: kept as 0 s
  ASSERT_TRUE(index.AddTombstone(late, INT64_MAX));  // after 2106: kept as 2^32 - 1 s
  // Never forgotten before the exact time is past the cutoff, at most a second after.
  EXPECT_EQ(index.PruneTombstones(0, 100), 0u);
  EXPECT_EQ(index.PruneTombstones(1, 100), 1u);
  EXPECT_FALSE(index.Contains(early));
  EXPECT_EQ(index.PruneTombstones(1'000'002, 100), 0u) << "1'000'001 ms is not forgotten early";
  EXPECT_EQ(index.PruneTombstones(1'001'000, 100), 0u);
  EXPECT_EQ(index.PruneTombstones(1'001'001, 100), 1u);
  EXPECT_FALSE(index.Contains(a));
  EXPECT_EQ(index.PruneTombstones(2'000'000, 100), 0u);
  EXPECT_EQ(index.PruneTombstones(2'000'001, 100), 1u);
  EXPECT_FALSE(index.Contains(b));
  EXPECT_EQ(index.PruneTombstones(std::int64_t{UINT32_MAX} * 1000, 100), 0u);
  EXPECT_TRUE(index.Contains(late));
  EXPECT_EQ(DedupIndex::StoredSeconds(999), 1u);
  EXPECT_EQ(DedupIndex::StoredSeconds(1000), 1u);
  EXPECT_EQ(DedupIndex::StoredSeconds(1001), 2u);
  EXPECT_EQ(DedupIndex::StoredSeconds(0), 0u);
}

TEST(DedupIndexTest, ZeroIdsStayDistinctFromEmptySlots) {
  DedupIndex index;
  const OccurrenceId zero{0, 0}, one{0, 1}, high{0, std::uint64_t{1} << 32};
  EXPECT_FALSE(index.Contains(zero)) << "an empty table holds nothing";
  // {0, 0} is stored as {0, 1}: the two are one identity to the index, never an empty slot.
  // (h2 = 2^32 folds to 1 as well.)
  EXPECT_TRUE(index.AddTombstone(zero, 1000));
  EXPECT_TRUE(index.Contains(zero));
  EXPECT_FALSE(index.AddTombstone(one, 1000));
  EXPECT_FALSE(index.AddTombstone(high, 1000));
  EXPECT_EQ(index.size(), 1u);
  EXPECT_EQ(index.PruneTombstones(2001, 100), 1u);
  EXPECT_FALSE(index.Contains(zero));
  EXPECT_EQ(index.size(), 0u);
}

TEST(DedupIndexTest, MemoryPerEntryIsBoundedBySlotSizeAndLoadFactor) {
  // 16-byte slots, at least 3/8 full after growth (grow at 3/4, doubling): at most
  // 16 * 8 / 3 bytes of table per entry, plus 12 bytes per tombstone in the queue.
  for (const std::size_t n : {100u, 1000u, 10'000u, 50'000u}) {
    DedupIndex index;
    std::mt19937_64 rng(n);
    std::vector<OccurrenceId> ids;
    for (std::size_t i = 0; i < n; ++i) {
      ids.push_back(OccurrenceId{rng(), rng()});
      ASSERT_TRUE(
          index.AddTombstone(ids.back(), 1'700'000'000'000 + static_cast<std::int64_t>(i)));
      ASSERT_LE(index.MemoryBytes() * 3, (i + 1) * (16 * 8 + 12 * 3) + 16 * 16 * 3) << i;
    }
    EXPECT_EQ(index.size(), n);
    for (const OccurrenceId& id : ids) ASSERT_TRUE(index.Contains(id));
  }
}

TEST(DedupTest, SameOccurrenceIsStoredOnceWhateverRedelivers) {
  testing::CountingObserver observer;
  EventBuffer buffer(BufferConfig{}, &observer);
  for (int round = 0; round < 3; ++round) {  // a list, then two relists
    for (int i = 0; i < 50; ++i) {
      const auto r = buffer.Append(PodEvent("web", i));
      EXPECT_EQ(r, round == 0 ? EventBuffer::AppendResult::kStored
                              : EventBuffer::AppendResult::kDuplicate);
    }
  }
  EXPECT_EQ(buffer.Read("default/Pod/web").size(), 50u);
  const BufferStats st = buffer.Stats();
  EXPECT_EQ(st.appended, 50u);
  EXPECT_EQ(st.dedup_hits, 100u);
  EXPECT_EQ(observer.dedup_hits.load(), 100u);
  // A new resourceVersion of the same Event is a new occurrence.
  EXPECT_EQ(buffer.Append(MakeEvent("default", "Pod", "web", "uid-web", "999", 1'700'000'000'999)),
            EventBuffer::AppendResult::kStored);
}

TEST(DedupTest, ConcurrentRedeliveriesStoreEachOccurrenceOnce) {
  // Four writers deliver the same 400 occurrences (over 20 objects) at once: each is stored
  // exactly once and every other delivery is a duplicate.
  EventBuffer buffer(BufferConfig{});
  constexpr int kWriters = 4, kEvents = 400;
  std::atomic<int> stored{0}, duplicates{0};
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      for (int k = 0; k < kEvents; ++k) {
        const int i = (k + w * 97) % kEvents;
        const auto r = buffer.Append(PodEvent("p" + std::to_string(i % 20), i));
        if (r == EventBuffer::AppendResult::kStored) stored.fetch_add(1);
        if (r == EventBuffer::AppendResult::kDuplicate) duplicates.fetch_add(1);
      }
    });
  }
  for (std::thread& t : writers) t.join();
  EXPECT_EQ(stored.load(), kEvents);
  EXPECT_EQ(duplicates.load(), (kWriters - 1) * kEvents);
  std::size_t held = 0;
  for (int p = 0; p < 20; ++p) held += buffer.Read("default/Pod/p" + std::to_string(p)).size();
  EXPECT_EQ(held, static_cast<std::size_t>(kEvents));
  EXPECT_EQ(buffer.Stats().dedup_entries, 0u);
}

TEST(DedupTest, RelistAfterCountEvictionDoesNotBringOccurrencesBack) {
  BufferConfig cfg;
  cfg.retention.max_events_per_object = 10;
  cfg.retention.max_age = std::chrono::hours(24);
  EventBuffer buffer(cfg);
  const std::int64_t base = 1'700'000'000'000;
  for (int i = 0; i < 30; ++i) buffer.Append(PodEvent("web", i, base));
  EXPECT_EQ(buffer.EnforceRetention(base + 100), 20u);
  EXPECT_EQ(buffer.Stats().dedup_entries, 20u) << "a tombstone per evicted occurrence";
  for (int i = 0; i < 30; ++i) {
    EXPECT_EQ(buffer.Append(PodEvent("web", i, base)), EventBuffer::AppendResult::kDuplicate) << i;
  }
  const auto events = buffer.Read("default/Pod/web");
  ASSERT_EQ(events.size(), 10u);
  EXPECT_EQ(events.front()->resource_version(), "20");
}

TEST(DedupTest, IndexIsBoundedByTheDataRetention) {
  BufferConfig cfg;
  cfg.retention.max_age = std::chrono::minutes(10);
  cfg.retention.max_events_per_object = 1000;
  EventBuffer buffer(cfg);
  const std::int64_t base = 1'700'000'000'000;
  for (int i = 0; i < 2000; ++i) buffer.Append(PodEvent("p" + std::to_string(i % 20), i, base));
  // Stored occurrences take no dedup entry (the QueryIndex finds them); a re-delivery of one
  // is still refused.
  EXPECT_EQ(buffer.Stats().dedup_entries, 0u);
  EXPECT_EQ(buffer.Append(PodEvent("p7", 7, base)), EventBuffer::AppendResult::kDuplicate);
  // An hour later everything is past maxAge: data and dedup entries are gone.
  EXPECT_EQ(buffer.EnforceRetention(base + 3'600'000), 2000u);
  const BufferStats st = buffer.Stats();
  EXPECT_EQ(st.dedup_entries, 0u);
  EXPECT_EQ(st.backend[0].events, 0u);
  EXPECT_EQ(st.record_bytes, 0u);
  // A relist delivering those old occurrences again does not refill the buffer.
  for (int i = 0; i < 2000; ++i) {
    EXPECT_EQ(buffer.Append(PodEvent("p" + std::to_string(i % 20), i, base)),
              EventBuffer::AppendResult::kExpired);
  }
  EXPECT_EQ(buffer.Stats().dedup_entries, 0u);
  EXPECT_EQ(buffer.Stats().expired, 2000u);
}

}  // namespace
}  // namespace eventbuffer
