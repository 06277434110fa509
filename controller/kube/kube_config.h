// KubeConfig: where the API server is and how to authenticate to it, from either the
// in-cluster service-account environment or a kubeconfig file.
//
// In-cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT, and in the
// service-account directory (/var/run/secrets/kubernetes.io/serviceaccount) the files
// `token`, `ca.crt` and `namespace`.
// Kubeconfig: the current-context's cluster (server, certificate-authority or
// certificate-authority-data, insecure-skip-tls-verify) and user (token or tokenFile);
// relative file paths are resolved against the kubeconfig's directory, as kubectl does.
//
// Security: TLS trusts only the CA given here (never the system store). Skipping
// verification happens only when the kubeconfig says insecure-skip-tls-verify: true.
// The token itself is not kept here: only where to get it (token_file or static token,
// handed to TokenSource), and nothing in this struct is safe to log except Describe().
#pragma once

#include <functional>
#include <optional>
#include <string>

namespace eventbuffer::controller {

inline constexpr const char* kServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount";

struct KubeConfig {
  std::string server;  // e.g. "https://10.96.0.1:443" (no trailing slash)
  std::string ca_pem;  // PEM text of the cluster CA; empty only when insecure
  bool insecure_skip_tls_verify = false;
  std::string token;              // a static bearer token (kubeconfig `token`)
  std::string token_file;         // or a file to read it from (re-read on rotation)
  std::string default_namespace;  // in-cluster namespace file or the context's namespace
  std::string source;             // "in-cluster" or the kubeconfig path, for logs

  // A one-line description without secrets, for the startup log.
  std::string Describe() const;
};

// Reads an environment variable; replaceable in tests.
using GetEnv = std::function<std::optional<std::string>(const std::string& name)>;
GetEnv ProcessEnv();

// True when KUBERNETES_SERVICE_HOST is set (the process runs in a pod).
bool InClusterAvailable(const GetEnv& env);

// Loads the in-cluster configuration. `sa_dir` is the service-account directory. Returns
// false and sets *error (naming the missing variable or file) when it is incomplete.
bool LoadInClusterConfig(const GetEnv& env, const std::string& sa_dir, KubeConfig* out,
                         std::string* error);

// Loads the current-context of the kubeconfig at `path`. Returns false and sets *error
// (naming the file and the missing or bad entry) when it cannot be used.
bool LoadKubeconfig(const std::string& path, KubeConfig* out, std::string* error);

// Where the API server is, in the order client tools use: the kubeconfig at
// `kubeconfig_flag` when given, else the in-cluster config, else $KUBECONFIG. False, with
// *error, when none is there or the one chosen does not load.
bool ResolveKubeConfig(const std::string& kubeconfig_flag, const GetEnv& env, KubeConfig* out,
                       std::string* error);

// Decodes standard base64 (whitespace ignored). Returns false on invalid input.
bool DecodeBase64(const std::string& in, std::string* out);

}  // namespace eventbuffer::controller
