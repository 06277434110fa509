#include "controller/durable/store_metrics.h"

#include <cstdint>
#include <utility>

#include "metrics/family_util.h"

namespace eventbuffer::controller {

using metrics::internal::MakeCounter;
using metrics::internal::MakeFamily;
using metrics::internal::MakeGauge;
using prometheus::MetricType;

std::vector<prometheus::MetricFamily> CollectStoreMetrics(const EventStoreStats& s) {
  const auto d = [](std::uint64_t v) { return static_cast<double>(v); };
  auto occurrences =
      MakeFamily("eventbuffer_store_occurrences_total",
                 "Occurrences by what the durable store did with them.", MetricType::Counter);
  const std::pair<const char*, std::uint64_t> ops[] = {{"written", s.written},
                                                       {"deleted", s.deleted},
                                                       {"budget_deleted", s.budget_deleted},
                                                       {"restored", s.restored},
                                                       {"restore_skipped", s.restore_skipped},
                                                       {"dropped", s.dropped_queue_full}};
  for (const auto& [op, v] : ops) occurrences.metric.push_back(MakeCounter(d(v), {{"op", op}}));
  auto commits = MakeFamily("eventbuffer_store_commits_total",
                            "Durable store transactions by result (failed ones are retried).",
                            MetricType::Counter);
  commits.metric.push_back(MakeCounter(d(s.batches), {{"result", "success"}}));
  commits.metric.push_back(MakeCounter(d(s.disk_full), {{"result", "disk_full"}}));
  commits.metric.push_back(MakeCounter(d(s.write_errors), {{"result", "error"}}));
  auto corrupt = MakeFamily("eventbuffer_store_corrupt_total",
                            "Corrupt databases moved aside at start.", MetricType::Counter);
  corrupt.metric.push_back(MakeCounter(d(s.corrupt_moved_aside), {}));
  auto schema = MakeFamily("eventbuffer_store_schema_moved_aside_total",
                           "Databases of another schema version moved aside at start.",
                           MetricType::Counter);
  schema.metric.push_back(MakeCounter(d(s.schema_moved_aside), {}));
  auto queued =
      MakeFamily("eventbuffer_store_queued", "Occurrences waiting for the durable store's writer.",
                 MetricType::Gauge);
  queued.metric.push_back(MakeGauge(d(s.queued), {}));
  auto bytes =
      MakeFamily("eventbuffer_store_bytes",
                 "Used bytes of the durable store's database (pages in use).", MetricType::Gauge);
  bytes.metric.push_back(MakeGauge(d(s.database_bytes), {}));
  return {std::move(occurrences), std::move(commits), std::move(corrupt), std::move(schema),
          std::move(queued),
          std::move(bytes)};
}

}  // namespace eventbuffer::controller
