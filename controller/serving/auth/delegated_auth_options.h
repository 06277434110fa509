// DelegatedAuthOptions: the configuration of delegated authentication and authorization,
// with the meanings of k8s.io/apiserver's flags (as metrics-server and kube-rbac-proxy
// expose them):
//   --client-ca-file                               client_ca_file
//   --requestheader-client-ca-file                 requestheader_client_ca_file
//   --requestheader-allowed-names                  requestheader_allowed_names
//   --requestheader-username-headers               requestheader_username_headers
//   --requestheader-group-headers                  requestheader_group_headers
//   --requestheader-extra-headers-prefix           requestheader_extra_headers_prefix
//   --authentication-token-webhook-cache-ttl       token_cache_ttl
//   --authorization-webhook-cache-authorized-ttl   authorization_allowed_ttl
//   --authorization-webhook-cache-unauthorized-ttl authorization_denied_ttl
//   --authorization-always-allow-paths             always_allow_paths
//
// LoadAuthenticationConfigMap fills what the flags left unset from the ConfigMap
// kube-system/extension-apiserver-authentication, as k8s.io/apiserver does:
//  - client-ca-file (PEM text) → client_ca_pem, when client_ca_file is unset;
//  - requestheader-client-ca-file → requestheader_client_ca_pem, when
//    requestheader_client_ca_file is unset; then also requestheader-allowed-names,
//    -username-headers, -group-headers, -extra-headers-prefix (JSON arrays in strings) for
//    each of those lists the flags left empty. When the front-proxy CA came from a flag, the
//    ConfigMap's requestheader lists are not used: they describe the ConfigMap's CA.
// The header lists that are still empty afterwards get k8s's defaults (X-Remote-User,
// X-Remote-Group, X-Remote-Extra-) when the authenticator is built.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include "controller/serving/auth/review_client.h"

namespace eventbuffer::controller {

struct DelegatedAuthOptions {
  // Client certificates: a chain verifying against this bundle authenticates as CN, with
  // the O values as groups. A file path (flag) or PEM text (ConfigMap); the file wins.
  std::string client_ca_file;
  std::string client_ca_pem;

  // Front proxy (aggregation layer): a chain verifying against this bundle, whose leaf CN
  // is in requestheader_allowed_names (any CN when that is empty), may assert the user in
  // headers. A file path (flag) or PEM text (ConfigMap); the file wins.
  std::string requestheader_client_ca_file;
  std::string requestheader_client_ca_pem;
  std::vector<std::string> requestheader_allowed_names;
  std::vector<std::string> requestheader_username_headers;      // default {"X-Remote-User"}
  std::vector<std::string> requestheader_group_headers;         // default {"X-Remote-Group"}
  std::vector<std::string> requestheader_extra_headers_prefix;  // default {"X-Remote-Extra-"}

  // TokenReview answers: authenticated ones, and unauthenticated ones.
  std::chrono::milliseconds token_cache_ttl{10000};
  std::chrono::milliseconds token_cache_unauthenticated_ttl{10000};
  // SubjectAccessReview answers: allowed ones, and denied ones.
  std::chrono::milliseconds authorization_allowed_ttl{10000};
  std::chrono::milliseconds authorization_denied_ttl{10000};
  // A review that failed (no answer, non-2xx, unparsable) is remembered this long as a
  // failure (never as an answer); 0: not at all, the next request asks again.
  std::chrono::milliseconds review_error_ttl{0};
  // Bound of each review, whatever the ReviewClient does (DeadlineReviewClient).
  std::chrono::milliseconds review_timeout{10000};
  std::size_t max_reviews_in_flight = 256;
  // Entries per cache; the oldest stored go first.
  std::size_t cache_max_entries = 10000;

  // Paths served without authentication or authorization (exact, or a prefix when the
  // entry ends in '*', as k8s). Default: none.
  std::vector<std::string> always_allow_paths;
};

inline constexpr const char* kAuthenticationConfigMapPath =
    "/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication";

struct ConfigMapLoadResult {
  bool loaded = false;  // the ConfigMap was read and parsed
  // What went wrong when not loaded (not found, forbidden, unreachable, unparsable).
  std::string message;
  // The fields it filled, e.g. {"client-ca-file", "requestheader-client-ca-file"}.
  std::vector<std::string> filled;
};

// Reads the ConfigMap through `client` (Get) and fills `options` as described above. Never
// fails hard: when it cannot be read, `options` is unchanged, the result says why, and a
// warning is logged (token authentication still works without it).
ConfigMapLoadResult LoadAuthenticationConfigMap(ReviewClient* client,
                                                DelegatedAuthOptions* options);

// Fills *options from the ConfigMap JSON `body` (a core/v1 ConfigMap). False, with *error,
// when the body or one of its list values does not parse; `options` is then unchanged.
bool ApplyAuthenticationConfigMap(const std::string& body, DelegatedAuthOptions* options,
                                  std::vector<std::string>* filled, std::string* error);

}  // namespace eventbuffer::controller
