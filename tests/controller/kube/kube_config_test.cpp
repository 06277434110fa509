#include "controller/kube/kube_config.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>

namespace eventbuffer::controller {
namespace {

constexpr const char* kPem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

class KubeConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("keb_kubeconfig_" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Write(const std::string& name, const std::string& text) {
    const auto path = (dir_ / name).string();
    std::ofstream(path) << text;
    return path;
  }
  GetEnv Env(std::map<std::string, std::string> values) {
    return [values](const std::string& name) -> std::optional<std::string> {
      auto it = values.find(name);
      if (it == values.end()) return std::nullopt;
      return it->second;
    };
  }
  std::filesystem::path dir_;
};

TEST_F(KubeConfigTest, Base64DecodesStandardAlphabetAndRejectsGarbage) {
  std::string out;
  ASSERT_TRUE(DecodeBase64("aGVsbG8gd29ybGQ=", &out));
  EXPECT_EQ(out, "hello world");
  ASSERT_TRUE(DecodeBase64("YW\nJj", &out));
  EXPECT_EQ(out, "abc");
  EXPECT_FALSE(DecodeBase64("a$bc", &out));
}

TEST_F(KubeConfigTest, InClusterReadsServiceAccountFiles) {
  Write("ca.crt", kPem);
  Write("token", "tok\n");
  Write("namespace", "kube-system\n");
  KubeConfig config;
  std::string error;
  ASSERT_TRUE(LoadInClusterConfig(
      Env({{"KUBERNETES_SERVICE_HOST", "10.96.0.1"}, {"KUBERNETES_SERVICE_PORT", "443"}}),
      dir_.string(), &config, &error))
      << error;
  EXPECT_EQ(config.server, "https://10.96.0.1:443");
  EXPECT_EQ(config.ca_pem, kPem);
  EXPECT_EQ(config.token_file, (dir_ / "token").string());
  EXPECT_TRUE(config.token.empty());  // read through TokenSource, never cached here
  EXPECT_EQ(config.default_namespace, "kube-system");
  EXPECT_FALSE(config.insecure_skip_tls_verify);
  EXPECT_EQ(config.Describe().find("tok\n"), std::string::npos);
}

TEST_F(KubeConfigTest, InClusterBracketsIpv6Hosts) {
  Write("ca.crt", kPem);
  Write("token", "tok");
  KubeConfig config;
  std::string error;
  ASSERT_TRUE(LoadInClusterConfig(
      Env({{"KUBERNETES_SERVICE_HOST", "fd00::1"}, {"KUBERNETES_SERVICE_PORT", "443"}}),
      dir_.string(), &config, &error));
  EXPECT_EQ(config.server, "https://[fd00::1]:443");
}

TEST_F(KubeConfigTest, InClusterNamesWhatIsMissing) {
  KubeConfig config;
  std::string error;
  EXPECT_FALSE(LoadInClusterConfig(Env({}), dir_.string(), &config, &error));
  EXPECT_NE(error.find("KUBERNETES_SERVICE_HOST"), std::string::npos);
  EXPECT_FALSE(
      LoadInClusterConfig(Env({{"KUBERNETES_SERVICE_HOST", "h"}, {"KUBERNETES_SERVICE_PORT", "1"}}),
                          dir_.string(), &config, &error));
  EXPECT_NE(error.find("ca.crt"), std::string::npos);
}

TEST_F(KubeConfigTest, KubeconfigUsesCurrentContextAndResolvesRelativePaths) {
  Write("ca.pem", kPem);
  const auto path = Write("config", R"(apiVersion: v1
kind: Config
current-context: b
clusters:
- name: one
  cluster: {server: "https://one.example:6443", insecure-skip-tls-verify: true}
- name: two
  cluster:
    server: https://127.0.0.1:7443/
    certificate-authority: ca.pem
contexts:
- name: a
  context: {cluster: one, user: u1}
- name: b
  context: {cluster: two, user: u2, namespace: prod}
users:
- name: u1
  user: {token: t1}
- name: u2
  user: {tokenFile: tok}
)");
  KubeConfig config;
  std::string error;
  ASSERT_TRUE(LoadKubeconfig(path, &config, &error)) << error;
  EXPECT_EQ(config.server, "https://127.0.0.1:7443");
  EXPECT_EQ(config.ca_pem, kPem);
  EXPECT_EQ(config.token_file, (dir_ / "tok").string());
  EXPECT_EQ(config.default_namespace, "prod");
  EXPECT_FALSE(config.insecure_skip_tls_verify);
}

TEST_F(KubeConfigTest, KubeconfigCaDataAndStaticToken) {
  const auto path = Write(
      "config",
      std::string(R"(current-context: c
clusters:
- name: k
  cluster:
    server: https://k:1
    certificate-authority-data: )") +
          "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUIKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo=" + R"(
contexts:
- name: c
  context: {cluster: k, user: u}
users:
- name: u
  user: {token: secret-token}
)");
  KubeConfig config;
  std::string error;
  ASSERT_TRUE(LoadKubeconfig(path, &config, &error)) << error;
  EXPECT_EQ(config.ca_pem, kPem);
  EXPECT_EQ(config.token, "secret-token");
  EXPECT_EQ(config.Describe().find("secret-token"), std::string::npos);
}

TEST_F(KubeConfigTest, InsecureOnlyWhenSet) {
  const auto path = Write("config", R"(current-context: c
clusters:
- name: k
  cluster: {server: "https://k:1", insecure-skip-tls-verify: true}
contexts:
- name: c
  context: {cluster: k}
)");
  KubeConfig config;
  std::string error;
  ASSERT_TRUE(LoadKubeconfig(path, &config, &error)) << error;
  EXPECT_TRUE(config.insecure_skip_tls_verify);
  EXPECT_NE(config.Describe().find("INSECURE"), std::string::npos);
}

TEST_F(KubeConfigTest, ClearErrorsForBadKubeconfigs) {
  KubeConfig config;
  std::string error;
  EXPECT_FALSE(LoadKubeconfig((dir_ / "absent").string(), &config, &error));
  EXPECT_NE(error.find("cannot read"), std::string::npos);

  EXPECT_FALSE(LoadKubeconfig(Write("a", "clusters: []\n"), &config, &error));
  EXPECT_NE(error.find("current-context"), std::string::npos);

  EXPECT_FALSE(LoadKubeconfig(Write("b", "current-context: x\ncontexts: []\n"), &config, &error));
  EXPECT_NE(error.find("context 'x' not found"), std::string::npos);

  // https without a CA and without insecure-skip-tls-verify: refused.
  EXPECT_FALSE(LoadKubeconfig(Write("c", R"(current-context: c
clusters: [{name: k, cluster: {server: "https://k:1"}}]
contexts: [{name: c, context: {cluster: k}}]
)"),
                              &config, &error));
  EXPECT_NE(error.find("certificate-authority"), std::string::npos);

  EXPECT_FALSE(LoadKubeconfig(Write("d", "current-context: [\n"), &config, &error));
  EXPECT_NE(error.find("invalid YAML"), std::string::npos);
}

}  // namespace
}  // namespace eventbuffer::controller
