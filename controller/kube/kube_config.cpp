#include "controller/kube/kube_config.h"

#include <yaml-cpp/yaml.h>

#include <array>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "controller/file_text.h"

namespace eventbuffer::controller {

namespace {

std::string TrimSpace(const std::string& s) {
  std::size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  std::size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

// Looks up the entry named `name` in a kubeconfig list (clusters, users, contexts) and
// returns its `field` map (cluster, user, context).
YAML::Node FindNamed(const YAML::Node& list, const std::string& name, const char* field) {
  if (!list || !list.IsSequence()) return YAML::Node();
  for (const auto& item : list) {
    if (item["name"] && item["name"].IsScalar() && item["name"].as<std::string>() == name) {
      return item[field];
    }
  }
  return YAML::Node();
}

std::string ScalarOr(const YAML::Node& node, const char* key, const std::string& fallback = "") {
  if (!node || !node.IsMap()) return fallback;
  const YAML::Node value = node[key];
  if (!value || !value.IsScalar()) return fallback;
  return value.as<std::string>();
}

std::string Resolve(const std::filesystem::path& base_dir, const std::string& path) {
  if (path.empty()) return path;
  std::filesystem::path p(path);
  if (p.is_absolute()) return path;
  return (base_dir / p).string();
}

}  // namespace

std::string KubeConfig::Describe() const {
  std::string d = "server=" + server + " source=" + source;
  d += " auth=";
  d += !token_file.empty() ? "tokenFile" : (!token.empty() ? "token" : "none");
  d += insecure_skip_tls_verify ? " tls=INSECURE-SKIP-VERIFY" : " tls=cluster-ca";
  if (!default_namespace.empty()) d += " namespace=" + default_namespace;
  return d;
}

GetEnv ProcessEnv() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
}

bool InClusterAvailable(const GetEnv& env) {
  const auto host = env("KUBERNETES_SERVICE_HOST");
  return host.has_value() && !host->empty();
}

bool LoadInClusterConfig(const GetEnv& env, const std::string& sa_dir, KubeConfig* out,
                         std::string* error) {
  const auto host = env("KUBERNETES_SERVICE_HOST");
  const auto port = env("KUBERNETES_SERVICE_PORT");
  if (!host || host->empty() || !port || port->empty()) {
    *error = "in-cluster config: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set";
    return false;
  }
  KubeConfig config;
  // An IPv6 service address needs brackets in a URL.
  const bool ipv6 = host->find(':') != std::string::npos;
  config.server = "https://" + (ipv6 ? "[" + *host + "]" : *host) + ":" + *port;
  const std::string ca_path = sa_dir + "/ca.crt";
  if (!ReadFileText(ca_path, &config.ca_pem) || config.ca_pem.empty()) {
    *error = "in-cluster config: cannot read the cluster CA " + ca_path;
    return false;
  }
  config.token_file = sa_dir + "/token";
  std::string probe;
  if (!ReadFileText(config.token_file, &probe)) {
    *error = "in-cluster config: cannot read the service-account token " + config.token_file;
    return false;
  }
  std::string ns;
  if (ReadFileText(sa_dir + "/namespace", &ns)) config.default_namespace = TrimSpace(ns);
  config.source = "in-cluster";
  *out = std::move(config);
  return true;
}

bool LoadKubeconfig(const std::string& path, KubeConfig* out, std::string* error) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    *error = "kubeconfig " + path + ": cannot read the file";
    return false;
  } catch (const YAML::Exception& e) {
    *error = "kubeconfig " + path + ": invalid YAML: " + e.what();
    return false;
  }
  const std::filesystem::path base_dir = std::filesystem::path(path).parent_path();
  const auto fail = [&](const std::string& what) {
    *error = "kubeconfig " + path + ": " + what;
    return false;
  };
  try {
    const std::string context_name = ScalarOr(root, "current-context");
    if (context_name.empty()) return fail("no current-context");
    const YAML::Node context = FindNamed(root["contexts"], context_name, "context");
    if (!context || !context.IsMap()) return fail("context '" + context_name + "' not found");
    const std::string cluster_name = ScalarOr(context, "cluster");
    const YAML::Node cluster = FindNamed(root["clusters"], cluster_name, "cluster");
    if (!cluster || !cluster.IsMap()) return fail("cluster '" + cluster_name + "' not found");

    KubeConfig config;
    config.source = path;
    config.server = ScalarOr(cluster, "server");
    while (!config.server.empty() && config.server.back() == '/') config.server.pop_back();
    if (config.server.empty()) return fail("cluster '" + cluster_name + "' has no server");
    if (config.server.rfind("https://", 0) != 0 && config.server.rfind("http://", 0) != 0) {
      return fail("server '" + config.server + "' is not an http(s) URL");
    }
    config.insecure_skip_tls_verify = ScalarOr(cluster, "insecure-skip-tls-verify") == "true";
    const std::string ca_data = ScalarOr(cluster, "certificate-authority-data");
    const std::string ca_file = ScalarOr(cluster, "certificate-authority");
    if (!ca_data.empty()) {
      if (!DecodeBase64(ca_data, &config.ca_pem)) {
        return fail("certificate-authority-data is not valid base64");
      }
    } else if (!ca_file.empty()) {
      const std::string resolved = Resolve(base_dir, ca_file);
      if (!ReadFileText(resolved, &config.ca_pem)) {
        return fail("cannot read certificate-authority " + resolved);
      }
    }
    if (config.server.rfind("https://", 0) == 0 && config.ca_pem.empty() &&
        !config.insecure_skip_tls_verify) {
      return fail("cluster '" + cluster_name +
                  "' has neither certificate-authority(-data) nor insecure-skip-tls-verify");
    }
    config.default_namespace = ScalarOr(context, "namespace");

    const std::string user_name = ScalarOr(context, "user");
    if (!user_name.empty()) {
      const YAML::Node user = FindNamed(root["users"], user_name, "user");
      if (!user || !user.IsMap()) return fail("user '" + user_name + "' not found");
      config.token = ScalarOr(user, "token");
      const std::string token_file = ScalarOr(user, "tokenFile");
      if (!token_file.empty()) config.token_file = Resolve(base_dir, token_file);
      if (config.token.empty() && config.token_file.empty()) {
        if (user["client-certificate"] || user["client-certificate-data"] || user["exec"] ||
            user["auth-provider"]) {
          return fail("user '" + user_name +
                      "': only token and tokenFile authentication are supported");
        }
      }
    }
    *out = std::move(config);
    return true;
  } catch (const YAML::Exception& e) {
    return fail(std::string("unexpected structure: ") + e.what());
  }
}

bool DecodeBase64(const std::string& in, std::string* out) {
  static constexpr auto kTable = [] {
    std::array<signed char, 256> t{};
    for (auto& v : t) v = -1;
    const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int i = 0; i < 64; ++i)
      t[static_cast<unsigned char>(alphabet[i])] = static_cast<signed char>(i);
    return t;
  }();
  out->clear();
  std::uint32_t acc = 0;
  int bits = 0;
  int pad = 0;
  for (char c : in) {
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    if (c == '=') {
      ++pad;
      continue;
    }
    if (pad > 0) return false;  // data after padding
    const signed char v = kTable[static_cast<unsigned char>(c)];
    if (v < 0) return false;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  return pad <= 2 && bits < 6;
}

bool ResolveKubeConfig(const std::string& kubeconfig_flag, const GetEnv& env, KubeConfig* out,
                       std::string* error) {
  if (!kubeconfig_flag.empty()) return LoadKubeconfig(kubeconfig_flag, out, error);
  if (InClusterAvailable(env)) return LoadInClusterConfig(env, kServiceAccountDir, out, error);
  if (auto path = env("KUBECONFIG"); path && !path->empty()) {
    return LoadKubeconfig(*path, out, error);
  }
  *error = "no cluster: pass --kubeconfig PATH, set KUBECONFIG, or run in a pod";
  return false;
}

}  // namespace eventbuffer::controller
