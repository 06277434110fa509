#include "controller/serving/auth/authenticator.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <simdjson.h>
#include <strings.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <sstream>

#include "controller/file_text.h"
#include "controller/json_text.h"
#include "controller/serving/auth/request_info.h"

namespace eventbuffer::controller {

namespace {

// A verifier for the bundle in `file` (preferred) or `pem`; null without error when
// neither is set.
bool LoadBundle(const std::string& file, const std::string& pem, const char* what,
                std::unique_ptr<ClientCertVerifier>* out, std::string* error) {
  std::string text = pem;
  std::string source = "the ConfigMap";
  if (!file.empty()) {
    source = file;
    if (!ReadFileText(file, &text)) {
      *error = std::string(what) + ": cannot read " + file;
      return false;
    }
  }
  if (text.empty()) return true;
  std::string why;
  *out = ClientCertVerifier::FromPem(text, &why);
  if (!*out) {
    *error = std::string(what) + " from " + source + ": " + why;
    return false;
  }
  return true;
}

std::vector<std::string> TrimmedNonEmpty(const std::vector<std::string>& in,
                                         std::vector<std::string> fallback) {
  std::vector<std::string> out;
  for (const std::string& s : in) {
    const auto b = s.find_first_not_of(" \t");
    if (b == std::string::npos) continue;
    const auto e = s.find_last_not_of(" \t");
    out.push_back(s.substr(b, e - b + 1));
  }
  return out.empty() ? fallback : out;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool ParseStrings(simdjson::dom::element element, std::vector<std::string>* out) {
  simdjson::dom::array array;
  if (element.get(array) != simdjson::SUCCESS) return false;
  for (simdjson::dom::element item : array) {
    std::string_view s;
    if (item.get(s) != simdjson::SUCCESS) return false;
    out->emplace_back(s);
  }
  return true;
}

}  // namespace

const char* AuthnMethodName(AuthnMethod method) {
  switch (method) {
    case AuthnMethod::kFrontProxy:
      return "frontproxy";
    case AuthnMethod::kX509:
      return "x509";
    case AuthnMethod::kToken:
      return "token";
    case AuthnMethod::kNone:
      break;
  }
  return "none";
}

std::unique_ptr<Authenticator> Authenticator::Create(const DelegatedAuthOptions& options,
                                                     ReviewClient* client, AuthCounters* counters,
                                                     NowFn now, std::string* error) {
  std::unique_ptr<Authenticator> authn(
      new Authenticator(client, counters, std::move(now), options));
  if (!LoadBundle(options.client_ca_file, options.client_ca_pem, "client CA", &authn->client_ca_,
                  error) ||
      !LoadBundle(options.requestheader_client_ca_file, options.requestheader_client_ca_pem,
                  "requestheader client CA", &authn->front_proxy_ca_, error)) {
    return nullptr;
  }
  if (RAND_bytes(authn->hash_key_, sizeof(authn->hash_key_)) != 1) {
    *error = "no randomness for the token cache key";
    return nullptr;
  }
  return authn;
}

Authenticator::Authenticator(ReviewClient* client, AuthCounters* counters, NowFn now,
                             const DelegatedAuthOptions& options)
    : client_(client),
      counters_(counters),
      allowed_names_(options.requestheader_allowed_names),
      username_headers_(TrimmedNonEmpty(options.requestheader_username_headers, {"X-Remote-User"})),
      group_headers_(TrimmedNonEmpty(options.requestheader_group_headers, {"X-Remote-Group"})),
      extra_prefixes_(
          TrimmedNonEmpty(options.requestheader_extra_headers_prefix, {"X-Remote-Extra-"})),
      authenticated_ttl_(options.token_cache_ttl),
      unauthenticated_ttl_(options.token_cache_unauthenticated_ttl),
      error_ttl_(options.review_error_ttl),
      hash_key_{},
      cache_(std::max<std::size_t>(options.cache_max_entries, 1), std::move(now)) {}

void AddAuthenticatedGroup(UserInfo* user) {
  if (user->name == "system:anonymous") return;
  for (const std::string& group : user->groups) {
    if (group == "system:authenticated" || group == "system:unauthenticated") return;
  }
  user->groups.emplace_back("system:authenticated");
}

AuthnResult Authenticator::Authenticate(const HttpRequest& request) {
  AuthnResult result;
  if (FromFrontProxy(request, &result) || FromClientCert(request, &result) ||
      FromToken(request, &result)) {
    result.authenticated = true;
    result.reason.clear();
    AddAuthenticatedGroup(&result.user);
    return result;
  }
  if (result.reason.empty()) result.reason = "no credentials";
  return result;
}

bool Authenticator::FromFrontProxy(const HttpRequest& request, AuthnResult* result) {
  if (!front_proxy_ca_ || request.peer_certificates_der.empty()) return false;
  CertIdentity id;
  std::string error;
  if (!front_proxy_ca_->Verify(request.peer_certificates_der, &id, &error)) {
    return false;  // not a front proxy; maybe a client certificate
  }
  if (!allowed_names_.empty() && std::find(allowed_names_.begin(), allowed_names_.end(),
                                           id.common_name) == allowed_names_.end()) {
    AuthCounters::Add(counters_->frontproxy_failure);
    result->reason = "front-proxy certificate CN \"" + id.common_name + "\" is not allowed";
    return false;
  }
  UserInfo user;
  for (const std::string& header : username_headers_) {
    for (const auto& [name, value] : request.headers) {
      if (EqualsIgnoreCase(name, header) && !value.empty()) {
        user.name = value;
        break;
      }
    }
    if (!user.name.empty()) break;
  }
  if (user.name.empty()) {
    AuthCounters::Add(counters_->frontproxy_failure);
    result->reason = "front-proxy request without a user header";
    return false;
  }
  for (const std::string& header : group_headers_) {
    for (const auto& [name, value] : request.headers) {
      if (EqualsIgnoreCase(name, header) && !value.empty()) user.groups.push_back(value);
    }
  }
  for (const std::string& prefix : extra_prefixes_) {
    for (const auto& [name, value] : request.HeadersWithPrefix(prefix)) {
      const std::string key = PercentDecode(Lower(name.substr(prefix.size())));
      if (key.empty()) continue;
      user.extra[key].emplace_back(value);
    }
  }
  AuthCounters::Add(counters_->frontproxy_success);
  result->method = AuthnMethod::kFrontProxy;
  result->user = std::move(user);
  return true;
}

bool Authenticator::FromClientCert(const HttpRequest& request, AuthnResult* result) {
  if (!client_ca_ || request.peer_certificates_der.empty()) return false;
  CertIdentity id;
  std::string error;
  if (!client_ca_->Verify(request.peer_certificates_der, &id, &error)) {
    AuthCounters::Add(counters_->x509_failure);
    result->reason = "client certificate: " + error;
    return false;
  }
  if (id.common_name.empty()) {
    AuthCounters::Add(counters_->x509_failure);
    result->reason = "client certificate without a common name";
    return false;
  }
  result->method = AuthnMethod::kX509;
  result->user = UserInfo{};
  result->user.name = std::move(id.common_name);
  result->user.groups = std::move(id.organizations);
  AuthCounters::Add(counters_->x509_success);
  return true;
}

bool Authenticator::FromToken(const HttpRequest& request, AuthnResult* result) {
  const std::optional<std::string_view> header = request.Header("authorization");
  if (!header) return false;
  // "Bearer <token>": the scheme is case-insensitive, the token the next word (as k8s).
  std::string_view auth = *header;
  while (!auth.empty() && (auth.front() == ' ' || auth.front() == '\t')) auth.remove_prefix(1);
  while (!auth.empty() && (auth.back() == ' ' || auth.back() == '\t')) auth.remove_suffix(1);
  const std::size_t space = auth.find(' ');
  if (space == std::string_view::npos || !EqualsIgnoreCase(auth.substr(0, space), "bearer")) {
    return false;
  }
  std::string_view token = auth.substr(space + 1);
  token = token.substr(0, token.find(' '));
  if (token.empty()) return false;

  const std::string key = TokenKey(token);
  if (key.empty()) {
    AuthCounters::Add(counters_->token_failure);
    result->review_error = true;
    result->reason = "token: cannot hash it";
    return false;
  }
  SingleFlightCache<TokenAnswer>::Outcome outcome;
  const TokenAnswer answer = cache_.Get(
      key, [this, token] { return ReviewToken(token); },
      [this](const TokenAnswer& a) -> SingleFlightCache<TokenAnswer>::Clock::duration {
        switch (a.state) {
          case TokenAnswer::State::kAuthenticated:
            return authenticated_ttl_;
          case TokenAnswer::State::kUnauthenticated:
            return unauthenticated_ttl_;
          case TokenAnswer::State::kError:
            break;
        }
        return error_ttl_;
      },
      &outcome);
  AuthCounters::AddLookup(outcome, counters_->token_cache_hits, counters_->token_cache_coalesced,
                          counters_->token_cache_misses);
  if (answer.state != TokenAnswer::State::kAuthenticated) {
    AuthCounters::Add(counters_->token_failure);
    result->review_error = answer.state == TokenAnswer::State::kError;
    result->reason = "token: " + answer.message;
    return false;
  }
  AuthCounters::Add(counters_->token_success);
  result->method = AuthnMethod::kToken;
  result->user = answer.user;
  return true;
}

std::string Authenticator::TokenReviewBody(std::string_view token) {
  std::string body =
      R"({"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":)";
  AppendJsonString(&body, token);
  body += "}}";
  return body;
}

Authenticator::TokenAnswer Authenticator::ReviewToken(std::string_view token) {
  TokenAnswer answer;
  auto fail = [&](std::string message) {
    AuthCounters::Add(counters_->token_review_errors);
    error_log_.Warn("TokenReview failed: " + message);
    answer.state = TokenAnswer::State::kError;
    answer.message = "TokenReview failed: " + message;
    return answer;
  };
  simdjson::dom::parser parser;
  simdjson::dom::object status;
  if (std::string error =
          PostReview(client_, kTokenReviewPath, TokenReviewBody(token), &parser, &status);
      !error.empty()) {
    return fail(std::move(error));
  }
  bool authenticated = false;
  simdjson::dom::element value;
  if (status["authenticated"].get(value) == simdjson::SUCCESS &&
      value.get(authenticated) != simdjson::SUCCESS) {
    return fail("unparsable answer (status.authenticated)");
  }
  if (!authenticated) {
    std::string_view message;
    answer.state = TokenAnswer::State::kUnauthenticated;
    answer.message = status["error"].get(message) == simdjson::SUCCESS
                         ? "not authenticated: " + std::string(message)
                         : "not authenticated";
    return answer;
  }
  simdjson::dom::object user;
  std::string_view text;
  if (status["user"].get(user) != simdjson::SUCCESS ||
      user["username"].get(text) != simdjson::SUCCESS || text.empty()) {
    return fail("authenticated answer without a username");
  }
  answer.user.name = std::string(text);
  if (user["uid"].get(value) == simdjson::SUCCESS) {
    if (value.get(text) != simdjson::SUCCESS) return fail("unparsable answer (uid)");
    answer.user.uid = std::string(text);
  }
  if (user["groups"].get(value) == simdjson::SUCCESS && !value.is_null() &&
      !ParseStrings(value, &answer.user.groups)) {
    return fail("unparsable answer (groups)");
  }
  simdjson::dom::object extra;
  if (user["extra"].get(value) == simdjson::SUCCESS && !value.is_null()) {
    if (value.get(extra) != simdjson::SUCCESS) return fail("unparsable answer (extra)");
    for (auto field : extra) {
      std::vector<std::string> values;
      if (!field.value.is_null() && !ParseStrings(field.value, &values)) {
        return fail("unparsable answer (extra)");
      }
      answer.user.extra[std::string(field.key)] = std::move(values);
    }
  }
  answer.state = TokenAnswer::State::kAuthenticated;
  return answer;
}

std::string Authenticator::TokenKey(std::string_view token) const {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (HMAC(EVP_sha256(), hash_key_, sizeof(hash_key_),
           reinterpret_cast<const unsigned char*>(token.data()), token.size(), digest,
           &length) == nullptr) {
    return {};  // the caller refuses the token rather than share one key among tokens
  }
  return std::string(reinterpret_cast<const char*>(digest), length);
}

}  // namespace eventbuffer::controller
