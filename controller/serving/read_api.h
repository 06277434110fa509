// ReadApi: the routes of the read and health HTTP server (:8081), as plain functions of
// (method, path, query) -> (status, JSON body), so they are tested without sockets.
// http_server.h puts them behind cpprestsdk's http_listener.
//
//   GET /healthz    200 "ok" while the watch makes progress (or waits healthily), else 500
//   GET /readyz     200 once the first list is in the buffer, else 503
//   GET /v1/objects {"objects":[{"namespace":..,"kind":..,"name":..,"events":N},..]}
//                   sorted by namespace, kind, name
//   GET /v1/events?namespace=NS&kind=KIND&name=NAME
//                   {"key":"NS/KIND/NAME","events":[{uid, resourceVersion, reason, type,
//                   message, count, firstTimestamp, lastTimestamp, source:{component,host}},..]}
//                   in occurrence order; namespace may be empty or absent (cluster-scoped);
//                   kind and name are required but may be empty (an Event without
//                   involvedObject); any other parameter is an error
//   GET /v1/status  {"buffer":{...},"watch":{...}} (mode, rollout, per-backend counts,
//                   mismatches; watch state and last resourceVersion)
//   errors          400 {"error":"..."} for a bad query, 404 for an unknown path, 405 for a
//                   method other than GET/HEAD
//
// Thread safety: Handle() may be called from any number of threads at once if the hooks may.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "eventbuffer/event_buffer.h"
#include "eventbuffer/event_record.h"

namespace eventbuffer::controller {

struct HttpReply {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
};

class ReadApi {
 public:
  // Where the data comes from (wired to EventBuffer and Watcher in main.cpp).
  struct Hooks {
    std::function<std::vector<ObjectSummary>()> objects;
    std::function<std::vector<EventRef>(std::string_view key)> read;  // routed by the flag
    std::function<std::string()> buffer_status_json;                  // a JSON object
    std::function<std::string()> watch_status_json;                   // a JSON object
    std::function<bool(std::string* why)> healthy;
    std::function<bool()> ready;
  };

  explicit ReadApi(Hooks hooks) : hooks_(std::move(hooks)) {}

  // Serves one request. `path` has no query; `query` is the raw (percent-encoded) query
  // string without '?'.
  HttpReply Handle(std::string_view method, std::string_view path, std::string_view query) const;

  // Renders one occurrence as the /v1/events item (exposed for tests and benchmarks).
  static void AppendEventJson(std::string* out, const EventRecord& record);

 private:
  HttpReply Events(std::string_view query) const;
  Hooks hooks_;
};

// Splits a query string into decoded (name, value) pairs. Returns false (and sets *error)
// on bad percent-encoding.
bool ParseQuery(std::string_view query, std::vector<std::pair<std::string, std::string>>* out,
                std::string* error);

}  // namespace eventbuffer::controller
