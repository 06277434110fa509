// The read API behind a real http_listener on loopback, spoken to with a raw socket.
#include "controller/serving/http_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "controller/kube/api_client.h"

namespace eventbuffer::controller {
namespace {

int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// Sends one HTTP/1.1 request and returns the whole response (the server closes or we read
// until Content-Length is satisfied).
std::string Get(int port, const std::string& target) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return "";
  }
  const std::string request =
      "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  ::send(fd, request.data(), request.size(), 0);
  std::string response;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    response.append(buf, static_cast<std::size_t>(n));
    const auto header_end = response.find("\r\n\r\n");
    const auto cl = response.find("Content-Length: ");
    if (header_end != std::string::npos && cl != std::string::npos && cl < header_end) {
      const std::size_t length = std::stoul(response.substr(cl + 16));
      if (response.size() >= header_end + 4 + length) break;
    }
  }
  ::close(fd);
  return response;
}

TEST(HttpServerTest, ServesTheReadApiOnLoopback) {
  InitializeHttpThreads(2);
  ReadApi::Hooks hooks;
  hooks.objects = [] { return std::vector<ObjectSummary>{{"ns", "Pod", "p", 2}}; };
  hooks.read = [](std::string_view) { return std::vector<EventRef>{}; };
  hooks.ready = [] { return true; };
  ReadApi api(hooks);
  const int port = FreePort();
  HttpServer server("127.0.0.1:" + std::to_string(port), &api);
  std::string error;
  ASSERT_TRUE(server.Start(&error)) << error;

  std::string r = Get(port, "/v1/objects");
  EXPECT_EQ(r.rfind("HTTP/1.1 200", 0), 0u) << r;
  EXPECT_NE(r.find("application/json"), std::string::npos);
  EXPECT_NE(r.find(R"({"objects":[{"namespace":"ns","kind":"Pod","name":"p","events":2}]})"),
            std::string::npos);

  r = Get(port, "/v1/events?namespace=ns&kind=Pod&name=p%20q");
  EXPECT_EQ(r.rfind("HTTP/1.1 200", 0), 0u) << r;
  EXPECT_NE(r.find(R"("key":"ns/Pod/p q")"), std::string::npos) << r;

  r = Get(port, "/v1/events?kind=Pod");
  EXPECT_EQ(r.rfind("HTTP/1.1 400", 0), 0u) << r;
  EXPECT_NE(r.find("\"error\""), std::string::npos);

  r = Get(port, "/nowhere");
  EXPECT_EQ(r.rfind("HTTP/1.1 404", 0), 0u) << r;

  r = Get(port, "/readyz");
  EXPECT_EQ(r.rfind("HTTP/1.1 200", 0), 0u) << r;
  server.Stop();
  EXPECT_EQ(Get(port, "/readyz"), "");  // closed
}

TEST(HttpServerTest, ReportsABadOrTakenAddress) {
  ReadApi api(ReadApi::Hooks{});
  std::string error;
  HttpServer bad("nonsense", &api);
  EXPECT_FALSE(bad.Start(&error));
  EXPECT_NE(error.find("nonsense"), std::string::npos);
}

}  // namespace
}  // namespace eventbuffer::controller
