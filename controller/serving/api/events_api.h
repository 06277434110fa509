// EventsApi: the eventbuffer.dev/v1alpha1 Kubernetes API, which serves the buffer's held
// Event occurrences so that `kubectl get events.eventbuffer.dev` works like
// `kubectl get events`. It runs as an aggregated API behind the API server (an APIService,
// as metrics-server serves metrics.k8s.io); the server in front (controller/serving/) has
// authenticated and authorized the request before Handle() sees it.
//
// Resource: events (kind Event, list kind EventList), namespaced, verbs get and list. One
// item per held occurrence (one revision of a core/v1 Event), named
// "<Event name>.<resourceVersion>"; its fields are those of core/v1 Event (event_json.h).
//
//   GET /apis                                       APIGroupList (eventbuffer.dev only)
//   GET /apis/eventbuffer.dev                       APIGroup
//   GET /apis/eventbuffer.dev/v1alpha1              APIResourceList
//   GET /apis/eventbuffer.dev/v1alpha1/events                       list, all namespaces
//   GET /apis/eventbuffer.dev/v1alpha1/namespaces/NS/events         list in NS
//   GET /apis/eventbuffer.dev/v1alpha1/namespaces/NS/events/NAME    one occurrence: the
//       resourceVersion is what follows NAME's last '.', the Event name what precedes it
//   GET /openapi/v2, /openapi/v3, /openapi/v3/apis/eventbuffer.dev/v1alpha1
//                                                   OpenAPI documents (openapi.h)
//   anything else (/api, /version, ...)             404 NotFound
//
// Discovery is always the plain (v1) document, also when aggregated discovery
// (as=APIGroupDiscoveryList;v=v2;g=apidiscovery.k8s.io) is asked for: Content-Type
// application/json tells clients to read it as the plain form.
//
// List parameters:
//   fieldSelector   field_selector.h; an error or an unknown field is 400 BadRequest
//   labelSelector   only empty: the buffer keeps no labels, so no non-empty selector can be
//                   evaluated honestly ("!app" would match all, "app=x" nothing): 400
//   limit           at most this many items (capped at kMaxLimit: the API conventions let a
//                   server return fewer) and a `continue` token when more follow; 0 or
//                   absent: no limit; not an integer or negative: 400
//   continue        continue_token.h; invalid, damaged or from another query: 400
//   watch           anything but "0" or "false" (as the API server reads it): 405
//                   MethodNotAllowed (watch is not served); also /watch/ paths
//   includeObject   None | Metadata (default) | Object, for Tables; anything else: 400
//   resourceVersionMatch  checked as the API server checks ListOptions (422 Invalid: a
//                   value other than Exact or NotOlderThan, without resourceVersion, with
//                   continue, Exact with "0"); Exact: 410 Expired (the buffer keeps no
//                   snapshots); NotOlderThan: the buffer as it is now
//   resourceVersion with continue (other than "0"): 400, as the API server answers
//   timeoutSeconds  not an integer: 400, as the API server answers; otherwise ignored
//   resourceVersion otherwise, allowWatchBookmarks, pretty and unknown parameters are
//   ignored (every list reads the buffer as it is now).
// A list, or a page of a limited list, of more than kWholeItems items is streamed (chunked)
// with ResponseWriter::Stream: each part is rendered when the client has taken the previous
// one, so no body larger than a part is built and no thread waits on a slow client. A list
// without limit makes each part with its own List call, continuing where the previous part
// ended.
//
// Representation (Accept): a meta.k8s.io Table (v1 or v1beta1) when the first acceptable
// media range asks for one (`application/json;as=Table;v=v1;g=meta.k8s.io`), with kubectl's
// event columns; otherwise JSON (also for clients that accept only protobuf: the API server
// falls back to JSON the same way, and kubectl reads it).
//
// Errors are Kubernetes Status objects (controller/serving/status.h).
//
// Thread safety: Handle() may run on any number of threads at once if the hooks may.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "controller/serving/http_exchange.h"
#include "eventbuffer/event_query.h"
#include "eventbuffer/event_record.h"

namespace eventbuffer::controller {

class QueryParams;

class EventsApi {
 public:
  // Where the data comes from (EventBuffer::List and EventBuffer::Find in main.cpp).
  struct Hooks {
    // The occurrences of a query, one page (eventbuffer/event_query.h). REQUIRED.
    std::function<eventbuffer::EventPage(const eventbuffer::EventQuery&)> list;
    // The occurrence (ns, Event name, resourceVersion), or null. REQUIRED.
    std::function<eventbuffer::EventRef(std::string_view ns, std::string_view name,
                                        std::string_view rv)>
        find;
    // The current time for Table ages, ms since the Unix epoch; empty: the system clock.
    std::function<std::int64_t()> now_unix_ms;
  };

  // A list or a page of up to this many items is sent whole (kubectl pages by 500); a
  // longer one is streamed (ResponseWriter::Stream): the first part is this many items, the
  // next ones kStreamPartItems each (a List call each, for a list without limit), each
  // rendered when the client has taken the previous one, so a slow client holds a part and
  // the server's buffer, not the list.
  static constexpr std::size_t kWholeItems = 500;
  static constexpr std::size_t kStreamPartItems = 100;
  // The largest page served for a `limit`.
  static constexpr std::size_t kMaxLimit = 5000;

  // REQUIRES: hooks.list and hooks.find are set.
  explicit EventsApi(Hooks hooks);

  // Answers one request (method GET or HEAD; others get 405).
  void Handle(const HttpRequest& request, ResponseWriter& writer) const;

  // Implementation details follow.
 private:
  void List(const HttpRequest& request, const QueryParams& params, std::optional<std::string> ns,
            ResponseWriter& writer) const;
  void Get(const HttpRequest& request, const QueryParams& params, const std::string& ns,
           const std::string& name, ResponseWriter& writer) const;
  std::int64_t NowUnixMs() const;

  Hooks hooks_;
};

}  // namespace eventbuffer::controller
