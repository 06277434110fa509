// Revisions that share their base's text and the intern table: every field reads back as
// built, chains survive eviction in any order (run under ASan in CI), concurrent reads of a
// chain while it is appended to and trimmed (run under TSan), the intern table at its bound.
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <ctime>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "eventbuffer/event_buffer.h"
#include "eventbuffer/intern_table.h"
#include "eventbuffer/revision_cache.h"

namespace eventbuffer {
namespace {

using Field = EventRecord::Field;
constexpr std::size_t kFields = EventRecord::kFieldCount;
constexpr std::int64_t kBaseMs = 1'700'000'000'000;

// A plain copy of what was decoded: every field's text and the numbers.
struct Plain {
  std::array<std::string, kFields> f;
  EventRecord::Numbers n;
  EventRef Build(RevisionCache* cache) const {
    EventRecord::Builder b;
    for (std::size_t i = 0; i < kFields; ++i) b.Set(static_cast<Field>(i), f[i]);
    b.SetNumbers(n);
    EventRef r = cache ? b.Build(cache->Lookup(f[0], f[static_cast<int>(Field::kInvolvedUid)]))
                       : b.Build();
    if (cache) cache->Remember(r);
    return r;
  }
};

void ExpectSame(const EventRecord& r, const Plain& p, const std::string& where) {
  for (std::size_t i = 0; i < kFields; ++i) {
    ASSERT_EQ(r.Get(static_cast<Field>(i)), p.f[i]) << where << " field " << i;
  }
  ASSERT_EQ(r.numbers().count, p.n.count) << where;
  ASSERT_EQ(r.numbers().series_count, p.n.series_count) << where;
  ASSERT_EQ(r.numbers().last_seen_unix_ms, p.n.last_seen_unix_ms) << where;
  ASSERT_EQ(r.numbers().receive_unix_ns, p.n.receive_unix_ns) << where;
}

std::string RandomText(std::mt19937_64& rng, std::size_t max_len) {
  static const std::string alphabet = "abcXYZ-./:0123456789 \n\"\\\0\xc3\xa9";
  std::string s(rng() % (max_len + 1), ' ');
  for (char& c : s) c = alphabet[rng() % alphabet.size()];
  return s;
}

// Every field of every revision reads back exactly as built, against a plain copy, for
// random Events whose revisions change random fields (to other values, to empty, to long
// values, to values equal to firstTimestamp), interleaved as a watch delivers them.
TEST(RecordSharingTest, EveryFieldOfEveryRevisionReadsBackAsBuilt) {
  std::mt19937_64 rng(20261206);
  RevisionCache cache;
  std::vector<Plain> live(40);
  std::vector<std::pair<EventRef, Plain>> built;
  std::size_t revisions = 0, shared = 0;
  auto fresh = [&](Plain* p, int serial) {
    for (std::size_t i = 0; i < kFields; ++i) {
      p->f[i] = rng() % 4 == 0 ? "" : RandomText(rng, i == 11 ? 300 : 24);
    }
    p->f[0] = "uid-" + std::to_string(serial);
    p->f[2] = "ns-" + std::to_string(rng() % 3);  // short repeated values: interned
    p->f[10] = rng() % 2 ? "BackOff" : "Unhealthy";
    // A few objects, several Events each: new Events share with one about their object.
    p->f[static_cast<int>(Field::kInvolvedUid)] = "object-" + std::to_string(rng() % 8);
    p->f[static_cast<int>(Field::kInvolvedName)] = "pod-" + p->f[static_cast<int>(Field::kInvolvedUid)];
    if (rng() % 2) p->f[static_cast<int>(Field::kLastTimestamp)] =
        p->f[static_cast<int>(Field::kFirstTimestamp)];
    p->n = {1, static_cast<std::int32_t>(rng() % 5), static_cast<std::int64_t>(rng()),
            static_cast<std::int64_t>(rng())};
  };
  int serial = 0;
  for (auto& p : live) fresh(&p, serial++);
  for (int step = 0; step < 20000; ++step) {
    Plain& p = live[rng() % live.size()];
    if (rng() % 10 == 0) {
      fresh(&p, serial++);  // a new Event takes the place of an old one
    } else {
      // A new revision: resourceVersion and count always, sometimes other fields.
      p.f[1] = std::to_string(step);
      ++p.n.count;
      p.n.receive_unix_ns += 1000;
      const int changes = static_cast<int>(rng() % 3);
      for (int c = 0; c < changes; ++c) {
        const std::size_t i = 1 + rng() % (kFields - 1);
        switch (rng() % 4) {
          case 0: p.f[i].clear(); break;
          case 1: p.f[i] = RandomText(rng, 40); break;
          case 2: p.f[i] = std::string(rng() % 2 ? 600 : 70000, 'L'); break;
          default: p.f[i] = p.f[static_cast<int>(Field::kFirstTimestamp)]; break;
        }
      }
    }
    EventRef r = p.Build(&cache);
    if (r->base() != nullptr) {
      ++shared;
      // Two hops at most: a revision of an Event that shares with another Event's record.
      const EventRecord* up = r->base()->base();
      ASSERT_TRUE(up == nullptr || up->base() == nullptr);
    }
    ++revisions;
    ExpectSame(*r, p, "step " + std::to_string(step));
    if (step % 7 == 0) built.emplace_back(std::move(r), p);
  }
  // Read again after everything else was built: nothing stored was overwritten.
  for (std::size_t i = 0; i < built.size(); ++i) {
    ExpectSame(*built[i].first, built[i].second, "kept " + std::to_string(i));
  }
  EXPECT_GT(shared, revisions / 2);  // most revisions did share their base
}

// A chain of revisions of one Event, appended to one key, evicted oldest first, newest
// first and from the middle: every remaining occurrence reads back whole, record_bytes
// returns to zero, and (under ASan) nothing is used after it is freed.
class ChainEvictionTest : public ::testing::Test {
 protected:
  static std::string Rfc3339(std::int64_t unix_ms) {
    const std::time_t t = unix_ms / 1000;
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
  }
  // Revision i of Event `uid` about Pod `pod`: count i + 1, its own resourceVersion and
  // lastTimestamp `time_ms`, the rest as the base.
  static Plain Revision(const std::string& uid, const std::string& pod, int i, std::int64_t time_ms) {
    Plain p;
    p.f[static_cast<int>(Field::kUid)] = uid;
    p.f[static_cast<int>(Field::kResourceVersion)] = std::to_string(1000 + i) + uid;
    p.f[static_cast<int>(Field::kNamespace)] = "shop";
    p.f[static_cast<int>(Field::kName)] = pod + ".17a3f";
    p.f[static_cast<int>(Field::kInvolvedKind)] = "Pod";
    p.f[static_cast<int>(Field::kInvolvedNamespace)] = "shop";
    p.f[static_cast<int>(Field::kInvolvedName)] = pod;
    p.f[static_cast<int>(Field::kReason)] = "BackOff";
    p.f[static_cast<int>(Field::kMessage)] =
        "Back-off restarting failed container app in pod " + pod + " (" + uid + ")";
    p.f[static_cast<int>(Field::kFirstTimestamp)] = "2023-11-14T22:13:20Z";
    p.f[static_cast<int>(Field::kLastTimestamp)] = Rfc3339(time_ms);
    p.n.count = i + 1;
    p.n.last_seen_unix_ms = time_ms;
    p.n.receive_unix_ns = time_ms * 1'000'000;
    return p;
  }
  static BufferConfig Config(GrayMode mode) {
    BufferConfig c;
    c.mode = mode;
    c.verify.sample_rate = 1;
    c.retention.max_age = std::chrono::hours(24 * 365 * 30);
    c.retention.max_clock_skew = std::chrono::hours(24 * 365 * 30);
    return c;
  }
  void ExpectHeldReadBack(const EventBuffer& buffer, const std::string& key,
                          const std::vector<Plain>& expected) {
    const std::vector<EventRef> held = buffer.Read(key);
    ASSERT_EQ(held.size(), expected.size());
    for (std::size_t i = 0; i < held.size(); ++i) ExpectSame(*held[i], expected[i], "held");
  }
};

TEST_F(ChainEvictionTest, OldestFirstByAge) {
  for (const GrayMode mode : {GrayMode::kAtomic, GrayMode::kShadow}) {
    EventBuffer buffer(Config(mode));
    RevisionCache cache;
    std::vector<Plain> plain;
    for (int i = 0; i < 5; ++i) {
      plain.push_back(Revision("uid-a", "web-0", i, kBaseMs + i * 1000));
      ASSERT_EQ(buffer.Append(plain.back().Build(&cache)), EventBuffer::AppendResult::kStored);
    }
    const std::string key = "shop/Pod/web-0";
    ASSERT_NE(buffer.Read(key)[1]->base(), nullptr);  // the revisions share the first
    BufferConfig c = Config(mode);
    c.retention.max_age = std::chrono::milliseconds(2500);
    buffer.Reconfigure(c);
    // The base (and the next two) go; the last two still read whole through it.
    EXPECT_EQ(buffer.EnforceRetention(kBaseMs + 5000), 3u);
    cache = RevisionCache();  // the cache no longer holds the base either
    ExpectHeldReadBack(buffer, key, {plain[3], plain[4]});
    EXPECT_GT(buffer.Stats().record_bytes, 0u);
    EXPECT_EQ(buffer.EnforceRetention(kBaseMs + 60'000), 2u);
    EXPECT_EQ(buffer.Stats().record_bytes, 0u);
  }
}

// The budget evicts a key from its front; whoever still holds the chain's newest revisions
// (a reader's page, the eviction sink) may let them go newest first, the base last: each
// release leaves the older revisions whole. record_bytes counts the shared base once.
TEST_F(ChainEvictionTest, NewestFirstReleaseAfterBudgetEviction) {
  EventBuffer buffer(Config(GrayMode::kShadow));
  RevisionCache cache;
  std::vector<Plain> plain;
  for (int i = 0; i < 6; ++i) {
    plain.push_back(Revision("uid-b", "web-1", i, kBaseMs + i * 1000));
    ASSERT_EQ(buffer.Append(plain.back().Build(&cache)), EventBuffer::AppendResult::kStored);
  }
  cache = RevisionCache();
  const std::string key = "shop/Pod/web-1";
  std::vector<EventRef> page = buffer.Read(key);
  ASSERT_EQ(page.size(), 6u);
  const std::size_t base_block = page[0]->MemoryBytes();
  std::size_t revision_blocks = 0;
  for (std::size_t i = 1; i < page.size(); ++i) {
    ASSERT_EQ(page[i]->base(), page[0].get());
    revision_blocks += page[i]->MemoryBytes();
  }
  // Exactly the base and every revision's own block: the shared text counted once.
  EXPECT_EQ(buffer.Stats().record_bytes, base_block + revision_blocks);
  std::vector<EventRef> evicted;
  buffer.SetEvictionSink([&](std::vector<EventRef>&& gone) {
    evicted.insert(evicted.end(), gone.begin(), gone.end());
  });
  BufferConfig c = Config(GrayMode::kShadow);
  c.retention.max_bytes = page[5]->MemoryBytes();  // less than the base: everything goes
  buffer.Reconfigure(c);
  buffer.EnforceRetention(kBaseMs);
  EXPECT_TRUE(buffer.Read(key).empty());
  EXPECT_EQ(buffer.Stats().record_bytes, 0u);
  ASSERT_EQ(evicted.size(), 6u);
  EXPECT_EQ(evicted.front().get(), page[0].get());  // front first: the base
  evicted.clear();
  // The reader lets go newest first.
  while (!page.empty()) {
    page.pop_back();
    for (std::size_t i = 0; i < page.size(); ++i) ExpectSame(*page[i], plain[i], "still held");
  }
}

// Two Events on one object, interleaved: the per-object limit takes the object's oldest
// occurrences, i.e. the base of one Event while its later revisions and the other Event's
// chain stay (eviction from the middle of the key's history of each chain).
TEST_F(ChainEvictionTest, FromTheMiddleByThePerObjectLimit) {
  EventBuffer buffer(Config(GrayMode::kShadow));
  RevisionCache cache;
  std::vector<Plain> plain;
  for (int i = 0; i < 8; ++i) {
    const bool a = i % 2 == 0;
    plain.push_back(Revision(a ? "uid-c" : "uid-d", "web-2", i / 2, kBaseMs + i * 100));
    ASSERT_EQ(buffer.Append(plain.back().Build(&cache)), EventBuffer::AppendResult::kStored);
  }
  cache = RevisionCache();
  const std::string key = "shop/Pod/web-2";
  BufferConfig c = Config(GrayMode::kShadow);
  c.retention.max_events_per_object = 5;
  buffer.Reconfigure(c);
  EXPECT_EQ(buffer.EnforceRetention(kBaseMs), 3u);
  ExpectHeldReadBack(buffer, key, {plain.begin() + 3, plain.end()});
  for (const EventRef& r : buffer.Read(key)) ASSERT_NE(r->base(), nullptr);
  EXPECT_EQ(buffer.VerifyKey(key), VerifyResult::kMatch);
  c.retention.max_events_per_object = 1;
  buffer.Reconfigure(c);
  EXPECT_EQ(buffer.EnforceRetention(kBaseMs), 4u);
  ExpectHeldReadBack(buffer, key, {plain.back()});
}

// Readers walk a key's chains while one thread appends revisions to it and another trims
// it by the per-object limit (TSan in CI): every occurrence a reader sees reads whole.
TEST(RecordSharingConcurrencyTest, ReadsOfAChainWhileAppendedAndTrimmed) {
  BufferConfig c;
  c.mode = GrayMode::kShadow;
  c.verify.sample_rate = 0.05;
  c.retention.max_events_per_object = 16;
  c.retention.max_age = std::chrono::hours(24 * 365 * 30);
  c.retention.max_clock_skew = std::chrono::hours(24 * 365 * 30);
  EventBuffer buffer(c);
  const std::string key = "shop/Pod/web-3";
  std::atomic<bool> done{false};
  std::atomic<std::uint64_t> checked{0};
  std::thread writer([&] {
    RevisionCache cache;
    for (int i = 0; i < 6000; ++i) {
      const std::string uid = "uid-" + std::to_string(i % 4);
      const std::string rv = std::to_string(i);
      const std::string message = "container app of " + uid + " restarting";
      const std::string last = "2023-11-14T22:13:2" + std::to_string(i % 10) + "Z";
      EventRecord::Builder b;  // holds views: every value must outlive Build()
      b.Set(Field::kUid, uid)
          .Set(Field::kResourceVersion, rv)
          .Set(Field::kNamespace, "shop")
          .Set(Field::kInvolvedNamespace, "shop")
          .Set(Field::kInvolvedKind, "Pod")
          .Set(Field::kInvolvedName, "web-3")
          .Set(Field::kMessage, message)
          .Set(Field::kFirstTimestamp, "2023-11-14T22:13:20Z")
          .Set(Field::kLastTimestamp, last);
      b.numbers().count = i;
      b.numbers().last_seen_unix_ms = kBaseMs + i;
      EventRef r = b.Build(cache.Lookup(uid));
      cache.Remember(r);
      buffer.Append(r);
    }
    done.store(true);
  });
  std::thread trimmer([&] {
    while (!done.load()) buffer.EnforceRetention(kBaseMs);
  });
  std::vector<std::thread> readers;
  for (int t = 0; t < 2; ++t) {
    readers.emplace_back([&] {
      while (!done.load()) {
        for (const EventRef& r : buffer.Read(key)) {
          const std::string uid(r->uid());
          ASSERT_EQ(r->resource_version(), std::to_string(r->count()));
          ASSERT_EQ(r->message(), "container app of " + uid + " restarting");
          ASSERT_EQ(uid, "uid-" + std::to_string(r->count() % 4));
          ASSERT_EQ(r->involved_name(), "web-3");
          checked.fetch_add(1, std::memory_order_relaxed);
        }
      }
    });
  }
  writer.join();
  trimmer.join();
  for (auto& t : readers) t.join();
  buffer.EnforceRetention(kBaseMs);
  EXPECT_LE(buffer.Read(key).size(), 16u);
  EXPECT_GT(checked.load(), 0u);
}

// A huge record (a message the buffer will truncate) is never a base: the cache does not
// remember it, and the truncated copy the buffer stores shares nothing, so the long text
// goes as soon as the decoder's reference does.
TEST(RecordSharingTest, HugeRecordsAreNotBasesAndTruncationKeepsNoLongText) {
  const std::string huge(1 << 20, 'm');
  RevisionCache cache;
  EventRecord::Builder b;
  b.Set(Field::kUid, "u-huge").Set(Field::kResourceVersion, "1").Set(Field::kNamespace, "ns");
  b.Set(Field::kInvolvedKind, "Pod").Set(Field::kInvolvedNamespace, "ns");
  b.Set(Field::kInvolvedName, "big").Set(Field::kInvolvedUid, "pod-uid").Set(Field::kMessage, huge);
  b.numbers().last_seen_unix_ms = kBaseMs;
  EventRef first_kept;  // only this reference left: nothing else holds the record
  {
    EventRef first = b.Build(cache.Lookup("u-huge", "pod-uid"));
    cache.Remember(first);
    first_kept = first;
    EXPECT_EQ(cache.Lookup("u-huge", "pod-uid"), nullptr);
    BufferConfig c;
    c.retention.max_message_bytes = 1024;
    c.retention.max_clock_skew = std::chrono::hours(24 * 365 * 30);
    c.retention.max_age = std::chrono::hours(24 * 365 * 30);
    EventBuffer buffer(c);
    EventRef stored;
    ASSERT_EQ(buffer.Append(first, &stored), EventBuffer::AppendResult::kStored);
    EXPECT_EQ(stored->base(), nullptr);
    EXPECT_LE(stored->message().size(), 1024u);
    first.reset();
    EXPECT_EQ(first_kept.use_count(), 1);  // the buffer holds only the truncated copy
    EXPECT_LT(buffer.Stats().record_bytes, 4096u);
  }
}

// What the cache keeps is bounded in bytes: past the bound a record is not remembered.
TEST(RecordSharingTest, RevisionCacheIsBoundedInBytes) {
  RevisionCache cache;
  const std::string message(3000, 'x');
  std::size_t remembered = 0;
  for (int i = 0; i < 20000; ++i) {
    const std::string uid = "uid-" + std::to_string(i), object = "obj-" + std::to_string(i);
    EventRecord::Builder b;
    b.Set(Field::kUid, uid).Set(Field::kInvolvedUid, object).Set(Field::kMessage, message);
    EventRef r = b.Build();
    cache.Remember(r);
    remembered += cache.Lookup(uid) != nullptr;
    ASSERT_LE(cache.bytes(), RevisionCache::kMinTotalBytes);
  }
  EXPECT_GT(remembered, 0u);
  EXPECT_LT(remembered, 20000u);
  // A cache sized with a smaller bound keeps to it.
  RevisionCache small(RevisionCache::Size{1024, 100'000});
  for (int i = 0; i < 2000; ++i) {
    const std::string uid = "uid-" + std::to_string(i);  // the builder views its values
    EventRecord::Builder b;
    b.Set(Field::kUid, uid).Set(Field::kMessage, message);
    small.Remember(b.Build());
    ASSERT_LE(small.bytes(), 100'000u);
  }
  EXPECT_GT(small.bytes(), 100'000u - 2 * 4096);
}

// The cache grows with the buffer's retention: a slot per 8 occurrences it may hold and an
// eighth of its record budget, within bounds.
TEST(RecordSharingTest, RevisionCacheIsSizedToTheRetention) {
  using Size = RevisionCache::Size;
  const auto same = [](Size a, Size b) {
    return a.slots == b.slots && a.max_total_bytes == b.max_total_bytes;
  };
  constexpr std::size_t kMi = std::size_t{1} << 20;
  EXPECT_TRUE(same(RevisionCache::SizeFor(0, 0), Size{32768, 16 * kMi}));
  EXPECT_TRUE(same(RevisionCache::SizeFor(200'000, 128 * kMi), Size{32768, 16 * kMi}));
  EXPECT_TRUE(same(RevisionCache::SizeFor(262'144, 256 * kMi), Size{32768, 32 * kMi}));
  EXPECT_TRUE(same(RevisionCache::SizeFor(262'145, 256 * kMi), Size{65536, 32 * kMi}));
  // The default retention (1,000,000 events, 512 MiB).
  EXPECT_TRUE(same(RevisionCache::SizeFor(1'000'000, 512 * kMi), Size{131072, 64 * kMi}));
  // No more slots than the byte bound fills with 256-byte records (two tables).
  EXPECT_TRUE(same(RevisionCache::SizeFor(2'000'000, 512 * kMi), Size{131072, 64 * kMi}));
  EXPECT_TRUE(same(RevisionCache::SizeFor(2'000'000, 1024 * kMi), Size{262144, 128 * kMi}));
  EXPECT_TRUE(same(RevisionCache::SizeFor(std::size_t{1} << 40, std::size_t{1} << 40),
                   Size{std::size_t{1} << 19, 256 * kMi}));
  EXPECT_EQ(RevisionCache().slots(), 32768u);
  EXPECT_EQ(RevisionCache().max_total_bytes(), 16 * kMi);
  EXPECT_EQ(RevisionCache(Size{1000, kMi}).slots(), 1024u);  // rounded up to a power of two
}

// A direct-mapped table: in a small one Events take each other's slots, in a larger one
// the same Events stay at hand.
TEST(RecordSharingTest, ALargerRevisionCacheKeepsMoreEventsAtHand) {
  const auto found_after = [](RevisionCache cache) {
    std::vector<std::string> uids;
    for (int i = 0; i < 3000; ++i) {
      uids.push_back("uid-" + std::to_string(i));
      EventRecord::Builder b;
      b.Set(Field::kUid, uids.back()).Set(Field::kMessage, "m");
      cache.Remember(b.Build());
    }
    std::size_t found = 0;
    for (const std::string& uid : uids) found += cache.Lookup(uid) != nullptr;
    return found;
  };
  const std::size_t in_small = found_after(RevisionCache(RevisionCache::Size{1024, 1 << 24}));
  const std::size_t in_large = found_after(RevisionCache(RevisionCache::Size{65536, 1 << 24}));
  EXPECT_LE(in_small, 1024u);
  EXPECT_GT(in_large, 2800u);  // 3,000 uids in 65,536 slots: a few collide
}

TEST(InternTableTest, SameValueSameIdAndViewsStayValid) {
  InternTable table(1 << 16);
  const int a = table.Intern("kube-system");
  const int b = table.Intern("default");
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  EXPECT_NE(a, b);
  EXPECT_EQ(table.Intern("kube-system"), a);
  EXPECT_EQ(table.Find("default"), b);
  EXPECT_EQ(table.Find("absent"), InternTable::kNotInterned);
  EXPECT_EQ(table.View(static_cast<std::uint16_t>(a)), "kube-system");
  EXPECT_EQ(table.Intern(""), table.Intern(""));
  // Too long for the table: inline, not counted as a fallback.
  EXPECT_EQ(table.Intern(std::string(InternTable::kMaxValueBytes + 1, 'x')),
            InternTable::kNotInterned);
  EXPECT_EQ(table.stats().fallbacks, 0u);
}

// At its byte bound the table refuses new values (counted), keeps serving the ones it has,
// and never grows past the bound.
TEST(InternTableTest, AtItsBoundNewValuesFallBackAndAreCounted) {
  InternTable table(1000);
  std::vector<int> ids;
  int refused = 0;
  for (int i = 0; i < 500; ++i) {
    const int id = table.Intern("host-" + std::to_string(i));
    if (id == InternTable::kNotInterned) {
      ++refused;
    } else {
      ids.push_back(id);
    }
  }
  const InternTable::Stats s = table.stats();
  EXPECT_GT(refused, 0);
  EXPECT_EQ(s.fallbacks, static_cast<std::uint64_t>(refused));
  EXPECT_EQ(s.entries, ids.size());
  std::size_t entry_bytes = 0;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const std::string v = "host-" + std::to_string(i);
    EXPECT_EQ(table.View(static_cast<std::uint16_t>(ids[i])), v);
    EXPECT_EQ(table.Intern(v), ids[i]);  // known values still intern when full
    entry_bytes += v.size() + 1;
  }
  EXPECT_LE(entry_bytes, 1000u);
  EXPECT_EQ(table.stats().fallbacks, static_cast<std::uint64_t>(refused));
}

// Threads interning overlapping values at once agree on every id (TSan in CI).
TEST(InternTableTest, ConcurrentInternsAgree) {
  InternTable table(1 << 20);
  constexpr int kValues = 2000;
  std::vector<std::vector<int>> seen(4, std::vector<int>(kValues));
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int k = 0; k < kValues; ++k) {
        const int i = (k * 7 + t * 13) % kValues;
        seen[t][i] = table.Intern("ns-" + std::to_string(i));
        ASSERT_EQ(table.View(static_cast<std::uint16_t>(seen[t][i])), "ns-" + std::to_string(i));
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int i = 0; i < kValues; ++i) {
    for (int t = 1; t < 4; ++t) ASSERT_EQ(seen[t][i], seen[0][i]);
  }
  EXPECT_EQ(table.stats().entries, static_cast<std::size_t>(kValues));
}

}  // namespace
}  // namespace eventbuffer
