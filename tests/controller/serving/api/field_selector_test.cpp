#include "controller/serving/api/field_selector.h"

#include <gtest/gtest.h>

#include "tests/controller/serving/api/fake_event_store.h"

namespace eventbuffer::controller {
namespace {

using testing::EventSpec;

bool Select(std::string_view selector, const EventRef& record) {
  std::string error;
  const auto parsed = EventFieldSelector::Parse(selector, &error);
  EXPECT_TRUE(parsed) << selector << ": " << error;
  return parsed && parsed->Matches(*record);
}

std::string ParseError(std::string_view selector) {
  std::string error;
  EXPECT_FALSE(EventFieldSelector::Parse(selector, &error)) << selector;
  return error;
}

TEST(EventFieldSelectorTest, EachFieldSelectsWithEqualsDoubleEqualsAndNotEquals) {
  EventSpec spec;
  spec.ns = "team-a";
  spec.name = "db.17a";
  spec.rv = "42";
  spec.involved_kind = "StatefulSet";
  spec.involved_namespace = "team-a-objects";
  spec.involved_name = "db";
  spec.involved_uid = "uid-db";
  spec.involved_api_version = "apps/v1";
  spec.involved_field_path = "spec.template";
  spec.reason = "SuccessfulCreate";
  spec.reporting_component = "statefulset-controller";
  spec.source_component = "statefulset-ctl";
  spec.type = "Normal";
  const EventRef r = spec.Build();
  const std::vector<std::pair<std::string, std::string>> fields = {
      {"involvedObject.kind", "StatefulSet"},
      {"involvedObject.namespace", "team-a-objects"},
      {"involvedObject.name", "db"},
      {"involvedObject.uid", "uid-db"},
      {"involvedObject.apiVersion", "apps/v1"},
      {"involvedObject.fieldPath", "spec.template"},
      {"reason", "SuccessfulCreate"},
      {"reportingComponent", "statefulset-controller"},
      {"source", "statefulset-ctl"},
      {"type", "Normal"},
      {"metadata.name", "db.17a.42"},
      {"metadata.namespace", "team-a"},
  };
  ASSERT_EQ(fields.size(), EventFieldSelector::KnownFields().size());
  for (const auto& [field, value] : fields) {
    EXPECT_TRUE(Select(field + "=" + value, r)) << field;
    EXPECT_TRUE(Select(field + "==" + value, r)) << field;
    EXPECT_FALSE(Select(field + "!=" + value, r)) << field;
    EXPECT_FALSE(Select(field + "=" + value + "x", r)) << field;
    EXPECT_TRUE(Select(field + "!=" + value + "x", r)) << field;
    EXPECT_FALSE(Select(field + "=", r)) << field << " is set, so it is not \"\"";
  }
  // metadata.name is the occurrence name, not the Event name, and needs the full match.
  EXPECT_FALSE(Select("metadata.name=db.17a", r));
  EXPECT_FALSE(Select("metadata.name=db.17a.4", r));
  EXPECT_FALSE(Select("metadata.name=db.17a.420", r));
  EXPECT_FALSE(Select("metadata.name=db.17ax42", r));
}

TEST(EventFieldSelectorTest, TermsAreAndedAndEmptyTermsSkipped) {
  const EventRef r = EventSpec().Build();  // reason BackOff, type Warning
  EXPECT_TRUE(Select("reason=BackOff,type=Warning", r));
  EXPECT_FALSE(Select("reason=BackOff,type=Normal", r));
  EXPECT_TRUE(Select("reason=BackOff,type!=Normal", r));
  EXPECT_TRUE(Select(",reason=BackOff,,", r));
  EXPECT_TRUE(Select("", r));
}

TEST(EventFieldSelectorTest, UnsetFieldsCompareAsEmpty) {
  EventSpec spec;
  spec.involved_field_path = "";
  const EventRef r = spec.Build();
  EXPECT_TRUE(Select("involvedObject.fieldPath=", r));
  EXPECT_FALSE(Select("involvedObject.fieldPath!=", r));
}

TEST(EventFieldSelectorTest, SourceFallsBackToReportingComponentWhenSourceComponentIsEmpty) {
  // As the API server selects core/v1 Events: an Event written through events.k8s.io has
  // only reportingComponent (e.g. the scheduler's), and `source` selects it by that.
  EventSpec spec;
  spec.source_component = "";
  spec.reporting_component = "default-scheduler";
  const EventRef reporting_only = spec.Build();
  EXPECT_TRUE(Select("source=default-scheduler", reporting_only));
  EXPECT_FALSE(Select("source!=default-scheduler", reporting_only));
  EXPECT_FALSE(Select("source=", reporting_only));
  EXPECT_FALSE(Select("source=kubelet", reporting_only));
  // A set source.component wins over reportingComponent.
  spec.source_component = "kubelet";
  const EventRef both = spec.Build();
  EXPECT_TRUE(Select("source=kubelet", both));
  EXPECT_FALSE(Select("source=default-scheduler", both));
  // Neither set: "".
  spec.source_component = "";
  spec.reporting_component = "";
  const EventRef neither = spec.Build();
  EXPECT_TRUE(Select("source=", neither));
  EXPECT_FALSE(Select("source!=", neither));
}

TEST(EventFieldSelectorTest, EscapedCommaEqualsAndBackslashAreData) {
  EventSpec spec;
  spec.reason = "a,b=c\\d!e";
  const EventRef r = spec.Build();
  EXPECT_TRUE(Select("reason=a\\,b\\=c\\\\d!e", r));
  EXPECT_TRUE(Select("type=Warning,reason=a\\,b\\=c\\\\d!e", r));
  EXPECT_FALSE(Select("reason=a\\,b\\=c\\\\d!f", r));
}

TEST(EventFieldSelectorTest, MalformedSelectorsAreErrors) {
  EXPECT_EQ(ParseError("reason"), "invalid selector: 'reason'; can't understand 'reason'");
  EXPECT_EQ(ParseError("type=Normal,reason"),
            "invalid selector: 'type=Normal,reason'; can't understand 'reason'");
  EXPECT_NE(ParseError("reason=a=b").find("unescaped"), std::string::npos);
  EXPECT_NE(ParseError("reason=a\\").find("invalid escape sequence"), std::string::npos);
  EXPECT_NE(ParseError("reason=a\\!b").find("invalid escape sequence: \\!"), std::string::npos);
  EXPECT_NE(ParseError("reason==a=b").find("unescaped"), std::string::npos);
}

TEST(EventFieldSelectorTest, UnknownFieldNamesEveryKnownOne) {
  const std::string error = ParseError("spec.foo=bar");
  EXPECT_EQ(error.rfind("\"spec.foo\" is not a known field selector: only \"involvedObject.kind\", "
                        "\"involvedObject.namespace\", ",
                        0),
            0u)
      << error;
  for (const std::string_view field : EventFieldSelector::KnownFields()) {
    EXPECT_NE(error.find("\"" + std::string(field) + "\""), std::string::npos) << field;
  }
  // The field has no escapes and no trimming, as in Kubernetes.
  EXPECT_NE(ParseError(" reason=x").find("\" reason\" is not a known"), std::string::npos);
  EXPECT_NE(ParseError("involvedObject.resourceVersion=1").find("not a known field"),
            std::string::npos);
  // A hostile field name is quoted safely.
  EXPECT_NE(ParseError("a\"\n=x").find("\"a\\\"\\x0a\""), std::string::npos);
}

}  // namespace
}  // namespace eventbuffer::controller
