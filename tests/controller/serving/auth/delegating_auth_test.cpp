#include "controller/serving/auth/delegating_auth.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include <unistd.h>

#include "tests/controller/serving/auth/fake_review_client.h"
#include "tests/controller/serving/auth/test_certs.h"

namespace eventbuffer::controller {
namespace {

using std::chrono::seconds;
using testing::CertOptions;
using testing::FakeReviewClient;
using testing::TestCert;

constexpr const char* kNsEvents = "/apis/eventbuffer.dev/v1alpha1/namespaces/b/events";
constexpr const char* kAllEvents = "/apis/eventbuffer.dev/v1alpha1/events";

// The fields of a SubjectAccessReview request body, as the API server would read them.
struct SarSpec {
  std::string user, uid;
  std::vector<std::string> groups;
  std::map<std::string, std::vector<std::string>> extra;
  bool resource = false;
  std::map<std::string, std::string> attributes;  // resourceAttributes or nonResourceAttributes
};

SarSpec ParseSar(const std::string& body) {
  simdjson::dom::parser parser;
  simdjson::dom::element root = parser.parse(body);
  EXPECT_EQ(std::string_view(root["apiVersion"]), "authorization.k8s.io/v1");
  EXPECT_EQ(std::string_view(root["kind"]), "SubjectAccessReview");
  simdjson::dom::object spec = root["spec"];
  SarSpec out;
  std::string_view s;
  if (spec["user"].get(s) == simdjson::SUCCESS) out.user = s;
  if (spec["uid"].get(s) == simdjson::SUCCESS) out.uid = s;
  simdjson::dom::array groups;
  if (spec["groups"].get(groups) == simdjson::SUCCESS) {
    for (auto g : groups) out.groups.emplace_back(std::string_view(g));
  }
  simdjson::dom::object extra;
  if (spec["extra"].get(extra) == simdjson::SUCCESS) {
    for (auto field : extra) {
      for (auto v : simdjson::dom::array(field.value)) {
        out.extra[std::string(field.key)].emplace_back(std::string_view(v));
      }
    }
  }
  simdjson::dom::object attrs;
  if (spec["resourceAttributes"].get(attrs) == simdjson::SUCCESS) {
    out.resource = true;
  } else {
    attrs = spec["nonResourceAttributes"];
  }
  for (auto field : attrs) out.attributes[std::string(field.key)] = std::string_view(field.value);
  return out;
}

std::string TokenOf(const std::string& body) {
  simdjson::dom::parser parser;
  simdjson::dom::element root = parser.parse(body);
  return std::string(std::string_view(root["spec"]["token"]));
}

class DelegatingAuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("keb_auth_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
    options_.client_ca_file = WriteFile("client-ca.crt", client_ca_.Pem());
    options_.requestheader_client_ca_pem = front_proxy_ca_.Pem();
    options_.requestheader_allowed_names = {"front-proxy-client"};

    client_.On(kTokenReviewPath, [this](const std::string& body) {
      const std::string token = TokenOf(body);
      if (token == "alice-token") {
        return ReviewResponse{201, R"({"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview",
          "status":{"authenticated":true,"user":{"username":"alice","uid":"u-1",
          "groups":["dev","system:authenticated"],"extra":{"scopes":["a","b"]}}}})",
                              ""};
      }
      return ReviewResponse{201, R"({"status":{"authenticated":false,"error":"invalid token"}})",
                            ""};
    });
    client_.On(kSubjectAccessReviewPath, [this](const std::string& body) {
      const SarSpec spec = ParseSar(body);
      const bool allowed = allow_(spec);
      return ReviewResponse{
          201, std::string(R"({"status":{"allowed":)") + (allowed ? "true" : "false") + "}}", ""};
    });
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string WriteFile(const std::string& name, const std::string& text) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path) << text;
    return path;
  }

  DelegatingAuth& Auth() {
    if (!auth_) {
      std::string error;
      auth_ = DelegatingAuth::Create(options_, &client_, &error, [this] {
        return std::chrono::steady_clock::time_point{} + seconds(now_s_.load());
      });
      EXPECT_NE(auth_, nullptr) << error;
    }
    return *auth_;
  }

  static HttpRequest Request(const std::string& path, const std::string& query = "") {
    HttpRequest r;
    r.method = "GET";
    r.path = path;
    r.query = query;
    r.target = query.empty() ? path : path + "?" + query;
    r.tls = true;
    r.remote_address = "127.0.0.1:5555";
    return r;
  }
  static HttpRequest WithToken(HttpRequest r, const std::string& token) {
    r.headers.emplace_back("authorization", "Bearer " + token);
    return r;
  }

  std::filesystem::path dir_;
  TestCert client_ca_ = TestCert::SelfSignedCa("client-ca");
  TestCert front_proxy_ca_ = TestCert::SelfSignedCa("front-proxy-ca");
  TestCert other_ca_ = TestCert::SelfSignedCa("other-ca");
  DelegatedAuthOptions options_;
  FakeReviewClient client_;
  std::function<bool(const SarSpec&)> allow_ = [](const SarSpec&) { return true; };
  std::atomic<int> now_s_{1000};
  std::unique_ptr<DelegatingAuth> auth_;
};

TEST_F(DelegatingAuthTest, NoCredentialsIsUnauthorized) {
  const AuthResult r = Auth().Check(Request(kNsEvents));
  EXPECT_FALSE(r.allowed);
  EXPECT_EQ(r.http_status, 401);
  EXPECT_EQ(r.body, R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",)"
                    R"("message":"Unauthorized","reason":"Unauthorized","code":401})");
  EXPECT_EQ(client_.Count(kTokenReviewPath), 0);
  EXPECT_EQ(client_.Count(kSubjectAccessReviewPath), 0);
  EXPECT_EQ(Auth().Stats().unauthenticated, 1u);
}

TEST_F(DelegatingAuthTest, FrontProxyHeadersAreHonouredWithTheFrontProxyCert) {
  const TestCert proxy = front_proxy_ca_.Issue(CertOptions::Named("front-proxy-client"));
  HttpRequest r = Request(kNsEvents);
  r.peer_certificates_der = {proxy.Der()};
  r.headers = {{"x-remote-user", ""},  // empty values are skipped
               {"x-remote-user", "bob"},        {"x-remote-group", "g1"},
               {"x-remote-group", "g2"},        {"x-remote-extra-scopes", "s1"},
               {"x-remote-extra-Scopes", "s2"}, {"x-remote-extra-acme.com%2fProject", "p"}};
  const AuthResult result = Auth().Check(r);
  ASSERT_TRUE(result.allowed) << result.body;
  EXPECT_EQ(result.method, AuthnMethod::kFrontProxy);
  EXPECT_EQ(result.user.name, "bob");
  EXPECT_EQ(result.user.groups, (std::vector<std::string>{"g1", "g2", "system:authenticated"}));
  const std::map<std::string, std::vector<std::string>> extra = {{"scopes", {"s1", "s2"}},
                                                                 {"acme.com/project", {"p"}}};
  EXPECT_EQ(result.user.extra, extra);
  const SarSpec sar = ParseSar(client_.Bodies(kSubjectAccessReviewPath).at(0));
  EXPECT_EQ(sar.user, "bob");
  EXPECT_EQ(sar.groups, (std::vector<std::string>{"g1", "g2", "system:authenticated"}));
  EXPECT_EQ(sar.extra, extra);
  EXPECT_EQ(Auth().Stats().frontproxy_success, 1u);
}

TEST(AddAuthenticatedGroupTest, AddsTheGroupOnceAndNeverToAnonymous) {
  UserInfo cert_user;
  cert_user.name = "alice";
  cert_user.groups = {"team-a"};
  AddAuthenticatedGroup(&cert_user);
  EXPECT_EQ(cert_user.groups, (std::vector<std::string>{"team-a", "system:authenticated"}));
  AddAuthenticatedGroup(&cert_user);
  EXPECT_EQ(cert_user.groups.size(), 2u) << "already there: not added twice";
  UserInfo no_groups;
  no_groups.name = "bob";
  AddAuthenticatedGroup(&no_groups);
  EXPECT_EQ(no_groups.groups, (std::vector<std::string>{"system:authenticated"}));
  UserInfo anonymous;
  anonymous.name = "system:anonymous";
  AddAuthenticatedGroup(&anonymous);
  EXPECT_TRUE(anonymous.groups.empty());
  UserInfo unauthenticated;
  unauthenticated.name = "x";
  unauthenticated.groups = {"system:unauthenticated"};
  AddAuthenticatedGroup(&unauthenticated);
  EXPECT_EQ(unauthenticated.groups, (std::vector<std::string>{"system:unauthenticated"}));
}

TEST_F(DelegatingAuthTest, ConfiguredHeaderNamesAreUsedInOrder) {
  options_.requestheader_username_headers = {"X-User-A", "X-User-B"};
  options_.requestheader_group_headers = {"X-Groups"};
  options_.requestheader_extra_headers_prefix = {"X-Extra-"};
  const TestCert proxy = front_proxy_ca_.Issue(CertOptions::Named("front-proxy-client"));
  HttpRequest r = Request(kNsEvents);
  r.peer_certificates_der = {proxy.Der()};
  r.headers = {{"x-user-b", "second"},   {"x-user-a", "first"},   {"x-remote-user", "ignored"},
               {"x-groups", "g"},        {"x-remote-group", "x"}, {"x-extra-k", "v"},
               {"x-remote-extra-z", "z"}};
  const AuthResult result = Auth().Check(r);
  ASSERT_TRUE(result.allowed);
  EXPECT_EQ(result.user.name, "first");
  EXPECT_EQ(result.user.groups, (std::vector<std::string>{"g", "system:authenticated"}));
  EXPECT_EQ(result.user.extra, (std::map<std::string, std::vector<std::string>>{{"k", {"v"}}}));
}

TEST_F(DelegatingAuthTest, FrontProxyHeadersAreIgnoredWithAClientCaCert) {
  const TestCert carol = client_ca_.Issue(CertOptions::Named("carol").Orgs({"team", "ops"}));
  HttpRequest r = Request(kNsEvents);
  r.peer_certificates_der = {carol.Der()};
  r.headers = {{"x-remote-user", "bob"}, {"x-remote-group", "system:masters"}};
  const AuthResult result = Auth().Check(r);
  ASSERT_TRUE(result.allowed);
  EXPECT_EQ(result.method, AuthnMethod::kX509);
  EXPECT_EQ(result.user.name, "carol");
  EXPECT_EQ(result.user.groups,
            (std::vector<std::string>{"team", "ops", "system:authenticated"}));
  EXPECT_TRUE(result.user.extra.empty());
}

TEST_F(DelegatingAuthTest, FrontProxyHeadersAreIgnoredWithoutACert) {
  HttpRequest r = Request(kNsEvents);
  r.headers = {{"x-remote-user", "bob"}, {"x-remote-group", "system:masters"}};
  const AuthResult result = Auth().Check(r);
  EXPECT_EQ(result.http_status, 401);
  EXPECT_EQ(client_.Count(kSubjectAccessReviewPath), 0);
}

TEST_F(DelegatingAuthTest, FrontProxyHeadersAreIgnoredWhenTheCnIsNotAllowed) {
  const TestCert intruder = front_proxy_ca_.Issue(CertOptions::Named("someone-else"));
  HttpRequest r = Request(kNsEvents);
  r.peer_certificates_der = {intruder.Der()};
  r.headers = {{"x-remote-user", "bob"}};
  const AuthResult result = Auth().Check(r);
  EXPECT_EQ(result.http_status, 401);
  EXPECT_EQ(Auth().Stats().frontproxy_failure, 1u);
  EXPECT_EQ(Auth().Stats().frontproxy_success, 0u);
}

TEST_F(DelegatingAuthTest, AnyFrontProxyCnIsAllowedWhenNoNamesAreConfigured) {
  options_.requestheader_allowed_names.clear();
  const TestCert proxy = front_proxy_ca_.Issue(CertOptions::Named("any-proxy"));
  HttpRequest r = Request(kNsEvents);
  r.peer_certificates_der = {proxy.Der()};
  r.headers = {{"x-remote-user", "bob"}};
  EXPECT_EQ(Auth().Check(r).user.name, "bob");
}

TEST_F(DelegatingAuthTest, FrontProxyHeadersAreIgnoredWithAnExpiredFrontProxyCert) {
  const TestCert proxy =
      front_proxy_ca_.Issue(CertOptions::Named("front-proxy-client").Valid(-7200, -3600));
  HttpRequest r = Request(kNsEvents);
  r.peer_certificates_der = {proxy.Der()};
  r.headers = {{"x-remote-user", "bob"}};
  EXPECT_EQ(Auth().Check(r).http_status, 401);
}

TEST_F(DelegatingAuthTest, FrontProxyWithoutUserHeaderFallsThroughToTheToken) {
  const TestCert proxy = front_proxy_ca_.Issue(CertOptions::Named("front-proxy-client"));
  HttpRequest r = WithToken(Request(kNsEvents), "alice-token");
  r.peer_certificates_der = {proxy.Der()};
  r.headers.emplace_back("x-remote-group", "system:masters");
  const AuthResult result = Auth().Check(r);
  ASSERT_TRUE(result.allowed);
  EXPECT_EQ(result.method, AuthnMethod::kToken);
  EXPECT_EQ(result.user.name, "alice");
  EXPECT_EQ(Auth().Stats().frontproxy_failure, 1u);
}

TEST_F(DelegatingAuthTest, ClientCertWithAnIntermediateVerifies) {
  const TestCert intermediate = client_ca_.Issue(CertOptions::Named("intermediate").Ca());
  const TestCert dave = intermediate.Issue(CertOptions::Named("dave"));
  HttpRequest r = Request(kNsEvents);
  r.peer_certificates_der = {dave.Der(), intermediate.Der()};
  const AuthResult result = Auth().Check(r);
  ASSERT_TRUE(result.allowed);
  EXPECT_EQ(result.user.name, "dave");
  // Without the intermediate the chain does not reach the CA.
  r.peer_certificates_der = {dave.Der()};
  EXPECT_EQ(Auth().Check(r).http_status, 401);
}

TEST_F(DelegatingAuthTest, RefusedClientCertsAreNoIdentity) {
  struct Case {
    const char* what;
    std::vector<std::string> chain;
  };
  const TestCert expired = client_ca_.Issue(CertOptions::Named("carol").Valid(-7200, -60));
  const TestCert not_yet = client_ca_.Issue(CertOptions::Named("carol").Valid(3600, 7200));
  const TestCert wrong_ca = other_ca_.Issue(CertOptions::Named("carol"));
  const TestCert server_only = client_ca_.Issue(CertOptions::Named("carol").Usage("serverAuth"));
  const TestCert no_cn = client_ca_.Issue(CertOptions::Named("").Orgs({"system:masters"}));
  const TestCert front_proxy = front_proxy_ca_.Issue(CertOptions::Named("carol"));
  const Case cases[] = {
      {"expired", {expired.Der()}},
      {"not yet valid", {not_yet.Der()}},
      {"wrong CA", {wrong_ca.Der()}},
      {"wrong CA with the real CA appended", {wrong_ca.Der(), client_ca_.Der()}},
      {"server usage only", {server_only.Der()}},
      {"no common name", {no_cn.Der()}},
      {"front-proxy CA, CN not allowed", {front_proxy.Der()}},
      {"garbage", {"not a certificate"}},
      {"trailing bytes", {client_ca_.Issue(CertOptions::Named("carol")).Der() + "x"}},
  };
  for (const Case& c : cases) {
    HttpRequest r = Request(kNsEvents);
    r.peer_certificates_der = c.chain;
    const AuthResult result = Auth().Check(r);
    EXPECT_EQ(result.http_status, 401) << c.what;
    EXPECT_FALSE(result.allowed) << c.what;
  }
  EXPECT_EQ(client_.Count(kSubjectAccessReviewPath), 0);
  EXPECT_EQ(Auth().Stats().x509_success, 0u);
  EXPECT_EQ(Auth().Stats().x509_failure, std::size(cases));
}

TEST_F(DelegatingAuthTest, TokenIsReviewedAndItsUserAuthorized) {
  const AuthResult result = Auth().Check(WithToken(Request(kNsEvents), "alice-token"));
  ASSERT_TRUE(result.allowed) << result.body;
  EXPECT_EQ(result.method, AuthnMethod::kToken);
  EXPECT_EQ(result.user.name, "alice");
  EXPECT_EQ(result.user.uid, "u-1");
  EXPECT_EQ(result.user.groups, (std::vector<std::string>{"dev", "system:authenticated"}));
  ASSERT_EQ(client_.Count(kTokenReviewPath), 1);
  EXPECT_EQ(client_.Bodies(kTokenReviewPath)[0],
            R"({"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview",)"
            R"("spec":{"token":"alice-token"}})");
  // The SAR carries everything the TokenReview said about the user.
  EXPECT_EQ(
      client_.Bodies(kSubjectAccessReviewPath).at(0),
      R"({"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview","spec":{)"
      R"("user":"alice","uid":"u-1","groups":["dev","system:authenticated"],)"
      R"("extra":{"scopes":["a","b"]},"resourceAttributes":{"namespace":"b",)"
      R"("verb":"list","group":"eventbuffer.dev","version":"v1alpha1","resource":"events"}}})");
  EXPECT_EQ(Auth().Stats().token_success, 1u);
}

TEST_F(DelegatingAuthTest, BearerSchemeParsing) {
  HttpRequest r = Request(kNsEvents);
  r.headers = {{"authorization", "  bearer alice-token  "}};
  EXPECT_TRUE(Auth().Check(r).allowed);
  for (const char* value : {"Basic YWxpY2U6eA==", "Bearer", "Bearer ", "alice-token"}) {
    r.headers = {{"authorization", value}};
    EXPECT_EQ(Auth().Check(r).http_status, 401) << value;
  }
  EXPECT_EQ(client_.Count(kTokenReviewPath), 1);
}

TEST_F(DelegatingAuthTest, UnauthenticatedTokenIsRefusedAndCachedForItsTtl) {
  options_.token_cache_unauthenticated_ttl = std::chrono::seconds(5);
  const HttpRequest r = WithToken(Request(kNsEvents), "stolen");
  EXPECT_EQ(Auth().Check(r).http_status, 401);
  EXPECT_EQ(Auth().Check(r).http_status, 401);
  EXPECT_EQ(client_.Count(kTokenReviewPath), 1);
  now_s_ += 5;
  EXPECT_EQ(Auth().Check(r).http_status, 401);
  EXPECT_EQ(client_.Count(kTokenReviewPath), 2);
  const AuthStats stats = Auth().Stats();
  EXPECT_EQ(stats.token_failure, 3u);
  EXPECT_EQ(stats.token_cache_hits, 1u);
  EXPECT_EQ(stats.token_cache_misses, 2u);
  EXPECT_EQ(stats.token_review_errors, 0u);
}

TEST_F(DelegatingAuthTest, AuthenticatedTokenWithoutUsernameIsRefused) {
  client_.On(kTokenReviewPath, [](const std::string&) {
    return ReviewResponse{201, R"({"status":{"authenticated":true,"user":{"username":""}}})", ""};
  });
  EXPECT_EQ(Auth().Check(WithToken(Request(kNsEvents), "t")).http_status, 401);
}

TEST_F(DelegatingAuthTest, SarAttributesForEachKindOfRequest) {
  struct Case {
    std::string path, query;
    bool resource;
    std::map<std::string, std::string> attributes;
  };
  const Case cases[] = {
      {kNsEvents,
       "",
       true,
       {{"namespace", "b"},
        {"verb", "list"},
        {"group", "eventbuffer.dev"},
        {"version", "v1alpha1"},
        {"resource", "events"}}},
      {kNsEvents,
       "watch=true&resourceVersion=7",
       true,
       {{"namespace", "b"},
        {"verb", "watch"},
        {"group", "eventbuffer.dev"},
        {"version", "v1alpha1"},
        {"resource", "events"}}},
      {std::string(kNsEvents) + "/e1",
       "",
       true,
       {{"namespace", "b"},
        {"verb", "get"},
        {"group", "eventbuffer.dev"},
        {"version", "v1alpha1"},
        {"resource", "events"},
        {"name", "e1"}}},
      {kAllEvents,
       "",
       true,
       {{"verb", "list"},
        {"group", "eventbuffer.dev"},
        {"version", "v1alpha1"},
        {"resource", "events"}}},
      {"/metrics", "", false, {{"path", "/metrics"}, {"verb", "get"}}},
      {"/apis/eventbuffer.dev/v1alpha1",
       "",
       false,
       {{"path", "/apis/eventbuffer.dev/v1alpha1"}, {"verb", "get"}}},
  };
  for (const Case& c : cases) {
    const int before = client_.Count(kSubjectAccessReviewPath);
    EXPECT_TRUE(Auth().Check(WithToken(Request(c.path, c.query), "alice-token")).allowed);
    ASSERT_EQ(client_.Count(kSubjectAccessReviewPath), before + 1) << c.path;
    const SarSpec sar = ParseSar(client_.Bodies(kSubjectAccessReviewPath).back());
    EXPECT_EQ(sar.user, "alice");
    EXPECT_EQ(sar.resource, c.resource) << c.path;
    EXPECT_EQ(sar.attributes, c.attributes) << c.path << "?" << c.query;
  }
}

TEST_F(DelegatingAuthTest, ForbiddenMessagesAreWordedAsTheApiServers) {
  allow_ = [](const SarSpec&) { return false; };
  struct Case {
    std::string path, message, details;
  };
  const Case cases[] = {
      {kNsEvents,
       R"(events.eventbuffer.dev is forbidden: User "alice" cannot list resource "events" in API group "eventbuffer.dev" in the namespace "b")",
       R"({"group":"eventbuffer.dev","kind":"events"})"},
      {kAllEvents,
       R"(events.eventbuffer.dev is forbidden: User "alice" cannot list resource "events" in API group "eventbuffer.dev" at the cluster scope)",
       R"({"group":"eventbuffer.dev","kind":"events"})"},
      {std::string(kNsEvents) + "/e1",
       R"(events.eventbuffer.dev "e1" is forbidden: User "alice" cannot get resource "events" in API group "eventbuffer.dev" in the namespace "b")",
       R"({"name":"e1","group":"eventbuffer.dev","kind":"events"})"},
      {"/metrics", R"(forbidden: User "alice" cannot get path "/metrics")", "{}"},
  };
  for (const Case& c : cases) {
    const AuthResult r = Auth().Check(WithToken(Request(c.path), "alice-token"));
    EXPECT_FALSE(r.allowed);
    EXPECT_EQ(r.http_status, 403);
    simdjson::dom::parser parser;
    simdjson::dom::element status = parser.parse(r.body);
    EXPECT_EQ(std::string_view(status["kind"]), "Status");
    EXPECT_EQ(std::string_view(status["reason"]), "Forbidden");
    EXPECT_EQ(int64_t(status["code"]), 403);
    EXPECT_EQ(std::string_view(status["message"]), c.message);
    EXPECT_NE(r.body.find(",\"details\":" + c.details + ",\"code\":403}"), std::string::npos)
        << r.body;
  }
  EXPECT_EQ(Auth().Stats().denied, std::size(cases));
}

TEST_F(DelegatingAuthTest, DenialReasonIsAppendedAndDeniedWinsOverAllowed) {
  client_.On(kSubjectAccessReviewPath, [](const std::string&) {
    return ReviewResponse{
        201, R"({"status":{"allowed":true,"denied":true,"reason":"RBAC: no binding"}})", ""};
  });
  const AuthResult r = Auth().Check(WithToken(Request("/metrics"), "alice-token"));
  EXPECT_EQ(r.http_status, 403);
  EXPECT_NE(r.body.find(R"(cannot get path \"/metrics\": RBAC: no binding)"), std::string::npos)
      << r.body;
}

TEST_F(DelegatingAuthTest, SarAnswersAreCachedPerUserAndAttributes) {
  options_.authorization_allowed_ttl = seconds(10);
  options_.authorization_denied_ttl = seconds(3);
  allow_ = [](const SarSpec& s) { return s.attributes.at("namespace") == "b"; };
  const HttpRequest allowed = WithToken(Request(kNsEvents), "alice-token");
  const HttpRequest denied =
      WithToken(Request("/apis/eventbuffer.dev/v1alpha1/namespaces/c/events"), "alice-token");
  EXPECT_TRUE(Auth().Check(allowed).allowed);
  EXPECT_FALSE(Auth().Check(denied).allowed);
  EXPECT_TRUE(Auth().Check(allowed).allowed);
  EXPECT_FALSE(Auth().Check(denied).allowed);
  EXPECT_EQ(client_.Count(kSubjectAccessReviewPath), 2);
  // A different verb on the same collection is another key.
  EXPECT_TRUE(Auth().Check(WithToken(Request(kNsEvents, "watch=1"), "alice-token")).allowed);
  EXPECT_EQ(client_.Count(kSubjectAccessReviewPath), 3);
  EXPECT_EQ(Auth().Stats().sar_cache_hits, 2u);
  EXPECT_EQ(Auth().Stats().sar_cache_misses, 3u);

  now_s_ += 3;  // the denial expired, the allowances not
  EXPECT_FALSE(Auth().Check(denied).allowed);
  EXPECT_TRUE(Auth().Check(allowed).allowed);
  EXPECT_EQ(client_.Count(kSubjectAccessReviewPath), 4);
  now_s_ += 7;
  EXPECT_TRUE(Auth().Check(allowed).allowed);
  EXPECT_EQ(client_.Count(kSubjectAccessReviewPath), 5);
}

TEST_F(DelegatingAuthTest, TokenAnswersAreCachedUntilTheTtl) {
  options_.token_cache_ttl = seconds(10);
  options_.authorization_allowed_ttl = seconds(100);
  const HttpRequest r = WithToken(Request(kNsEvents), "alice-token");
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(Auth().Check(r).allowed);
  EXPECT_EQ(client_.Count(kTokenReviewPath), 1);
  now_s_ += 9;
  EXPECT_TRUE(Auth().Check(r).allowed);
  EXPECT_EQ(client_.Count(kTokenReviewPath), 1);
  now_s_ += 1;
  EXPECT_TRUE(Auth().Check(r).allowed);
  EXPECT_EQ(client_.Count(kTokenReviewPath), 2);
  const AuthStats stats = Auth().Stats();
  EXPECT_EQ(stats.token_cache_hits, 5u);
  EXPECT_EQ(stats.token_cache_misses, 2u);
  EXPECT_EQ(stats.sar_cache_hits, 6u);
  EXPECT_EQ(stats.sar_cache_misses, 1u);
  EXPECT_EQ(stats.allowed, 7u);
}

// Every way a TokenReview can fail refuses with 401, and is not cached.
TEST_F(DelegatingAuthTest, TokenReviewFailuresFailClosed) {
  const std::vector<ReviewResponse> failures = {
      {0, "", "connection refused"},
      {500, R"({"status":{"authenticated":true,"user":{"username":"alice"}}})", ""},
      {401, "", ""},
      {201, "not json", ""},
      {201, R"({"kind":"TokenReview"})", ""},
      {201, R"({"status":{"authenticated":"yes","user":{"username":"alice"}}})", ""},
      {201, R"({"status":{"authenticated":true,"user":{"username":"alice","groups":"g"}}})", ""},
  };
  int reviews = 0;
  for (const ReviewResponse& failure : failures) {
    client_.On(kTokenReviewPath, [failure](const std::string&) { return failure; });
    const AuthResult r = Auth().Check(WithToken(Request(kNsEvents), "alice-token"));
    EXPECT_FALSE(r.allowed) << failure.http_status << " " << failure.body;
    EXPECT_EQ(r.http_status, 401) << failure.http_status << " " << failure.body;
    EXPECT_EQ(client_.Count(kTokenReviewPath), ++reviews) << "a failure was cached";
  }
  EXPECT_EQ(Auth().Stats().token_review_errors, failures.size());
  EXPECT_EQ(client_.Count(kSubjectAccessReviewPath), 0);
}

// Every way a SubjectAccessReview can fail refuses with 403, and is not cached.
TEST_F(DelegatingAuthTest, SarFailuresFailClosed) {
  const std::vector<ReviewResponse> failures = {
      {0, "", "timeout"},
      {500, R"({"status":{"allowed":true}})", ""},
      {403, R"({"status":{"allowed":true}})", ""},
      {201, "{", ""},
      {201, R"({"spec":{}})", ""},
      {201, R"({"status":{"allowed":"true"}})", ""},
  };
  int reviews = 0;
  for (const ReviewResponse& failure : failures) {
    client_.On(kSubjectAccessReviewPath, [failure](const std::string&) { return failure; });
    const AuthResult r = Auth().Check(WithToken(Request(kNsEvents), "alice-token"));
    EXPECT_FALSE(r.allowed) << failure.body;
    EXPECT_EQ(r.http_status, 403) << failure.body;
    EXPECT_NE(r.body.find("the authorization check failed"), std::string::npos) << r.body;
    EXPECT_EQ(client_.Count(kSubjectAccessReviewPath), ++reviews) << "a failure was cached";
  }
  EXPECT_EQ(Auth().Stats().sar_errors, failures.size());
  EXPECT_EQ(Auth().Stats().denied, failures.size());
}

TEST_F(DelegatingAuthTest, ErrorsAreCachedOnlyForTheErrorTtl) {
  options_.review_error_ttl = seconds(1);
  client_.On(kTokenReviewPath, [](const std::string&) { return ReviewResponse{503, "", ""}; });
  const HttpRequest r = WithToken(Request(kNsEvents), "alice-token");
  EXPECT_EQ(Auth().Check(r).http_status, 401);
  EXPECT_EQ(Auth().Check(r).http_status, 401);
  EXPECT_EQ(client_.Count(kTokenReviewPath), 1);
  now_s_ += 1;
  EXPECT_EQ(Auth().Check(r).http_status, 401);
  EXPECT_EQ(client_.Count(kTokenReviewPath), 2);
}

TEST_F(DelegatingAuthTest, HangingTokenReviewFailsClosedAtTheTimeout) {
  options_.review_timeout = std::chrono::milliseconds(100);
  client_.Hold(kTokenReviewPath);
  const AuthResult r = Auth().Check(WithToken(Request(kNsEvents), "alice-token"));
  EXPECT_EQ(r.http_status, 401);
  EXPECT_NE(r.reason.find("timeout"), std::string::npos) << r.reason;
  EXPECT_EQ(client_.blocked(), 1);  // the answer came while the review still hung
  EXPECT_EQ(Auth().Stats().token_review_errors, 1u);
  client_.Release();
}

TEST_F(DelegatingAuthTest, HangingSarFailsClosedAtTheTimeout) {
  options_.review_timeout = std::chrono::milliseconds(100);
  client_.Hold(kSubjectAccessReviewPath);
  const AuthResult r = Auth().Check(WithToken(Request(kNsEvents), "alice-token"));
  EXPECT_EQ(r.http_status, 403);
  EXPECT_EQ(client_.blocked(), 1);
  EXPECT_EQ(Auth().Stats().sar_errors, 1u);
  client_.Release();
}

TEST_F(DelegatingAuthTest, ConcurrentChecksWithOneTokenCostOneReviewEach) {
  options_.review_timeout = std::chrono::seconds(120);
  client_.Hold(kTokenReviewPath);
  constexpr int kThreads = 1000;
  DelegatingAuth& auth = Auth();
  const HttpRequest r = WithToken(Request(kNsEvents), "alice-token");
  std::atomic<int> allowed{0};
  std::atomic<int> started{0};
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&] {
      started.fetch_add(1);
      if (auth.Check(r).allowed) allowed.fetch_add(1);
    });
  }
  // Hold the one TokenReview until every request has started (and, after a moment, waits
  // on it: a waiter's outcome is counted only when it returns).
  while (started.load() < kThreads) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(client_.Count(kTokenReviewPath), 1);
  client_.Release();
  for (auto& t : threads) t.join();
  EXPECT_EQ(allowed.load(), kThreads);
  EXPECT_EQ(client_.Count(kTokenReviewPath), 1);
  EXPECT_EQ(client_.Count(kSubjectAccessReviewPath), 1);
  const AuthStats stats = auth.Stats();
  EXPECT_EQ(stats.token_cache_misses, 1u);
  EXPECT_GE(stats.token_cache_coalesced, 1u);  // some waited on the held review
  EXPECT_EQ(stats.token_cache_hits + stats.token_cache_coalesced,
            static_cast<std::uint64_t>(kThreads - 1));
  EXPECT_EQ(stats.sar_cache_misses, 1u);
  EXPECT_EQ(stats.sar_cache_hits + stats.sar_cache_coalesced,
            static_cast<std::uint64_t>(kThreads - 1));
  EXPECT_EQ(stats.allowed, static_cast<std::uint64_t>(kThreads));
}

TEST_F(DelegatingAuthTest, AlwaysAllowPathsSkipAuthentication) {
  options_.always_allow_paths = {"/healthz", "/readyz/*"};
  EXPECT_TRUE(Auth().Check(Request("/healthz")).allowed);
  EXPECT_TRUE(Auth().Check(Request("/readyz/ping")).allowed);
  EXPECT_EQ(Auth().Check(Request("/healthz/x")).http_status, 401);
  EXPECT_EQ(Auth().Check(Request("/metrics")).http_status, 401);
  EXPECT_EQ(Auth().Stats().always_allowed, 2u);
  EXPECT_EQ(client_.Count(kSubjectAccessReviewPath), 0);
}

TEST_F(DelegatingAuthTest, NothingIsAlwaysAllowedByDefault) {
  for (const char* path : {"/healthz", "/livez", "/readyz", "/metrics", "/openapi/v2", "/"}) {
    EXPECT_EQ(Auth().Check(Request(path)).http_status, 401) << path;
  }
}

TEST_F(DelegatingAuthTest, BadCaFilesFailCreation) {
  std::string error;
  DelegatedAuthOptions options = options_;
  options.client_ca_file = (dir_ / "missing.crt").string();
  EXPECT_EQ(DelegatingAuth::Create(options, &client_, &error), nullptr);
  EXPECT_NE(error.find("missing.crt"), std::string::npos) << error;
  options = options_;
  options.requestheader_client_ca_file = WriteFile("junk.crt", "not a pem");
  EXPECT_EQ(DelegatingAuth::Create(options, &client_, &error), nullptr);
  EXPECT_NE(error.find("requestheader"), std::string::npos) << error;
}

TEST_F(DelegatingAuthTest, WithoutCasOnlyTokensAuthenticate) {
  options_ = DelegatedAuthOptions{};
  const TestCert carol = client_ca_.Issue(CertOptions::Named("carol"));
  HttpRequest r = Request(kNsEvents);
  r.peer_certificates_der = {carol.Der()};
  r.headers = {{"x-remote-user", "bob"}};
  EXPECT_EQ(Auth().Check(r).http_status, 401);
  EXPECT_TRUE(Auth().Check(WithToken(Request(kNsEvents), "alice-token")).allowed);
}

}  // namespace
}  // namespace eventbuffer::controller
