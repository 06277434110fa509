// eventbuffer_watch_events_skipped_total: Events skipped for their size.
#include <gtest/gtest.h>

#include <prometheus/registry.h>

#include "controller/kube/watch_metrics.h"
#include "tests/metrics/exposition_test_util.h"

namespace eventbuffer::controller {
namespace {

using metrics::testing_util::Sample;

std::string Render(prometheus::Registry& registry) {
  return metrics::testing_util::RenderFamilies(registry.Collect());
}

TEST(WatchMetricsSkippedTest, BothSourcesStartAtZeroAndCountApart) {
  prometheus::Registry registry;
  WatchMetrics m(registry);
  const std::string list =
      "eventbuffer_watch_events_skipped_total{reason=\"too_large\",source=\"list\"}";
  const std::string watch =
      "eventbuffer_watch_events_skipped_total{reason=\"too_large\",source=\"watch\"}";
  EXPECT_EQ(Sample(Render(registry), list), 0);
  EXPECT_EQ(Sample(Render(registry), watch), 0);
  m.OnEventSkipped("watch", "too_large");
  m.OnEventSkipped("watch", "too_large");
  m.OnEventSkipped("list", "too_large");
  m.OnEventSkipped("elsewhere", "too_large");  // outside the contract: counted as watch
  const std::string t = Render(registry);
  EXPECT_EQ(Sample(t, list), 1);
  EXPECT_EQ(Sample(t, watch), 3);
}

}  // namespace
}  // namespace eventbuffer::controller
