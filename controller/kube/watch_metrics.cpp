#include "controller/kube/watch_metrics.h"

#include <algorithm>
#include <string>

namespace eventbuffer::controller {

std::vector<double> ApiRequestBuckets() {
  return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200};
}

std::vector<double> EventLagBuckets() {
  return {0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800};
}

WatchMetrics::WatchMetrics(prometheus::Registry& registry) {
  auto& events = prometheus::BuildCounter()
                     .Name("eventbuffer_watch_events_total")
                     .Help("Watch events received, by watch event type.")
                     .Register(registry);
  for (std::size_t i = 0; i < kEventTypes.size(); ++i) {
    events_[i] = &events.Add({{"type", std::string(kEventTypes[i])}});
  }
  auto& restarts = prometheus::BuildCounter()
                       .Name("eventbuffer_watch_restarts_total")
                       .Help("Watch streams that ended and were restarted, by reason.")
                       .Register(registry);
  for (std::size_t i = 0; i < kRestartReasonCount; ++i) {
    const auto reason = static_cast<RestartReason>(i);
    restarts_[i] = &restarts.Add({{"reason", std::string(RestartReasonName(reason))}});
  }
  relists_ = &prometheus::BuildCounter()
                  .Name("eventbuffer_watch_relists_total")
                  .Help("Full lists of events, including the first one.")
                  .Register(registry)
                  .Add({});
  auto& decode_failures = prometheus::BuildCounter()
                              .Name("eventbuffer_watch_decode_failures_total")
                              .Help(
                                  "Events that did not decode, by source: list (the item was "
                                  "skipped) or watch (the line closed the stream).")
                              .Register(registry);
  list_decode_failures_ = &decode_failures.Add({{"source", "list"}});
  watch_decode_failures_ = &decode_failures.Add({{"source", "watch"}});
  auto& skipped = prometheus::BuildCounter()
                      .Name("eventbuffer_watch_events_skipped_total")
                      .Help(
                          "Events skipped without being decoded, by source and reason: "
                          "too_large is a watch line over --max-watch-event-bytes, or a list "
                          "item alone over --max-list-page-bytes.")
                      .Register(registry);
  list_too_large_ = &skipped.Add({{"source", "list"}, {"reason", "too_large"}});
  watch_too_large_ = &skipped.Add({{"source", "watch"}, {"reason", "too_large"}});
  last_progress_ = &prometheus::BuildGauge()
                        .Name("eventbuffer_watch_last_progress_timestamp_seconds")
                        .Help(
                            "Unix time the watch last made progress (an event, a bookmark or "
                            "a completed list); the start-up time before the first.")
                        .Register(registry)
                        .Add({});
  last_progress_->SetToCurrentTime();
  last_bookmark_ = &prometheus::BuildGauge()
                        .Name("eventbuffer_watch_last_bookmark_timestamp_seconds")
                        .Help(
                            "Unix time of the last watch bookmark; the start-up time before "
                            "the first.")
                        .Register(registry)
                        .Add({});
  last_bookmark_->SetToCurrentTime();
  event_lag_ = &prometheus::BuildHistogram()
                    .Name("eventbuffer_event_lag_seconds")
                    .Help("Receipt time minus the event's own last timestamp, for watch events.")
                    .Register(registry)
                    .Add({}, EventLagBuckets());
  api_requests_ = &prometheus::BuildHistogram()
                       .Name("eventbuffer_api_request_duration_seconds")
                       .Help(
                           "API server requests by verb and HTTP status code (0: no "
                           "response); a watch lasts from request to stream close.")
                       .Register(registry);
  api_requests_->Add({{"verb", "list"}, {"code", "200"}}, ApiRequestBuckets());
  api_requests_->Add({{"verb", "watch"}, {"code", "200"}}, ApiRequestBuckets());
}

void WatchMetrics::OnWatchEvent(std::string_view type) {
  const auto* it = std::find(kEventTypes.begin(), kEventTypes.end() - 1, type);
  events_[static_cast<std::size_t>(it - kEventTypes.begin())]->Increment();
}

void WatchMetrics::OnWatchRestart(RestartReason reason) {
  const auto i = static_cast<std::size_t>(reason);
  if (i < kRestartReasonCount) restarts_[i]->Increment();
}

void WatchMetrics::OnRelist() { relists_->Increment(); }

void WatchMetrics::OnApiRequest(std::string_view verb, int code, double seconds) {
  // verb comes from a fixed set ("list", "watch"); code is an HTTP status or 0.
  auto& h = api_requests_->Add({{"verb", std::string(verb)}, {"code", std::to_string(code)}},
                               ApiRequestBuckets());
  h.Observe(seconds);
}

void WatchMetrics::OnDecodeFailure(std::string_view source) {
  (source == "list" ? list_decode_failures_ : watch_decode_failures_)->Increment();
}

void WatchMetrics::OnEventSkipped(std::string_view source, std::string_view /*reason*/) {
  (source == "list" ? list_too_large_ : watch_too_large_)->Increment();
}

void WatchMetrics::OnProgress() { last_progress_->SetToCurrentTime(); }

void WatchMetrics::OnBookmark() { last_bookmark_->SetToCurrentTime(); }

void WatchMetrics::OnEventLag(double seconds) { event_lag_->Observe(std::max(0.0, seconds)); }

}  // namespace eventbuffer::controller
