#include "controller/serving/serving_metrics.h"

#include <cstdint>
#include <tuple>

#include "metrics/family_util.h"

namespace eventbuffer::controller {

using metrics::internal::MakeCounter;
using metrics::internal::MakeFamily;
using metrics::internal::MakeGauge;
using prometheus::MetricType;

std::vector<prometheus::MetricFamily> CollectServingMetrics(
    const std::vector<std::pair<std::string, const Server*>>& servers) {
  auto open = MakeFamily("eventbuffer_http_connections_open", "Open connections of a serving port.",
                         MetricType::Gauge);
  auto inflight = MakeFamily(
      "eventbuffer_http_requests_inflight",
      "Requests queued or running on a serving port (--max-requests-inflight).", MetricType::Gauge);
  auto accepted = MakeFamily("eventbuffer_http_connections_total",
                             "Connections accepted by a serving port.", MetricType::Counter);
  auto rejected = MakeFamily("eventbuffer_http_rejected_total",
                             "Connections or requests a serving port refused or cut, by reason.",
                             MetricType::Counter);
  auto responses = MakeFamily("eventbuffer_http_responses_total",
                              "Responses of a serving port, by status class.", MetricType::Counter);
  auto reloads = MakeFamily("eventbuffer_http_tls_reloads_total",
                            "Serving certificate files re-read after a change, by result.",
                            MetricType::Counter);
  for (const auto& [name, server] : servers) {
    if (server == nullptr) continue;
    const Server::Stats s = server->stats();
    const auto d = [](std::uint64_t v) { return static_cast<double>(v); };
    open.metric.push_back(MakeGauge(d(s.connections_open), {{"port", name}}));
    inflight.metric.push_back(MakeGauge(d(s.requests_inflight), {{"port", name}}));
    accepted.metric.push_back(MakeCounter(d(s.connections_accepted), {{"port", name}}));
    const std::pair<const char*, std::uint64_t> reasons[] = {
        {"connection_cap", s.rejected_connection_cap},
        {"header_too_large", s.rejected_header_too_large},
        {"body", s.rejected_body},
        {"method", s.rejected_method},
        {"inflight_cap", s.rejected_inflight_cap},
        {"bad_request", s.rejected_bad_request},
        {"header_timeout", s.header_timeouts},
        {"idle_timeout", s.idle_timeouts},
        {"write_timeout", s.write_timeouts},
        {"tls_handshake", s.tls_handshake_failures},
    };
    for (const auto& [reason, v] : reasons) {
      rejected.metric.push_back(MakeCounter(d(v), {{"port", name}, {"reason", reason}}));
    }
    const std::pair<const char*, std::uint64_t> classes[] = {{"1xx", s.responses_1xx},
                                                             {"2xx", s.responses_2xx},
                                                             {"3xx", s.responses_3xx},
                                                             {"4xx", s.responses_4xx},
                                                             {"5xx", s.responses_5xx}};
    for (const auto& [code, v] : classes) {
      responses.metric.push_back(MakeCounter(d(v), {{"port", name}, {"code", code}}));
    }
    reloads.metric.push_back(
        MakeCounter(d(s.tls_reloads), {{"port", name}, {"result", "success"}}));
    reloads.metric.push_back(
        MakeCounter(d(s.tls_reload_failures), {{"port", name}, {"result", "failure"}}));
  }
  return {std::move(open),     std::move(inflight),  std::move(accepted),
          std::move(rejected), std::move(responses), std::move(reloads)};
}

std::vector<prometheus::MetricFamily> CollectAuthMetrics(const AuthStats& s) {
  const auto d = [](std::uint64_t v) { return static_cast<double>(v); };
  auto authn = MakeFamily("eventbuffer_authentication_total",
                          "Requests by authentication method and result.", MetricType::Counter);
  const std::tuple<const char*, const char*, std::uint64_t> methods[] = {
      {"frontproxy", "success", s.frontproxy_success},
      {"frontproxy", "failure", s.frontproxy_failure},
      {"x509", "success", s.x509_success},
      {"x509", "failure", s.x509_failure},
      {"token", "success", s.token_success},
      {"token", "failure", s.token_failure},
      {"none", "unauthenticated", s.unauthenticated}};
  for (const auto& [method, result, v] : methods) {
    authn.metric.push_back(MakeCounter(d(v), {{"method", method}, {"result", result}}));
  }
  auto authz =
      MakeFamily("eventbuffer_authorization_total",
                 "Authorization decisions (denied includes failed reviews).", MetricType::Counter);
  authz.metric.push_back(MakeCounter(d(s.allowed), {{"decision", "allowed"}}));
  authz.metric.push_back(MakeCounter(d(s.denied), {{"decision", "denied"}}));
  authz.metric.push_back(MakeCounter(d(s.always_allowed), {{"decision", "always_allowed"}}));
  auto cache = MakeFamily("eventbuffer_auth_cache_total",
                          "TokenReview and SubjectAccessReview cache lookups by result.",
                          MetricType::Counter);
  const std::tuple<const char*, const char*, std::uint64_t> lookups[] = {
      {"token", "hit", s.token_cache_hits},        {"token", "coalesced", s.token_cache_coalesced},
      {"token", "miss", s.token_cache_misses},     {"sar", "hit", s.sar_cache_hits},
      {"sar", "coalesced", s.sar_cache_coalesced}, {"sar", "miss", s.sar_cache_misses}};
  for (const auto& [c, result, v] : lookups) {
    cache.metric.push_back(MakeCounter(d(v), {{"cache", c}, {"result", result}}));
  }
  auto errors = MakeFamily("eventbuffer_auth_review_errors_total",
                           "Reviews that failed (no answer, error status, bad body): the "
                           "request was refused (fail closed).",
                           MetricType::Counter);
  errors.metric.push_back(MakeCounter(d(s.token_review_errors), {{"review", "tokenreview"}}));
  errors.metric.push_back(MakeCounter(d(s.sar_errors), {{"review", "subjectaccessreview"}}));
  return {std::move(authn), std::move(authz), std::move(cache), std::move(errors)};
}

}  // namespace eventbuffer::controller
