// LoopbackHttpServer: a scripted HTTP/1.1 server on 127.0.0.1 for tests of the API client.
//
// Each connection serves one request (Connection: close) on its own thread: the handler
// gets the request target and returns the status and a body writer; the body goes out
// chunked, piece by piece as the writer produces it, so a test can stream 100 MB without
// holding it. A response may stay open after its body until Stop() (an idle watch).
//
// Thread safety: targets() and Stop() may be called from any thread.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace eventbuffer::controller::testing {

class LoopbackHttpServer {
 public:
  // write(piece) sends one chunk; false once the client has gone.
  using Write = std::function<bool(std::string_view)>;
  struct Response {
    int status = 200;
    std::function<void(const Write& write)> body;  // may be empty
    bool hold_open = false;  // after the body, keep the stream open until Stop()
  };
  using Handler = std::function<Response(const std::string& target)>;

  explicit LoopbackHttpServer(Handler handler) : handler_(std::move(handler)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    ::listen(listen_fd_, 16);
    socklen_t len = sizeof(addr);
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    acceptor_ = std::thread([this] { AcceptLoop(); });
  }
  ~LoopbackHttpServer() { Stop(); }
  LoopbackHttpServer(const LoopbackHttpServer&) = delete;
  LoopbackHttpServer& operator=(const LoopbackHttpServer&) = delete;

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  // The request targets served so far, in arrival order.
  std::vector<std::string> targets() const {
    std::lock_guard<std::mutex> lock(mu_);
    return targets_;
  }

  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
      stopping_ = true;
    }
    cv_.notify_all();
    acceptor_.join();
    for (auto& t : connections_) t.join();
    ::close(listen_fd_);
  }

 private:
  void AcceptLoop() {
    for (;;) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (stopping_) return;
      }
      pollfd p{listen_fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      const int fd = ::accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) continue;
      connections_.emplace_back([this, fd] { Serve(fd); });
    }
  }

  static bool SendAll(int fd, std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  void Serve(int fd) {
    std::string head;
    char buf[4096];
    while (head.find("\r\n\r\n") == std::string::npos) {
      const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) {
        ::close(fd);
        return;
      }
      head.append(buf, static_cast<std::size_t>(n));
    }
    // "GET /target HTTP/1.1"
    const std::size_t sp1 = head.find(' ');
    const std::size_t sp2 = head.find(' ', sp1 + 1);
    const std::string target = head.substr(sp1 + 1, sp2 - sp1 - 1);
    {
      std::lock_guard<std::mutex> lock(mu_);
      targets_.push_back(target);
    }
    const Response response = handler_(target);
    bool ok = SendAll(fd, "HTTP/1.1 " + std::to_string(response.status) +
                              " X\r\nContent-Type: application/json\r\n"
                              "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
    const Write write = [&](std::string_view piece) {
      if (!ok || piece.empty()) return ok;
      char size[32];
      std::snprintf(size, sizeof(size), "%zx\r\n", piece.size());
      ok = SendAll(fd, size) && SendAll(fd, piece) && SendAll(fd, "\r\n");
      return ok;
    };
    if (response.body) response.body(write);
    if (ok && response.hold_open) {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_; });
    }
    if (ok) SendAll(fd, "0\r\n\r\n");
    ::shutdown(fd, SHUT_RDWR);
    ::close(fd);
  }

  Handler handler_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::thread acceptor_;
  std::vector<std::thread> connections_;  // acceptor thread only, then Stop()
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;             // guarded by mu_
  std::vector<std::string> targets_;  // guarded by mu_
};

}  // namespace eventbuffer::controller::testing
