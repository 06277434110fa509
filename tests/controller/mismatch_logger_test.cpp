#include "controller/mismatch_logger.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

#include <sstream>

#include "tests/eventbuffer/buffer_test_util.h"
#include "tests/eventbuffer/faulty_slice_map.h"

namespace eventbuffer::controller {
namespace {

struct Capture {
  Capture() {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_st>(out);
    sink->set_pattern("%l %v");
    logger = std::make_shared<spdlog::logger>("mismatch-test", sink);
  }
  std::vector<std::string> Lines() const {
    std::vector<std::string> lines;
    std::istringstream in(out.str());
    for (std::string l; std::getline(in, l);) lines.push_back(l);
    return lines;
  }
  std::ostringstream out;
  std::shared_ptr<spdlog::logger> logger;
};

MismatchReport Report(std::string key = "default/Pod/web") {
  MismatchReport r;
  r.key = std::move(key);
  r.mode = GrayMode::kShadow;
  r.legacy_count = 12;
  r.atomic_count = 11;
  r.kind = MismatchKind::kMissing;
  r.first_difference = "atomic lacks uid=u1 resourceVersion=7 (reason=BackOff)";
  return r;
}

TEST(MismatchLoggerTest, WritesOneStructuredWarningPerReport) {
  Capture cap;
  MismatchLogger logger(cap.logger);
  logger.Log(Report());
  const auto lines = cap.Lines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0],
            "warning gray-release mismatch key=\"default/Pod/web\" mode=shadow kind=missing "
            "legacy_count=12 atomic_count=11 first_difference=\"atomic lacks uid=u1 "
            "resourceVersion=7 (reason=BackOff)\"");
}

TEST(MismatchLoggerTest, QuotesAndNewlinesCannotBreakTheLine) {
  MismatchReport r = Report();
  r.first_difference = "message legacy=\"a\nb\" atomic=\\";
  const std::string line = MismatchLogger::Format(r);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_NE(line.find(R"(first_difference="message legacy=\"a\nb\" atomic=\\")"), std::string::npos)
      << line;
}

TEST(MismatchLoggerTest, AtMostTenASecondThenSaysHowManyWereSuppressed) {
  Capture cap;
  std::int64_t now = 5'000'000'000;
  MismatchLogger logger(cap.logger, 10, [&] { return now; });
  for (int i = 0; i < 25; ++i) logger.Log(Report("k" + std::to_string(i)));
  EXPECT_EQ(cap.Lines().size(), 10u);
  EXPECT_EQ(logger.logged(), 10u);
  EXPECT_EQ(logger.suppressed(), 15u);
  logger.Flush();  // the second is not over yet
  EXPECT_EQ(cap.Lines().size(), 10u);
  now += 1'000'000'000;
  logger.Log(Report("next"));
  auto lines = cap.Lines();
  ASSERT_EQ(lines.size(), 12u);
  EXPECT_NE(lines[10].find("suppressed=15"), std::string::npos) << lines[10];
  EXPECT_NE(lines[11].find("key=\"next\""), std::string::npos);
  // Suppressed lines with no later mismatch are reported by Flush once the window is over.
  for (int i = 0; i < 12; ++i) logger.Log(Report());
  now += 2'000'000'000;
  logger.Flush();
  logger.Flush();
  lines = cap.Lines();
  ASSERT_EQ(lines.size(), 12u + 9u + 1u);
  EXPECT_NE(lines.back().find("suppressed=3"), std::string::npos) << lines.back();
}

TEST(MismatchLoggerTest, LogsWhatTheBufferFindsOnAFaultyBackend) {
  Capture cap;
  MismatchLogger logger(cap.logger);
  auto faulty = std::make_unique<testing::FaultySliceBackend>();
  faulty->ArmEvery(testing::Fault::kCorrupt, 1);
  BufferConfig cfg;
  cfg.mode = GrayMode::kCanary;
  cfg.verify.sample_rate = 0;
  EventBuffer buffer(cfg, MakeLegacyBackend(), std::move(faulty));
  buffer.SetMismatchSink([&](const MismatchReport& r) { logger.Log(r); });
  buffer.Append(testing::PodEvent("web", 1));
  EXPECT_EQ(buffer.VerifyKey("default/Pod/web"), VerifyResult::kMismatch);
  const auto lines = cap.Lines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find("key=\"default/Pod/web\" mode=canary kind=corrupt legacy_count=1 "
                          "atomic_count=1"),
            std::string::npos)
      << lines[0];
  EXPECT_NE(lines[0].find("differs in message"), std::string::npos) << lines[0];
}

}  // namespace
}  // namespace eventbuffer::controller
