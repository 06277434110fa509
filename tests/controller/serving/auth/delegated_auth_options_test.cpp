#include "controller/serving/auth/delegated_auth_options.h"

#include <gtest/gtest.h>

#include "tests/controller/serving/auth/fake_review_client.h"

namespace eventbuffer::controller {
namespace {

using testing::FakeReviewClient;

// As kube-apiserver writes it (PEM text abbreviated).
constexpr const char* kConfigMap = R"({
  "apiVersion": "v1", "kind": "ConfigMap",
  "metadata": {"name": "extension-apiserver-authentication", "namespace": "kube-system"},
  "data": {
    "client-ca-file": "CLIENT-CA-PEM",
    "requestheader-allowed-names": "[\"front-proxy-client\"]",
    "requestheader-client-ca-file": "FRONT-PROXY-CA-PEM",
    "requestheader-extra-headers-prefix": "[\"X-Remote-Extra-\"]",
    "requestheader-group-headers": "[\"X-Remote-Group\"]",
    "requestheader-username-headers": "[\"X-Remote-User\"]"
  }
})";

TEST(AuthConfigMapTest, FillsEverythingWhenNoFlagsAreSet) {
  FakeReviewClient client;
  client.On(kAuthenticationConfigMapPath, [](const std::string&) {
    return ReviewResponse{200, kConfigMap, ""};
  });
  DelegatedAuthOptions options;
  const ConfigMapLoadResult r = LoadAuthenticationConfigMap(&client, &options);
  EXPECT_TRUE(r.loaded) << r.message;
  EXPECT_EQ(r.filled.size(), 6u);
  EXPECT_EQ(options.client_ca_pem, "CLIENT-CA-PEM");
  EXPECT_EQ(options.requestheader_client_ca_pem, "FRONT-PROXY-CA-PEM");
  EXPECT_EQ(options.requestheader_allowed_names, std::vector<std::string>{"front-proxy-client"});
  EXPECT_EQ(options.requestheader_username_headers, std::vector<std::string>{"X-Remote-User"});
  EXPECT_EQ(options.requestheader_group_headers, std::vector<std::string>{"X-Remote-Group"});
  EXPECT_EQ(options.requestheader_extra_headers_prefix,
            std::vector<std::string>{"X-Remote-Extra-"});
}

TEST(AuthConfigMapTest, FlagsWin) {
  DelegatedAuthOptions options;
  options.client_ca_file = "/etc/client-ca.crt";
  options.requestheader_username_headers = {"X-Mine"};
  std::vector<std::string> filled;
  std::string error;
  ASSERT_TRUE(ApplyAuthenticationConfigMap(kConfigMap, &options, &filled, &error)) << error;
  EXPECT_EQ(options.client_ca_pem, "");  // the flag's file is used
  EXPECT_EQ(options.requestheader_client_ca_pem, "FRONT-PROXY-CA-PEM");
  EXPECT_EQ(options.requestheader_username_headers, std::vector<std::string>{"X-Mine"});
  EXPECT_EQ(options.requestheader_group_headers, std::vector<std::string>{"X-Remote-Group"});
  EXPECT_EQ(filled.size(), 4u);
}

TEST(AuthConfigMapTest, RequestHeaderListsFollowTheirCa) {
  // The front-proxy CA came from a flag: the ConfigMap's allowed names belong to another CA.
  DelegatedAuthOptions options;
  options.requestheader_client_ca_file = "/etc/front-proxy-ca.crt";
  std::vector<std::string> filled;
  std::string error;
  ASSERT_TRUE(ApplyAuthenticationConfigMap(kConfigMap, &options, &filled, &error));
  EXPECT_EQ(options.requestheader_client_ca_pem, "");
  EXPECT_TRUE(options.requestheader_allowed_names.empty());
  EXPECT_TRUE(options.requestheader_username_headers.empty());
  EXPECT_EQ(options.client_ca_pem, "CLIENT-CA-PEM");
  EXPECT_EQ(filled, std::vector<std::string>{"client-ca-file"});
}

TEST(AuthConfigMapTest, MissingOrForbiddenOrBrokenLeavesOptionsAlone) {
  const std::vector<ReviewResponse> answers = {
      {404, R"({"kind":"Status","code":404})", ""},
      {403, R"({"kind":"Status","code":403})", ""},
      {0, "", "connection refused"},
      {500, "", ""},
      {200, "not json", ""},
      {200, R"({"data":{"requestheader-client-ca-file":"X","requestheader-allowed-names":"[1]"}})",
       ""},
  };
  for (const ReviewResponse& answer : answers) {
    FakeReviewClient client;
    client.On(kAuthenticationConfigMapPath, [answer](const std::string&) { return answer; });
    DelegatedAuthOptions options;
    options.always_allow_paths = {"/x"};
    const ConfigMapLoadResult r = LoadAuthenticationConfigMap(&client, &options);
    EXPECT_FALSE(r.loaded) << answer.http_status << answer.body;
    EXPECT_FALSE(r.message.empty());
    EXPECT_EQ(options.client_ca_pem, "");
    EXPECT_EQ(options.requestheader_client_ca_pem, "");
    EXPECT_EQ(options.always_allow_paths, std::vector<std::string>{"/x"});
  }
}

TEST(AuthConfigMapTest, AConfigMapWithoutRequestHeaderKeysFillsOnlyTheClientCa) {
  DelegatedAuthOptions options;
  std::vector<std::string> filled;
  std::string error;
  ASSERT_TRUE(ApplyAuthenticationConfigMap(R"({"data":{"client-ca-file":"C"}})", &options, &filled,
                                           &error));
  EXPECT_EQ(options.client_ca_pem, "C");
  EXPECT_EQ(options.requestheader_client_ca_pem, "");
}

}  // namespace
}  // namespace eventbuffer::controller
