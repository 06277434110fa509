#include "eventbuffer/event_record.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

namespace eventbuffer {
namespace {

using Field = EventRecord::Field;

EventRef MakeRecord() {
  EventRecord::Builder b;
  b.Set(Field::kUid, "uid-1")
      .Set(Field::kResourceVersion, "100")
      .Set(Field::kInvolvedNamespace, "ns")
      .Set(Field::kInvolvedKind, "Pod")
      .Set(Field::kInvolvedName, "web-0")
      .Set(Field::kMessage, std::string_view("multi\nline \0 nul", 16))
      .Set(Field::kAction, "last-field");
  b.numbers().count = 3;
  b.numbers().last_seen_unix_ms = 42;
  return b.Build();
}

TEST(EventRecordTest, BuilderKeepsEveryFieldByteExact) {
  // Builder::Set keeps views: the values must outlive Build().
  EventRecord::Builder b;
  std::vector<std::string> values;
  values.reserve(EventRecord::kFieldCount);
  for (std::size_t i = 0; i < EventRecord::kFieldCount; ++i) {
    values.push_back("value-" + std::to_string(i));
    b.Set(static_cast<Field>(i), values.back());
  }
  const EventRef r = b.Build();
  for (std::size_t i = 0; i < EventRecord::kFieldCount; ++i) {
    EXPECT_EQ(r->Get(static_cast<Field>(i)), values[i]) << i;
  }
}

TEST(EventRecordTest, EmbeddedNulAndNewlineSurvive) {
  const EventRef r = MakeRecord();
  EXPECT_EQ(r->message(), std::string_view("multi\nline \0 nul", 16));
  EXPECT_EQ(r->Get(Field::kAction), "last-field");
  EXPECT_EQ(r->count(), 3);
}

TEST(EventRecordTest, EmptyRecordHasEmptyFields) {
  const EventRef r = EventRecord::Builder().Build();
  for (std::size_t i = 0; i < EventRecord::kFieldCount; ++i) {
    EXPECT_TRUE(r->Get(static_cast<Field>(i)).empty());
  }
  EXPECT_EQ(r->StorageBytes(), 0u);
  EXPECT_EQ(r->stored_fields(), 0u);
  EXPECT_EQ(r->Key(), "//");
}

TEST(EventRecordTest, KeyIsNamespaceKindName) {
  EXPECT_EQ(MakeRecord()->Key(), "ns/Pod/web-0");
  EXPECT_EQ(MakeKey("", "Node", "worker-1"), "/Node/worker-1");
  std::string out = "prefix:";
  MakeRecord()->AppendKey(&out);
  EXPECT_EQ(out, "prefix:ns/Pod/web-0");
}

TEST(EventRecordTest, CopyIsDeepAndEqual) {
  const EventRef a = MakeRecord();
  const EventRef b = CopyRecord(*a);
  EXPECT_EQ(*a, *b);
  EXPECT_NE(a->message().data(), b->message().data());
  const EventRef c = EventRecord::Builder().Set(Field::kUid, "other").Build();
  EXPECT_FALSE(*a == *c);
}

TEST(EventRecordTest, OneBlockWithOffsetsOnlyForStoredFields) {
  const EventRef r = MakeRecord();
  // The last-seen time (42, which no timestamp gives: 8 bytes); uid, rv, name, message as
  // text, each with a 16-bit end offset; namespace, kind and action interned: a 2-byte id
  // each, no offset.
  const std::size_t text = 5 + 3 + 5 + 16;
  EXPECT_EQ(r->StorageBytes(), 8 + text + 4 * 2 + 3 * 2);
  EXPECT_EQ(r->numbers().last_seen_unix_ms, 42);
  EXPECT_EQ(r->MemoryBytes(), EventRecord::kBlockOverhead + sizeof(EventRecord) + r->StorageBytes());
  EXPECT_LE(sizeof(EventRecord), 40u);
  EXPECT_EQ(sizeof(EventRef), sizeof(void*));
}

TEST(EventRecordTest, LongTextUsesWideOffsets) {
  const std::string message(70000, 'm');
  EventRecord::Builder b;
  b.Set(Field::kUid, "u").Set(Field::kMessage, message).Set(Field::kAction, "after-message");
  const EventRef r = b.Build();
  EXPECT_EQ(r->message(), message);
  EXPECT_EQ(r->uid(), "u");
  EXPECT_EQ(r->Get(Field::kAction), "after-message");
  // action is interned (a 2-byte id); uid and message have 32-bit end offsets.
  EXPECT_EQ(r->StorageBytes(), 2 + 2 * 4 + 1 + message.size());
}

TEST(EventRecordTest, TimestampsEqualToFirstTimestampAreStoredOnce) {
  const std::string t = "2024-05-01T10:13:22Z";
  EventRecord::Builder b;
  b.Set(Field::kUid, "u")
      .Set(Field::kFirstTimestamp, t)
      .Set(Field::kLastTimestamp, t)
      .Set(Field::kCreationTimestamp, t);
  b.numbers().last_seen_unix_ms = LastSeenFromTimestamps("", t, "", t);  // as decoded
  const EventRef r = b.Build();
  EXPECT_EQ(r->Get(Field::kLastTimestamp), t);
  EXPECT_EQ(r->Get(Field::kCreationTimestamp), t);
  EXPECT_EQ(r->StorageBytes(), 1 + t.size() + 2 * 2);  // uid and firstTimestamp only
}

TEST(EventRecordTest, LastSeenFromTimestampsTakesTheLatestThenFirstTimestamp) {
  const std::string t1 = "2024-05-01T10:00:00Z", t2 = "2024-05-01T10:00:05.250Z",
                    t3 = "2024-05-01T10:00:07Z";
  std::int64_t ms1, ms2, ms3;
  ASSERT_TRUE(ParseRfc3339Millis(t1, &ms1) && ParseRfc3339Millis(t2, &ms2) &&
              ParseRfc3339Millis(t3, &ms3));
  EXPECT_EQ(LastSeenFromTimestamps(t2, t3, t1, t1), ms3);  // the latest of the three
  EXPECT_EQ(LastSeenFromTimestamps(t3, t2, "", t1), ms3);
  EXPECT_EQ(LastSeenFromTimestamps("", "", t2, t1), ms2);
  EXPECT_EQ(LastSeenFromTimestamps("", "bad", "", t1), ms1);  // none parses: firstTimestamp
  EXPECT_EQ(LastSeenFromTimestamps("", "", "", t1), ms1);
  EXPECT_EQ(LastSeenFromTimestamps("", "", "", "bad"), 0);
  EXPECT_EQ(LastSeenFromTimestamps("", "", "", ""), 0);
}

// The last-seen time takes no bytes when the record's timestamps give it (the decoder's
// always does), and is kept when they do not; a revision derives it from its own
// lastTimestamp, or from its base's when it shares that.
TEST(EventRecordTest, LastSeenIsStoredOnlyWhenTheTimestampsDoNotGiveIt) {
  const std::string first = "2024-05-01T10:13:22Z", later = "2024-05-01T10:18:22Z";
  std::int64_t first_ms, later_ms;
  ASSERT_TRUE(ParseRfc3339Millis(first, &first_ms) && ParseRfc3339Millis(later, &later_ms));
  auto builder = [&](std::string_view rv, std::string_view last) {
    EventRecord::Builder b;
    b.Set(Field::kUid, "6f1c-uid")
        .Set(Field::kResourceVersion, rv)
        .Set(Field::kName, "web-0.17a")
        .Set(Field::kMessage, "Back-off restarting failed container app in pod web-0")
        .Set(Field::kFirstTimestamp, first)
        .Set(Field::kLastTimestamp, last);
    b.numbers().last_seen_unix_ms = LastSeenFromTimestamps("", last, "", first);
    b.numbers().receive_unix_ns = 7;
    return b;
  };
  const EventRef derived = builder("100", first).Build();
  EventRecord::Builder other = builder("100", first);
  other.numbers().last_seen_unix_ms = first_ms + 1;
  const EventRef kept = other.Build();
  EXPECT_EQ(derived->last_seen_unix_ms(), first_ms);
  EXPECT_EQ(kept->last_seen_unix_ms(), first_ms + 1);
  EXPECT_EQ(kept->StorageBytes(), derived->StorageBytes() + 8);
  EXPECT_FALSE(*derived == *kept);  // the numbers differ, the text does not
  EXPECT_EQ(kept->numbers().receive_unix_ns, 7);
  EXPECT_EQ(kept->Get(Field::kMessage), derived->Get(Field::kMessage));

  // A revision with a new lastTimestamp, and one whose lastTimestamp (and so last-seen
  // time) is its base's.
  const EventRef revision = builder("101", later).Build(derived);
  ASSERT_EQ(revision->base(), derived.get());
  EXPECT_EQ(revision->last_seen_unix_ms(), later_ms);
  EventRecord::Builder same_time = builder("102", first);
  same_time.numbers().count = 3;
  const EventRef shared = same_time.Build(derived);
  ASSERT_EQ(shared->base(), derived.get());
  EXPECT_EQ(shared->last_seen_unix_ms(), first_ms);
  EXPECT_EQ(shared->StorageBytes(), 2 + 3);  // the resourceVersion only
  EventRecord::Builder odd = builder("103", later);
  odd.numbers().last_seen_unix_ms = 5;
  const EventRef odd_revision = odd.Build(derived);
  EXPECT_EQ(odd_revision->last_seen_unix_ms(), 5);
  EXPECT_EQ(odd_revision->StorageBytes(), 8 + 2 * 2 + 3 + later.size());

  // DeriveLastSeen (the decoder's way) sets the number the timestamps give; a timestamp
  // set after it makes that number one to keep.
  EventRecord::Builder decoded = builder("104", later);
  decoded.numbers().last_seen_unix_ms = 0;
  decoded.DeriveLastSeen();
  EXPECT_EQ(decoded.numbers().last_seen_unix_ms, later_ms);
  // (derived's lastTimestamp is firstTimestamp, an alias; this one is text with an offset)
  EXPECT_EQ(decoded.Build()->StorageBytes(), derived->StorageBytes() + 2 + later.size());
  decoded.Set(Field::kLastTimestamp, first);
  const EventRef stale = decoded.Build();
  EXPECT_EQ(stale->last_seen_unix_ms(), later_ms);
  EXPECT_EQ(stale->Get(Field::kLastTimestamp), first);
  EXPECT_EQ(stale->StorageBytes(), derived->StorageBytes() + 8);
}

// A revision of the same Event (same uid) keeps only what changed and shares the rest.
TEST(EventRecordTest, RevisionStoresOnlyChangedFields) {
  const std::string first = "2024-05-01T10:13:22Z", later = "2024-05-01T10:18:22Z";
  const std::string message = "Back-off restarting failed container app in pod web-0";
  auto make = [&](std::string_view rv, std::string_view last, int count) {
    EventRecord::Builder b;
    b.Set(Field::kUid, "6f1c-uid")
        .Set(Field::kResourceVersion, rv)
        .Set(Field::kName, "web-0.17a")
        .Set(Field::kInvolvedNamespace, "shop")
        .Set(Field::kInvolvedKind, "Pod")
        .Set(Field::kInvolvedName, "web-0")
        .Set(Field::kReason, "BackOff")
        .Set(Field::kMessage, message)
        .Set(Field::kFirstTimestamp, first)
        .Set(Field::kLastTimestamp, last);
    b.numbers().count = count;
    return b;
  };
  const EventRef v1 = make("100", first, 1).Build();
  const EventRef v2 = make("101", later, 2).Build(v1);
  const EventRef v3 = make("102", later, 3).Build(v2);  // built against a revision
  ASSERT_EQ(v2->base(), v1.get());
  ASSERT_EQ(v3->base(), v1.get());  // bases never chain
  EXPECT_EQ(v2->stored_fields(), (1u << static_cast<unsigned>(Field::kResourceVersion)) |
                                     (1u << static_cast<unsigned>(Field::kLastTimestamp)));
  EXPECT_LT(v2->MemoryBytes(), v1->MemoryBytes());
  EXPECT_EQ(*v2, *make("101", later, 2).Build());
  EXPECT_EQ(*v3, *make("102", later, 3).Build());
  EXPECT_EQ(v3->message(), message);
  EXPECT_EQ(v3->count(), 3);
  EXPECT_EQ(v3->Get(Field::kLastTimestamp), later);
  EXPECT_EQ(v1->Get(Field::kLastTimestamp), first);

  // Another Event about the same object shares with a full record of it (here v1)...
  EventRecord::Builder other = make("103", later, 1);
  other.Set(Field::kUid, "other-uid");
  const EventRef sibling = other.Build(v1);
  EXPECT_EQ(sibling->base(), v1.get());
  EXPECT_EQ(*sibling, *other.Build());
  // ...but not with a revision (bases are full records, or revisions of a full one).
  EXPECT_EQ(other.Build(v3)->base(), nullptr);
  // The sibling's own next revision shares with the sibling: two hops at most.
  other.Set(Field::kResourceVersion, "106");
  const EventRef sibling2 = other.Build(sibling);
  EXPECT_EQ(sibling2->base(), sibling.get());
  EXPECT_EQ(*sibling2, *other.Build());
  // Sharing that saves too little (nearly every field new): a full record of its own.
  const std::string long_message(400, 'x');
  EventRecord::Builder changed = make("104", later, 4);
  changed.Set(Field::kMessage, long_message)
      .Set(Field::kName, "db-1.18b")
      .Set(Field::kInvolvedName, "db-1")
      .Set(Field::kInvolvedNamespace, "data")
      .Set(Field::kInvolvedKind, "StatefulSet")
      .Set(Field::kReason, "Failed")
      .Set(Field::kFirstTimestamp, later);
  const EventRef v4 = changed.Build(v3);
  EXPECT_EQ(v4->base(), nullptr);
  EXPECT_EQ(v4->message(), long_message);
  // A field emptied in a revision reads back empty, not the base's value.
  EventRecord::Builder emptied = make("105", later, 5);
  emptied.Set(Field::kReason, "");
  const EventRef v5 = emptied.Build(v1);
  ASSERT_EQ(v5->base(), v1.get());
  EXPECT_EQ(v5->reason(), "");
}

// The base outlives the first revision that held it: dropping the base's own reference
// (the buffer evicting the oldest revision) never breaks a newer one.
TEST(EventRecordTest, RevisionKeepsItsBaseAlive) {
  const std::string shared(200, 's');  // worth sharing (records that save < 32 bytes do not)
  EventRecord::Builder b;
  b.Set(Field::kUid, "u").Set(Field::kResourceVersion, "1").Set(Field::kMessage, shared);
  EventRef base = b.Build();
  b.Set(Field::kResourceVersion, "2");
  const EventRef rev = b.Build(base);
  ASSERT_EQ(rev->base(), base.get());
  base.reset();
  EXPECT_EQ(rev->message(), shared);
  EXPECT_EQ(rev->resource_version(), "2");
}

// EventRef counts references in the record: copies and drops from many threads at once
// (run under TSan and ASan) leave the count exact, and the last drop frees the record and
// then its base, once.
TEST(EventRecordTest, ReferencesCopiedAndDroppedAcrossThreadsFreeOnce) {
  const std::string shared(200, 's');
  EventRecord::Builder b;
  b.Set(Field::kUid, "u").Set(Field::kResourceVersion, "1").Set(Field::kMessage, shared);
  EventRef base = b.Build();
  b.Set(Field::kResourceVersion, "2");
  EventRef rev = b.Build(base);
  ASSERT_EQ(rev->base(), base.get());
  EXPECT_EQ(base.use_count(), 2);  // here and in rev
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&rev, &shared, t] {
      std::vector<EventRef> held;
      for (int i = 0; i < 20000; ++i) {
        held.push_back(rev);
        EventRef moved = std::move(held.back());
        held.back() = moved;
        if (held.size() > 64) held.erase(held.begin(), held.begin() + (i + t) % 64);
        ASSERT_EQ(moved->resource_version(), "2");
        ASSERT_EQ(moved->message(), shared);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(rev.use_count(), 1);
  const EventRef base_kept = base;
  base.reset();
  EXPECT_EQ(base_kept.use_count(), 2);  // base_kept and rev's base
  rev.reset();                           // frees rev, which drops its base reference
  EXPECT_EQ(base_kept.use_count(), 1);
  EventRef null;
  EXPECT_EQ(null.use_count(), 0);
  EXPECT_EQ(null, nullptr);
  null = base_kept;
  EXPECT_EQ(null, base_kept);
  EXPECT_EQ(base_kept.use_count(), 2);
}

TEST(EventRecordTest, HeldBytesCountEachBlockOnce) {
  const std::string shared(200, 's');
  EventRecord::Builder b;
  b.Set(Field::kUid, "u").Set(Field::kResourceVersion, "1").Set(Field::kMessage, shared);
  const EventRef base = b.Build();
  b.Set(Field::kResourceVersion, "2");
  const EventRef r2 = b.Build(base);
  b.Set(Field::kResourceVersion, "3");
  const EventRef r3 = b.Build(base);
  // The revision is stored first: its block and its base's become held.
  EXPECT_EQ(r2->AcquireHeld(), r2->MemoryBytes() + base->MemoryBytes());
  EXPECT_EQ(base->AcquireHeld(), 0u);  // already held (shared)
  EXPECT_EQ(r3->AcquireHeld(), r3->MemoryBytes());
  EXPECT_EQ(base->ReleaseHeld(), 0u);  // the revisions still share it
  EXPECT_EQ(r2->ReleaseHeld(), r2->MemoryBytes());
  EXPECT_EQ(r3->ReleaseHeld(), r3->MemoryBytes() + base->MemoryBytes());
}

TEST(ParseRfc3339Test, ParsesKubernetesTimestamps) {
  std::int64_t ms = 0;
  ASSERT_TRUE(ParseRfc3339Millis("1970-01-01T00:00:00Z", &ms));
  EXPECT_EQ(ms, 0);
  ASSERT_TRUE(ParseRfc3339Millis("2024-05-01T10:13:22Z", &ms));
  EXPECT_EQ(ms, 1714558402000);
  ASSERT_TRUE(ParseRfc3339Millis("2024-05-01T10:02:03.456789Z", &ms));
  EXPECT_EQ(ms, 1714557723456);
  ASSERT_TRUE(ParseRfc3339Millis("2024-05-01T12:13:22+02:00", &ms));
  EXPECT_EQ(ms, 1714558402000);
  ASSERT_TRUE(ParseRfc3339Millis("2024-02-29T23:59:59.5Z", &ms));
  EXPECT_EQ(ms, 1709251199500);
}

TEST(ParseRfc3339Test, RejectsMalformedTimes) {
  std::int64_t ms = 7;
  for (const char* bad : {"", "2024-05-01", "2024-05-01T10:13:22", "2024-13-01T00:00:00Z",
                          "2024-05-01T25:00:00Z", "2024-05-01T10:13:22.Z", "2024-05-01T10:13:22Zx",
                          "2024-05-01T10:13:22+0200", "yesterday at noon"}) {
    EXPECT_FALSE(ParseRfc3339Millis(bad, &ms)) << bad;
  }
  EXPECT_EQ(ms, 7);
}

}  // namespace
}  // namespace eventbuffer
