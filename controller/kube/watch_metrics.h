// WatchMetrics: the controller's WatchObserver, publishing the health of the list/watch loop.
//
// Families (known label combinations exist from construction, at 0):
//   eventbuffer_watch_events_total{type}                  counter (ADDED, MODIFIED, DELETED,
//                                                         BOOKMARK, ERROR; anything else OTHER)
//   eventbuffer_watch_restarts_total{reason}              counter, every RestartReason
//   eventbuffer_watch_relists_total                       counter
//   eventbuffer_watch_decode_failures_total{source}       counter (list: items skipped;
//                                                         watch: lines that closed the stream)
//   eventbuffer_watch_events_skipped_total{source,reason} counter, Events skipped undecoded:
//                                                         reason too_large (source list: an
//                                                         item alone over the page cap; watch:
//                                                         a line over the line cap)
//   eventbuffer_watch_last_progress_timestamp_seconds     gauge, Unix time of the last event,
//                                                         bookmark or completed list (start-up
//                                                         time until the first one)
//   eventbuffer_watch_last_bookmark_timestamp_seconds     gauge, likewise for bookmarks
//   eventbuffer_event_lag_seconds                         histogram, receipt − lastTimestamp
//   eventbuffer_api_request_duration_seconds{verb,code}   histogram (list/200, watch/200 at start)
//
// Only interfaces cross folders here: this implements controller/watch_observer.h, a header
// with no dependencies; metrics/ links nothing of the controller.
//
// Thread safety: all methods may be called from any thread at once. OnWatchEvent, OnProgress,
// OnBookmark and OnEventLag are lock-free apart from the event-lag histogram's mutex;
// OnApiRequest takes the family's mutex to find the {verb, code} child.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string_view>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "controller/kube/watch_observer.h"

namespace eventbuffer::controller {

class WatchMetrics final : public WatchObserver {
 public:
  static constexpr std::size_t kRestartReasonCount =
      static_cast<std::size_t>(RestartReason::kNetwork) + 1;

  explicit WatchMetrics(prometheus::Registry& registry);

  WatchMetrics(const WatchMetrics&) = delete;
  WatchMetrics& operator=(const WatchMetrics&) = delete;

  void OnWatchEvent(std::string_view type) override;
  void OnWatchRestart(RestartReason reason) override;
  void OnRelist() override;
  // code 0 (no response) is exported as code="0".
  void OnApiRequest(std::string_view verb, int code, double seconds) override;
  void OnProgress() override;
  void OnBookmark() override;
  void OnEventLag(double seconds) override;
  // source outside {"list", "watch"} is counted as "watch".
  void OnDecodeFailure(std::string_view source) override;
  // source outside {"list", "watch"} is counted as "watch"; every reason as "too_large",
  // the only one.
  void OnEventSkipped(std::string_view source, std::string_view reason) override;

  // Implementation details follow.
 private:
  static constexpr std::array<std::string_view, 6> kEventTypes = {"ADDED",    "MODIFIED", "DELETED",
                                                                  "BOOKMARK", "ERROR",    "OTHER"};

  std::array<prometheus::Counter*, kEventTypes.size()> events_{};
  std::array<prometheus::Counter*, kRestartReasonCount> restarts_{};
  prometheus::Counter* relists_ = nullptr;
  prometheus::Counter* list_decode_failures_ = nullptr;
  prometheus::Counter* watch_decode_failures_ = nullptr;
  prometheus::Counter* list_too_large_ = nullptr;
  prometheus::Counter* watch_too_large_ = nullptr;
  prometheus::Gauge* last_progress_ = nullptr;
  prometheus::Gauge* last_bookmark_ = nullptr;
  prometheus::Histogram* event_lag_ = nullptr;
  prometheus::Family<prometheus::Histogram>* api_requests_ = nullptr;
};

// Bucket bounds (seconds) of eventbuffer_api_request_duration_seconds: lists take
// milliseconds to seconds, watch streams minutes.
std::vector<double> ApiRequestBuckets();
// Bucket bounds (seconds) of eventbuffer_event_lag_seconds (timestamps have 1 s resolution).
std::vector<double> EventLagBuckets();

}  // namespace eventbuffer::controller
