#include "controller/logging.h"

#include <gtest/gtest.h>
#include <spdlog/details/log_msg.h>

namespace eventbuffer::controller {
namespace {

std::string Format(spdlog::level::level_enum level, std::string_view text) {
  spdlog::details::log_msg msg(spdlog::source_loc{}, "", level,
                               spdlog::string_view_t(text.data(), text.size()));
  msg.time = spdlog::log_clock::time_point(std::chrono::milliseconds(1714557600123));
  spdlog::memory_buf_t out;
  JsonLineFormatter().format(msg, out);
  return std::string(out.data(), out.size());
}

TEST(JsonLineFormatterTest, WritesOneEscapedJsonObjectPerLine) {
  EXPECT_EQ(Format(spdlog::level::warn, "watch \"cut\"\n\tat C:\\x é"),
            "{\"ts\":\"2024-05-01T10:00:00.123Z\",\"level\":\"warning\","
            "\"msg\":\"watch \\\"cut\\\"\\n\\tat C:\\\\x é\"}\n");
}

TEST(JsonLineFormatterTest, ControlCharactersBecomeUnicodeEscapes) {
  const std::string line = Format(spdlog::level::info, std::string_view("a\x01z", 3));
  EXPECT_NE(line.find("a\\u0001z"), std::string::npos);
  EXPECT_EQ(line.find('\x01'), std::string::npos);
  EXPECT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1);
}

TEST(SetupLoggingTest, RejectsUnknownLevels) {
  EXPECT_TRUE(SetupLogging("json", "warn"));
  EXPECT_FALSE(SetupLogging("json", "loud"));
  EXPECT_TRUE(SetupLogging("text", "info"));
}

}  // namespace
}  // namespace eventbuffer::controller
