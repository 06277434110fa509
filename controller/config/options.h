// Options: the command-line flags of eventbuffer-controller.
//
//   --kubeconfig PATH                 kubeconfig to use (default: in-cluster, else $KUBECONFIG)
//   --namespace NS                    watch one namespace (default: all)
//   --metrics-bind-address ADDR       /metrics (default :8080; "0" disables)
//   --health-probe-bind-address ADDR  probes and read API (default :8081)
//   --config PATH                     YAML configuration (gray flag, retention); hot-reloaded
//   --log-format json|text            (default json)
//   --log-level trace|debug|info|warn|error|off   (default info)
//   --check-config PATH               validate a configuration file, print OK or the error
//   --version, --help
// Both "--flag value" and "--flag=value" are accepted.
#pragma once

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
  // Threads of cpprestsdk's shared pool (HTTP client and listener).
  int http_threads = 4;
};

// Parses argv[1..]. Returns false and sets *error (naming the flag) on an unknown flag, a
// missing value or a bad value.
bool ParseOptions(const std::vector<std::string>& args, Options* options, std::string* error);

// The --help text.
std::string Usage();

}  // namespace eventbuffer::controller
