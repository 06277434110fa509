#include "metrics/pause_monitor.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

namespace eventbuffer::metrics {
namespace {

// Waits (bounded by `limit`) until `pred` holds. Not a timing assertion: the limit only
// keeps a broken monitor from hanging the suite.
template <typename Pred>
bool WaitFor(Pred pred, std::chrono::seconds limit = std::chrono::seconds(20)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

TEST(PauseMonitorTest, RecordsIntervalsWhileRunningAndStopsCleanly) {
  PauseMonitor monitor;
  EXPECT_FALSE(monitor.running());
  monitor.Start();
  monitor.Start();  // second Start is a no-op
  EXPECT_TRUE(monitor.running());
  ASSERT_TRUE(WaitFor([&] { return monitor.Samples() >= 20; }));
  monitor.Stop();
  EXPECT_FALSE(monitor.running());
  const auto after_stop = monitor.Samples();
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  EXPECT_EQ(monitor.Samples(), after_stop);  // nothing recorded once stopped
  monitor.Stop();                            // second Stop is a no-op
  monitor.Start();                           // and it can run again
  ASSERT_TRUE(WaitFor([&] { return monitor.Samples() > after_stop; }));
}

TEST(PauseMonitorTest, SeesAStoppedProcess) {
  // Simulate a pause the way the monitor would see it: a recorded oversleep lands in the
  // histogram and the window maximum.
  PauseMonitor monitor;
  monitor.Record(40'000'000);
  monitor.Record(2'000'000);
  EXPECT_EQ(monitor.WindowMaxNs(), 40'000'000);
  const auto families = monitor.Collect();
  ASSERT_EQ(families.size(), 2u);
  EXPECT_EQ(families[0].name, "eventbuffer_process_pause_seconds");
  const auto& h = families[0].metric.at(0).histogram;
  EXPECT_EQ(h.sample_count, 2u);
  EXPECT_DOUBLE_EQ(h.sample_sum, 0.042);
  EXPECT_EQ(families[1].name, "eventbuffer_process_pause_max_seconds");
  EXPECT_DOUBLE_EQ(families[1].metric.at(0).gauge.value, 0.04);
}

TEST(PauseMonitorTest, DestructorStopsARunningMonitor) {
  auto monitor = std::make_unique<PauseMonitor>(std::chrono::microseconds(200));
  monitor->Start();
  ASSERT_TRUE(WaitFor([&] { return monitor->Samples() >= 5; }));
  monitor.reset();  // must join, not hang or crash
  SUCCEED();
}

}  // namespace
}  // namespace eventbuffer::metrics
