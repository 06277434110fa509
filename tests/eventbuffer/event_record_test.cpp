#include "eventbuffer/event_record.h"

#include <gtest/gtest.h>

#include <string>

namespace eventbuffer {
namespace {

using Field = EventRecord::Field;

EventRecord MakeRecord() {
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
  const EventRecord r = b.Build();
  for (std::size_t i = 0; i < EventRecord::kFieldCount; ++i) {
    EXPECT_EQ(r.Get(static_cast<Field>(i)), values[i]) << i;
  }
}

TEST(EventRecordTest, EmbeddedNulAndNewlineSurvive) {
  const EventRecord r = MakeRecord();
  EXPECT_EQ(r.message(), std::string_view("multi\nline \0 nul", 16));
  EXPECT_EQ(r.Get(Field::kAction), "last-field");
  EXPECT_EQ(r.count(), 3);
}

TEST(EventRecordTest, EmptyRecordHasEmptyFields) {
  const EventRecord r = EventRecord::Builder().Build();
  for (std::size_t i = 0; i < EventRecord::kFieldCount; ++i) {
    EXPECT_TRUE(r.Get(static_cast<Field>(i)).empty());
  }
  EXPECT_EQ(r.TextSize(), 0u);
  EXPECT_EQ(r.Key(), "//");
}

TEST(EventRecordTest, KeyIsNamespaceKindName) {
  EXPECT_EQ(MakeRecord().Key(), "ns/Pod/web-0");
  EXPECT_EQ(MakeKey("", "Node", "worker-1"), "/Node/worker-1");
  std::string out = "prefix:";
  MakeRecord().AppendKey(&out);
  EXPECT_EQ(out, "prefix:ns/Pod/web-0");
}

TEST(EventRecordTest, CopyIsDeepAndEqual) {
  const EventRecord a = MakeRecord();
  EventRecord b = a;
  EXPECT_EQ(a, b);
  EXPECT_NE(a.message().data(), b.message().data());
  EventRecord c = EventRecord::Builder().Set(Field::kUid, "other").Build();
  EXPECT_FALSE(a == c);
  c = a;
  EXPECT_EQ(a, c);
}

TEST(EventRecordTest, MemoryIsOneBlockOfText) {
  const EventRecord r = MakeRecord();
  EXPECT_EQ(r.TextSize(), 5u + 3u + 2u + 3u + 5u + 16u + 10u);
  EXPECT_EQ(r.MemoryBytes(), sizeof(EventRecord) + r.TextSize());
  // The inline part stays small: offsets, numbers and one pointer.
  EXPECT_LE(sizeof(EventRecord), 128u);
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
