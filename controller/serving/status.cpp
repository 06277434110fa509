#include "controller/serving/status.h"

#include "controller/json_text.h"

namespace eventbuffer::controller {

std::string_view StatusReasonForCode(int code) {
  switch (code) {
    case 400:
      return "BadRequest";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "NotFound";
    case 405:
      return "MethodNotAllowed";
    case 406:
      return "NotAcceptable";
    case 410:
      return "Expired";
    case 413:
      return "RequestEntityTooLarge";
    case 422:
      return "Invalid";
    case 429:
      return "TooManyRequests";
    case 500:
      return "InternalError";
    case 503:
      return "ServiceUnavailable";
    case 504:
      return "Timeout";
    default:
      return "";
  }
}

std::string StatusJson(int code, std::string_view message, std::string_view reason) {
  if (reason.empty()) reason = StatusReasonForCode(code);
  std::string out =
      R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":)";
  AppendJsonString(&out, message);
  if (!reason.empty()) {
    out += ",\"reason\":";
    AppendJsonString(&out, reason);
  }
  out += ",\"code\":" + std::to_string(code) + "}";
  return out;
}

}  // namespace eventbuffer::controller
