#include "controller/serving/auth/delegating_auth.h"

#include <algorithm>

#include "controller/serving/status.h"

namespace eventbuffer::controller {

std::unique_ptr<DelegatingAuth> DelegatingAuth::Create(const DelegatedAuthOptions& options,
                                                       ReviewClient* client, std::string* error,
                                                       NowFn now) {
  std::unique_ptr<DelegatingAuth> auth(new DelegatingAuth(options, client));
  auth->authenticator_ =
      Authenticator::Create(options, &auth->deadline_client_, &auth->counters_, now, error);
  if (!auth->authenticator_) return nullptr;
  auth->authorizer_ = std::make_unique<Authorizer>(options, &auth->deadline_client_,
                                                   &auth->counters_, std::move(now));
  return auth;
}

DelegatingAuth::DelegatingAuth(const DelegatedAuthOptions& options, ReviewClient* client)
    : always_allow_paths_(options.always_allow_paths),
      deadline_client_(client, options.review_timeout,
                       std::max<std::size_t>(options.max_reviews_in_flight, 1)) {}

DelegatingAuth::~DelegatingAuth() = default;

bool DelegatingAuth::AlwaysAllowed(const std::string& path) const {
  for (const std::string& allowed : always_allow_paths_) {
    if (!allowed.empty() && allowed.back() == '*') {
      if (path.compare(0, allowed.size() - 1, allowed, 0, allowed.size() - 1) == 0) return true;
    } else if (path == allowed) {
      return true;
    }
  }
  return false;
}

AuthResult DelegatingAuth::Check(const HttpRequest& request) {
  AuthResult result;
  result.attributes = ParseRequestAttributes(request.method, request.path, request.query);
  if (AlwaysAllowed(result.attributes.path)) {
    AuthCounters::Add(counters_.always_allowed);
    result.allowed = true;
    return result;
  }

  AuthnResult authn = authenticator_->Authenticate(request);
  if (!authn.authenticated) {
    AuthCounters::Add(counters_.unauthenticated);
    result.http_status = 401;
    result.body = StatusJson(401, "Unauthorized");
    result.reason = std::move(authn.reason);
    return result;
  }
  result.user = std::move(authn.user);
  result.method = authn.method;

  AuthzResult authz = authorizer_->Authorize(result.user, result.attributes);
  if (!authz.allowed) {
    result.http_status = 403;
    // As the API server: the group, resource and name refused ({} for a path).
    const RequestAttributes& a = result.attributes;
    const StatusDetails details =
        a.resource_request ? StatusDetails{a.name, a.group, a.resource} : StatusDetails{};
    result.body = StatusJson(403, authz.message, {}, &details);
    result.reason = authz.review_error ? authz.reason : authz.message;
    return result;
  }
  result.allowed = true;
  return result;
}

}  // namespace eventbuffer::controller
