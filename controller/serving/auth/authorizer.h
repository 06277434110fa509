// Authorizer: may this user do this request? Asked of the API server with a
// SubjectAccessReview (authorization.k8s.io/v1) for every request, as k8s.io/apiserver's
// delegated authorization does:
//   spec: user, uid, groups, extra, and resourceAttributes {namespace, verb, group,
//   version, resource, subresource, name} or nonResourceAttributes {path, verb}
//   (empty fields omitted, as the API's omitempty does).
// status.allowed true (and status.denied not true) allows; any other answer denies, and a
// failed review (no answer, non-2xx, unparsable body) denies too: fail closed.
// Answers are cached by the whole (user, uid, groups, extra, attributes) key: allowed ones
// for authorization_allowed_ttl, denied ones for authorization_denied_ttl, failures for
// review_error_ttl (0: not cached). Concurrent misses for one key share one review.
//
// Thread safety: Authorize may be called from any thread at once.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "controller/serving/auth/auth_stats.h"
#include "controller/serving/auth/delegated_auth_options.h"
#include "controller/serving/auth/request_info.h"
#include "controller/serving/auth/review_client.h"
#include "controller/serving/auth/single_flight_cache.h"
#include "controller/serving/auth/user_info.h"

namespace eventbuffer::controller {

struct AuthzResult {
  bool allowed = false;
  bool review_error = false;  // the review failed (the refusal is fail-closed)
  std::string reason;         // status.reason of the review, or why it failed
  // When not allowed: the message of the 403 Status, as the API server words it.
  std::string message;
};

inline constexpr const char* kSubjectAccessReviewPath =
    "/apis/authorization.k8s.io/v1/subjectaccessreviews";

class Authorizer {
 public:
  using NowFn = std::function<std::chrono::steady_clock::time_point()>;

  // REQUIRES: client and counters outlive the authorizer.
  Authorizer(const DelegatedAuthOptions& options, ReviewClient* client, AuthCounters* counters,
             NowFn now);
  Authorizer(const Authorizer&) = delete;
  Authorizer& operator=(const Authorizer&) = delete;

  AuthzResult Authorize(const UserInfo& user, const RequestAttributes& attributes);

  // The SubjectAccessReview request body (for tests).
  static std::string SubjectAccessReviewBody(const UserInfo& user,
                                             const RequestAttributes& attributes);

  // Implementation details follow.
 private:
  struct Answer {
    enum class State { kError, kAllowed, kDenied };
    State state = State::kError;  // a default answer is a failure (SingleFlightCache)
    std::string reason;
  };
  Answer Review(const UserInfo& user, const RequestAttributes& attributes);

  ReviewClient* const client_;
  AuthCounters* const counters_;
  std::chrono::milliseconds allowed_ttl_;
  std::chrono::milliseconds denied_ttl_;
  std::chrono::milliseconds error_ttl_;
  SingleFlightCache<Answer> cache_;
  ReviewErrorLog error_log_;
};

// The message of a 403 for `attributes`, worded as the API server words it, e.g.
//   events.eventbuffer.dev is forbidden: User "alice" cannot list resource "events" in API
//   group "eventbuffer.dev" in the namespace "b"
//   forbidden: User "alice" cannot get path "/metrics"
// with ": <reason>" appended when `reason` is not empty.
std::string ForbiddenMessage(const UserInfo& user, const RequestAttributes& attributes,
                             std::string_view reason);

}  // namespace eventbuffer::controller
