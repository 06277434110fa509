#include "controller/config/config.h"

#include "controller/config/memory_limit.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

namespace eventbuffer::controller {
namespace {

using namespace std::chrono_literals;

TEST(ConfigTest, ParsesTheDocumentedExample) {
  const auto r = ParseConfig(R"(eventBuffer:
  mode: canary            # legacy | shadow | canary | atomic
  rolloutPercent: 0.5
  verify:
    sampleRate: 0.25
  retention:
    maxAge: 1h30m
    maxEvents: 200000
    maxEventsPerObject: 500
)");
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.config.mode, GrayMode::kCanary);
  EXPECT_DOUBLE_EQ(r.config.rollout_percent, 0.5);
  EXPECT_DOUBLE_EQ(r.config.verify.sample_rate, 0.25);
  EXPECT_EQ(r.config.retention.max_age, 90min);
  EXPECT_EQ(r.config.retention.max_events, 200000u);
  EXPECT_EQ(r.config.retention.max_events_per_object, 500u);
}

TEST(ConfigTest, ParsesTheBoundedRetentionKeys) {
  const auto r = ParseConfig(R"(eventBuffer:
  mode: shadow
  retention:
    maxMessageBytes: 8Ki
    maxClockSkew: 90s
    maxBytes: 256Mi
)");
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.config.retention.max_message_bytes, 8192u);
  EXPECT_EQ(r.config.retention.max_clock_skew, 90s);
  EXPECT_EQ(r.config.retention.max_bytes, std::size_t{256} << 20);
  const auto plain = ParseConfig("eventBuffer:\n  mode: shadow\n  retention:\n    maxBytes: 2097152\n    maxClockSkew: 0s\n");
  ASSERT_TRUE(plain.ok()) << plain.error;
  EXPECT_EQ(plain.config.retention.max_bytes, 2097152u);
  EXPECT_EQ(plain.config.retention.max_clock_skew, 0s);
  // Unset: 16 KiB, 5 minutes, and the budget derived from this container's memory limit.
  const auto defaults = ParseConfig("eventBuffer:\n  mode: shadow\n");
  ASSERT_TRUE(defaults.ok()) << defaults.error;
  EXPECT_EQ(defaults.config.retention.max_message_bytes, 16384u);
  EXPECT_EQ(defaults.config.retention.max_clock_skew, 5min);
  EXPECT_EQ(defaults.config.retention.max_bytes, DefaultMaxBytes(ContainerMemoryLimit()));
}

TEST(ConfigTest, OmittedFieldsTakeDefaultsButModeIsRequired) {
  const auto r = ParseConfig("eventBuffer:\n  mode: atomic\n");
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.config.mode, GrayMode::kAtomic);
  const BufferConfig defaults;
  EXPECT_EQ(r.config.rollout_percent, defaults.rollout_percent);
  EXPECT_EQ(r.config.verify.sample_rate, defaults.verify.sample_rate);
  EXPECT_EQ(r.config.retention.max_age, defaults.retention.max_age);
  EXPECT_EQ(r.config.retention.max_events, defaults.retention.max_events);

  const auto missing = ParseConfig("eventBuffer:\n  rolloutPercent: 5\n", "c.yaml");
  EXPECT_FALSE(missing.ok());
  EXPECT_EQ(missing.error_field, "eventBuffer.mode");
  EXPECT_NE(missing.error.find("c.yaml:"), std::string::npos) << missing.error;
}

TEST(ConfigTest, EveryShippedConfigParses) {
  const std::filesystem::path root = KEB_SOURCE_DIR;
  std::size_t n = 0;
  for (const auto& dir : {root / "manifests/base", root / "manifests/stages"}) {
    if (!std::filesystem::exists(dir)) continue;
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
      if (e.path().filename() != "config.yaml") continue;
      const auto r = LoadConfigFile(e.path().string());
      EXPECT_TRUE(r.ok()) << r.error;
      ++n;
    }
  }
  if (n == 0) GTEST_SKIP() << "no manifests/*/config.yaml in this tree";
}

TEST(ConfigTest, DurationsAcceptSecondsMinutesHours) {
  std::chrono::milliseconds d{};
  EXPECT_TRUE(ParseDuration("90s", &d));
  EXPECT_EQ(d, 90s);
  EXPECT_TRUE(ParseDuration("5m", &d));
  EXPECT_EQ(d, 5min);
  EXPECT_TRUE(ParseDuration("1h", &d));
  EXPECT_EQ(d, 1h);
  EXPECT_TRUE(ParseDuration("2h15m30s", &d));
  EXPECT_EQ(d, 2h + 15min + 30s);
  EXPECT_TRUE(ParseDuration("0s", &d));
  EXPECT_EQ(d, 0s);
  for (const char* bad :
       {"", "10", "1d", "-5s", "1.5h", "h", "5 m", "5ms", "1h ", "99999999999999999h"}) {
    EXPECT_FALSE(ParseDuration(bad, &d)) << bad;
  }
}

struct BadCase {
  const char* yaml;
  const char* field;
  int line;
  const char* says;
};

class ConfigErrorTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(ConfigErrorTest, NamesFieldAndLine) {
  const BadCase& c = GetParam();
  const auto r = ParseConfig(c.yaml, "/etc/keb/config.yaml");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error_field, c.field) << r.error;
  EXPECT_EQ(r.error_line, c.line) << r.error;
  EXPECT_NE(r.error.find(c.says), std::string::npos) << r.error;
  EXPECT_EQ(r.error.rfind("/etc/keb/config.yaml:", 0), 0u) << r.error;
}

INSTANTIATE_TEST_SUITE_P(
    BadFiles, ConfigErrorTest,
    ::testing::Values(
        BadCase{"eventBuffer:\n  mode: blue\n", "eventBuffer.mode", 2, "unknown mode \"blue\""},
        BadCase{"eventBuffer:\n  mode: canary\n  rolloutPercent: 120\n",
                "eventBuffer.rolloutPercent", 3, "within [0, 100]"},
        BadCase{"eventBuffer:\n  mode: canary\n  rolloutPercent: ten\n",
                "eventBuffer.rolloutPercent", 3, "expected a number"},
        BadCase{"eventBuffer:\n  mode: shadow\n  rolloutPercnt: 1\n", "eventBuffer.rolloutPercnt",
                3, "unknown field"},
        BadCase{"eventBuffer:\n  mode: shadow\n  verify:\n    sampleRate: 1.5\n",
                "eventBuffer.verify.sampleRate", 4, "within [0, 1]"},
        BadCase{"eventBuffer:\n  mode: shadow\n  retention:\n    maxAge: 1d\n",
                "eventBuffer.retention.maxAge", 4, "duration"},
        BadCase{"eventBuffer:\n  mode: shadow\n  retention:\n    maxAge: 0s\n",
                "eventBuffer.retention.maxAge", 4, "positive duration"},
        BadCase{"eventBuffer:\n  mode: shadow\n  retention:\n\n    maxEvents: 0\n",
                "eventBuffer.retention.maxEvents", 5, "positive"},
        BadCase{"eventBuffer:\n  mode: shadow\n  retention:\n    maxEventsPerObject: -3\n",
                "eventBuffer.retention.maxEventsPerObject", 4, "positive integer"},
        BadCase{"eventBuffer:\n  mode: shadow\n  retention: 5\n", "eventBuffer.retention", 3,
                "expected a map"},
        BadCase{"eventBuffer:\n  mode: [shadow]\n", "eventBuffer.mode", 2, "got a list"},
        BadCase{"eventbuffer:\n  mode: shadow\n", "eventbuffer", 1, "unknown field"},
        BadCase{"", "eventBuffer", 1, "missing"},
        BadCase{"# only a comment\n", "eventBuffer", 1, "missing"},
        BadCase{"eventBuffer:\n  mode: shadow\n  retention:\n    maxMessageBytes: 64\n",
                "eventBuffer.retention.maxMessageBytes", 4, "at least 128"},
        BadCase{"eventBuffer:\n  mode: shadow\n  retention:\n    maxMessageBytes: 16KB\n",
                "eventBuffer.retention.maxMessageBytes", 4, "expected a byte size"},
        BadCase{"eventBuffer:\n  mode: shadow\n  retention:\n    maxClockSkew: -5m\n",
                "eventBuffer.retention.maxClockSkew", 4, "expected a duration"},
        BadCase{"eventBuffer:\n  mode: shadow\n  retention:\n    maxClockSkew: soon\n",
                "eventBuffer.retention.maxClockSkew", 4, "expected a duration"},
        BadCase{"eventBuffer:\n  mode: shadow\n  retention:\n    maxBytes: 1000\n",
                "eventBuffer.retention.maxBytes", 4, "at least 1Mi"},
        BadCase{"eventBuffer:\n  mode: shadow\n  retention:\n    maxBytes: 2GB\n",
                "eventBuffer.retention.maxBytes", 4, "expected a byte size"},
        BadCase{"eventBuffer:\n  mode: shadow\n  retention:\n    maxBytes: 99999999999Ti\n",
                "eventBuffer.retention.maxBytes", 4, "expected a byte size"},
        BadCase{"eventBuffer:\n  mode: shadow\n  retention:\n    maxBytes: [1]\n",
                "eventBuffer.retention.maxBytes", 4, "got a list"}),
    [](const auto& info) { return "Case" + std::to_string(info.index); });

TEST(ConfigTest, YamlSyntaxErrorsCarryTheLine) {
  const auto r =
      ParseConfig("eventBuffer:\n  mode: shadow\n  verify: {sampleRate: 0.1\n", "x.yaml");
  ASSERT_FALSE(r.ok());
  EXPECT_GT(r.error_line, 0);
  EXPECT_NE(r.error.find("invalid YAML"), std::string::npos) << r.error;
}

TEST(ConfigTest, UnreadableFileIsAnError) {
  const auto r = LoadConfigFile("/nonexistent/keb/config.yaml");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error.find("/nonexistent/keb/config.yaml: cannot read"), std::string::npos)
      << r.error;
}

}  // namespace
}  // namespace eventbuffer::controller
