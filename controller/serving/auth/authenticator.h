// Authenticator: who sent a request, in the order of k8s.io/apiserver's delegated
// authentication:
//  1. Front proxy: the client's chain verifies against the requestheader CA and, when
//     allowed names are configured, the leaf's CN is one of them. Then the user is the
//     first non-empty value of the username headers; groups are every value of the group
//     headers; extra are the headers with an extra prefix (key: the rest of the name,
//     lower-cased, percent-decoded). A verified front proxy with no user header does not
//     authenticate (the next steps run). Identity headers without such a certificate are
//     never read.
//  2. Client certificate: the chain verifies against the client CA; user = CN,
//     groups = O values. An empty CN does not authenticate.
//  3. Bearer token (Authorization: Bearer <token>): a TokenReview, cached by a keyed hash of
//     the token (HMAC-SHA256 with a per-process random key; the token is never stored or
//     logged in clear): authenticated answers for token_cache_ttl, unauthenticated ones for
//     token_cache_unauthenticated_ttl, failures for review_error_ttl (0: not cached).
//     Concurrent misses for one token share one review.
// A failed review (no answer, non-2xx, unparsable body) never authenticates: fail closed.
// Every authenticated user is also in group system:authenticated (added unless the user is
// system:anonymous or already in system:authenticated or system:unauthenticated), as the
// API server adds it, so that RBAC bound to that group (discovery) applies to certificate
// and front-proxy users too.
//
// Thread safety: Authenticate may be called from any thread at once.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "controller/serving/auth/auth_stats.h"
#include "controller/serving/auth/delegated_auth_options.h"
#include "controller/serving/auth/review_client.h"
#include "controller/serving/auth/single_flight_cache.h"
#include "controller/serving/auth/user_info.h"
#include "controller/serving/auth/x509_verifier.h"
#include "controller/serving/http_exchange.h"

namespace eventbuffer::controller {

enum class AuthnMethod { kNone, kFrontProxy, kX509, kToken };
// "frontproxy", "x509", "token", "none" (metric labels).
const char* AuthnMethodName(AuthnMethod method);

struct AuthnResult {
  bool authenticated = false;
  AuthnMethod method = AuthnMethod::kNone;
  UserInfo user;
  bool review_error = false;  // a TokenReview failed (the refusal is fail-closed)
  std::string reason;         // why not authenticated, for logs (no secrets)
};

inline constexpr const char* kTokenReviewPath = "/apis/authentication.k8s.io/v1/tokenreviews";

// Adds system:authenticated to `user`'s groups by the rule above.
void AddAuthenticatedGroup(UserInfo* user);

class Authenticator {
 public:
  using NowFn = std::function<std::chrono::steady_clock::time_point()>;

  // Reads the CA files of `options` (or their PEM text). Null, with *error naming the
  // file or bundle, when one is set but cannot be read or holds no certificate.
  // REQUIRES: client and counters outlive the authenticator.
  static std::unique_ptr<Authenticator> Create(const DelegatedAuthOptions& options,
                                               ReviewClient* client, AuthCounters* counters,
                                               NowFn now, std::string* error);
  Authenticator(const Authenticator&) = delete;
  Authenticator& operator=(const Authenticator&) = delete;

  AuthnResult Authenticate(const HttpRequest& request);

  // The TokenReview request body for `token` (for tests).
  static std::string TokenReviewBody(std::string_view token);

  // Implementation details follow.
 private:
  struct TokenAnswer {
    enum class State { kError, kAuthenticated, kUnauthenticated };
    State state = State::kError;  // a default answer is a failure (SingleFlightCache)
    UserInfo user;
    std::string message;  // status.error or the failure, for logs
  };

  Authenticator(ReviewClient* client, AuthCounters* counters, NowFn now,
                const DelegatedAuthOptions& options);
  bool FromFrontProxy(const HttpRequest& request, AuthnResult* result);
  bool FromClientCert(const HttpRequest& request, AuthnResult* result);
  bool FromToken(const HttpRequest& request, AuthnResult* result);
  TokenAnswer ReviewToken(std::string_view token);
  std::string TokenKey(std::string_view token) const;

  ReviewClient* const client_;
  AuthCounters* const counters_;
  std::unique_ptr<ClientCertVerifier> client_ca_;
  std::unique_ptr<ClientCertVerifier> front_proxy_ca_;
  std::vector<std::string> allowed_names_;
  std::vector<std::string> username_headers_;
  std::vector<std::string> group_headers_;
  std::vector<std::string> extra_prefixes_;
  std::chrono::milliseconds authenticated_ttl_;
  std::chrono::milliseconds unauthenticated_ttl_;
  std::chrono::milliseconds error_ttl_;
  unsigned char hash_key_[32];
  SingleFlightCache<TokenAnswer> cache_;
  ReviewErrorLog error_log_;
};

}  // namespace eventbuffer::controller
