// DeadlineReviewClient, and KubeReviewClient against a loopback HTTP server.
#include "controller/serving/auth/review_client.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "controller/kube/api_client.h"
#include "controller/serving/auth/kube_review_client.h"
#include "tests/controller/serving/auth/fake_review_client.h"

namespace eventbuffer::controller {
namespace {

using testing::FakeReviewClient;

TEST(DeadlineReviewClientTest, PassesAnswersThrough) {
  FakeReviewClient fake;
  fake.On("/p", [](const std::string& body) { return ReviewResponse{201, "got " + body, ""}; });
  DeadlineReviewClient client(&fake, std::chrono::seconds(30));
  const ReviewResponse r = client.Post("/p", "x");
  EXPECT_EQ(r.http_status, 201);
  EXPECT_EQ(r.body, "got x");
  EXPECT_EQ(client.Get("/p").body, "got ");
  EXPECT_EQ(client.Get("/other").http_status, 404);
}

TEST(DeadlineReviewClientTest, AHangingCallAnswersZeroAtTheDeadline) {
  FakeReviewClient fake;
  fake.On("/p", [](const std::string&) { return ReviewResponse{201, "late", ""}; });
  fake.Hold("/p");
  {
    DeadlineReviewClient client(&fake, std::chrono::milliseconds(50));
    const ReviewResponse r = client.Post("/p", "x");
    EXPECT_EQ(r.http_status, 0);
    EXPECT_EQ(r.body, "");
    EXPECT_NE(r.error.find("timeout"), std::string::npos);
    EXPECT_EQ(client.in_flight(), 1u);  // still running on its thread
    fake.Release();
    // The destructor waits for the abandoned call.
  }
  EXPECT_EQ(fake.blocked(), 0);
}

TEST(DeadlineReviewClientTest, RefusesBeyondTheInFlightBound) {
  FakeReviewClient fake;
  fake.On("/p", [](const std::string&) { return ReviewResponse{201, "", ""}; });
  fake.Hold("/p");
  DeadlineReviewClient client(&fake, std::chrono::milliseconds(20), 2);
  EXPECT_EQ(client.Post("/p", "").error.substr(0, 7), "timeout");
  EXPECT_EQ(client.Post("/p", "").error.substr(0, 7), "timeout");
  const ReviewResponse refused = client.Post("/p", "");
  EXPECT_EQ(refused.http_status, 0);
  EXPECT_EQ(refused.error, "too many reviews in flight");
  EXPECT_EQ(fake.Count("/p"), 2);
  fake.Release();
}

// A one-connection-at-a-time HTTP/1.1 server on 127.0.0.1 that records each request and
// answers `response`, or never answers while `hang` is set.
class LoopbackServer {
 public:
  LoopbackServer() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    const int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    socklen_t len = sizeof(addr);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    ::listen(fd_, 16);
    thread_ = std::thread([this] { Serve(); });
  }
  ~LoopbackServer() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::vector<std::string> requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }
  std::atomic<bool> hang{false};
  std::string response =
      "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
      "Connection: close\r\n\r\n{}";

 private:
  void Serve() {
    while (!stop_) {
      const int conn = ::accept(fd_, nullptr, nullptr);
      if (conn < 0) return;
      std::string request;
      char buf[4096];
      for (;;) {
        const ssize_t n = ::recv(conn, buf, sizeof(buf), 0);
        if (n <= 0) break;
        request.append(buf, static_cast<std::size_t>(n));
        const auto end = request.find("\r\n\r\n");
        if (end == std::string::npos) continue;
        std::size_t length = 0;  // cpprestsdk writes "Content-Length:7"
        const auto cl = request.find("Content-Length:");
        if (cl != std::string::npos && cl < end) length = std::stoul(request.substr(cl + 15));
        if (request.size() >= end + 4 + length) break;
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        requests_.push_back(request);
      }
      if (hang) {
        while (!stop_) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      } else {
        ::send(conn, response.data(), response.size(), MSG_NOSIGNAL);
      }
      ::close(conn);
    }
  }

  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::string> requests_;
};

TEST(KubeReviewClientTest, PostsJsonWithTheBearerToken) {
  InitializeHttpThreads(2);
  LoopbackServer server;
  KubeConfig config;
  config.server = server.url();
  auto token = TokenSource::Static("controller-token");
  KubeReviewClient client(config, token.get(), {});
  const ReviewResponse r = client.Post("/apis/authentication.k8s.io/v1/tokenreviews", "{\"a\":1}");
  EXPECT_EQ(r.http_status, 201) << r.error;
  EXPECT_EQ(r.body, "{}");
  ASSERT_EQ(server.requests().size(), 1u);
  const std::string request = server.requests()[0];
  EXPECT_EQ(request.rfind("POST /apis/authentication.k8s.io/v1/tokenreviews HTTP/1.1\r\n", 0), 0u)
      << request;
  // cpprestsdk writes "Name:value" without a space.
  EXPECT_NE(request.find("\r\nAuthorization:Bearer controller-token\r\n"), std::string::npos)
      << request;
  EXPECT_NE(request.find("\r\nContent-Type:application/json"), std::string::npos) << request;
  EXPECT_EQ(request.substr(request.size() - 7), "{\"a\":1}");
}

TEST(KubeReviewClientTest, AHangingApiServerTimesOut) {
  InitializeHttpThreads(2);
  LoopbackServer server;
  server.hang = true;
  KubeConfig config;
  config.server = server.url();
  auto token = TokenSource::Static("t");
  KubeReviewClient client(config, token.get(), {.timeout = std::chrono::milliseconds(300)});
  const ReviewResponse r = client.Get("/api/v1/namespaces/kube-system/configmaps/x");
  EXPECT_EQ(r.http_status, 0);
  EXPECT_FALSE(r.error.empty());
}

TEST(KubeReviewClientTest, UnreachableApiServerIsStatusZero) {
  InitializeHttpThreads(2);
  int port = 0;
  {
    LoopbackServer server;  // a port that was free a moment ago, now closed
    port = std::stoi(server.url().substr(server.url().rfind(':') + 1));
  }
  KubeConfig config;
  config.server = "http://127.0.0.1:" + std::to_string(port);
  auto token = TokenSource::Static("t");
  KubeReviewClient client(config, token.get(), {.timeout = std::chrono::milliseconds(2000)});
  EXPECT_EQ(client.Post("/x", "{}").http_status, 0);
}

}  // namespace
}  // namespace eventbuffer::controller
