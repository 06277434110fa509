#include "metrics/process_collector.h"

#include <gtest/gtest.h>

#include <algorithm>

#include <ctime>
#include <string>

namespace eventbuffer::metrics {
namespace {

// A /proc/<pid>/stat line whose command name holds a space and a ')'. Fields (proc(5)):
// 14 utime=250, 15 stime=150, 20 num_threads=7, 22 starttime=1000, 23 vsize=4096000,
// 24 rss=300 pages.
const char* kStat =
    "4242 (my ) proc) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 150 0 0 20 0 7 0 1000 "
    "4096000 300 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";

TEST(ProcessCollectorTest, ParsesFieldsAfterTheLastParenthesis) {
  const auto s = ParseProcStat(kStat, 100, 4096, 1'700'000'000.0);
  ASSERT_TRUE(s.has_value());
  EXPECT_DOUBLE_EQ(s->cpu_seconds, 4.0);
  EXPECT_DOUBLE_EQ(s->threads, 7);
  EXPECT_DOUBLE_EQ(s->start_time_seconds, 1'700'000'010.0);
  EXPECT_DOUBLE_EQ(s->virtual_bytes, 4096000);
  EXPECT_DOUBLE_EQ(s->resident_bytes, 300.0 * 4096);
}

TEST(ProcessCollectorTest, RejectsMalformedText) {
  EXPECT_FALSE(ParseProcStat("", 100, 4096, 0).has_value());
  EXPECT_FALSE(ParseProcStat("12 (x) S 1 2 3", 100, 4096, 0).has_value());
  EXPECT_FALSE(ParseProcStat("12 x S 1 2 3", 100, 4096, 0).has_value());
  std::string bad = kStat;
  bad.replace(bad.find(" 250 "), 5, " 2x0 ");
  EXPECT_FALSE(ParseProcStat(bad, 100, 4096, 0).has_value());
}

TEST(ProcessCollectorTest, ReadsThisProcess) {
  const auto s = ReadProcessStats();
  ASSERT_TRUE(s.has_value());
  EXPECT_GT(s->resident_bytes, 0);
  EXPECT_GE(s->virtual_bytes, s->resident_bytes);
  EXPECT_GE(s->threads, 1);
  EXPECT_GE(s->open_fds, 3);  // stdin, stdout, stderr
  EXPECT_GE(s->max_fds, s->open_fds);
  const double now = static_cast<double>(std::time(nullptr));
  EXPECT_LE(s->start_time_seconds, now + 1);
  EXPECT_GT(s->start_time_seconds, now - 86400 * 365);
}

TEST(ProcessCollectorTest, ExportsConventionalNames) {
  const auto families = CollectProcessMetrics();
  std::vector<std::string> names;
  for (const auto& f : families) names.push_back(f.name);
  for (const char* want :
       {"process_cpu_seconds_total", "process_resident_memory_bytes", "process_start_time_seconds",
        "process_open_fds", "process_max_fds", "process_virtual_memory_bytes"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), want), names.end()) << want;
  }
}

}  // namespace
}  // namespace eventbuffer::metrics
