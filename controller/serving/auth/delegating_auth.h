// DelegatingAuth: authentication and authorization of every request on the secure port,
// delegated to the Kubernetes API server as aggregated API servers (metrics-server,
// kube-rbac-proxy) do it: Authenticator (front proxy, client certificate, TokenReview),
// then Authorizer (SubjectAccessReview), both cached.
//
//   auth = DelegatingAuth::Create(options, &review_client, &error);
//   AuthResult r = auth->Check(request);
//   if (!r.allowed) writer.Send(r.http_status, "application/json", r.body);
//
// Refusals: 401 with a Status "Unauthorized" when no credential authenticates (also when a
// TokenReview failed), 403 with the API server's forbidden message when the review denies
// or fails. Requests to always_allow_paths skip both.
// Every review goes through a DeadlineReviewClient (options.review_timeout), so a hanging
// API server fails closed in bounded time.
//
// Thread safety: Check and Stats may be called from any thread at once.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "controller/serving/auth/auth_stats.h"
#include "controller/serving/auth/authenticator.h"
#include "controller/serving/auth/authorizer.h"
#include "controller/serving/auth/delegated_auth_options.h"
#include "controller/serving/auth/request_info.h"
#include "controller/serving/auth/review_client.h"
#include "controller/serving/auth/user_info.h"
#include "controller/serving/http_exchange.h"

namespace eventbuffer::controller {

struct AuthResult {
  bool allowed = false;
  int http_status = 200;  // 401 or 403 when not allowed
  std::string body;       // the Status JSON when not allowed
  UserInfo user;          // who, when authenticated (for logs)
  AuthnMethod method = AuthnMethod::kNone;
  RequestAttributes attributes;
  std::string reason;  // why refused, for logs (no secrets)
};

class DelegatingAuth {
 public:
  using NowFn = std::function<std::chrono::steady_clock::time_point()>;

  // Builds authentication and authorization from `options` (CA files are read now). Null,
  // with *error, when a configured CA bundle cannot be read or parsed.
  // `now` is the clock of the caches, replaceable in tests.
  // REQUIRES: client outlives the result.
  static std::unique_ptr<DelegatingAuth> Create(
      const DelegatedAuthOptions& options, ReviewClient* client, std::string* error,
      NowFn now = [] { return std::chrono::steady_clock::now(); });
  // Waits for reviews still running on their threads (bounded by the client's timeout).
  ~DelegatingAuth();
  DelegatingAuth(const DelegatingAuth&) = delete;
  DelegatingAuth& operator=(const DelegatingAuth&) = delete;

  AuthResult Check(const HttpRequest& request);

  AuthStats Stats() const { return counters_.Snapshot(); }

  // Implementation details follow.
 private:
  DelegatingAuth(const DelegatedAuthOptions& options, ReviewClient* client);
  bool AlwaysAllowed(const std::string& path) const;

  std::vector<std::string> always_allow_paths_;
  AuthCounters counters_;
  // Declared before the authenticator and authorizer, so destroyed after them.
  DeadlineReviewClient deadline_client_;
  std::unique_ptr<Authenticator> authenticator_;
  std::unique_ptr<Authorizer> authorizer_;
};

}  // namespace eventbuffer::controller
