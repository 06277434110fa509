// WatchObserver: how the Watcher and the API client report the health of the list/watch
// loop, without knowing the metrics backend. WatchMetrics (watch_metrics.h) implements it
// with Prometheus families; tests record calls. The Watcher and the API client never
// include prometheus headers.
//
// Label values are bounded: every string_view passed here comes from a small fixed set
// (see the comments on each method), so an implementation may use them as label values.
//
// Thread safety: called from the watch thread and from cpprestsdk's task threads at once;
// an implementation must be thread-safe and cheap (it is called once per watch event).
#pragma once

#include <string_view>

namespace eventbuffer::controller {

// Why a watch stream ended and the loop went back to list or watch. Bounded label values.
enum class RestartReason {
  kTimeout,       // the server closed the watch at timeoutSeconds (normal; rewatch)
  kStale,         // the watch ended very soon with no events (stale watch trap; relist)
  kExpired,       // ERROR 410 / Expired, or HTTP 410 on watch (relist)
  kError,         // an ERROR watch event with another code (or none), or an unexpected HTTP status
  kDecode,        // a line did not decode
  kHttp429,       // 429 Too Many Requests (Retry-After honoured)
  kHttp5xx,       // 5xx from the API server
  kUnauthorized,  // 401/403 (token re-read)
  kNetwork,       // connection refused/reset, TLS failure, inactivity timeout, cut stream
};
inline constexpr std::string_view RestartReasonName(RestartReason r) {
  switch (r) {
    case RestartReason::kTimeout:
      return "timeout";
    case RestartReason::kStale:
      return "stale";
    case RestartReason::kExpired:
      return "expired";
    case RestartReason::kError:
      return "error";
    case RestartReason::kDecode:
      return "decode";
    case RestartReason::kHttp429:
      return "http_429";
    case RestartReason::kHttp5xx:
      return "http_5xx";
    case RestartReason::kUnauthorized:
      return "unauthorized";
    case RestartReason::kNetwork:
      return "network";
  }
  return "unknown";
}

class WatchObserver {
 public:
  virtual ~WatchObserver() = default;

  // One watch event received and decoded. type is "ADDED", "MODIFIED", "DELETED",
  // "BOOKMARK" or "ERROR". Listed items are not reported here (see OnRelist).
  virtual void OnWatchEvent(std::string_view type) = 0;
  // A watch stream ended (or failed to start) for `reason`; the loop will watch or list again.
  virtual void OnWatchRestart(RestartReason reason) = 0;
  // A full list (all pages) started; counted once per relist, including the first list.
  virtual void OnRelist() = 0;
  // One API request finished. verb is "list" or "watch"; code is the HTTP status, or 0
  // when no response arrived (network/TLS error). For a watch, seconds covers the whole
  // stream, from request to close.
  virtual void OnApiRequest(std::string_view verb, int code, double seconds) = 0;
  // The watch made progress: an event or a bookmark arrived, or a list completed. The
  // observer derives "seconds since last progress" from this.
  virtual void OnProgress() = 0;
  // A bookmark arrived (the observer derives "seconds since last bookmark").
  virtual void OnBookmark() = 0;
  // Seconds between an event's own last timestamp and its receipt here (clamped at 0).
  // Reported for watch events only (listed events may be old).
  virtual void OnEventLag(double seconds) = 0;
  // An Event that did not decode. source is "list" (a list item, skipped; the rest of the
  // page is used) or "watch" (a watch line; the stream is closed and restarted).
  virtual void OnDecodeFailure(std::string_view source) = 0;
  // An Event was skipped without being decoded. source is "list" (an item alone over the
  // page byte cap) or "watch" (a line over the line cap; the stream goes on); reason is
  // "too_large".
  virtual void OnEventSkipped(std::string_view /*source*/, std::string_view /*reason*/) {}
};

// An observer that ignores everything (the default when metrics are off, and in tests).
class NullWatchObserver final : public WatchObserver {
 public:
  void OnWatchEvent(std::string_view) override {}
  void OnWatchRestart(RestartReason) override {}
  void OnRelist() override {}
  void OnApiRequest(std::string_view, int, double) override {}
  void OnProgress() override {}
  void OnBookmark() override {}
  void OnEventLag(double) override {}
  void OnDecodeFailure(std::string_view) override {}
};

}  // namespace eventbuffer::controller
