#include "controller/kube/event_decoder.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace eventbuffer::controller {
namespace {

using Field = EventRecord::Field;

std::string ReadTestdata(const std::string& name) {
  std::ifstream in(std::string(KEB_SOURCE_DIR) + "/tests/controller/kube/testdata/" + name,
                   std::ios::binary);
  EXPECT_TRUE(in.good()) << name;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

// A watch line around an Event object with the given extra top-level members.
std::string EventLine(const std::string& type, const std::string& extra = "",
                      const std::string& metadata =
                          R"("uid":"u-1","resourceVersion":"42","namespace":"ns","name":"p.1")") {
  return R"({"type":")" + type + R"(","object":{"metadata":{)" + metadata +
         R"(},"involvedObject":{"kind":"Pod","namespace":"ns","name":"p"})" +
         (extra.empty() ? "" : "," + extra) + "}}";
}

TEST(EventDecoderTest, DecodesKubectlEventListWithAllFields) {
  EventDecoder decoder;
  auto result = decoder.DecodeList(ReadTestdata("event_list.json"), 1234);
  ASSERT_TRUE(result.ok()) << result.error.ToString();
  const EventListPage& page = result.value;
  EXPECT_EQ(page.resource_version, "812400");
  EXPECT_EQ(page.continue_token, "");
  ASSERT_EQ(page.items.size(), 3u);

  const EventRecord& pod = *page.items[0];
  EXPECT_EQ(pod.uid(), "a0b1c2d3-e4f5-4a6b-8c7d-9e0f1a2b3c4d");
  EXPECT_EQ(pod.resource_version(), "812399");
  EXPECT_EQ(pod.Get(Field::kNamespace), "shop");
  EXPECT_EQ(pod.Get(Field::kName), "web-7d4b9c8f6d-x2x9q.17cb1e2f3a4b5c6d");
  EXPECT_EQ(pod.Key(), "shop/Pod/web-7d4b9c8f6d-x2x9q");
  EXPECT_EQ(pod.Get(Field::kInvolvedUid), "3f1c8a52-7a1e-4c8e-9d2b-1b2c3d4e5f60");
  EXPECT_EQ(pod.Get(Field::kInvolvedApiVersion), "v1");
  EXPECT_EQ(pod.Get(Field::kInvolvedFieldPath), "spec.containers{app}");
  EXPECT_EQ(pod.reason(), "BackOff");
  EXPECT_EQ(pod.type(), "Warning");
  EXPECT_EQ(pod.count(), 14);
  EXPECT_EQ(pod.Get(Field::kFirstTimestamp), "2024-05-01T10:00:00Z");
  EXPECT_EQ(pod.Get(Field::kLastTimestamp), "2024-05-01T10:13:22Z");
  EXPECT_EQ(pod.Get(Field::kEventTime), "");
  EXPECT_EQ(pod.Get(Field::kSourceComponent), "kubelet");
  EXPECT_EQ(pod.Get(Field::kSourceHost), "worker-2");
  EXPECT_EQ(pod.Get(Field::kReportingComponent), "kubelet");
  EXPECT_EQ(pod.Get(Field::kReportingInstance), "worker-2");
  EXPECT_EQ(pod.Get(Field::kCreationTimestamp), "2024-05-01T10:00:00Z");
  EXPECT_EQ(pod.Get(Field::kSeriesLastObservedTime), "");
  EXPECT_EQ(pod.Get(Field::kRelated), "");
  // 2024-05-01T10:13:22Z
  EXPECT_EQ(pod.numbers().last_seen_unix_ms, 1714558402000);
  EXPECT_EQ(pod.numbers().receive_unix_ns, 1234);

  // A cluster-scoped involved object: the key's namespace is empty.
  const EventRecord& node = *page.items[1];
  EXPECT_EQ(node.Key(), "/Node/worker-3");
  EXPECT_EQ(node.involved_namespace(), "");
  EXPECT_EQ(node.Get(Field::kNamespace), "default");
  EXPECT_EQ(node.reason(), "NodeHasDiskPressure");

  // An events.k8s.io-style event: eventTime, series, action, empty source.
  const EventRecord& sched = *page.items[2];
  EXPECT_EQ(sched.Get(Field::kAction), "Scheduling");
  EXPECT_EQ(sched.Get(Field::kEventTime), "2024-05-01T10:02:03.456789Z");
  EXPECT_EQ(sched.numbers().series_count, 4);
  EXPECT_EQ(sched.Get(Field::kSeriesLastObservedTime), "2024-05-01T10:06:03.000001Z");
  EXPECT_EQ(sched.Get(Field::kCreationTimestamp), "2024-05-01T10:02:03Z");
  EXPECT_EQ(sched.count(), 0);
  EXPECT_EQ(sched.Get(Field::kSourceComponent), "");
  // The latest of eventTime and series.lastObservedTime.
  EXPECT_EQ(sched.numbers().last_seen_unix_ms, 1714557963000);
}

TEST(EventDecoderTest, DecodesEveryWatchEventTypeOfARealStream) {
  EventDecoder decoder;
  const auto lines = Lines(ReadTestdata("watch_stream.jsonl"));
  ASSERT_EQ(lines.size(), 5u);

  auto added = decoder.DecodeWatchLine(lines[0], 1);
  ASSERT_TRUE(added.ok()) << added.error.ToString();
  EXPECT_EQ(added.value.type, WatchEventType::kAdded);
  EXPECT_EQ(added.value.resource_version, "900001");
  EXPECT_EQ(added.value.record->message(), "Pulling image \"registry.example/api:1.4.2\"");
  EXPECT_EQ(added.value.record->count(), 1);

  auto modified = decoder.DecodeWatchLine(lines[1], 2);
  ASSERT_TRUE(modified.ok()) << modified.error.ToString();
  EXPECT_EQ(modified.value.type, WatchEventType::kModified);
  // Same Event object, a new occurrence: same uid, new resourceVersion, count++.
  EXPECT_EQ(modified.value.record->uid(), added.value.record->uid());
  EXPECT_EQ(modified.value.record->resource_version(), "900007");
  EXPECT_EQ(modified.value.record->count(), 2);

  auto bookmark = decoder.DecodeWatchLine(lines[2], 3);
  ASSERT_TRUE(bookmark.ok()) << bookmark.error.ToString();
  EXPECT_EQ(bookmark.value.type, WatchEventType::kBookmark);
  EXPECT_EQ(bookmark.value.resource_version, "900010");
  EXPECT_EQ(bookmark.value.record, nullptr);

  auto deleted = decoder.DecodeWatchLine(lines[3], 4);
  ASSERT_TRUE(deleted.ok()) << deleted.error.ToString();
  EXPECT_EQ(deleted.value.type, WatchEventType::kDeleted);
  EXPECT_EQ(deleted.value.resource_version, "900011");

  auto error = decoder.DecodeWatchLine(lines[4], 5);
  ASSERT_TRUE(error.ok()) << error.error.ToString();
  EXPECT_EQ(error.value.type, WatchEventType::kError);
  EXPECT_EQ(error.value.status.code, 410);
  EXPECT_EQ(error.value.status.reason, "Expired");
  EXPECT_EQ(error.value.status.message, "too old resource version: 812400 (900011)");
}

TEST(EventDecoderTest, AcceptsTrailingNewlineAndCarriageReturn) {
  EventDecoder decoder;
  auto r = decoder.DecodeWatchLine(EventLine("ADDED") + "\r\n", 0);
  ASSERT_TRUE(r.ok()) << r.error.ToString();
  EXPECT_EQ(r.value.record->Key(), "ns/Pod/p");
}

TEST(EventDecoderTest, UnknownFieldsAreIgnoredAndOptionalFieldsMayBeMissing) {
  EventDecoder decoder;
  auto r = decoder.DecodeWatchLine(
      R"({"type":"ADDED","future":{"x":[1,2,{"y":null}]},"object":{"metadata":{"uid":"u","resourceVersion":"1","labels":{"a":"b"}},"related":{"kind":"Node"},"deprecatedCount":3,"involvedObject":{"kind":"Pod","name":"p","extra":true}}})",
      0);
  ASSERT_TRUE(r.ok()) << r.error.ToString();
  EXPECT_EQ(r.value.record->Key(), "/Pod/p");
  EXPECT_EQ(r.value.record->message(), "");
  EXPECT_EQ(r.value.record->count(), 0);
  EXPECT_EQ(r.value.record->numbers().last_seen_unix_ms, 0);
  EXPECT_EQ(r.value.last_seen_unix_ms, 0);
}

TEST(EventDecoderTest, NullValuesCountAsAbsent) {
  EventDecoder decoder;
  auto r = decoder.DecodeWatchLine(
      EventLine("ADDED", R"("message":null,"count":null,"source":null,"series":null,"eventTime":null)"),
      0);
  ASSERT_TRUE(r.ok()) << r.error.ToString();
  EXPECT_EQ(r.value.record->message(), "");
  EXPECT_EQ(r.value.record->count(), 0);
}

TEST(EventDecoderTest, DecodesCreationTimestampSeriesLastObservedTimeAndRelated) {
  EventDecoder decoder;
  auto r = decoder.DecodeWatchLine(
      EventLine("MODIFIED",
                R"("series":{"lastObservedTime":"2024-05-01T10:06:03.123456Z","count":2},)"
                R"("related": { "kind" : "Node",  "name":"w\u00e9-1",)"
                R"( "uid":"q\"u\\o", "fieldPath":"" })",
                R"("uid":"u-1","resourceVersion":"42","creationTimestamp":"2024-05-01T10:00:00Z")"),
      0);
  ASSERT_TRUE(r.ok()) << r.error.ToString();
  const EventRecord& e = *r.value.record;
  EXPECT_EQ(e.Get(Field::kCreationTimestamp), "2024-05-01T10:00:00Z");
  EXPECT_EQ(e.Get(Field::kSeriesLastObservedTime), "2024-05-01T10:06:03.123456Z");
  // Compact JSON of the object: no white space, keys in input order, strings unescaped to
  // UTF-8 and re-escaped only where JSON requires it.
  EXPECT_EQ(
      e.Get(Field::kRelated),
      "{\"kind\":\"Node\",\"name\":\"w\xC3\xA9-1\",\"uid\":\"q\\\"u\\\\o\",\"fieldPath\":\"\"}");
  EXPECT_EQ(e.numbers().series_count, 2);
  // series.lastObservedTime also counts as the time the event was last seen.
  EXPECT_EQ(e.numbers().last_seen_unix_ms, 1714557963123);
  // The watch event carries the same number (the watcher's event-lag metric uses it).
  EXPECT_EQ(r.value.last_seen_unix_ms, 1714557963123);
}

TEST(EventDecoderTest, RelatedIsKeptWholeIncludingNestedValues) {
  EventDecoder decoder;
  auto r = decoder.DecodeWatchLine(
      EventLine("ADDED", R"("related":{"kind":"Pod","extra":{"a":[1,true,null]},"n":-3})"), 0);
  ASSERT_TRUE(r.ok()) << r.error.ToString();
  EXPECT_EQ(r.value.record->Get(Field::kRelated),
            R"({"kind":"Pod","extra":{"a":[1,true,null]},"n":-3})");
}

TEST(EventDecoderTest, AbsentOrNullNewFieldsAreEmpty) {
  EventDecoder decoder;
  for (const std::string& extra :
       {std::string(), std::string(R"("related":null,"series":{"lastObservedTime":null})"),
        std::string(R"("series":null)")}) {
    auto r = decoder.DecodeWatchLine(
        EventLine("ADDED", extra, R"("uid":"u","resourceVersion":"1","creationTimestamp":null)"),
        0);
    ASSERT_TRUE(r.ok()) << r.error.ToString();
    EXPECT_EQ(r.value.record->Get(Field::kCreationTimestamp), "") << extra;
    EXPECT_EQ(r.value.record->Get(Field::kSeriesLastObservedTime), "") << extra;
    EXPECT_EQ(r.value.record->Get(Field::kRelated), "") << extra;
  }
  // An empty object is present: it is kept as such.
  auto r = decoder.DecodeWatchLine(EventLine("ADDED", R"("related":{})"), 0);
  ASSERT_TRUE(r.ok()) << r.error.ToString();
  EXPECT_EQ(r.value.record->Get(Field::kRelated), "{}");
}

TEST(EventDecoderTest, UnicodeEscapesAndNewlinesSurviveByteExact) {
  EventDecoder decoder;
  // JSON escapes: \" \\ \/ \n \t \u00e9 and a surrogate pair (U+1F680), plus raw UTF-8.
  const std::string json_message =
      R"(line1\nline2\t\"quoted\" back\\slash \/ caf\u00e9 \ud83d\ude80 日本語 Ünïcödé)";
  const std::string expected =
      "line1\nline2\t\"quoted\" back\\slash / caf\xC3\xA9 \xF0\x9F\x9A\x80 日本語 Ünïcödé";
  auto r = decoder.DecodeWatchLine(EventLine("ADDED", R"("message":")" + json_message + "\""), 0);
  ASSERT_TRUE(r.ok()) << r.error.ToString();
  EXPECT_EQ(r.value.record->message(), expected);
}

TEST(EventDecoderTest, LargeMessagesSurviveByteExact) {
  EventDecoder decoder;
  for (std::size_t size : {100u * 1024u, 1024u * 1024u + 7u}) {
    std::string message;
    message.reserve(size);
    for (std::size_t i = 0; message.size() < size; ++i) {
      message.push_back(static_cast<char>('a' + i % 26));
      if (i % 1000 == 999) message.append("é");
    }
    auto r = decoder.DecodeWatchLine(EventLine("ADDED", R"("message":")" + message + "\""), 0);
    ASSERT_TRUE(r.ok()) << r.error.ToString();
    EXPECT_EQ(r.value.record->message(), message);
  }
  // A small event after a huge one still decodes (the scratch buffer is reused or shrunk).
  auto small = decoder.DecodeWatchLine(EventLine("ADDED", R"("message":"ok")"), 0);
  ASSERT_TRUE(small.ok());
  EXPECT_EQ(small.value.record->message(), "ok");
}

TEST(EventDecoderTest, DecodesListPagingMetadata) {
  EventDecoder decoder;
  auto r = decoder.DecodeList(
      R"({"kind":"EventList","apiVersion":"v1","metadata":{"resourceVersion":"77","continue":"eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6Nzd9","remainingItemCount":1234},"items":[]})",
      0);
  ASSERT_TRUE(r.ok()) << r.error.ToString();
  EXPECT_EQ(r.value.resource_version, "77");
  EXPECT_EQ(r.value.continue_token, "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6Nzd9");
  EXPECT_EQ(r.value.remaining_item_count, 1234);
  EXPECT_TRUE(r.value.items.empty());
}

TEST(EventDecoderTest, DecodesSingleListItem) {
  EventDecoder decoder;
  auto r = decoder.DecodeEvent(
      R"({"metadata":{"uid":"x","resourceVersion":"9"},"involvedObject":{"kind":"Deployment","namespace":"a","name":"b"},"reason":"ScalingReplicaSet"})",
      5);
  ASSERT_TRUE(r.ok()) << r.error.ToString();
  EXPECT_EQ(r.value->Key(), "a/Deployment/b");
  EXPECT_EQ(r.value->reason(), "ScalingReplicaSet");
}

TEST(EventDecoderTest, DecodesStatusBodies) {
  EventDecoder decoder;
  ApiStatus status;
  ASSERT_TRUE(decoder.DecodeStatus(
      R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Too many requests, please try again later.","reason":"TooManyRequests","details":{"retryAfterSeconds":1},"code":429})",
      &status));
  EXPECT_EQ(status.code, 429);
  EXPECT_EQ(status.reason, "TooManyRequests");
  EXPECT_FALSE(decoder.DecodeStatus(R"({"kind":"EventList"})", &status));
  EXPECT_FALSE(decoder.DecodeStatus("<html>bad gateway</html>", &status));
}

struct MalformedCase {
  const char* name;
  std::string input;
  std::string field;    // expected DecodeError::field
  std::string message;  // a substring of DecodeError::message
};

class MalformedWatchLineTest : public testing::TestWithParam<MalformedCase> {};

TEST_P(MalformedWatchLineTest, GivesAClearErrorNamingTheField) {
  EventDecoder decoder;
  const MalformedCase& c = GetParam();
  auto r = decoder.DecodeWatchLine(c.input, 0);
  ASSERT_FALSE(r.ok()) << "accepted: " << c.input;
  EXPECT_EQ(r.error.field, c.field) << r.error.ToString();
  EXPECT_NE(r.error.message.find(c.message), std::string::npos) << r.error.ToString();
  EXPECT_EQ(r.value.record, nullptr);
}

const std::string kMeta = R"("uid":"u","resourceVersion":"1")";

INSTANTIATE_TEST_SUITE_P(
    Malformed, MalformedWatchLineTest,
    testing::Values(
        MalformedCase{"Empty", "", "", "malformed JSON"},
        MalformedCase{"OnlySpaces", "   \n", "", "malformed JSON"},
        MalformedCase{"Truncated", EventLine("ADDED").substr(0, 60), "", "malformed JSON"},
        MalformedCase{"CutMidString", R"({"type":"ADDED","object":{"metadata":{"uid":"abc)", "",
                      "malformed JSON"},
        MalformedCase{"TrailingGarbage", EventLine("ADDED") + "}", "", "malformed JSON"},
        MalformedCase{"TwoDocuments", EventLine("ADDED") + EventLine("ADDED"), "", "malformed JSON"},
        MalformedCase{"NotJson", "HTTP/1.1 500 Internal Server Error", "", "malformed JSON"},
        MalformedCase{"InvalidUtf8", EventLine("ADDED", "\"message\":\"\xC3\x28\""), "",
                      "malformed JSON"},
        MalformedCase{"BadEscape", EventLine("ADDED", R"("message":"\q")"), "", "malformed JSON"},
        MalformedCase{"TopLevelArray", R"([{"type":"ADDED"}])", "", "expected a watch event object"},
        MalformedCase{"TopLevelString", R"("ADDED")", "", "expected a watch event object"},
        MalformedCase{"MissingType", R"({"object":{}})", "type", "missing"},
        MalformedCase{"TypeNotString", R"({"type":1,"object":{}})", "type",
                      "expected a string, got an integer"},
        MalformedCase{"UnknownType", R"({"type":"UPDATED","object":{}})", "type",
                      "unknown watch event type \"UPDATED\""},
        MalformedCase{"MissingObject", R"({"type":"ADDED"})", "object", "missing"},
        MalformedCase{"ObjectNull", R"({"type":"ADDED","object":null})", "object", "got null"},
        MalformedCase{"ObjectIsArray", R"({"type":"MODIFIED","object":[]})", "object",
                      "expected an object, got an array"},
        MalformedCase{"MissingMetadata",
                      R"({"type":"ADDED","object":{"involvedObject":{"kind":"Pod"}}})",
                      "object.metadata", "missing"},
        MalformedCase{"MetadataIsString", R"({"type":"ADDED","object":{"metadata":"x"}})",
                      "object.metadata", "expected an object, got a string"},
        MalformedCase{"MissingUid", EventLine("ADDED", "", R"("resourceVersion":"1")"),
                      "object.metadata.uid", "missing"},
        MalformedCase{"EmptyResourceVersion",
                      EventLine("ADDED", "", R"("uid":"u","resourceVersion":"")"),
                      "object.metadata.resourceVersion", "missing or empty"},
        MalformedCase{"UidIsNumber", EventLine("ADDED", "", R"("uid":7,"resourceVersion":"1")"),
                      "object.metadata.uid", "expected a string, got an integer"},
        MalformedCase{"CountIsString", EventLine("ADDED", R"("count":"3")"), "object.count",
                      "expected an integer, got a string"},
        MalformedCase{"CountIsFloat", EventLine("ADDED", R"("count":1.5)"), "object.count",
                      "expected an integer, got a number"},
        MalformedCase{"CountOverflows", EventLine("ADDED", R"("count":99999999999)"),
                      "object.count", "out of the 32-bit range"},
        MalformedCase{"MessageIsObject", EventLine("ADDED", R"("message":{"text":"x"})"),
                      "object.message", "expected a string, got an object"},
        MalformedCase{"ReasonIsBool", EventLine("ADDED", R"("reason":true)"), "object.reason",
                      "expected a string, got a boolean"},
        MalformedCase{"InvolvedObjectIsArray",
                      R"({"type":"ADDED","object":{"metadata":{)" + kMeta +
                          R"(},"involvedObject":["Pod"]}})",
                      "object.involvedObject", "expected an object, got an array"},
        MalformedCase{"InvolvedNameIsNumber",
                      R"({"type":"ADDED","object":{"metadata":{)" + kMeta +
                          R"(},"involvedObject":{"kind":"Pod","name":5}}})",
                      "object.involvedObject.name", "expected a string, got an integer"},
        MalformedCase{"SourceHostIsArray", EventLine("ADDED", R"("source":{"host":[]})"),
                      "object.source.host", "expected a string, got an array"},
        MalformedCase{"RelatedIsString", EventLine("ADDED", R"("related":"Node/w-1")"),
                      "object.related", "expected an object, got a string"},
        MalformedCase{"RelatedIsArray", EventLine("ADDED", R"("related":[{"kind":"Node"}])"),
                      "object.related", "expected an object, got an array"},
        MalformedCase{"CreationTimestampIsNumber",
                      EventLine("ADDED", "",
                                R"("uid":"u","resourceVersion":"1","creationTimestamp":5)"),
                      "object.metadata.creationTimestamp", "expected a string, got an integer"},
        MalformedCase{"LastObservedTimeIsObject",
                      EventLine("ADDED", R"("series":{"lastObservedTime":{}})"),
                      "object.series.lastObservedTime", "expected a string, got an object"},
        MalformedCase{"SeriesCountIsString", EventLine("ADDED", R"("series":{"count":"2"})"),
                      "object.series.count", "expected an integer, got a string"},
        MalformedCase{"BookmarkWithoutMetadata", R"({"type":"BOOKMARK","object":{"kind":"Event"}})",
                      "object.metadata", "missing"},
        MalformedCase{"BookmarkWithoutResourceVersion",
                      R"({"type":"BOOKMARK","object":{"metadata":{}}})",
                      "object.metadata.resourceVersion", "missing or empty"},
        MalformedCase{"ErrorWithNullObject", R"({"type":"ERROR","object":null})", "object",
                      "got null"},
        MalformedCase{"ErrorCodeIsString",
                      R"({"type":"ERROR","object":{"kind":"Status","code":"410"}})",
                      "object.code", "expected an integer, got a string"}),
    [](const testing::TestParamInfo<MalformedCase>& info) { return std::string(info.param.name); });

TEST(EventDecoderTest, ListItemThatDoesNotDecodeIsSkippedAndTheOthersDecode) {
  EventDecoder decoder;
  auto r = decoder.DecodeList(
      R"({"metadata":{"resourceVersion":"5"},"items":[)"
      R"({"metadata":{"uid":"a","resourceVersion":"1"}},)"
      R"({"metadata":{"uid":"b","resourceVersion":"2","namespace":"ns","name":"p.b"},"count":"x"},)"
      R"({"metadata":{"uid":"c","resourceVersion":"3"}}]})",
      0);
  ASSERT_TRUE(r.ok()) << r.error.ToString();
  EXPECT_EQ(r.value.resource_version, "5");
  ASSERT_EQ(r.value.items.size(), 2u);
  EXPECT_EQ(r.value.items[0]->uid(), "a");
  EXPECT_EQ(r.value.items[1]->uid(), "c");
  ASSERT_EQ(r.value.skipped.size(), 1u);
  const SkippedListItem& s = r.value.skipped[0];
  EXPECT_EQ(s.index, 1);
  EXPECT_EQ(s.uid, "b");
  EXPECT_EQ(s.name, "ns/p.b");
  EXPECT_EQ(s.resource_version, "2");
  EXPECT_EQ(s.error.field, "items[1].count");
  EXPECT_EQ(s.error.ToString(), "items[1].count: expected an integer, got a string");
}

TEST(EventDecoderTest, SkippedListItemsKeepWhatIdentityTheyHave) {
  EventDecoder decoder;
  auto r = decoder.DecodeList(
      R"({"items":[42,{"metadata":{"uid":7,"name":"n"}},{"metadata":{"uid":"u"}},)"
      R"({"metadata":{"uid":"ok","resourceVersion":"9"}}],"metadata":{"resourceVersion":"10"}})",
      0);
  ASSERT_TRUE(r.ok()) << r.error.ToString();
  ASSERT_EQ(r.value.items.size(), 1u);
  EXPECT_EQ(r.value.items[0]->uid(), "ok");
  ASSERT_EQ(r.value.skipped.size(), 3u);
  EXPECT_EQ(r.value.skipped[0].index, 0);
  EXPECT_EQ(r.value.skipped[0].uid, "");
  EXPECT_EQ(r.value.skipped[0].error.ToString(), "items[0]: expected an object, got an integer");
  EXPECT_EQ(r.value.skipped[1].uid, "");  // not a string
  EXPECT_EQ(r.value.skipped[1].name, "n");
  EXPECT_EQ(r.value.skipped[1].error.field, "items[1].metadata.uid");
  EXPECT_EQ(r.value.skipped[2].uid, "u");
  EXPECT_EQ(r.value.skipped[2].resource_version, "");
  EXPECT_EQ(r.value.skipped[2].error.ToString(),
            "items[2].metadata.resourceVersion: missing or empty");
}

TEST(EventDecoderTest, PageLevelProblemStillFailsAPageWithBadItems) {
  EventDecoder decoder;
  // A bad item does not hide a page-level error after it.
  auto r = decoder.DecodeList(R"({"items":[{"count":"x"}],"metadata":{"resourceVersion":5}})", 0);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error.ToString(), "metadata.resourceVersion: expected a string, got an integer");
  r = decoder.DecodeList(R"({"items":[{"count":"x"}]})", 0);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error.field, "metadata.resourceVersion");
}

TEST(EventDecoderTest, ListWithoutResourceVersionIsAnError) {
  EventDecoder decoder;
  auto r = decoder.DecodeList(R"({"items":[]})", 0);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error.field, "metadata.resourceVersion");
}

TEST(EventDecoderTest, StatusWhereAListWasExpectedIsReported) {
  EventDecoder decoder;
  auto r = decoder.DecodeList(
      R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"The provided continue parameter is too old","reason":"Expired","code":410})",
      0);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error.message.find("got a Status (code 410, reason Expired)"), std::string::npos)
      << r.error.ToString();
}

TEST(EventDecoderTest, ItemsOfWrongTypeAreAnError) {
  EventDecoder decoder;
  auto r = decoder.DecodeList(R"({"metadata":{"resourceVersion":"5"},"items":{}})", 0);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error.ToString(), "items: expected an array, got an object");
}

TEST(EventDecoderTest, DeeplyNestedUnknownFieldDoesNotCrash) {
  EventDecoder decoder;
  std::string nested(5000, '[');
  nested += std::string(5000, ']');
  auto r = decoder.DecodeWatchLine(EventLine("ADDED", R"("x":)" + nested), 0);
  // simdjson limits the depth; either a clean decode or a clean error, never a crash.
  if (!r.ok()) {
    EXPECT_EQ(r.error.field, "");
  }
}

TEST(EventDecoderTest, DecoderIsReusableAfterErrors) {
  EventDecoder decoder;
  EXPECT_FALSE(decoder.DecodeWatchLine("{", 0).ok());
  EXPECT_FALSE(decoder.DecodeWatchLine(R"({"type":"ADDED","object":{"metadata":{}}})", 0).ok());
  auto ok = decoder.DecodeWatchLine(EventLine("MODIFIED"), 0);
  ASSERT_TRUE(ok.ok()) << ok.error.ToString();
  EXPECT_EQ(ok.value.type, WatchEventType::kModified);
}

}  // namespace
}  // namespace eventbuffer::controller
