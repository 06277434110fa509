#include "controller/config/options.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <functional>
#include <map>

namespace eventbuffer::controller {

std::string Usage() {
  return R"(Usage: eventbuffer-controller [flags]

Watches core/v1 Events and keeps them in an in-memory EventBuffer.

Flags:
  --kubeconfig PATH                  kubeconfig file (default: in-cluster config, else $KUBECONFIG)
  --namespace NS                     watch only this namespace (default: all namespaces)
  --metrics-bind-address ADDR        address of /metrics (default ":8080"; "0" turns it off)
  --metrics-secure[=false]           serve /metrics over HTTPS with delegated authentication and
                                     authorization (non-resource "get /metrics"; default true);
                                     false: plain HTTP, no authentication (local use only)
  --health-probe-bind-address ADDR   address of /healthz, /readyz and /livez, plain HTTP (default ":8081")

Reading from the Kubernetes API (bounded: see docs/controller.md):
  --list-limit N                     Events per list page (the API's limit; default 500)
  --max-watch-event-bytes N          longest watch event read (default 4Mi, at least 1Ki); a
                                     longer one is skipped, counted and logged
  --max-list-page-bytes N            most bytes read of one list page (default 16Mi, at least
                                     1Ki); a larger page is asked again with half the limit

Serving the eventbuffer.dev API (kubectl get events.eventbuffer.dev), as k8s.io/apiserver:
  --secure-port PORT                 HTTPS port of the API (default 8443; 0 turns it off)
  --bind-address IP                  interface of the secure port (default 0.0.0.0)
  --tls-cert-file PATH               serving certificate (PEM), reloaded when the file changes
  --tls-private-key-file PATH        its key; without both, a self-signed certificate is made
  --client-ca-file PATH              CA of client certificates accepted as identities
  --requestheader-client-ca-file PATH  CA of the front proxy (the API server's aggregator)
  --requestheader-allowed-names A,B  common names allowed as front proxy (default: any)
  --requestheader-username-headers H,...      (default X-Remote-User)
  --requestheader-group-headers H,...         (default X-Remote-Group)
  --requestheader-extra-headers-prefix P,...  (default X-Remote-Extra-)
                                     in a pod, unset client-ca and requestheader flags are read
                                     from ConfigMap kube-system/extension-apiserver-authentication
  --authentication-skip-lookup       do not read that ConfigMap
  --authentication-token-webhook-cache-ttl D       TokenReview cache (default 10s)
  --authorization-webhook-cache-authorized-ttl D   allowed SubjectAccessReviews (default 10s)
  --authorization-webhook-cache-unauthorized-ttl D denied SubjectAccessReviews (default 10s)
  --authorization-always-allow-paths P,...  served without authn/authz (default /healthz,/readyz,/livez)
  --max-requests-inflight N          requests queued or running per port; beyond: 429 (default 400)
  --header-timeout-seconds S         a request header must arrive within S (default 10)
  --idle-timeout-seconds S           keep-alive connections idle longer are closed (default 60)
  --max-connections N                concurrent connections per port (default 1024)
  --serving-nice N                   nice value (0-19) of the API and metrics ports' threads, so
                                     that reads yield the CPU to the watch (default 19)

Durable history:
  --data-dir DIR                     keep the buffered occurrences in DIR/eventbuffer.db (SQLite)
                                     and restore them on start (default: memory only)
  --sync-interval D                  commit queued occurrences to disk every D (default 1s): a
                                     killed process loses at most this much
  --data-max-bytes N                 disk budget of --data-dir; beyond it the oldest are deleted
                                     from disk (default 1Gi; suffixes Ki Mi Gi Ti k M G T)

Shutdown:
  --shutdown-delay D                 on SIGTERM, /readyz fails at once and the API and metrics
                                     ports go on serving for D, so that the Service's endpoints
                                     move away first; then the watch stops and --data-dir is
                                     flushed (default 5s; 0 stops at once). A second SIGTERM or
                                     SIGINT cuts the delay short.

  --config PATH                      YAML configuration file (gray-release flag, retention);
                                     reloaded when it changes and on SIGHUP
  --log-format json|text             log line format (default "json")
  --log-level LEVEL                  trace, debug, info, warn, error or off (default "info")
  --check-config PATH                validate a configuration file: print OK or the error, exit 0/1
  --version                          print the version and exit
  --help                             print this help and exit
)";
}

bool ParseGoDuration(const std::string& text, std::chrono::milliseconds* out) {
  if (text.empty()) return false;
  if (text == "0") {
    *out = std::chrono::milliseconds(0);
    return true;
  }
  double total_ms = 0;
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t used = 0;
    double number = 0;
    try {
      if (!std::isdigit(static_cast<unsigned char>(text[i])) && text[i] != '.') return false;
      number = std::stod(text.substr(i), &used);
    } catch (const std::exception&) {
      return false;
    }
    i += used;
    std::size_t unit_end = i;
    while (unit_end < text.size() && std::isalpha(static_cast<unsigned char>(text[unit_end]))) {
      ++unit_end;
    }
    const std::string unit = text.substr(i, unit_end - i);
    i = unit_end;
    if (unit == "ms") {
      total_ms += number;
    } else if (unit == "s") {
      total_ms += number * 1e3;
    } else if (unit == "m") {
      total_ms += number * 60e3;
    } else if (unit == "h") {
      total_ms += number * 3600e3;
    } else {
      return false;  // also: a number without a unit
    }
  }
  if (!(total_ms >= 0) || total_ms > 1e15) return false;
  *out = std::chrono::milliseconds(static_cast<std::int64_t>(total_ms));
  return true;
}

bool ParseByteSize(const std::string& text, std::uint64_t* out) {
  std::uint64_t n = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || end == text.data()) return false;
  const std::string suffix(end, text.data() + text.size());
  static const std::map<std::string, std::uint64_t> kUnits = {
      {"", 1},           {"k", 1000},          {"M", 1000'000},     {"G", 1000'000'000},
      {"T", 1000'000'000'000}, {"Ki", 1ULL << 10}, {"Mi", 1ULL << 20},
      {"Gi", 1ULL << 30}, {"Ti", 1ULL << 40}};
  const auto unit = kUnits.find(suffix);
  if (unit == kUnits.end()) return false;
  if (n > UINT64_MAX / unit->second) return false;
  *out = n * unit->second;
  return true;
}

bool ParseOptions(const std::vector<std::string>& args, Options* options, std::string* error) {
  using Setter = std::function<bool(const std::string&)>;
  const auto str = [](std::string* target) -> Setter {
    return [target](const std::string& v) {
      *target = v;
      return true;
    };
  };
  const auto list = [](std::vector<std::string>* target) -> Setter {
    return [target](const std::string& v) {
      target->clear();
      std::size_t start = 0;
      while (start <= v.size()) {
        const std::size_t comma = std::min(v.find(',', start), v.size());
        if (comma > start) target->push_back(v.substr(start, comma - start));
        start = comma + 1;
      }
      return true;
    };
  };
  const auto duration = [](std::chrono::milliseconds* target) -> Setter {
    return [target](const std::string& v) { return ParseGoDuration(v, target); };
  };
  const auto integer = [](int* target, int min, int max) -> Setter {
    return [target, min, max](const std::string& v) {
      auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), *target);
      return ec == std::errc() && end == v.data() + v.size() && *target >= min && *target <= max;
    };
  };
  const auto seconds = [](double* target) -> Setter {
    return [target](const std::string& v) {
      try {
        std::size_t used = 0;
        *target = std::stod(v, &used);
        return used == v.size() && *target > 0 && *target <= 86400;
      } catch (const std::exception&) {
        return false;
      }
    };
  };
  // Boolean flags: "--flag" alone is true; "--flag=true|false" sets it.
  const std::map<std::string, bool*> booleans = {
      {"metrics-secure", &options->metrics_secure},
      {"authentication-skip-lookup", &options->authentication_skip_lookup},
  };
  const std::map<std::string, Setter> with_value = {
      {"secure-port", integer(&options->secure_port, 0, 65535)},
      {"bind-address", str(&options->bind_address)},
      {"tls-cert-file", str(&options->tls_cert_file)},
      {"tls-private-key-file", str(&options->tls_private_key_file)},
      {"client-ca-file", str(&options->client_ca_file)},
      {"requestheader-client-ca-file", str(&options->requestheader_client_ca_file)},
      {"requestheader-allowed-names", list(&options->requestheader_allowed_names)},
      {"requestheader-username-headers", list(&options->requestheader_username_headers)},
      {"requestheader-group-headers", list(&options->requestheader_group_headers)},
      {"requestheader-extra-headers-prefix", list(&options->requestheader_extra_headers_prefix)},
      {"authentication-token-webhook-cache-ttl",
       duration(&options->authentication_token_webhook_cache_ttl)},
      {"authorization-webhook-cache-authorized-ttl",
       duration(&options->authorization_webhook_cache_authorized_ttl)},
      {"authorization-webhook-cache-unauthorized-ttl",
       duration(&options->authorization_webhook_cache_unauthorized_ttl)},
      {"authorization-always-allow-paths", list(&options->authorization_always_allow_paths)},
      {"max-requests-inflight", integer(&options->max_requests_inflight, 1, 100000)},
      {"header-timeout-seconds", seconds(&options->header_timeout_seconds)},
      {"idle-timeout-seconds", seconds(&options->idle_timeout_seconds)},
      {"max-connections", integer(&options->max_connections, 1, 1000000)},
      {"serving-nice", integer(&options->serving_nice, 0, 19)},
      {"kubeconfig", str(&options->kubeconfig)},
      {"namespace", str(&options->namespace_name)},
      {"list-limit", integer(&options->list_limit, 1, 100000)},
      {"max-watch-event-bytes",
       [options](const std::string& v) {
         return ParseByteSize(v, &options->max_watch_event_bytes) &&
                options->max_watch_event_bytes >= 1024 &&
                options->max_watch_event_bytes <= (std::uint64_t{1} << 30);
       }},
      {"max-list-page-bytes",
       [options](const std::string& v) {
         return ParseByteSize(v, &options->max_list_page_bytes) &&
                options->max_list_page_bytes >= 1024 &&
                options->max_list_page_bytes <= (std::uint64_t{4} << 30);
       }},
      {"metrics-bind-address", str(&options->metrics_bind_address)},
      {"health-probe-bind-address", str(&options->health_probe_bind_address)},
      {"config", str(&options->config_path)},
      {"data-dir",
       [options](const std::string& v) {
         options->data_dir = v;
         return !v.empty();
       }},
      {"sync-interval",
       [options](const std::string& v) {
         return ParseGoDuration(v, &options->sync_interval) &&
                options->sync_interval.count() > 0;
       }},
      {"data-max-bytes",
       [options](const std::string& v) { return ParseByteSize(v, &options->data_max_bytes); }},
      {"shutdown-delay", duration(&options->shutdown_delay)},
      {"check-config", str(&options->check_config)},
      {"log-format",
       [options](const std::string& v) {
         options->log_format = v;
         return v == "json" || v == "text";
       }},
      {"log-level",
       [options](const std::string& v) {
         options->log_level = v;
         return v == "trace" || v == "debug" || v == "info" || v == "warn" || v == "error" ||
                v == "off";
       }},
      {"http-threads",
       [options](const std::string& v) {
         int n = 0;
         auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
         options->http_threads = n;
         return ec == std::errc() && end == v.data() + v.size() && n >= 1 && n <= 64;
       }},
      {"maintenance-interval-seconds",
       [options](const std::string& v) {
         try {
           std::size_t used = 0;
           options->maintenance_interval_seconds = std::stod(v, &used);
           return used == v.size() && options->maintenance_interval_seconds > 0;
         } catch (const std::exception&) {
           return false;
         }
       }},
  };
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg.rfind("--", 0) != 0 && arg.rfind("-", 0) == 0 && arg.size() > 1) {
      // Accept single-dash long flags like Go's flag package does.
    } else if (arg.rfind("--", 0) != 0) {
      *error = "unexpected argument '" + arg + "' (flags start with --)";
      return false;
    }
    std::string name = arg.substr(arg[1] == '-' ? 2 : 1);
    std::string value;
    bool has_value = false;
    if (const std::size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    if (name == "help" || name == "h") {
      options->help = true;
      continue;
    }
    if (name == "version") {
      options->version = true;
      continue;
    }
    if (const auto b = booleans.find(name); b != booleans.end()) {
      if (!has_value || value == "true") {
        *b->second = true;
      } else if (value == "false") {
        *b->second = false;
      } else {
        *error = "bad value '" + value + "' for --" + name + " (true or false)";
        return false;
      }
      continue;
    }
    const auto it = with_value.find(name);
    if (it == with_value.end()) {
      *error = "unknown flag --" + name + " (see --help)";
      return false;
    }
    if (!has_value) {
      if (i + 1 >= args.size()) {
        *error = "flag --" + name + " needs a value";
        return false;
      }
      value = args[++i];
    }
    if (!it->second(value)) {
      *error = "bad value '" + value + "' for --" + name;
      return false;
    }
  }
  return true;
}

}  // namespace eventbuffer::controller
