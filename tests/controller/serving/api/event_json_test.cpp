#include "controller/serving/api/event_json.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include "tests/controller/serving/api/fake_event_store.h"

namespace eventbuffer::controller {
namespace {

using testing::EventSpec;

// Parses `json` and returns the document root (the parser keeps the data).
simdjson::dom::element Parse(simdjson::dom::parser& parser, const std::string& json) {
  simdjson::dom::element root;
  const auto error = parser.parse(json).get(root);
  EXPECT_EQ(error, simdjson::SUCCESS) << json;
  return root;
}

std::string Str(simdjson::dom::element e, std::string_view pointer) {
  std::string_view v;
  const auto error = e.at_pointer(pointer).get(v);
  EXPECT_EQ(error, simdjson::SUCCESS) << pointer;
  return std::string(v);
}

bool Has(simdjson::dom::element e, std::string_view pointer) {
  return e.at_pointer(pointer).error() == simdjson::SUCCESS;
}

bool IsNull(simdjson::dom::element e, std::string_view pointer) {
  simdjson::dom::element v;
  return e.at_pointer(pointer).get(v) == simdjson::SUCCESS && v.is_null();
}

std::int64_t Int(simdjson::dom::element e, std::string_view pointer) {
  std::int64_t v = 0;
  EXPECT_EQ(e.at_pointer(pointer).get(v), simdjson::SUCCESS) << pointer;
  return v;
}

std::size_t Members(simdjson::dom::element e, std::string_view pointer) {
  simdjson::dom::object o;
  EXPECT_EQ(e.at_pointer(pointer).get(o), simdjson::SUCCESS) << pointer;
  return o.size();
}

EventSpec FullSpec() {
  EventSpec s;
  s.ns = "team-a";
  s.name = "web-1.17a8";
  s.uid = "uid-e";
  s.rv = "555";
  s.involved_kind = "Pod";
  s.involved_namespace = "team-a";
  s.involved_name = "web-1";
  s.involved_uid = "uid-p";
  s.involved_api_version = "v1";
  s.involved_field_path = "spec.containers{web}";
  s.reason = "BackOff";
  s.message = "Back-off restarting";
  s.type = "Warning";
  s.first_timestamp = "2024-05-01T10:00:00Z";
  s.last_timestamp = "2024-05-01T10:05:00Z";
  s.event_time = "2024-05-01T10:05:00.123456Z";
  s.source_component = "kubelet";
  s.source_host = "worker-1";
  s.reporting_component = "kubelet-rc";
  s.reporting_instance = "worker-1-ri";
  s.action = "Restart";
  s.creation_timestamp = "2024-05-01T09:59:59Z";
  s.series_last_observed = "2024-05-01T10:06:00.000001Z";
  s.series_count = 9;
  s.count = 7;
  s.related = R"({"kind":"Node","name":"worker-1"})";
  return s;
}

TEST(EventJsonTest, RendersEveryField) {
  std::string json;
  AppendEventJson(&json, *FullSpec().Build());
  simdjson::dom::parser parser;
  const auto e = Parse(parser, json);
  EXPECT_EQ(Str(e, "/kind"), "Event");
  EXPECT_EQ(Str(e, "/apiVersion"), "eventbuffer.dev/v1alpha1");
  EXPECT_EQ(Str(e, "/metadata/name"), "web-1.17a8.555");
  EXPECT_EQ(Str(e, "/metadata/namespace"), "team-a");
  EXPECT_EQ(Str(e, "/metadata/uid"), "uid-e");
  EXPECT_EQ(Str(e, "/metadata/resourceVersion"), "555");
  EXPECT_EQ(Str(e, "/metadata/creationTimestamp"), "2024-05-01T09:59:59Z");
  EXPECT_EQ(Members(e, "/metadata"), 5u);
  EXPECT_EQ(Str(e, "/involvedObject/kind"), "Pod");
  EXPECT_EQ(Str(e, "/involvedObject/namespace"), "team-a");
  EXPECT_EQ(Str(e, "/involvedObject/name"), "web-1");
  EXPECT_EQ(Str(e, "/involvedObject/uid"), "uid-p");
  EXPECT_EQ(Str(e, "/involvedObject/apiVersion"), "v1");
  EXPECT_EQ(Str(e, "/involvedObject/fieldPath"), "spec.containers{web}");
  EXPECT_EQ(Members(e, "/involvedObject"), 6u);
  EXPECT_EQ(Str(e, "/reason"), "BackOff");
  EXPECT_EQ(Str(e, "/message"), "Back-off restarting");
  EXPECT_EQ(Str(e, "/type"), "Warning");
  EXPECT_EQ(Int(e, "/count"), 7);
  EXPECT_EQ(Str(e, "/firstTimestamp"), "2024-05-01T10:00:00Z");
  EXPECT_EQ(Str(e, "/lastTimestamp"), "2024-05-01T10:05:00Z");
  EXPECT_EQ(Str(e, "/eventTime"), "2024-05-01T10:05:00.123456Z");
  EXPECT_EQ(Int(e, "/series/count"), 9);
  EXPECT_EQ(Str(e, "/series/lastObservedTime"), "2024-05-01T10:06:00.000001Z");
  EXPECT_EQ(Str(e, "/source/component"), "kubelet");
  EXPECT_EQ(Str(e, "/source/host"), "worker-1");
  EXPECT_EQ(Str(e, "/reportingComponent"), "kubelet-rc");
  EXPECT_EQ(Str(e, "/reportingInstance"), "worker-1-ri");
  EXPECT_EQ(Str(e, "/action"), "Restart");
  EXPECT_EQ(Str(e, "/related/kind"), "Node");
  EXPECT_EQ(Str(e, "/related/name"), "worker-1");
  EXPECT_EQ(Members(e, ""), 17u);
}

TEST(EventJsonTest, OmitsUnsetFieldsAsTheApiServerDoes) {
  EventSpec s;
  s.ns = "";
  s.uid = "";
  s.involved_kind = s.involved_namespace = s.involved_name = s.involved_uid = "";
  s.involved_api_version = s.involved_field_path = "";
  s.reason = s.message = s.type = s.first_timestamp = s.last_timestamp = s.event_time = "";
  s.source_component = s.source_host = s.reporting_component = s.reporting_instance = "";
  s.action = s.creation_timestamp = s.series_last_observed = s.related = "";
  s.count = 0;
  s.series_count = 0;
  std::string json;
  AppendEventJson(&json, *s.Build());
  simdjson::dom::parser parser;
  const auto e = Parse(parser, json);
  // Always present: kind, apiVersion, metadata, involvedObject, source, the three times
  // (null), reportingComponent and reportingInstance ("").
  EXPECT_EQ(Members(e, ""), 10u) << json;
  EXPECT_EQ(Members(e, "/metadata"), 3u) << "name, resourceVersion, creationTimestamp";
  EXPECT_TRUE(IsNull(e, "/metadata/creationTimestamp"));
  EXPECT_EQ(Members(e, "/involvedObject"), 0u);
  EXPECT_EQ(Members(e, "/source"), 0u);
  EXPECT_TRUE(IsNull(e, "/firstTimestamp"));
  EXPECT_TRUE(IsNull(e, "/lastTimestamp"));
  EXPECT_TRUE(IsNull(e, "/eventTime"));
  EXPECT_EQ(Str(e, "/reportingComponent"), "");
  EXPECT_EQ(Str(e, "/reportingInstance"), "");
  for (const char* absent : {"/reason", "/message", "/type", "/count", "/series", "/action",
                             "/related", "/metadata/namespace", "/metadata/uid"}) {
    EXPECT_FALSE(Has(e, absent)) << absent;
  }
}

TEST(EventJsonTest, SeriesWithOnlyACountHasANullLastObservedTime) {
  EventSpec s;
  s.series_count = 4;
  std::string json;
  AppendEventJson(&json, *s.Build());
  simdjson::dom::parser parser;
  const auto e = Parse(parser, json);
  EXPECT_EQ(Int(e, "/series/count"), 4);
  EXPECT_TRUE(IsNull(e, "/series/lastObservedTime"));
}

TEST(EventJsonTest, RelatedThatIsNotOneJsonObjectIsLeftOut) {
  for (const char* bad : {"{", "{\"a\":1}}", "{\"a\":1},\"x\":{", "[1]", "\"s\"", "{\"a\":}"}) {
    EventSpec s;
    s.related = bad;
    std::string json;
    AppendEventJson(&json, *s.Build());
    simdjson::dom::parser parser;
    const auto e = Parse(parser, json);
    EXPECT_FALSE(Has(e, "/related")) << bad;
    EXPECT_FALSE(Has(e, "/x")) << bad;
  }
}

TEST(EventJsonTest, HostileStringsStayInsideTheirFields) {
  EventSpec s;
  static constexpr char kHostile[] = "\"},\"kind\":\"Pwned\\\n\t\x01\x1f\0 é ✓ \xf0\x9f\x98\x80";
  const std::string hostile(kHostile, sizeof(kHostile) - 1);
  s.message = hostile;
  s.reason = hostile;
  s.name = hostile;
  s.involved_name = hostile;
  s.source_host = hostile;
  s.first_timestamp = hostile;
  std::string json;
  AppendEventJson(&json, *s.Build());
  simdjson::dom::parser parser;
  const auto e = Parse(parser, json);
  EXPECT_EQ(Str(e, "/kind"), "Event");
  EXPECT_EQ(Str(e, "/message"), hostile);
  EXPECT_EQ(Str(e, "/reason"), hostile);
  EXPECT_EQ(Str(e, "/metadata/name"), hostile + ".1001");
  EXPECT_EQ(Str(e, "/involvedObject/name"), hostile);
  EXPECT_EQ(Str(e, "/source/host"), hostile);
  EXPECT_EQ(Str(e, "/firstTimestamp"), hostile);

  std::string row;
  AppendEventTableRowJson(&row, *s.Build(), IncludeObject::kObject, 0, "meta.k8s.io/v1");
  const auto r = Parse(parser, row);
  EXPECT_EQ(Str(r, "/cells/3"), "pod/" + hostile);
  EXPECT_EQ(Str(r, "/cells/9"), hostile + ".1001");
  EXPECT_EQ(Str(r, "/object/message"), hostile);
}

TEST(EventJsonTest, HumanDurationFollowsKubectl) {
  const std::int64_t s = 1000, m = 60 * s, h = 60 * m, d = 24 * h, y = 365 * d;
  const std::vector<std::pair<std::int64_t, std::string>> cases = {
      {-3 * s, "<invalid>"},
      {-2 * s, "<invalid>"},
      {-1999, "0s"},
      {-1 * s, "0s"},
      {0, "0s"},
      {999, "0s"},
      {45 * s, "45s"},
      {119 * s, "119s"},
      {2 * m, "2m"},
      {5 * m + 3 * s, "5m3s"},
      {9 * m + 59 * s, "9m59s"},
      {10 * m + 30 * s, "10m"},
      {179 * m, "179m"},
      {3 * h, "3h"},
      {3 * h + 12 * m, "3h12m"},
      {7 * h + 59 * m, "7h59m"},
      {8 * h + 30 * m, "8h"},
      {47 * h, "47h"},
      {2 * d, "2d"},
      {3 * d + 4 * h, "3d4h"},
      {8 * d + 5 * h, "8d"},
      {729 * d, "729d"},
      {2 * y, "2y"},
      {2 * y + 40 * d, "2y40d"},
      {9 * y, "9y"},
  };
  for (const auto& [ms, want] : cases) EXPECT_EQ(HumanDuration(ms), want) << ms;
}

TEST(EventJsonTest, TableRowHasKubectlCells) {
  const std::int64_t five_past = 1714557900000;  // 2024-05-01T10:05:00Z
  EventSpec s;  // first 10:00:00, last 10:05:00, count 3, kubelet on worker-1
  s.message = "  Back-off restarting\n";
  std::string row;
  AppendEventTableRowJson(&row, *s.Build(), IncludeObject::kMetadata,
                          five_past + 3 * 3600 * 1000 + 12 * 60 * 1000, "meta.k8s.io/v1");
  simdjson::dom::parser parser;
  const auto r = Parse(parser, row);
  simdjson::dom::array cells;
  ASSERT_EQ(r["cells"].get(cells), simdjson::SUCCESS);
  ASSERT_EQ(cells.size(), 10u);
  EXPECT_EQ(Str(r, "/cells/0"), "3h12m");
  EXPECT_EQ(Str(r, "/cells/1"), "Warning");
  EXPECT_EQ(Str(r, "/cells/2"), "BackOff");
  EXPECT_EQ(Str(r, "/cells/3"), "pod/web-1");
  EXPECT_EQ(Str(r, "/cells/4"), "spec.containers{web}");
  EXPECT_EQ(Str(r, "/cells/5"), "kubelet, worker-1");
  EXPECT_EQ(Str(r, "/cells/6"), "Back-off restarting");
  EXPECT_EQ(Str(r, "/cells/7"), "3h17m");
  EXPECT_EQ(Int(r, "/cells/8"), 3);
  EXPECT_EQ(Str(r, "/cells/9"), "web-1.17a8b9c0d1e2f3a4.1001");
  EXPECT_EQ(Str(r, "/object/kind"), "PartialObjectMetadata");
  EXPECT_EQ(Str(r, "/object/apiVersion"), "meta.k8s.io/v1");
  EXPECT_EQ(Str(r, "/object/metadata/name"), "web-1.17a8b9c0d1e2f3a4.1001");
  EXPECT_FALSE(Has(r, "/object/reason"));
}

TEST(EventJsonTest, TableRowFallbacksOfTheEventPrinter) {
  const std::int64_t now = 1714557600000 + 3600 * 1000;  // 11:00:00
  simdjson::dom::parser parser;
  const auto cells = [&](const EventSpec& s) {
    std::string row;
    AppendEventTableRowJson(&row, *s.Build(), IncludeObject::kNone, now, "meta.k8s.io/v1");
    return row;
  };
  {
    // events.k8s.io style: no first/last timestamp, eventTime, series, reporting fields.
    EventSpec s;
    s.first_timestamp = s.last_timestamp = "";
    s.event_time = "2024-05-01T10:30:00.000000Z";
    s.series_count = 6;
    s.series_last_observed = "2024-05-01T10:59:00.000000Z";
    s.count = 0;
    s.source_component = s.source_host = "";
    s.reporting_component = "controller-x";
    s.reporting_instance = "pod-x";
    s.involved_name = "";
    s.involved_kind = "Node";
    const std::string row = cells(s);
    const auto r = Parse(parser, row);
    EXPECT_EQ(Str(r, "/cells/0"), "60s") << "series.lastObservedTime";
    EXPECT_EQ(Str(r, "/cells/3"), "node") << "kind alone without a name";
    EXPECT_EQ(Str(r, "/cells/5"), "controller-x, pod-x");
    EXPECT_EQ(Str(r, "/cells/7"), "30m") << "eventTime when firstTimestamp is unset";
    EXPECT_EQ(Int(r, "/cells/8"), 6) << "series.count";
    EXPECT_FALSE(Has(r, "/object"));
  }
  {
    // No lastTimestamp: last seen is first seen; no count: 1; component without host.
    EventSpec s;
    s.last_timestamp = "";
    s.count = 0;
    s.source_host = "";
    const auto r = Parse(parser, cells(s));
    EXPECT_EQ(Str(r, "/cells/0"), "60m");
    EXPECT_EQ(Str(r, "/cells/7"), "60m");
    EXPECT_EQ(Int(r, "/cells/8"), 1);
    EXPECT_EQ(Str(r, "/cells/5"), "kubelet");
  }
  {
    // No time at all, and a time that does not parse.
    EventSpec s;
    s.first_timestamp = s.last_timestamp = s.event_time = "";
    auto r = Parse(parser, cells(s));
    EXPECT_EQ(Str(r, "/cells/0"), "<unknown>");
    EXPECT_EQ(Str(r, "/cells/7"), "<unknown>");
    s.last_timestamp = "yesterday";
    r = Parse(parser, cells(s));
    EXPECT_EQ(Str(r, "/cells/0"), "<unknown>");
  }
}

TEST(EventJsonTest, ColumnDefinitionsMatchKubectlsEventColumns) {
  std::string json;
  AppendEventTableColumnsJson(&json);
  simdjson::dom::parser parser;
  simdjson::dom::array columns;
  ASSERT_EQ(parser.parse(json).get(columns), simdjson::SUCCESS);
  const std::vector<std::pair<std::string, std::int64_t>> want = {
      {"Last Seen", 0}, {"Type", 0},    {"Reason", 0},     {"Object", 0}, {"Subobject", 1},
      {"Source", 1},    {"Message", 0}, {"First Seen", 1}, {"Count", 1},  {"Name", 1}};
  ASSERT_EQ(columns.size(), want.size());
  std::size_t i = 0;
  for (simdjson::dom::element c : columns) {
    EXPECT_EQ(Str(c, "/name"), want[i].first);
    EXPECT_EQ(Int(c, "/priority"), want[i].second);
    EXPECT_EQ(Str(c, "/type"), "string");
    EXPECT_EQ(Str(c, "/format"), want[i].first == "Name" ? "name" : "");
    ++i;
  }
}

}  // namespace
}  // namespace eventbuffer::controller
