// Kubernetes `Status` objects (meta/v1), the body of every error the controller serves, so
// that kubectl and client libraries print them as they print the API server's own:
//   {"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
//    "message":"...","reason":"Forbidden","code":403}
#pragma once

#include <string>
#include <string_view>

namespace eventbuffer::controller {

// The StatusReason Kubernetes uses for an HTTP status code: 400 BadRequest,
// 401 Unauthorized, 403 Forbidden, 404 NotFound, 405 MethodNotAllowed, 406 NotAcceptable,
// 410 Expired, 413 RequestEntityTooLarge, 422 Invalid, 429 TooManyRequests, 500 InternalError,
// 503 ServiceUnavailable, 504 Timeout; "" for anything else.
std::string_view StatusReasonForCode(int code);

// What a Status is about (meta/v1 StatusDetails): for a resource, its API group, its
// resource ("kind", as the API server fills it) and the object's name; empty fields are
// left out, and an all-empty one is sent as {} (as the API server does for a refused
// non-resource path).
struct StatusDetails {
  std::string_view name;
  std::string_view group;
  std::string_view kind;
};

// A failure Status as JSON. `reason` empty: StatusReasonForCode(code). `details` null: no
// details field.
std::string StatusJson(int code, std::string_view message, std::string_view reason = {},
                       const StatusDetails* details = nullptr);

}  // namespace eventbuffer::controller
