// Options: the command-line flags of eventbuffer-controller.
//
//   --kubeconfig PATH                 kubeconfig to use (default: in-cluster, else $KUBECONFIG)
//   --namespace NS                    watch one namespace (default: all)
//   --metrics-bind-address ADDR       /metrics (default :8080; "0" disables)
//   --metrics-secure[=BOOL]           /metrics over HTTPS with delegated authn/authz (default true)
//   --health-probe-bind-address ADDR  /healthz, /readyz, /livez in plain HTTP (default :8081)
//   --list-limit N                    Events per list page (default 500)
//   --max-watch-event-bytes N         longest watch line decoded; longer: skipped (default 4Mi)
//   --max-list-page-bytes N           most bytes read of a list page (default 16Mi)
//   --secure-port, --bind-address, --tls-*, --client-ca-file, --requestheader-*,
//   --authentication-*, --authorization-*, --max-requests-inflight
//                                     the eventbuffer.dev API, named as k8s.io/apiserver names
//                                     them (see Usage())
//   --data-dir DIR                    keep the history on disk (SQLite) across restarts
//   --sync-interval D                 commit to disk every D (default 1s)
//   --data-max-bytes N                disk budget of --data-dir (default 1Gi)
//   --shutdown-delay D                after SIGTERM: /readyz fails, serving goes on for D, then
//                                     the watch stops and the store flushes (default 5s; 0: none)
//   --config PATH                     YAML configuration (gray flag, retention); hot-reloaded
//   --log-format json|text            (default json)
//   --log-level trace|debug|info|warn|error|off   (default info)
//   --check-config PATH               validate a configuration file, print OK or the error
//   --version, --help
// Both "--flag value" and "--flag=value" are accepted; a boolean flag alone means true and
// takes its value only as "--flag=false" (as Go's flag package does). Durations are Go
// durations ("10s", "1m30s", "500ms").
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace eventbuffer::controller {

struct Options {
  std::string kubeconfig;
  std::string namespace_name;
  std::string metrics_bind_address = ":8080";
  std::string health_probe_bind_address = ":8081";
  std::string config_path;
  std::string log_format = "json";
  std::string log_level = "info";
  std::string check_config;
  bool version = false;
  bool help = false;
  // Seconds between maintenance passes (retention, verification sweep).
  double maintenance_interval_seconds = 5;
  // Threads of cpprestsdk's shared pool (the Kubernetes API client).
  int http_threads = 4;

  // Bounded reads from the Kubernetes API (controller/kube/api_client.h).
  int list_limit = 500;
  std::uint64_t max_watch_event_bytes = std::uint64_t{4} << 20;
  std::uint64_t max_list_page_bytes = std::uint64_t{16} << 20;

  // The durable store (controller/durable/event_store.h); empty data_dir: memory only.
  std::string data_dir;
  std::chrono::milliseconds sync_interval{1000};
  std::uint64_t data_max_bytes = std::uint64_t{1} << 30;

  // SIGTERM: /readyz fails at once, the ports keep serving this long (so the endpoints
  // move away first), then the watch stops and the store is flushed. 0: no pause.
  std::chrono::milliseconds shutdown_delay{5000};

  // Metrics over HTTPS with the same authentication and authorization as the API
  // (non-resource "get /metrics"); false serves plain HTTP without them (local demo).
  bool metrics_secure = true;

  // Secure serving of the eventbuffer.dev API (the flags of k8s.io/apiserver).
  int secure_port = 8443;                // 0 turns the API off
  std::string bind_address = "0.0.0.0";  // interface of the secure port
  std::string tls_cert_file;             // PEM; both empty: a self-signed certificate
  std::string tls_private_key_file;
  std::string client_ca_file;                // client certificates accepted as identities
  std::string requestheader_client_ca_file;  // the front proxy's client certificate CA
  std::vector<std::string> requestheader_allowed_names;         // CNs allowed as front proxy
  std::vector<std::string> requestheader_username_headers;      // empty: from the ConfigMap,
  std::vector<std::string> requestheader_group_headers;         //   else X-Remote-User,
  std::vector<std::string> requestheader_extra_headers_prefix;  // -Group, -Extra-
  // Skip reading kube-system/extension-apiserver-authentication (flags only).
  bool authentication_skip_lookup = false;
  std::chrono::milliseconds authentication_token_webhook_cache_ttl{10'000};
  std::chrono::milliseconds authorization_webhook_cache_authorized_ttl{10'000};
  std::chrono::milliseconds authorization_webhook_cache_unauthorized_ttl{10'000};
  // Paths served without authentication or authorization on the secure ports.
  std::vector<std::string> authorization_always_allow_paths = {"/healthz", "/readyz", "/livez"};
  // Requests in flight (queued or running) per serving port; beyond: 429 with Retry-After.
  int max_requests_inflight = 400;
  // Hostile-client limits of every serving port.
  double header_timeout_seconds = 10;  // a request's header must arrive within this
  double idle_timeout_seconds = 60;    // a keep-alive connection may idle this long
  int max_connections = 1024;          // concurrent connections per port
  // Nice value of the secure and metrics ports' threads: reads yield the CPU to the watch.
  int serving_nice = 19;
};

// Parses a Go duration ("300ms", "10s", "1m30s", "2h"). Returns false when it does not parse
// or is negative.
bool ParseGoDuration(const std::string& text, std::chrono::milliseconds* out);

// Parses a byte count: digits with an optional suffix Ki, Mi, Gi, Ti (powers of 1024) or
// k, M, G, T (powers of 1000). Returns false when it does not parse or overflows.
bool ParseByteSize(const std::string& text, std::uint64_t* out);

// Parses argv[1..]. Returns false and sets *error (naming the flag) on an unknown flag, a
// missing value or a bad value.
bool ParseOptions(const std::vector<std::string>& args, Options* options, std::string* error);

// The --help text.
std::string Usage();

}  // namespace eventbuffer::controller
