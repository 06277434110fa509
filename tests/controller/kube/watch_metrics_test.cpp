#include "controller/kube/watch_metrics.h"
#include "metrics/metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <ctime>
#include <sstream>
#include <string>
#include <thread>

#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include "tests/metrics/exposition_test_util.h"

namespace eventbuffer::controller {
namespace {

using metrics::testing_util::Sample;

std::string Render(prometheus::Registry& registry) {
  return metrics::testing_util::RenderFamilies(registry.Collect());
}

TEST(WatchMetricsTest, KnownLabelsStartAtZeroAndTimestampsAtStartup) {
  prometheus::Registry registry;
  const double before = static_cast<double>(std::time(nullptr));
  WatchMetrics m(registry);
  const std::string t = Render(registry);
  for (const char* type : {"ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"}) {
    EXPECT_EQ(Sample(t, std::string("eventbuffer_watch_events_total{type=\"") + type + "\"}"), 0);
  }
  for (std::size_t i = 0; i < WatchMetrics::kRestartReasonCount; ++i) {
    const std::string reason(controller::RestartReasonName(static_cast<RestartReason>(i)));
    EXPECT_EQ(Sample(t, "eventbuffer_watch_restarts_total{reason=\"" + reason + "\"}"), 0)
        << reason;
  }
  EXPECT_EQ(Sample(t, "eventbuffer_watch_relists_total"), 0);
  EXPECT_EQ(Sample(t, "eventbuffer_watch_decode_failures_total{source=\"list\"}"), 0);
  EXPECT_EQ(Sample(t, "eventbuffer_watch_decode_failures_total{source=\"watch\"}"), 0);
  EXPECT_EQ(Sample(t, "eventbuffer_event_lag_seconds_count"), 0);
  EXPECT_EQ(Sample(t, "eventbuffer_api_request_duration_seconds_count{code=\"200\",verb=\"list\"}"),
            0);
  EXPECT_EQ(
      Sample(t, "eventbuffer_api_request_duration_seconds_count{code=\"200\",verb=\"watch\"}"), 0);
  EXPECT_GE(Sample(t, "eventbuffer_watch_last_progress_timestamp_seconds"), before - 1);
  EXPECT_GE(Sample(t, "eventbuffer_watch_last_bookmark_timestamp_seconds"), before - 1);
}

TEST(WatchMetricsTest, CallsAreCounted) {
  prometheus::Registry registry;
  WatchMetrics m(registry);
  m.OnWatchEvent("ADDED");
  m.OnWatchEvent("ADDED");
  m.OnWatchEvent("BOOKMARK");
  m.OnWatchEvent("SOMETHING");  // outside the contract: counted as OTHER, not lost
  m.OnWatchRestart(RestartReason::kExpired);
  m.OnWatchRestart(RestartReason::kNetwork);
  m.OnWatchRestart(RestartReason::kNetwork);
  m.OnRelist();
  m.OnApiRequest("list", 200, 0.02);
  m.OnApiRequest("watch", 0, 3.0);
  m.OnApiRequest("watch", 410, 0.001);
  m.OnEventLag(1.5);
  m.OnEventLag(-4);  // clock skew: clamped to 0
  m.OnDecodeFailure("list");
  m.OnDecodeFailure("list");
  m.OnDecodeFailure("watch");
  const std::string t = Render(registry);
  EXPECT_EQ(Sample(t, "eventbuffer_watch_events_total{type=\"ADDED\"}"), 2);
  EXPECT_EQ(Sample(t, "eventbuffer_watch_events_total{type=\"BOOKMARK\"}"), 1);
  EXPECT_EQ(Sample(t, "eventbuffer_watch_events_total{type=\"OTHER\"}"), 1);
  EXPECT_EQ(Sample(t, "eventbuffer_watch_restarts_total{reason=\"expired\"}"), 1);
  EXPECT_EQ(Sample(t, "eventbuffer_watch_restarts_total{reason=\"network\"}"), 2);
  EXPECT_EQ(Sample(t, "eventbuffer_watch_restarts_total{reason=\"timeout\"}"), 0);
  EXPECT_EQ(Sample(t, "eventbuffer_watch_relists_total"), 1);
  EXPECT_EQ(Sample(t, "eventbuffer_watch_decode_failures_total{source=\"list\"}"), 2);
  EXPECT_EQ(Sample(t, "eventbuffer_watch_decode_failures_total{source=\"watch\"}"), 1);
  EXPECT_EQ(Sample(t, "eventbuffer_api_request_duration_seconds_count{code=\"200\",verb=\"list\"}"),
            1);
  EXPECT_EQ(Sample(t, "eventbuffer_api_request_duration_seconds_count{code=\"0\",verb=\"watch\"}"),
            1);
  EXPECT_EQ(
      Sample(t, "eventbuffer_api_request_duration_seconds_count{code=\"410\",verb=\"watch\"}"), 1);
  EXPECT_EQ(Sample(t, "eventbuffer_event_lag_seconds_count"), 2);
  EXPECT_DOUBLE_EQ(Sample(t, "eventbuffer_event_lag_seconds_sum"), 1.5);
  EXPECT_EQ(Sample(t, "eventbuffer_event_lag_seconds_bucket{le=\"0.25\"}"), 1);
}

TEST(WatchMetricsTest, ProgressMovesTheTimestamp) {
  prometheus::Registry registry;
  WatchMetrics m(registry);
  const double start =
      Sample(Render(registry), "eventbuffer_watch_last_progress_timestamp_seconds");
  // Wait (bounded) until the wall clock has visibly moved, then report progress.
  const double deadline = start + 5;
  while (static_cast<double>(std::time(nullptr)) < start + 1.01 &&
         static_cast<double>(std::time(nullptr)) < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  m.OnProgress();
  m.OnBookmark();
  const std::string t = Render(registry);
  EXPECT_GT(Sample(t, "eventbuffer_watch_last_progress_timestamp_seconds"), start);
  EXPECT_GT(Sample(t, "eventbuffer_watch_last_bookmark_timestamp_seconds"), start);
}

TEST(WatchMetricsTest, RegisteredInTheSharedRegistryTheyAreInEveryScrape) {
  metrics::Metrics m;
  WatchMetrics watch(m.registry());
  watch.OnWatchEvent("ADDED");
  const std::string text = m.Render();
  for (const char* name :
       {"eventbuffer_watch_events_total", "eventbuffer_watch_restarts_total",
        "eventbuffer_watch_relists_total", "eventbuffer_watch_decode_failures_total",
        "eventbuffer_watch_last_progress_timestamp_seconds", "eventbuffer_event_lag_seconds_bucket",
        "eventbuffer_api_request_duration_seconds_bucket"}) {
    EXPECT_NE(text.find(std::string("\n") + name), std::string::npos) << name;
  }
  EXPECT_NE(text.find("eventbuffer_watch_events_total{type=\"ADDED\"} 1"), std::string::npos);
}

}  // namespace
}  // namespace eventbuffer::controller
