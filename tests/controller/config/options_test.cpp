#include "controller/config/options.h"

#include <gtest/gtest.h>

#include "controller/serving/http_server.h"

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

TEST(BindAddressTest, ParsesHostPortForms) {
  std::string host, error;
  int port = 0;
  ASSERT_TRUE(ParseBindAddress(":8081", &host, &port, &error));
  EXPECT_EQ(host, "0.0.0.0");
  EXPECT_EQ(port, 8081);
  ASSERT_TRUE(ParseBindAddress("127.0.0.1:9", &host, &port, &error));
  EXPECT_EQ(host, "127.0.0.1");
  EXPECT_EQ(port, 9);
  EXPECT_FALSE(ParseBindAddress("8081", &host, &port, &error));
  EXPECT_FALSE(ParseBindAddress(":99999", &host, &port, &error));
  EXPECT_FALSE(ParseBindAddress(":80x", &host, &port, &error));
}

}  // namespace
}  // namespace eventbuffer::controller
