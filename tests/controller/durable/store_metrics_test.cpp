#include "controller/durable/store_metrics.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

namespace eventbuffer::controller {
namespace {

// "name{label=value}" -> value, for every sample.
std::map<std::string, double> Samples(const std::vector<prometheus::MetricFamily>& families) {
  std::map<std::string, double> out;
  for (const auto& f : families) {
    for (const auto& m : f.metric) {
      std::string key = f.name;
      for (const auto& l : m.label) key += "{" + l.name + "=" + l.value + "}";
      out[key] = f.type == prometheus::MetricType::Counter ? m.counter.value : m.gauge.value;
    }
  }
  return out;
}

TEST(StoreMetricsTest, EveryCounterIsExported) {
  EventStoreStats s;
  s.written = 1;
  s.deleted = 2;
  s.budget_deleted = 3;
  s.restored = 4;
  s.restore_skipped = 5;
  s.dropped_queue_full = 6;
  s.batches = 7;
  s.disk_full = 8;
  s.write_errors = 9;
  s.corrupt_moved_aside = 10;
  s.queued = 11;
  s.database_bytes = 12;
  s.schema_moved_aside = 13;
  const auto got = Samples(CollectStoreMetrics(s));
  const std::map<std::string, double> want = {
      {"eventbuffer_store_occurrences_total{op=written}", 1},
      {"eventbuffer_store_occurrences_total{op=deleted}", 2},
      {"eventbuffer_store_occurrences_total{op=budget_deleted}", 3},
      {"eventbuffer_store_occurrences_total{op=restored}", 4},
      {"eventbuffer_store_occurrences_total{op=restore_skipped}", 5},
      {"eventbuffer_store_occurrences_total{op=dropped}", 6},
      {"eventbuffer_store_commits_total{result=success}", 7},
      {"eventbuffer_store_commits_total{result=disk_full}", 8},
      {"eventbuffer_store_commits_total{result=error}", 9},
      {"eventbuffer_store_corrupt_total", 10},
      {"eventbuffer_store_schema_moved_aside_total", 13},
      {"eventbuffer_store_queued", 11},
      {"eventbuffer_store_bytes", 12}};
  EXPECT_EQ(got, want);
}

}  // namespace
}  // namespace eventbuffer::controller
