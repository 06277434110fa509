// Prometheus families of the durable store (EventStore::Stats), for Metrics::AddCollector.
//
//   eventbuffer_store_occurrences_total{op}   counter: written, deleted (evicted by the
//                                             buffer), budget_deleted (--data-max-bytes),
//                                             restored, restore_skipped (rows that did not
//                                             decode), dropped (queue full: not on disk)
//   eventbuffer_store_commits_total{result}   counter: success, disk_full, error
//   eventbuffer_store_corrupt_total           counter: databases moved aside at start
//   eventbuffer_store_queued                  gauge: occurrences waiting for the writer
//   eventbuffer_store_bytes                   gauge: the database's used bytes
//
// Thread safety: a pure function of its argument.
#pragma once

#include <prometheus/metric_family.h>

#include <vector>

#include "controller/durable/event_store.h"

namespace eventbuffer::controller {

std::vector<prometheus::MetricFamily> CollectStoreMetrics(const EventStoreStats& stats);

}  // namespace eventbuffer::controller
