#include "controller/config/options.h"

#include <gtest/gtest.h>

namespace eventbuffer::controller {
namespace {

TEST(OptionsTest, DefaultsFollowControllerRuntime) {
  Options o;
  std::string error;
  ASSERT_TRUE(ParseOptions({}, &o, &error));
  EXPECT_EQ(o.metrics_bind_address, ":8080");
  EXPECT_EQ(o.health_probe_bind_address, ":8081");
  EXPECT_EQ(o.log_format, "json");
  EXPECT_EQ(o.log_level, "info");
  EXPECT_TRUE(o.namespace_name.empty());
}

TEST(OptionsTest, AcceptsBothValueForms) {
  Options o;
  std::string error;
  ASSERT_TRUE(ParseOptions(
      {"--kubeconfig", "/k", "--namespace=prod", "--log-format=text", "--log-level", "debug",
       "--config", "c.yaml", "--health-probe-bind-address=127.0.0.1:9", "-metrics-bind-address=:1"},
      &o, &error))
      << error;
  EXPECT_EQ(o.kubeconfig, "/k");
  EXPECT_EQ(o.namespace_name, "prod");
  EXPECT_EQ(o.log_format, "text");
  EXPECT_EQ(o.log_level, "debug");
  EXPECT_EQ(o.config_path, "c.yaml");
  EXPECT_EQ(o.health_probe_bind_address, "127.0.0.1:9");
  EXPECT_EQ(o.metrics_bind_address, ":1");
}

TEST(OptionsTest, RejectsUnknownFlagsMissingAndBadValues) {
  std::string error;
  Options o;
  EXPECT_FALSE(ParseOptions({"--bogus"}, &o, &error));
  EXPECT_NE(error.find("--bogus"), std::string::npos);
  EXPECT_FALSE(ParseOptions({"--kubeconfig"}, &o, &error));
  EXPECT_NE(error.find("needs a value"), std::string::npos);
  EXPECT_FALSE(ParseOptions({"--log-format=xml"}, &o, &error));
  EXPECT_NE(error.find("--log-format"), std::string::npos);
  EXPECT_FALSE(ParseOptions({"--log-level=loud"}, &o, &error));
  EXPECT_FALSE(ParseOptions({"positional"}, &o, &error));
}

TEST(OptionsTest, VersionHelpAndCheckConfig) {
  Options o;
  std::string error;
  ASSERT_TRUE(ParseOptions({"--version", "--help", "--check-config", "x.yaml"}, &o, &error));
  EXPECT_TRUE(o.version);
  EXPECT_TRUE(o.help);
  EXPECT_EQ(o.check_config, "x.yaml");
  EXPECT_NE(Usage().find("--check-config"), std::string::npos);
}

TEST(OptionsTest, SecureServingDefaultsAreThoseOfTheKubernetesApiServer) {
  Options o;
  std::string error;
  ASSERT_TRUE(ParseOptions({}, &o, &error));
  EXPECT_EQ(o.secure_port, 8443);
  EXPECT_EQ(o.bind_address, "0.0.0.0");
  EXPECT_TRUE(o.metrics_secure);
  EXPECT_EQ(o.max_requests_inflight, 400);
  EXPECT_EQ(o.serving_nice, 19) << "reads yield the CPU to the watch";
  EXPECT_EQ(o.authentication_token_webhook_cache_ttl, std::chrono::seconds(10));
  EXPECT_EQ(o.authorization_webhook_cache_authorized_ttl, std::chrono::seconds(10));
  EXPECT_EQ(o.authorization_webhook_cache_unauthorized_ttl, std::chrono::seconds(10));
  EXPECT_TRUE(o.requestheader_username_headers.empty()) << "unset: ConfigMap, then defaults";
}

TEST(OptionsTest, SecureServingFlags) {
  Options o;
  std::string error;
  ASSERT_TRUE(
      ParseOptions({"--secure-port=9443", "--metrics-secure=false",
                    "--requestheader-allowed-names=front-proxy-client,aggregator",
                    "--requestheader-username-headers", "X-Remote-User",
                    "--authentication-token-webhook-cache-ttl=1m30s",
                    "--authorization-webhook-cache-unauthorized-ttl=500ms",
                    "--authentication-skip-lookup", "--tls-cert-file=/c", "--max-connections=7"},
                   &o, &error))
      << error;
  EXPECT_EQ(o.secure_port, 9443);
  EXPECT_FALSE(o.metrics_secure);
  EXPECT_TRUE(o.authentication_skip_lookup);
  EXPECT_EQ(o.requestheader_allowed_names,
            (std::vector<std::string>{"front-proxy-client", "aggregator"}));
  EXPECT_EQ(o.requestheader_username_headers, (std::vector<std::string>{"X-Remote-User"}));
  EXPECT_EQ(o.authentication_token_webhook_cache_ttl, std::chrono::seconds(90));
  EXPECT_EQ(o.authorization_webhook_cache_unauthorized_ttl, std::chrono::milliseconds(500));
  EXPECT_EQ(o.tls_cert_file, "/c");
  EXPECT_EQ(o.max_connections, 7);
  ASSERT_TRUE(ParseOptions({"--metrics-secure"}, &o, &error));
  EXPECT_TRUE(o.metrics_secure);
}

TEST(OptionsTest, RejectsBadSecureServingValues) {
  Options o;
  std::string error;
  EXPECT_FALSE(ParseOptions({"--secure-port=70000"}, &o, &error));
  EXPECT_FALSE(ParseOptions({"--metrics-secure=maybe"}, &o, &error));
  EXPECT_NE(error.find("--metrics-secure"), std::string::npos);
  EXPECT_FALSE(ParseOptions({"--authentication-token-webhook-cache-ttl=10"}, &o, &error))
      << "a duration needs a unit";
  EXPECT_FALSE(ParseOptions({"--authorization-webhook-cache-authorized-ttl=-1s"}, &o, &error));
  EXPECT_FALSE(ParseOptions({"--max-requests-inflight=0"}, &o, &error));
  EXPECT_FALSE(ParseOptions({"--header-timeout-seconds=0"}, &o, &error));
  EXPECT_FALSE(ParseOptions({"--serving-nice=20"}, &o, &error)) << "nice values stop at 19";
  EXPECT_FALSE(ParseOptions({"--serving-nice=-1"}, &o, &error)) << "raising priority: no";
}

TEST(OptionsTest, DurableStoreFlags) {
  Options o;
  std::string error;
  ASSERT_TRUE(ParseOptions({}, &o, &error)) << error;
  EXPECT_TRUE(o.data_dir.empty());  // memory only by default
  EXPECT_EQ(o.sync_interval, std::chrono::milliseconds(1000));
  EXPECT_EQ(o.data_max_bytes, std::uint64_t{1} << 30);
  ASSERT_TRUE(ParseOptions({"--data-dir", "/var/lib/eb", "--sync-interval=250ms",
                            "--data-max-bytes=512Mi"},
                           &o, &error))
      << error;
  EXPECT_EQ(o.data_dir, "/var/lib/eb");
  EXPECT_EQ(o.sync_interval, std::chrono::milliseconds(250));
  EXPECT_EQ(o.data_max_bytes, std::uint64_t{512} << 20);
  EXPECT_FALSE(ParseOptions({"--sync-interval=0"}, &o, &error));
  EXPECT_FALSE(ParseOptions({"--sync-interval=1"}, &o, &error));
  EXPECT_FALSE(ParseOptions({"--data-max-bytes=12XB"}, &o, &error));
  EXPECT_FALSE(ParseOptions({"--data-max-bytes=99999999999Ti"}, &o, &error));
  EXPECT_FALSE(ParseOptions({"--data-dir="}, &o, &error));
  std::uint64_t n = 0;
  EXPECT_TRUE(ParseByteSize("3G", &n));
  EXPECT_EQ(n, 3'000'000'000u);
  EXPECT_TRUE(ParseByteSize("100", &n));
  EXPECT_EQ(n, 100u);
}

}  // namespace
}  // namespace eventbuffer::controller
