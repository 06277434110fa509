#include "controller/serving/auth/authorizer.h"

#include <simdjson.h>

#include <algorithm>
#include <cstdio>

#include "controller/json_text.h"

namespace eventbuffer::controller {

namespace {

// Go's %q for the strings in a forbidden message: quotes, backslashes and control bytes
// escaped (the whole message is JSON-escaped again in the Status body).
std::string Quote(std::string_view s) {
  std::string out = "\"";
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", u);
      out += buf;
    } else {
      out += c;
    }
  }
  out += '"';
  return out;
}

void AppendField(std::string* out, bool* first, std::string_view key, std::string_view value) {
  if (value.empty()) return;  // omitempty
  if (!*first) *out += ',';
  *first = false;
  AppendJsonKey(out, key);
  AppendJsonString(out, value);
}

void AppendStringArray(std::string* out, const std::vector<std::string>& values) {
  *out += '[';
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i > 0) *out += ',';
    AppendJsonString(out, values[i]);
  }
  *out += ']';
}

// An unambiguous cache key: every field length-prefixed.
void AppendKeyPart(std::string* key, std::string_view part) {
  *key += std::to_string(part.size());
  *key += ':';
  *key += part;
}

std::string CacheKey(const UserInfo& user, const RequestAttributes& a) {
  std::string key;
  AppendKeyPart(&key, user.name);
  AppendKeyPart(&key, user.uid);
  AppendKeyPart(&key, std::to_string(user.groups.size()));
  for (const std::string& g : user.groups) AppendKeyPart(&key, g);
  AppendKeyPart(&key, std::to_string(user.extra.size()));
  for (const auto& [k, values] : user.extra) {
    AppendKeyPart(&key, k);
    AppendKeyPart(&key, std::to_string(values.size()));
    for (const std::string& v : values) AppendKeyPart(&key, v);
  }
  AppendKeyPart(&key, a.resource_request ? "r" : "n");
  AppendKeyPart(&key, a.verb);
  if (a.resource_request) {
    AppendKeyPart(&key, a.namespace_name);
    AppendKeyPart(&key, a.group);
    AppendKeyPart(&key, a.version);
    AppendKeyPart(&key, a.resource);
    AppendKeyPart(&key, a.subresource);
    AppendKeyPart(&key, a.name);
  } else {
    AppendKeyPart(&key, a.path);
  }
  return key;
}

}  // namespace

std::string ForbiddenMessage(const UserInfo& user, const RequestAttributes& a,
                             std::string_view reason) {
  std::string detail = "User " + Quote(user.name) + " cannot " + a.verb;
  std::string prefix;
  if (!a.resource_request) {
    detail += " path " + Quote(a.path);
    prefix = "forbidden: ";
  } else {
    std::string resource = a.resource;
    if (!a.subresource.empty()) resource += "/" + a.subresource;
    detail += " resource " + Quote(resource) + " in API group " + Quote(a.group);
    detail += a.namespace_name.empty() ? " at the cluster scope"
                                       : " in the namespace " + Quote(a.namespace_name);
    // The qualified resource ("events.eventbuffer.dev", or "pods" in the core group), and
    // the name when there is one, as the API server's NewForbidden.
    prefix = a.group.empty() ? a.resource : a.resource + "." + a.group;
    if (!a.name.empty()) prefix += " " + Quote(a.name);
    prefix += " is forbidden: ";
  }
  if (!reason.empty()) {
    detail += ": ";
    detail += reason;
  }
  return prefix + detail;
}

Authorizer::Authorizer(const DelegatedAuthOptions& options, ReviewClient* client,
                       AuthCounters* counters, NowFn now)
    : client_(client),
      counters_(counters),
      allowed_ttl_(options.authorization_allowed_ttl),
      denied_ttl_(options.authorization_denied_ttl),
      error_ttl_(options.review_error_ttl),
      cache_(std::max<std::size_t>(options.cache_max_entries, 1), std::move(now)) {}

std::string Authorizer::SubjectAccessReviewBody(const UserInfo& user, const RequestAttributes& a) {
  std::string body =
      R"({"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview","spec":{)";
  bool first = true;
  AppendField(&body, &first, "user", user.name);
  AppendField(&body, &first, "uid", user.uid);
  if (!user.groups.empty()) {
    if (!first) body += ',';
    first = false;
    AppendJsonKey(&body, "groups");
    AppendStringArray(&body, user.groups);
  }
  if (!user.extra.empty()) {
    if (!first) body += ',';
    first = false;
    AppendJsonKey(&body, "extra");
    body += '{';
    bool first_extra = true;
    for (const auto& [key, values] : user.extra) {
      if (!first_extra) body += ',';
      first_extra = false;
      AppendJsonKey(&body, key);
      AppendStringArray(&body, values);
    }
    body += '}';
  }
  if (!first) body += ',';
  bool first_attr = true;
  if (a.resource_request) {
    AppendJsonKey(&body, "resourceAttributes");
    body += '{';
    AppendField(&body, &first_attr, "namespace", a.namespace_name);
    AppendField(&body, &first_attr, "verb", a.verb);
    AppendField(&body, &first_attr, "group", a.group);
    AppendField(&body, &first_attr, "version", a.version);
    AppendField(&body, &first_attr, "resource", a.resource);
    AppendField(&body, &first_attr, "subresource", a.subresource);
    AppendField(&body, &first_attr, "name", a.name);
  } else {
    AppendJsonKey(&body, "nonResourceAttributes");
    body += '{';
    AppendField(&body, &first_attr, "path", a.path);
    AppendField(&body, &first_attr, "verb", a.verb);
  }
  body += "}}}";
  return body;
}

AuthzResult Authorizer::Authorize(const UserInfo& user, const RequestAttributes& attributes) {
  SingleFlightCache<Answer>::Outcome outcome;
  const Answer answer = cache_.Get(
      CacheKey(user, attributes), [&] { return Review(user, attributes); },
      [this](const Answer& a) -> SingleFlightCache<Answer>::Clock::duration {
        switch (a.state) {
          case Answer::State::kAllowed:
            return allowed_ttl_;
          case Answer::State::kDenied:
            return denied_ttl_;
          case Answer::State::kError:
            break;
        }
        return error_ttl_;
      },
      &outcome);
  AuthCounters::AddLookup(outcome, counters_->sar_cache_hits, counters_->sar_cache_coalesced,
                          counters_->sar_cache_misses);
  AuthzResult result;
  result.reason = answer.reason;
  if (answer.state == Answer::State::kAllowed) {
    AuthCounters::Add(counters_->allowed);
    result.allowed = true;
    return result;
  }
  AuthCounters::Add(counters_->denied);
  result.review_error = answer.state == Answer::State::kError;
  // A failed review says so without its details (they are in the log).
  result.message = ForbiddenMessage(
      user, attributes, result.review_error ? "the authorization check failed" : answer.reason);
  return result;
}

Authorizer::Answer Authorizer::Review(const UserInfo& user, const RequestAttributes& attributes) {
  Answer answer;
  auto fail = [&](std::string message) {
    AuthCounters::Add(counters_->sar_errors);
    error_log_.Warn("SubjectAccessReview failed: " + message);
    answer.state = Answer::State::kError;
    answer.reason = "SubjectAccessReview failed: " + message;
    return answer;
  };
  simdjson::dom::parser parser;
  simdjson::dom::object status;
  if (std::string error = PostReview(client_, kSubjectAccessReviewPath,
                                     SubjectAccessReviewBody(user, attributes), &parser, &status);
      !error.empty()) {
    return fail(std::move(error));
  }
  bool allowed = false;
  bool denied = false;
  simdjson::dom::element value;
  if (status["allowed"].get(value) == simdjson::SUCCESS &&
      value.get(allowed) != simdjson::SUCCESS) {
    return fail("unparsable answer (status.allowed)");
  }
  if (status["denied"].get(value) == simdjson::SUCCESS && value.get(denied) != simdjson::SUCCESS) {
    return fail("unparsable answer (status.denied)");
  }
  std::string_view reason;
  if (status["reason"].get(reason) == simdjson::SUCCESS) answer.reason = std::string(reason);
  answer.state = allowed && !denied ? Answer::State::kAllowed : Answer::State::kDenied;
  return answer;
}

}  // namespace eventbuffer::controller
