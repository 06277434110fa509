#include "eventbuffer/query_index.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "eventbuffer/event_query.h"

namespace eventbuffer {
namespace {

using F = EventRecord::Field;

// An occurrence of Event `name` in namespace ns with identity (uid, rv), listed at time_ms
// (its receive time: no timestamp text is set).
EventRef Ev(const std::string& ns, const std::string& name, const std::string& uid,
            const std::string& rv, std::int64_t time_ms, const std::string& type = "Normal") {
  EventRecord::Builder b;
  b.Set(F::kNamespace, ns)
      .Set(F::kName, name)
      .Set(F::kUid, uid)
      .Set(F::kResourceVersion, rv)
      .Set(F::kType, type)
      .Set(F::kInvolvedNamespace, ns)
      .Set(F::kInvolvedKind, "Pod")
      .Set(F::kInvolvedName, name);
  b.numbers().receive_unix_ns = time_ms * 1'000'000;
  return b.Build();
}

bool RefLess(const EventRef& a, const EventRef& b) {
  return PositionLess(PositionOf(*a), PositionOf(*b));
}

std::vector<EventRef> Sorted(std::vector<EventRef> v) {
  std::sort(v.begin(), v.end(), RefLess);
  return v;
}

// Identities "uid/rv", in order, for readable comparisons.
std::vector<std::string> Ids(const std::vector<EventRef>& v) {
  std::vector<std::string> out;
  for (const auto& r : v)
    out.push_back(std::string(r->uid()) + "/" + std::string(r->resource_version()));
  return out;
}

EventQuery Query(std::optional<std::string> ns, std::size_t limit = 0,
                 std::function<bool(const EventRecord&)> match = {}) {
  EventQuery q;
  q.ns = std::move(ns);
  q.limit = limit;
  q.match = std::move(match);
  return q;
}

// Every page of q, each started after the previous page's last item.
std::vector<EventRef> Paginate(const QueryIndex& index, EventQuery q,
                               std::size_t* pages = nullptr) {
  std::vector<EventRef> all;
  std::size_t n = 0;
  while (true) {
    EventPage page = index.List(q);
    ++n;
    all.insert(all.end(), page.items.begin(), page.items.end());
    if (!page.more) break;
    EXPECT_EQ(page.items.size(), q.limit);
    q.after = PositionOf(*page.items.back());
  }
  if (pages != nullptr) *pages = n;
  return all;
}

TEST(EventQueryTest, OccurrenceTimePrefersSeriesThenLastThenEventTimeThenFirstThenReceive) {
  const auto time = [](std::string series, std::string last, std::string event_time,
                       std::string first) {
    EventRecord::Builder b;
    b.Set(F::kSeriesLastObservedTime, series)
        .Set(F::kLastTimestamp, last)
        .Set(F::kEventTime, event_time)
        .Set(F::kFirstTimestamp, first);
    // Received after the timestamps (none is clamped; clock_skew_test covers clamping).
    b.numbers().receive_unix_ns = 1'714'600'000'123'999'999;
    return OccurrenceTimeMs(*b.Build());
  };
  const std::string s = "2024-05-01T10:06:03.123456Z", l = "2024-05-01T10:05:00Z",
                    e = "2024-05-01T10:04:00.5Z", f = "2024-05-01T10:00:00Z";
  EXPECT_EQ(time(s, l, e, f), 1714557963123);
  EXPECT_EQ(time("", l, e, f), 1714557900000);
  EXPECT_EQ(time("", "", e, f), 1714557840500);
  EXPECT_EQ(time("", "", "", f), 1714557600000);
  EXPECT_EQ(time("", "", "", ""), 1714600000123);
  // A value that does not parse counts as absent.
  EXPECT_EQ(time("garbage", "", e, f), 1714557840500);
  // Earlier does not win: the order of the fields decides, not their values.
  EXPECT_EQ(time("", "2024-05-01T09:00:00Z", e, f), 1714554000000);
}

TEST(EventQueryTest, PositionsOrderByTimeThenUidThenNumericRevision) {
  const auto pos = [](std::int64_t t, std::string uid, std::string rv) {
    return OccurrencePosition{t, std::move(uid), std::move(rv)};
  };
  EXPECT_TRUE(PositionLess(pos(1, "z", "99"), pos(2, "a", "1")));
  EXPECT_TRUE(PositionLess(pos(1, "a", "99"), pos(1, "b", "1")));
  EXPECT_TRUE(PositionLess(pos(1, "a", "9"), pos(1, "a", "10")));  // numeric, not bytewise
  EXPECT_TRUE(PositionLess(pos(1, "a", "10"), pos(1, "a", "11")));
  EXPECT_FALSE(PositionLess(pos(1, "a", "10"), pos(1, "a", "10")));
  EXPECT_FALSE(PositionLess(pos(1, "a", "10"), pos(1, "a", "9")));
  EXPECT_EQ(ComparePositions(1, "a", "10", 1, "a", "10"), 0);
  const OccurrencePosition p = PositionOf(*Ev("ns", "e", "u-7", "123", 42));
  EXPECT_EQ(p.time_ms, 42);
  EXPECT_EQ(p.uid, "u-7");
  EXPECT_EQ(p.resource_version, "123");
}

TEST(QueryIndexTest, ListsInPositionOrderWithTiesBrokenByUidThenRevision) {
  QueryIndex index;
  std::vector<EventRef> all = {Ev("ns", "e1", "b", "10", 5), Ev("ns", "e2", "a", "10", 5),
                               Ev("ns", "e3", "a", "9", 5),  Ev("ns", "e4", "a", "100", 5),
                               Ev("ns", "e5", "c", "1", 4),  Ev("ns", "e6", "a", "1", 6)};
  for (const auto& r : all) EXPECT_TRUE(index.Add(r));
  const EventPage page = index.List(Query("ns"));
  EXPECT_FALSE(page.more);
  EXPECT_EQ(Ids(page.items),
            (std::vector<std::string>{"c/1", "a/9", "a/10", "a/100", "b/10", "a/1"}));
}

TEST(QueryIndexTest, RandomInsertsAndRemovalsKeepTheOrderAcrossManyBlocks) {
  QueryIndex index;
  std::mt19937_64 rng(7);
  std::vector<EventRef> all;
  // Many ties and out-of-order inserts: blocks split, and later merge after removals.
  for (int i = 0; i < 6000; ++i) {
    all.push_back(Ev("ns", "e" + std::to_string(i), "u" + std::to_string(rng() % 50),
                     std::to_string(i), static_cast<std::int64_t>(rng() % 400)));
  }
  for (const auto& r : all) ASSERT_TRUE(index.Add(r));
  EXPECT_EQ(index.size(), all.size());
  EXPECT_EQ(Ids(index.List(Query("ns")).items), Ids(Sorted(all)));

  std::shuffle(all.begin(), all.end(), rng);
  const std::vector<EventRef> removed(all.begin(), all.begin() + 4500);
  std::vector<EventRef> kept(all.begin() + 4500, all.end());
  for (const auto& r : removed) ASSERT_TRUE(index.Remove(*r));
  for (const auto& r : removed) EXPECT_FALSE(index.Remove(*r));
  EXPECT_EQ(index.size(), kept.size());
  EXPECT_EQ(Ids(index.List(Query("ns")).items), Ids(Sorted(kept)));
  // Re-adding works after removal, at the same place.
  for (std::size_t i = 0; i < 100; ++i) ASSERT_TRUE(index.Add(removed[i]));
  kept.insert(kept.end(), removed.begin(), removed.begin() + 100);
  EXPECT_EQ(Ids(index.List(Query("ns")).items), Ids(Sorted(kept)));
}

// The watch's common pattern: time moves on by the second, and the Events of one second
// arrive in no particular uid order, so each lands among the newest entries, not after
// them. Blocks that fill up pass entries to a neighbour with room before they split, so
// they stay mostly full (with split-only, they end about half full) and the order holds.
TEST(QueryIndexTest, RandomInsertsAmongTheNewestKeepBlocksMostlyFull) {
  QueryIndex index;
  std::mt19937_64 rng(11);
  std::vector<EventRef> all;
  for (int second = 0; second < 40; ++second) {
    for (int j = 0; j < 1000; ++j) {
      const std::string uid = "u" + std::to_string(rng());
      all.push_back(Ev("ns", "e" + uid, uid, std::to_string(all.size() + 1), second * 1000));
    }
  }
  for (const auto& r : all) ASSERT_TRUE(index.Add(r));
  EXPECT_EQ(Ids(index.List(Query("ns")).items), Ids(Sorted(all)));
  // Entries are 24 bytes; the name table has 65,536 8-byte slots here (13.1 bytes an
  // entry). Blocks at least 5/6 full: under 13.1 + 24 * 6/5 = 41.9 bytes an entry
  // (splitting alone leaves them about 2/3 full: 49 bytes).
  const double per_entry = static_cast<double>(index.MemoryBytes()) / all.size();
  EXPECT_LT(per_entry, 42.0) << per_entry;
}

TEST(QueryIndexTest, InOrderAppendsAndOldestFirstEvictionsKeepTheOrder) {
  QueryIndex index;
  std::deque<EventRef> held;
  for (int i = 0; i < 5000; ++i) {
    held.push_back(Ev("ns", "e", "u", std::to_string(i), i / 3));
    ASSERT_TRUE(index.Add(held.back()));
    if (held.size() > 700) {
      ASSERT_TRUE(index.Remove(*held.front()));
      held.pop_front();
    }
  }
  const std::vector<EventRef> expected(held.begin(), held.end());
  EXPECT_EQ(Ids(index.List(Query("ns")).items), Ids(expected));
}

TEST(QueryIndexTest, AddingAPositionTwiceIsRefused) {
  QueryIndex index;
  EXPECT_TRUE(index.Add(Ev("ns", "e", "u", "1", 10)));
  EXPECT_FALSE(index.Add(Ev("ns", "e", "u", "1", 10)));
  EXPECT_TRUE(index.Add(Ev("ns", "e", "u", "2", 10)));
  EXPECT_EQ(index.size(), 2u);
  EXPECT_EQ(index.List(Query("ns")).items.size(), 2u);
}

TEST(QueryIndexTest, AnIdentityIndexedAtAnotherTimeIsRefused) {
  // (Event name, uid, resourceVersion) is stored once whatever the time it says: the
  // buffer's duplicate check for stored occurrences.
  QueryIndex index;
  EXPECT_TRUE(index.Add(Ev("ns", "e", "u", "1", 10)));
  EXPECT_FALSE(index.Add(Ev("ns", "e", "u", "1", 99)));
  // Any part of the identity differing is another occurrence.
  EXPECT_TRUE(index.Add(Ev("ns", "e", "v", "1", 10)));
  EXPECT_TRUE(index.Add(Ev("ns", "f", "u", "1", 11)));
  EXPECT_TRUE(index.Add(Ev("ns", "e", "u", "2", 10)));
  EXPECT_TRUE(index.Add(Ev("other", "e", "u", "1", 10)));
  EXPECT_EQ(index.size(), 5u);
  // Once removed, the identity may come back.
  EXPECT_TRUE(index.Remove(*Ev("ns", "e", "u", "1", 10)));
  EXPECT_TRUE(index.Add(Ev("ns", "e", "u", "1", 99)));
  EXPECT_EQ(index.size(), 5u);
}

TEST(QueryIndexTest, PagingByPositionReturnsEachOccurrenceExactlyOnce) {
  QueryIndex index;
  std::mt19937_64 rng(11);
  std::vector<EventRef> all;
  for (int i = 0; i < 1200; ++i) {
    all.push_back(Ev("ns", "e", "u" + std::to_string(rng() % 7), std::to_string(i),
                     static_cast<std::int64_t>(rng() % 100)));
    index.Add(all.back());
  }
  for (const std::size_t limit : {1u, 7u, 100u, 1199u, 1200u, 1201u}) {
    std::size_t pages = 0;
    EXPECT_EQ(Ids(Paginate(index, Query("ns", limit), &pages)), Ids(Sorted(all)))
        << "limit " << limit;
    EXPECT_EQ(pages, (all.size() + limit - 1) / limit) << "limit " << limit;
  }
}

TEST(QueryIndexTest, MoreIsFalseExactlyWhenNothingElseMatches) {
  QueryIndex index;
  for (int i = 0; i < 10; ++i) {
    index.Add(Ev("ns", "e", "u", std::to_string(i), i, i < 5 ? "Warning" : "Normal"));
  }
  const auto warning = [](const EventRecord& r) { return r.type() == "Warning"; };
  // Five matches: a limit of five is exactly enough, even though non-matching items follow.
  EventPage page = index.List(Query("ns", 5, warning));
  EXPECT_EQ(page.items.size(), 5u);
  EXPECT_FALSE(page.more);
  page = index.List(Query(std::nullopt, 5, warning));
  EXPECT_EQ(page.items.size(), 5u);
  EXPECT_FALSE(page.more);
  page = index.List(Query("ns", 4, warning));
  EXPECT_EQ(page.items.size(), 4u);
  EXPECT_TRUE(page.more);
  page = index.List(Query(std::nullopt, 4, warning));
  EXPECT_EQ(page.items.size(), 4u);
  EXPECT_TRUE(page.more);
  // Without a filter: ten items.
  EXPECT_FALSE(index.List(Query("ns", 10)).more);
  EXPECT_TRUE(index.List(Query("ns", 9)).more);
  EXPECT_FALSE(index.List(Query(std::nullopt, 10)).more);
  EXPECT_TRUE(index.List(Query(std::nullopt, 9)).more);
  // The largest limit is no limit (and does not overflow).
  page = index.List(Query("ns", SIZE_MAX));
  EXPECT_EQ(page.items.size(), 10u);
  EXPECT_FALSE(page.more);
  page = index.List(Query(std::nullopt, SIZE_MAX));
  EXPECT_EQ(page.items.size(), 10u);
  EXPECT_FALSE(page.more);
  // After the last item: an empty page.
  EventQuery q = Query("ns", 3);
  q.after = PositionOf(*Ev("ns", "e", "u", "9", 9));
  page = index.List(q);
  EXPECT_TRUE(page.items.empty());
  EXPECT_FALSE(page.more);
  // Unknown namespace: empty.
  page = index.List(Query("nope", 3));
  EXPECT_TRUE(page.items.empty());
  EXPECT_FALSE(page.more);
}

TEST(QueryIndexTest, AfterMayNameAPositionThatIsNotHeld) {
  QueryIndex index;
  for (int i = 0; i < 10; ++i) index.Add(Ev("ns", "e", "u", std::to_string(i), i * 10));
  EventQuery q = Query("ns");
  q.after = OccurrencePosition{35, "zzz", "1"};  // between time 30 and 40
  const EventPage page = index.List(q);
  ASSERT_EQ(page.items.size(), 6u);
  EXPECT_EQ(page.items[0]->resource_version(), "4");
}

TEST(QueryIndexTest, AllNamespacesMergeEqualsASortOfEverything) {
  QueryIndex index;
  std::mt19937_64 rng(3);
  std::vector<EventRef> all;
  for (int i = 0; i < 4000; ++i) {
    // Skewed sizes: namespace k gets about 1/(k+1) of the items.
    const int ns = static_cast<int>(rng() % 30) % (1 + static_cast<int>(rng() % 30));
    all.push_back(Ev("ns-" + std::to_string(ns), "e" + std::to_string(i),
                     "u" + std::to_string(rng() % 40), std::to_string(i),
                     static_cast<std::int64_t>(rng() % 1000),
                     rng() % 4 == 0 ? "Warning" : "Normal"));
    index.Add(all.back());
  }
  EXPECT_EQ(Ids(index.List(Query(std::nullopt)).items), Ids(Sorted(all)));
  const auto warning = [](const EventRecord& r) { return r.type() == "Warning"; };
  std::vector<EventRef> warnings;
  std::copy_if(all.begin(), all.end(), std::back_inserter(warnings),
               [&](const EventRef& r) { return warning(*r); });
  for (const std::size_t limit : {1u, 13u, 500u}) {
    EXPECT_EQ(Ids(Paginate(index, Query(std::nullopt, limit))), Ids(Sorted(all))) << limit;
    EXPECT_EQ(Ids(Paginate(index, Query(std::nullopt, limit, warning))), Ids(Sorted(warnings)))
        << limit;
  }
}

TEST(QueryIndexTest, OneNamespaceListsOnlyItsOwnOccurrencesWithTheFilter) {
  QueryIndex index;
  std::vector<EventRef> want;
  for (int i = 0; i < 300; ++i) {
    const std::string ns = i % 3 == 0 ? "a" : "b";
    auto r = Ev(ns, "pod-" + std::to_string(i % 5), "u" + std::to_string(i), "1", 1000 - i);
    index.Add(r);
    if (ns == "a" && r->Get(F::kName) == "pod-2") want.push_back(r);
  }
  const auto by_name = [](const EventRecord& r) { return r.Get(F::kName) == "pod-2"; };
  EXPECT_EQ(Ids(Paginate(index, Query("a", 4, by_name))), Ids(Sorted(want)));
  EXPECT_EQ(index.List(Query("a")).items.size(), 100u);
  EXPECT_EQ(index.List(Query("b")).items.size(), 200u);
}

TEST(QueryIndexTest, FindsByEventNameAndRevisionInItsNamespace) {
  QueryIndex index;
  const EventRef a1 = Ev("ns", "web.1", "u1", "10", 5);
  const EventRef a2 = Ev("ns", "web.1", "u1", "11", 6);
  const EventRef b = Ev("other", "web.1", "u2", "12", 7);
  for (const auto& r : {a1, a2, b}) index.Add(r);
  for (int i = 0; i < 1000; ++i)
    index.Add(Ev("ns", "x." + std::to_string(i), "v", std::to_string(i + 100), i));
  EXPECT_EQ(index.Find("ns", "web.1", "10"), a1);
  EXPECT_EQ(index.Find("ns", "web.1", "11"), a2);
  EXPECT_EQ(index.Find("other", "web.1", "12"), b);
  EXPECT_EQ(index.Find("ns", "web.1", "12"), nullptr);
  EXPECT_EQ(index.Find("other", "web.1", "10"), nullptr);
  EXPECT_EQ(index.Find("absent", "web.1", "10"), nullptr);
  EXPECT_EQ(index.Find("ns", "x.500", "600")->Get(F::kName), "x.500");
  EXPECT_TRUE(index.Remove(*a1));
  EXPECT_EQ(index.Find("ns", "web.1", "10"), nullptr);
  EXPECT_EQ(index.Find("ns", "web.1", "11"), a2);
  // Every remaining one is still found after many removals (the table shrinks).
  for (int i = 0; i < 990; ++i) {
    ASSERT_TRUE(index.Remove("ns", OccurrencePosition{i, "v", std::to_string(i + 100)}));
  }
  for (int i = 990; i < 1000; ++i) {
    EXPECT_NE(index.Find("ns", "x." + std::to_string(i), std::to_string(i + 100)), nullptr) << i;
  }
  EXPECT_EQ(index.Find("ns", "x.5", "105"), nullptr);
}

TEST(QueryIndexTest, FindWorksInALargeNamespaceThroughGrowthAndShrinking) {
  // Beyond 2^16 table slots a slot's home is recomputed from its record.
  QueryIndex index;
  std::vector<EventRef> all;
  for (int i = 0; i < 70'000; ++i) {
    all.push_back(Ev("big", "e." + std::to_string(i % 1000), "u" + std::to_string(i % 1000),
                     std::to_string(i), i / 10));
    ASSERT_TRUE(index.Add(all.back()));
  }
  std::mt19937_64 rng(13);
  std::shuffle(all.begin(), all.end(), rng);
  for (std::size_t i = 0; i < 65'000; ++i) ASSERT_TRUE(index.Remove(*all[i]));
  for (std::size_t i = 0; i < all.size(); ++i) {
    const EventRecord& r = *all[i];
    const EventRef found = index.Find("big", r.Get(F::kName), r.resource_version());
    if (i < 65'000) {
      ASSERT_EQ(found, nullptr) << i;
    } else {
      ASSERT_EQ(found, all[i]) << i;
    }
  }
}

TEST(QueryIndexTest, RemoveByPositionAndEmptyNamespacesAreDropped) {
  QueryIndex index;
  const EventRef r = Ev("ns", "e", "u", "1", 5);
  index.Add(r);
  index.Add(Ev("keep", "e", "k", "1", 5));
  EXPECT_EQ(index.NamespaceCount(), 2u);
  EXPECT_FALSE(index.Remove("ns", OccurrencePosition{5, "u", "2"}));
  EXPECT_FALSE(index.Remove("keep", PositionOf(*r)));
  EXPECT_TRUE(index.Remove("ns", PositionOf(*r)));
  EXPECT_EQ(index.NamespaceCount(), 1u);
  EXPECT_TRUE(index.List(Query("ns")).items.empty());
  EXPECT_EQ(index.size(), 1u);
  // A dropped namespace comes back on the next Add.
  EXPECT_TRUE(index.Add(r));
  EXPECT_EQ(index.List(Query("ns")).items.size(), 1u);
  EXPECT_EQ(index.NamespaceCount(), 2u);
}

TEST(QueryIndexTest, PagesKeepTheirItemsAfterRemoval) {
  QueryIndex index;
  index.Add(Ev("ns", "e", "u", "1", 5));
  EventPage page = index.List(Query("ns"));
  index.Remove(*page.items[0]);
  ASSERT_EQ(page.items.size(), 1u);
  EXPECT_EQ(page.items[0]->uid(), "u");
}

TEST(QueryIndexTest, ScansLongerThanOneChunkResumeWithoutGapsOrRepeats) {
  QueryIndex index;
  std::vector<EventRef> all;
  for (std::size_t i = 0; i < 3 * QueryIndex::kScanChunk + 17; ++i) {
    all.push_back(Ev("ns", "e", "u", std::to_string(i), static_cast<std::int64_t>(i / 2),
                     i % 1000 == 0 ? "Warning" : "Normal"));
    index.Add(all.back());
  }
  // A rare filter makes one List scan several chunks.
  const auto rare = [](const EventRecord& r) { return r.type() == "Warning"; };
  const EventPage page = index.List(Query("ns", 0, rare));
  ASSERT_EQ(page.items.size(), 13u);
  for (std::size_t i = 0; i < page.items.size(); ++i) {
    EXPECT_EQ(page.items[i]->resource_version(), std::to_string(i * 1000));
  }
  EXPECT_EQ(index.List(Query(std::nullopt, 0, rare)).items.size(), 13u);
}

// Readers whose chunks overlap all the time must not keep a writer out: with a lock that
// prefers readers this test would not finish (liveness, no timing asserted).
TEST(QueryIndexTest, OverlappingReadersDoNotStarveTheWriter) {
  QueryIndex index;
  for (std::size_t i = 0; i < 2 * QueryIndex::kScanChunk; ++i) {
    index.Add(Ev("ns", "e", "u", std::to_string(i), static_cast<std::int64_t>(i)));
  }
  std::atomic<bool> done{false};
  std::vector<std::thread> readers;
  for (int t = 0; t < 4; ++t) {
    readers.emplace_back([&] {
      // A slow filter: each chunk holds the namespace's shared lock for a while.
      const auto slow = [](const EventRecord& r) {
        volatile int spin = 0;
        for (int k = 0; k < 200; ++k) spin = spin + 1;
        return r.type() == "Warning";
      };
      while (!done.load()) index.List(Query("ns", 0, slow));
    });
  }
  for (int i = 0; i < 20; ++i) {
    EXPECT_TRUE(index.Add(Ev("ns", "w", "w", std::to_string(i), 1'000'000 + i)));
  }
  done.store(true);
  for (auto& t : readers) t.join();
  EXPECT_EQ(index.size(), 2 * QueryIndex::kScanChunk + 20);
}

// The property the API promises: while writers append and evict, a pagination returns
// every occurrence held for its whole duration exactly once, and never anything twice or
// out of order.
TEST(QueryIndexTest, ConcurrentAppendsAndEvictionsNeverSkipOrRepeatStableOccurrences) {
  QueryIndex index;
  const std::vector<std::string> spaces = {"a", "b", "c", "d"};
  std::mt19937_64 rng(5);
  std::vector<EventRef> stable;
  for (int i = 0; i < 2000; ++i) {
    stable.push_back(Ev(spaces[rng() % spaces.size()], "s", "s" + std::to_string(i % 97),
                        std::to_string(i), static_cast<std::int64_t>(rng() % 5000),
                        i % 3 == 0 ? "Warning" : "Normal"));
    ASSERT_TRUE(index.Add(stable.back()));
  }
  std::atomic<bool> stop{false};
  std::mutex transient_mu;
  std::deque<EventRef> transient;  // added by the writer, evicted by the evictor
  std::thread writer([&] {
    std::mt19937_64 r(1);
    for (int i = 0; !stop.load(); ++i) {
      auto e = Ev(spaces[r() % spaces.size()], "t", "t" + std::to_string(i % 89), std::to_string(i),
                  static_cast<std::int64_t>(r() % 5000), i % 2 == 0 ? "Warning" : "Normal");
      index.Add(e);
      std::lock_guard<std::mutex> lock(transient_mu);
      transient.push_back(std::move(e));
      if (transient.size() > 3000) std::this_thread::yield();
    }
  });
  std::thread evictor([&] {
    std::mt19937_64 r(2);
    while (!stop.load()) {
      EventRef e;
      {
        std::lock_guard<std::mutex> lock(transient_mu);
        if (transient.size() < 500) {
          std::this_thread::yield();
          continue;
        }
        // Mostly the oldest added, sometimes one in the middle.
        const std::size_t at = r() % 4 == 0 ? r() % transient.size() : 0;
        e = transient[at];
        transient.erase(transient.begin() + static_cast<std::ptrdiff_t>(at));
      }
      EXPECT_TRUE(index.Remove(*e));
    }
  });

  const auto check = [&](std::optional<std::string> ns, std::size_t limit, bool warnings_only) {
    std::function<bool(const EventRecord&)> match;
    if (warnings_only) match = [](const EventRecord& r) { return r.type() == "Warning"; };
    const std::vector<EventRef> got = Paginate(index, Query(ns, limit, match));
    for (std::size_t i = 1; i < got.size(); ++i) {
      ASSERT_TRUE(RefLess(got[i - 1], got[i])) << "out of order or repeated at " << i;
    }
    std::set<const EventRecord*> seen;
    for (const auto& r : got) seen.insert(r.get());
    std::size_t expected = 0, found = 0;
    for (const auto& r : stable) {
      if (ns && r->Get(F::kNamespace) != *ns) continue;
      if (warnings_only && r->type() != "Warning") continue;
      ++expected;
      found += seen.count(r.get());
    }
    EXPECT_EQ(found, expected) << (ns ? *ns : "all") << " limit " << limit;
  };
  std::vector<std::thread> readers;
  readers.emplace_back([&] {
    for (int round = 0; round < 6; ++round) check("a", 37, round % 2 == 0);
  });
  readers.emplace_back([&] {
    for (int round = 0; round < 6; ++round) check(std::nullopt, 53, round % 2 == 1);
  });
  for (auto& t : readers) t.join();
  stop.store(true);
  writer.join();
  evictor.join();
  // Whatever the interleaving, the index holds exactly what was added and not removed.
  std::vector<EventRef> held = stable;
  held.insert(held.end(), transient.begin(), transient.end());
  EXPECT_EQ(index.size(), held.size());
  EXPECT_EQ(Ids(index.List(Query(std::nullopt)).items), Ids(Sorted(held)));
}

}  // namespace
}  // namespace eventbuffer
