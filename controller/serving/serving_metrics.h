// ServingMetrics: the serving ports' counters (Server::Stats) as Prometheus families,
// computed at every scrape (metrics::Metrics::AddCollector):
//   eventbuffer_http_connections_open{port}               gauge
//   eventbuffer_http_requests_inflight{port}              gauge (queued or running handlers)
//   eventbuffer_http_connections_total{port}              counter, accepted connections
//   eventbuffer_http_rejected_total{port,reason}          counter: connection_cap,
//       header_too_large (431), body (413), method (405), inflight_cap (429),
//       bad_request (400), header_timeout, idle_timeout, write_timeout, tls_handshake
//   eventbuffer_http_responses_total{port,code}           counter by class: 2xx, 4xx, 5xx...
//   eventbuffer_http_tls_reloads_total{port,result}       counter: success, failure
// `port` is the Server's name: secure, metrics or probe. And delegated auth (AuthStats):
//   eventbuffer_authentication_total{method,result}       counter: method frontproxy, x509,
//       token with result success|failure; method none, result unauthenticated (401)
//   eventbuffer_authorization_total{decision}             counter: allowed, denied (403),
//       always_allowed (paths served without authn/authz)
//   eventbuffer_auth_cache_total{cache,result}            counter: cache token|sar, result
//       hit, coalesced (shared a running review), miss (asked the API server)
//   eventbuffer_auth_review_errors_total{review}          counter: tokenreview,
//       subjectaccessreview — failed reviews (fail closed: answered 401/403)
//
// Thread safety: Collect may run on any thread; the servers must outlive the scrapes.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <prometheus/metric_family.h>

#include "controller/serving/auth/auth_stats.h"
#include "controller/serving/server.h"

namespace eventbuffer::controller {

// The families of the given servers (name, server); null servers are skipped.
std::vector<prometheus::MetricFamily> CollectServingMetrics(
    const std::vector<std::pair<std::string, const Server*>>& servers);

// The families of delegated authentication and authorization.
std::vector<prometheus::MetricFamily> CollectAuthMetrics(const AuthStats& stats);

}  // namespace eventbuffer::controller
