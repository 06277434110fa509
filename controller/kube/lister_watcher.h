// ListerWatcher: the two API calls the Watcher needs, list a page and stream a watch, as
// an interface so that the list/watch protocol can be tested without HTTP. ApiClient
// (api_client.h) implements it over cpprestsdk; tests use a scripted fake.
//
// Thread safety: List and Watch are called from the Watcher's thread only, one at a time;
// Cancel may be called from any thread while they run.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace eventbuffer::controller {

struct ListRequest {
  std::string resource_version;  // "" = most recent (a consistent read)
  std::string continue_token;    // from the previous page; "" for the first page
  int limit = 500;               // items per page; 0 = no paging (every item in one response)
};

// Default of how long after timeout_seconds a client gives up a watch that has gone silent
// (the server should have ended it by then). ApiClient applies it; the Watcher's health
// check allows for it.
inline constexpr int kDefaultWatchTimeoutMarginSeconds = 60;

// Called for a watch line longer than the client's cap, instead of the LineHandler: the
// first cap bytes of the line (the rest was read and dropped) and the line's full length.
// Return false to stop reading and close the stream, true to go on with the next line.
using OversizedLineHandler = std::function<bool(std::string_view prefix, std::uint64_t bytes)>;

struct WatchRequest {
  std::string resource_version;  // watch changes after this version
  int timeout_seconds = 300;     // the server closes the stream after this long
  bool allow_bookmarks = true;
  // Lines over the cap go here; when empty they are dropped without a word.
  OversizedLineHandler on_oversized_line;
};

// The outcome of one request.
struct ApiResponse {
  // HTTP status; 0 when no response arrived (connection, TLS or timeout error) or the
  // request was cancelled.
  int http_status = 0;
  // For a transport failure: what went wrong (no secrets).
  std::string transport_error;
  // List: the whole body. Watch: the body only when http_status != 200 (a Status).
  // Never more than the client's cap: see body_too_large.
  std::string body;
  // The body was longer than the client's cap (a list page over its byte cap): `body`
  // holds its first cap bytes only, the rest was not read and the connection was closed.
  bool body_too_large = false;
  // Watch only: the largest allocation of the line buffer during the stream, in bytes
  // (bounded by the client's line cap; for logs and tests).
  std::uint64_t peak_line_buffer_bytes = 0;
  // Watch only: the most bytes read from the connection ahead of the line handler at once
  // (bounded by about the client's read-ahead limit plus one socket read).
  std::uint64_t peak_read_ahead_bytes = 0;
  // Retry-After header in seconds; -1 when absent.
  double retry_after_seconds = -1;
  // Watch only: the stream broke off (transport error after 200, or a last line without
  // its newline). The partial line was discarded, never handed to the line handler.
  bool stream_cut = false;
  // True when the request ended because Cancel() was called.
  bool cancelled = false;
};

// Called for each complete line of a watch stream (without the newline). Return false to
// stop reading and close the stream.
using LineHandler = std::function<bool(std::string_view line)>;

class ListerWatcher {
 public:
  virtual ~ListerWatcher() = default;
  // Fetches one page of Events.
  virtual ApiResponse List(const ListRequest& request) = 0;
  // Opens a watch and calls `on_line` for each complete line until the server closes the
  // stream, the handler returns false, the stream breaks, or Cancel() is called.
  virtual ApiResponse Watch(const WatchRequest& request, const LineHandler& on_line) = 0;
  // Aborts the request in flight and makes later requests fail at once (shutdown).
  virtual void Cancel() = 0;
};

}  // namespace eventbuffer::controller
