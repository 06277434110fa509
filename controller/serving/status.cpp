#include "controller/serving/status.h"

#include <utility>

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

std::string StatusJson(int code, std::string_view message, std::string_view reason,
                       const StatusDetails* details) {
  if (reason.empty()) reason = StatusReasonForCode(code);
  std::string out =
      R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":)";
  AppendJsonString(&out, message);
  if (!reason.empty()) {
    out += ",\"reason\":";
    AppendJsonString(&out, reason);
  }
  if (details != nullptr) {
    out += ",\"details\":{";
    bool first = true;
    for (const auto& [key, value] : {std::pair<std::string_view, std::string_view>{"name", details->name},
                                     {"group", details->group},
                                     {"kind", details->kind}}) {
      if (value.empty()) continue;
      if (!first) out += ',';
      first = false;
      AppendJsonKey(&out, key);
      AppendJsonString(&out, value);
    }
    out += '}';
  }
  out += ",\"code\":" + std::to_string(code) + "}";
  return out;
}

}  // namespace eventbuffer::controller
