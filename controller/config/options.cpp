#include "controller/config/options.h"

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
  --health-probe-bind-address ADDR   address of /healthz, /readyz and the read API (default ":8081")
  --config PATH                      YAML configuration file (gray-release flag, retention);
                                     reloaded when it changes and on SIGHUP
  --log-format json|text             log line format (default "json")
  --log-level LEVEL                  trace, debug, info, warn, error or off (default "info")
  --check-config PATH                validate a configuration file: print OK or the error, exit 0/1
  --version                          print the version and exit
  --help                             print this help and exit
)";
}

bool ParseOptions(const std::vector<std::string>& args, Options* options, std::string* error) {
  using Setter = std::function<bool(const std::string&)>;
  const auto str = [](std::string* target) -> Setter {
    return [target](const std::string& v) {
      *target = v;
      return true;
    };
  };
  const std::map<std::string, Setter> with_value = {
      {"kubeconfig", str(&options->kubeconfig)},
      {"namespace", str(&options->namespace_name)},
      {"metrics-bind-address", str(&options->metrics_bind_address)},
      {"health-probe-bind-address", str(&options->health_probe_bind_address)},
      {"config", str(&options->config_path)},
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
