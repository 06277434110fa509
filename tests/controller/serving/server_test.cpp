// The hardened Server on loopback, spoken to with raw sockets (hostile clients) and an
// OpenSSL client (TLS versions, client certificates, certificate reload).
#include "controller/serving/server.h"
#include <sys/resource.h>
#include <sys/syscall.h>

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace eventbuffer::controller {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// The OpenSSL test client writes with write(2): a server that hangs up must not kill the test.
const bool kSigpipeIgnored = [] { return std::signal(SIGPIPE, SIG_IGN) != SIG_ERR; }();

// ---- A minimal HTTP/1.1 client over a plain or TLS connection ---------------------------

class Conn {
 public:
  virtual ~Conn() = default;
  virtual bool WriteAll(std::string_view data) = 0;
  // > 0: bytes read; 0: the peer closed (or reset); -1: no data within the receive timeout.
  virtual long ReadSome(char* out, std::size_t size) = 0;

  // Appends to buffer; false at EOF or timeout.
  bool Fill() {
    char tmp[65536];
    const long n = ReadSome(tmp, sizeof(tmp));
    if (n <= 0) {
      last_read_ = n;
      return false;
    }
    buffer.append(tmp, static_cast<std::size_t>(n));
    return true;
  }
  bool ReadLine(std::string* line) {
    for (;;) {
      const std::size_t end = buffer.find("\r\n");
      if (end != std::string::npos) {
        *line = buffer.substr(0, end);
        buffer.erase(0, end + 2);
        return true;
      }
      if (!Fill()) return false;
    }
  }
  bool ReadExactly(std::size_t n, std::string* out) {
    while (buffer.size() < n) {
      if (!Fill()) return false;
    }
    out->append(buffer, 0, n);
    buffer.erase(0, n);
    return true;
  }
  // True when the peer closes (EOF or reset) within the receive timeout; false when it is
  // still open (or sends data: that data is kept in buffer).
  bool WaitClosed() {
    if (!buffer.empty()) return false;
    if (Fill()) return false;
    return last_read_ == 0;
  }

  std::string buffer;

 private:
  long last_read_ = 1;
};

class PlainConn : public Conn {
 public:
  explicit PlainConn(int fd) : fd_(fd) {}
  ~PlainConn() override { ::close(fd_); }
  bool WriteAll(std::string_view data) override {
    while (!data.empty()) {
      const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }
  long ReadSome(char* out, std::size_t size) override {
    const ssize_t n = ::recv(fd_, out, size, 0);
    if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK ? -1 : 0;
    return n;
  }
  int fd() const { return fd_; }

 private:
  int fd_;
};

// A TCP connection to 127.0.0.1:port with a receive timeout; -1 on failure.
int ConnectFd(int port, int receive_buffer = 0, std::chrono::milliseconds timeout = 5s) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  if (receive_buffer > 0) {
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof(receive_buffer));
  }
  timeval tv{};
  tv.tv_sec = timeout.count() / 1000;
  tv.tv_usec = (timeout.count() % 1000) * 1000;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

std::unique_ptr<PlainConn> Connect(int port, int receive_buffer = 0) {
  const int fd = ConnectFd(port, receive_buffer);
  return fd < 0 ? nullptr : std::make_unique<PlainConn>(fd);
}

struct Response {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;
  std::optional<std::string> Header(const std::string& name) const {
    for (const auto& [n, v] : headers) {
      if (n == name) return v;
    }
    return std::nullopt;
  }
};

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Reads one response; nullopt when the connection ends first or the response is malformed.
std::optional<Response> ReadResponse(Conn& conn, bool head = false) {
  Response r;
  std::string line;
  if (!conn.ReadLine(&line) || line.rfind("HTTP/1.1 ", 0) != 0 || line.size() < 12) {
    return std::nullopt;
  }
  r.status = std::stoi(line.substr(9, 3));
  for (;;) {
    if (!conn.ReadLine(&line)) return std::nullopt;
    if (line.empty()) break;
    const std::size_t colon = line.find(':');
    if (colon == std::string::npos) return std::nullopt;
    std::size_t value = colon + 1;
    while (value < line.size() && line[value] == ' ') ++value;
    r.headers.emplace_back(Lower(line.substr(0, colon)), line.substr(value));
  }
  if (head || r.status == 204 || r.status == 304) return r;
  if (r.Header("transfer-encoding") == "chunked") {
    for (;;) {
      if (!conn.ReadLine(&line)) return std::nullopt;
      const std::size_t size = std::stoul(line, nullptr, 16);
      if (size == 0) {
        if (!conn.ReadLine(&line) || !line.empty()) return std::nullopt;
        return r;
      }
      std::string crlf;
      if (!conn.ReadExactly(size, &r.body) || !conn.ReadExactly(2, &crlf) || crlf != "\r\n") {
        return std::nullopt;
      }
    }
  }
  if (auto length = r.Header("content-length")) {
    if (!conn.ReadExactly(std::stoul(*length), &r.body)) return std::nullopt;
    return r;
  }
  while (conn.Fill()) {
  }
  r.body = std::move(conn.buffer);
  conn.buffer.clear();
  return r;
}

std::string GetRequest(const std::string& target, const std::string& extra_headers = "",
                       const std::string& method = "GET") {
  return method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra_headers + "\r\n";
}

// Sends `request` on conn and reads its response (nullopt when either fails).
std::optional<Response> Ask(Conn& conn, const std::string& request) {
  if (!conn.WriteAll(request)) return std::nullopt;
  return ReadResponse(conn);
}

// One GET on a new connection.
std::optional<Response> Fetch(int port, const std::string& target = "/") {
  auto conn = Connect(port);
  if (!conn || !conn->WriteAll(GetRequest(target))) return std::nullopt;
  return ReadResponse(*conn);
}

template <class Pred>
bool WaitFor(Pred pred, std::chrono::milliseconds limit = 5s) {
  const auto deadline = Clock::now() + limit;
  while (Clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return pred();
}

Server::Options TestOptions() {
  Server::Options o;
  o.bind_address = "127.0.0.1:0";
  o.name = "test";
  o.header_read_timeout = 5s;
  o.idle_timeout = 5s;
  o.write_timeout = 5s;
  return o;
}

std::unique_ptr<Server> StartServer(Server::Options options, Server::Handler handler) {
  auto server = std::make_unique<Server>(std::move(options), std::move(handler));
  std::string error;
  EXPECT_TRUE(server->Start(&error)) << error;
  EXPECT_GT(server->port(), 0);
  return server;
}

void Hello(const HttpRequest&, ResponseWriter& w) { w.Send(200, "text/plain", "hello"); }

// ---- Certificates made for the tests ----------------------------------------------------

struct Cert {
  std::shared_ptr<EVP_PKEY> key;
  std::shared_ptr<X509> cert;
  std::string cert_pem;
  std::string key_pem;
  std::string der;
};

std::string ToDer(X509* cert) {
  const int size = i2d_X509(cert, nullptr);
  std::string out(static_cast<std::size_t>(size), '\0');
  auto* p = reinterpret_cast<unsigned char*>(out.data());
  i2d_X509(cert, &p);
  return out;
}

// An EC P-256 certificate for `cn`, signed by `issuer` (self-signed when null).
Cert MakeCert(const std::string& cn, const Cert* issuer, bool ca) {
  Cert c;
  c.key.reset(EVP_EC_gen("P-256"), EVP_PKEY_free);
  c.cert.reset(X509_new(), X509_free);
  X509* x = c.cert.get();
  X509_set_version(x, 2);
  static std::atomic<long> serial{1};
  ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
  X509_gmtime_adj(X509_getm_notBefore(x), -60);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  X509_set_pubkey(x, c.key.get());
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer->cert.get()) : name);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer ? issuer->cert.get() : x, x, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, NID_basic_constraints,
                                            ca ? "critical,CA:TRUE" : "CA:FALSE");
  X509_add_ext(x, ext, -1);
  X509_EXTENSION_free(ext);
  if (!ca) {
    ext = X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1");
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
  }
  X509_sign(x, issuer ? issuer->key.get() : c.key.get(), EVP_sha256());
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, x);
  char* data = nullptr;
  long size = BIO_get_mem_data(bio, &data);
  c.cert_pem.assign(data, static_cast<std::size_t>(size));
  BIO_free(bio);
  bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, c.key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  size = BIO_get_mem_data(bio, &data);
  c.key_pem.assign(data, static_cast<std::size_t>(size));
  BIO_free(bio);
  c.der = ToDer(x);
  return c;
}

class TempDir {
 public:
  TempDir() {
    char pattern[] = "/tmp/server_test_XXXXXX";
    path_ = ::mkdtemp(pattern);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string Write(const std::string& name, const std::string& content) const {
    const std::string path = path_ + "/" + name;
    std::filesystem::create_directories(std::filesystem::path(path).parent_path());
    std::ofstream(path, std::ios::binary) << content;
    return path;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// ---- TLS client --------------------------------------------------------------------------

struct TlsClientOptions {
  int min_version = 0;
  int max_version = 0;
  std::string cipher_list;  // TLS <= 1.2 suites; empty: OpenSSL's default
  const Cert* client = nullptr;
  std::vector<const Cert*> client_chain;  // sent after the client leaf
};

class TlsConn : public Conn {
 public:
  ~TlsConn() override {
    if (ssl_) SSL_free(ssl_);
    if (ctx_) SSL_CTX_free(ctx_);
    if (fd_ >= 0) ::close(fd_);
  }
  // Connects and handshakes; nullptr with *error when the handshake fails.
  static std::unique_ptr<TlsConn> Open(int port, const TlsClientOptions& o, std::string* error) {
    auto conn = std::unique_ptr<TlsConn>(new TlsConn);
    conn->ctx_ = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(conn->ctx_, SSL_VERIFY_NONE, nullptr);
    if (o.min_version) SSL_CTX_set_min_proto_version(conn->ctx_, o.min_version);
    if (o.max_version) SSL_CTX_set_max_proto_version(conn->ctx_, o.max_version);
    if (!o.cipher_list.empty()) SSL_CTX_set_cipher_list(conn->ctx_, o.cipher_list.c_str());
    if (o.client) {
      SSL_CTX_use_certificate(conn->ctx_, o.client->cert.get());
      SSL_CTX_use_PrivateKey(conn->ctx_, o.client->key.get());
      for (const Cert* c : o.client_chain) {
        X509_up_ref(c->cert.get());
        SSL_CTX_add_extra_chain_cert(conn->ctx_, c->cert.get());
      }
    }
    conn->fd_ = ConnectFd(port);
    if (conn->fd_ < 0) {
      *error = "connect failed";
      return nullptr;
    }
    conn->ssl_ = SSL_new(conn->ctx_);
    SSL_set_fd(conn->ssl_, conn->fd_);
    SSL_set_tlsext_host_name(conn->ssl_, "localhost");
    if (SSL_connect(conn->ssl_) != 1) {
      char text[256];
      ERR_error_string_n(ERR_get_error(), text, sizeof(text));
      ERR_clear_error();
      *error = text;
      return nullptr;
    }
    return conn;
  }
  bool WriteAll(std::string_view data) override {
    return SSL_write(ssl_, data.data(), static_cast<int>(data.size())) ==
           static_cast<int>(data.size());
  }
  long ReadSome(char* out, std::size_t size) override {
    const int n = SSL_read(ssl_, out, static_cast<int>(size));
    if (n > 0) return n;
    const int err = SSL_get_error(ssl_, n);
    ERR_clear_error();
    if (err == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EWOULDBLOCK)) return -1;
    return 0;
  }
  // The server's leaf certificate, DER.
  std::string PeerDer() const {
    X509* cert = SSL_get1_peer_certificate(ssl_);
    if (!cert) return "";
    std::string der = ToDer(cert);
    X509_free(cert);
    return der;
  }
  X509* PeerCertificate() const { return SSL_get1_peer_certificate(ssl_); }
  int Version() const { return SSL_version(ssl_); }

 private:
  TlsConn() = default;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  int fd_ = -1;
};

// ---- Plain HTTP ---------------------------------------------------------------------------

TEST(ServerTest, ServesRequestsAndKeepsTheConnectionAlive) {
  std::mutex mu;
  std::vector<HttpRequest> seen;
  auto server = StartServer(TestOptions(), [&](const HttpRequest& r, ResponseWriter& w) {
    {
      std::lock_guard<std::mutex> lock(mu);
      seen.push_back(r);
    }
    w.Send(200, "text/plain", "you asked for " + r.path, {{"X-Answer", "42"}});
  });
  auto conn = Connect(server->port());
  ASSERT_TRUE(conn);
  ASSERT_TRUE(conn->WriteAll(GetRequest("/a/b?x=1&y=2", "X-First: 1\r\nx-first: 2\r\n")));
  auto first = ReadResponse(*conn);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->status, 200);
  EXPECT_EQ(first->body, "you asked for /a/b");
  EXPECT_EQ(first->Header("content-length"), "18");
  EXPECT_EQ(first->Header("content-type"), "text/plain");
  EXPECT_EQ(first->Header("x-answer"), "42");
  EXPECT_FALSE(first->Header("connection"));
  ASSERT_TRUE(conn->WriteAll(GetRequest("/second")));
  auto second = ReadResponse(*conn);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->body, "you asked for /second");

  std::lock_guard<std::mutex> lock(mu);
  ASSERT_EQ(seen.size(), 2u);
  const HttpRequest& r = seen[0];
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.target, "/a/b?x=1&y=2");
  EXPECT_EQ(r.path, "/a/b");
  EXPECT_EQ(r.query, "x=1&y=2");
  EXPECT_FALSE(r.tls);
  EXPECT_TRUE(r.peer_certificates_der.empty());
  EXPECT_EQ(r.remote_address.rfind("127.0.0.1:", 0), 0u) << r.remote_address;
  ASSERT_EQ(r.headers.size(), 3u);
  EXPECT_EQ(r.headers[0], (std::pair<std::string, std::string>("host", "127.0.0.1")));
  EXPECT_EQ(r.headers[1], (std::pair<std::string, std::string>("x-first", "1")));
  EXPECT_EQ(r.headers[2], (std::pair<std::string, std::string>("x-first", "2")));
  EXPECT_EQ(seen[1].query, "");
  EXPECT_EQ(server->stats().responses_2xx, 2u);
  EXPECT_EQ(server->stats().connections_accepted, 1u);
}

TEST(ServerTest, HandlersRunAtTheConfiguredNiceValueOffTheCallersThread) {
  auto options = TestOptions();
  options.thread_nice = 7;
  const int own = getpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)));
  auto server = StartServer(options, [](const HttpRequest&, ResponseWriter& w) {
    w.Send(200, "text/plain",
           std::to_string(getpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)))));
  });
  auto response = Fetch(server->port());
  ASSERT_TRUE(response);
  EXPECT_EQ(response->body, std::to_string(std::max(own, 7)))
      << "a worker lowers its own priority (a nice value only goes up without privilege)";
  EXPECT_EQ(getpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid))), own)
      << "the starting thread keeps its priority";
}

TEST(ServerTest, ConnectionCloseRequestClosesAfterTheResponse) {
  auto server = StartServer(TestOptions(), Hello);
  auto conn = Connect(server->port());
  ASSERT_TRUE(conn->WriteAll(GetRequest("/", "Connection: close\r\n")));
  auto response = ReadResponse(*conn);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->Header("connection"), "close");
  EXPECT_TRUE(conn->WaitClosed());
}

TEST(ServerTest, HeadAnswersLikeGetWithoutABody) {
  auto server = StartServer(TestOptions(), Hello);
  auto conn = Connect(server->port());
  ASSERT_TRUE(conn->WriteAll(GetRequest("/", "", "HEAD")));
  auto head = ReadResponse(*conn, /*head=*/true);
  ASSERT_TRUE(head);
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->Header("content-length"), "5");
  // Had the body been sent, it would precede the next status line.
  ASSERT_TRUE(conn->WriteAll(GetRequest("/")));
  auto get = ReadResponse(*conn);
  ASSERT_TRUE(get) << "left over: " << conn->buffer;
  EXPECT_EQ(get->body, "hello");
}

TEST(ServerTest, HeadOfAStreamedResponseEndsWithItsHeader) {
  std::promise<bool> write_result;
  auto server = StartServer(TestOptions(), [&](const HttpRequest&, ResponseWriter& w) {
    w.Begin(200, "application/json");
    write_result.set_value(w.Write("never sent"));
  });
  auto conn = Connect(server->port());
  ASSERT_TRUE(conn->WriteAll(GetRequest("/", "", "HEAD")));
  auto head = ReadResponse(*conn, /*head=*/true);
  ASSERT_TRUE(head);
  EXPECT_EQ(head->Header("transfer-encoding"), "chunked");
  EXPECT_FALSE(write_result.get_future().get());
  ASSERT_TRUE(conn->WriteAll(GetRequest("/", "", "HEAD")));
  EXPECT_TRUE(ReadResponse(*conn, true));
  EXPECT_TRUE(conn->buffer.empty()) << conn->buffer;
}

TEST(ServerTest, StreamsAChunkedResponseAndKeepsTheConnectionAlive) {
  std::string expected;
  for (int i = 0; i < 300; ++i) expected += "line " + std::to_string(i) + "\n";
  const std::string big(3 * Server::kStreamBufferBytes + 17, 'x');  // split into pieces
  expected += big;
  auto server = StartServer(TestOptions(), [&](const HttpRequest& r, ResponseWriter& w) {
    if (r.path == "/plain") return w.Send(200, "text/plain", "plain");
    EXPECT_TRUE(w.Begin(200, "text/plain", {{"X-Stream", "yes"}}));
    for (int i = 0; i < 300; ++i) EXPECT_TRUE(w.Write("line " + std::to_string(i) + "\n"));
    EXPECT_TRUE(w.Write(""));
    EXPECT_TRUE(w.Write(big));
  });
  auto conn = Connect(server->port());
  ASSERT_TRUE(conn->WriteAll(GetRequest("/stream")));
  auto streamed = ReadResponse(*conn);
  ASSERT_TRUE(streamed);
  EXPECT_EQ(streamed->status, 200);
  EXPECT_EQ(streamed->Header("transfer-encoding"), "chunked");
  EXPECT_FALSE(streamed->Header("content-length"));
  EXPECT_EQ(streamed->Header("x-stream"), "yes");
  EXPECT_EQ(streamed->body.size(), expected.size());
  EXPECT_TRUE(streamed->body == expected);
  ASSERT_TRUE(conn->WriteAll(GetRequest("/plain")));
  auto plain = ReadResponse(*conn);
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->body, "plain");
  ASSERT_TRUE(conn->WriteAll(GetRequest("/stream")));
  auto again = ReadResponse(*conn);
  ASSERT_TRUE(again);
  EXPECT_TRUE(again->body == expected);
}

// A producer of `parts` parts of `part_bytes` each ('a', 'b', ... by part), counting its
// calls and its live copies (alive: 1 while the server or a handler holds it).
struct CountingProducer {
  std::shared_ptr<std::atomic<int>> calls = std::make_shared<std::atomic<int>>(0);
  std::shared_ptr<int> alive = std::make_shared<int>(0);
  BodyProducer Make(int parts, std::size_t part_bytes) const {
    auto next = std::make_shared<int>(0);
    return [calls = calls, token = alive, next, parts, part_bytes](std::string* out) {
      calls->fetch_add(1);
      out->append(part_bytes, static_cast<char>('a' + *next % 26));
      return ++*next < parts;
    };
  }
  bool Dropped() const { return alive.use_count() == 1; }
};

TEST(ServerTest, StreamedBodyIsProducedPartByPartAndKeepsTheConnectionAlive) {
  CountingProducer producer;
  auto server = StartServer(TestOptions(), [&](const HttpRequest& r, ResponseWriter& w) {
    if (r.path == "/plain") return w.Send(200, "text/plain", "plain");
    w.Stream(200, "text/plain", producer.Make(40, 50 * 1024), {{"X-Stream", "yes"}});
  });
  std::string expected;
  for (int i = 0; i < 40; ++i) expected.append(50 * 1024, static_cast<char>('a' + i % 26));
  auto conn = Connect(server->port());
  ASSERT_TRUE(conn->WriteAll(GetRequest("/stream")));
  auto streamed = ReadResponse(*conn);
  ASSERT_TRUE(streamed);
  EXPECT_EQ(streamed->status, 200);
  EXPECT_EQ(streamed->Header("transfer-encoding"), "chunked");
  EXPECT_EQ(streamed->Header("x-stream"), "yes");
  EXPECT_TRUE(streamed->body == expected) << streamed->body.size();
  EXPECT_EQ(producer.calls->load(), 40);
  EXPECT_TRUE(WaitFor([&] { return producer.Dropped(); })) << "released at the end";
  ASSERT_TRUE(conn->WriteAll(GetRequest("/plain")));
  auto plain = ReadResponse(*conn);
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->body, "plain");
  // HEAD: the header only; the producer is never called.
  ASSERT_TRUE(conn->WriteAll(GetRequest("/stream", "", "HEAD")));
  auto head = ReadResponse(*conn, /*head=*/true);
  ASSERT_TRUE(head);
  EXPECT_EQ(head->Header("transfer-encoding"), "chunked");
  EXPECT_EQ(producer.calls->load(), 40);
  ASSERT_TRUE(conn->WriteAll(GetRequest("/plain")));
  EXPECT_TRUE(ReadResponse(*conn));
  EXPECT_TRUE(conn->buffer.empty());
}

TEST(ServerTest, ClientsThatNeverReadAStreamHoldNoWorker) {
  // One worker and four clients that ask for a long stream and never read it: while all
  // four are connected and stalled, other requests are still answered. (With a handler
  // that blocks in Write(), the first stalled client would hold the only worker until the
  // write timeout.)
  auto options = TestOptions();
  options.worker_threads = 1;
  options.write_timeout = 120s;  // far beyond this test: the stalled clients stay connected
  CountingProducer producer;
  auto server = StartServer(options, [&](const HttpRequest& r, ResponseWriter& w) {
    if (r.path != "/big") return Hello(r, w);
    w.Stream(200, "text/plain", producer.Make(100000, 64 * 1024));  // ~6 GB if all read
  });
  std::vector<std::unique_ptr<PlainConn>> stalled;
  for (int i = 0; i < 4; ++i) {
    stalled.push_back(Connect(server->port(), /*receive_buffer=*/4096));
    ASSERT_TRUE(stalled.back()->WriteAll(GetRequest("/big")));
  }
  // Each stream makes what fits its buffer and the socket's (the kernel grows a loopback
  // socket's send buffer to a few MiB), then waits: the count of parts stops growing.
  ASSERT_TRUE(WaitFor([&] { return producer.calls->load() >= 4 * 4; }));
  int calls = -1;
  ASSERT_TRUE(WaitFor(
      [&] {
        const int before = producer.calls->load();
        std::this_thread::sleep_for(300ms);
        calls = producer.calls->load();
        return calls == before;
      },
      10s))
      << "producers run only as their clients read";
  EXPECT_LT(calls, 4 * 200) << "each stream is bounded by its buffers (parts of 64 KiB)";
  for (int i = 0; i < 3; ++i) {
    auto other = Fetch(server->port());
    ASSERT_TRUE(other) << "a request behind the stalled streams was not answered";
    EXPECT_EQ(other->body, "hello");
  }
  EXPECT_TRUE(WaitFor([&] { return server->stats().connections_open == 4u; }))
      << "the stalled clients are still there";
  EXPECT_EQ(producer.calls->load(), calls) << "nothing made while nobody read";
  // A client that goes away releases its producer.
  stalled.clear();
  EXPECT_TRUE(WaitFor([&] { return producer.Dropped(); }));
}

TEST(ServerTest, StreamsBeyondTheCapAnswer429UntilOneEnds) {
  auto options = TestOptions();
  options.max_streams = 2;
  options.write_timeout = 120s;
  CountingProducer producer;
  auto server = StartServer(options, [&](const HttpRequest& r, ResponseWriter& w) {
    w.Stream(200, "text/plain", producer.Make(r.path == "/big" ? 100000 : 2, 64 * 1024));
  });
  std::vector<std::unique_ptr<PlainConn>> stalled;
  for (int i = 0; i < 2; ++i) {
    stalled.push_back(Connect(server->port(), /*receive_buffer=*/4096));
    ASSERT_TRUE(stalled.back()->WriteAll(GetRequest("/big")));
  }
  ASSERT_TRUE(WaitFor([&] { return producer.calls->load() >= 2; }));
  auto refused = Fetch(server->port(), "/small");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 429);
  EXPECT_EQ(refused->Header("retry-after"), "1");
  EXPECT_NE(refused->body.find("\"reason\":\"TooManyRequests\""), std::string::npos);
  stalled.pop_back();  // one stream ends with its client
  ASSERT_TRUE(WaitFor([&] {
    auto r = Fetch(server->port(), "/small");
    return r && r->status == 200 && r->body.size() == 2 * 64 * 1024;
  }));
}

TEST(ServerTest, AProducerThatThrowsCutsTheBodyShort) {
  auto server = StartServer(TestOptions(), [&](const HttpRequest& r, ResponseWriter& w) {
    if (r.path == "/ok") return Hello(r, w);
    auto calls = std::make_shared<int>(0);
    w.Stream(200, "text/plain", [calls](std::string* out) -> bool {
      if (++*calls == 3) throw std::runtime_error("the store went away");
      out->append("part;");
      return true;
    });
  });
  auto conn = Connect(server->port());
  ASSERT_TRUE(conn->WriteAll(GetRequest("/")));
  std::string line;
  ASSERT_TRUE(conn->ReadLine(&line));
  EXPECT_EQ(line, "HTTP/1.1 200 OK");
  while (conn->Fill()) {
  }
  EXPECT_EQ(conn->buffer.substr(conn->buffer.find("\r\n\r\n") + 4), "5\r\npart;\r\n5\r\npart;\r\n")
      << "two parts, then the connection closed without the terminating chunk";
  auto other = Fetch(server->port(), "/ok");
  ASSERT_TRUE(other);
  EXPECT_EQ(other->body, "hello");
}

TEST(ServerTest, ManyClientsOnSeveralIoThreadsEachGetTheirOwnAnswers) {
  auto options = TestOptions();
  options.io_threads = 3;
  options.worker_threads = 3;
  auto server = StartServer(options, [](const HttpRequest& r, ResponseWriter& w) {
    if (r.query.empty()) return w.Send(200, "text/plain", r.path);
    w.Begin(200, "text/plain");
    for (int i = 0; i < 50; ++i) w.Write(r.path + ";");
  });
  std::atomic<int> good{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 12; ++c) {
    clients.emplace_back([&, c] {
      auto conn = Connect(server->port());
      if (!conn) return;
      for (int i = 0; i < 20; ++i) {
        const std::string path = "/c" + std::to_string(c) + "/r" + std::to_string(i);
        const bool stream = i % 2 == 1;
        if (!conn->WriteAll(GetRequest(path + (stream ? "?stream" : "")))) return;
        auto response = ReadResponse(*conn);
        std::string expected = path;
        if (stream) {
          expected.clear();
          for (int k = 0; k < 50; ++k) expected += path + ";";
        }
        if (response && response->status == 200 && response->body == expected) ++good;
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(good.load(), 12 * 20);
  EXPECT_EQ(server->stats().responses_2xx, 12u * 20u);
}

TEST(ServerTest, Http10StreamEndsByClosingTheConnection) {
  auto server = StartServer(TestOptions(), [&](const HttpRequest&, ResponseWriter& w) {
    w.Begin(200, "text/plain");
    w.Write("abc");
    w.Write("def");
  });
  auto conn = Connect(server->port());
  ASSERT_TRUE(conn->WriteAll("GET / HTTP/1.0\r\n\r\n"));
  auto response = ReadResponse(*conn);
  ASSERT_TRUE(response);
  EXPECT_FALSE(response->Header("transfer-encoding"));
  EXPECT_EQ(response->body, "abcdef");
}

TEST(ServerTest, RefusesOtherMethodsWith405WithoutEchoingTheRequest) {
  std::atomic<int> calls{0};
  auto server = StartServer(TestOptions(), [&](const HttpRequest& r, ResponseWriter& w) {
    ++calls;
    Hello(r, w);
  });
  auto conn = Connect(server->port());
  ASSERT_TRUE(conn->WriteAll(GetRequest("/", "X-Secret: hunter2\r\n", "TRACE")));
  auto trace = ReadResponse(*conn);
  ASSERT_TRUE(trace);
  EXPECT_EQ(trace->status, 405);
  EXPECT_EQ(trace->Header("allow"), "GET, HEAD");
  EXPECT_EQ(trace->Header("content-type"), "application/json");
  EXPECT_NE(trace->body.find("\"kind\":\"Status\""), std::string::npos) << trace->body;
  EXPECT_NE(trace->body.find("\"code\":405"), std::string::npos) << trace->body;
  EXPECT_NE(trace->body.find("MethodNotAllowed"), std::string::npos) << trace->body;
  EXPECT_EQ(trace->body.find("hunter2"), std::string::npos) << trace->body;
  // A bodiless POST: refused, and the connection stays usable.
  ASSERT_TRUE(conn->WriteAll(GetRequest("/", "", "POST")));
  auto post = ReadResponse(*conn);
  ASSERT_TRUE(post);
  EXPECT_EQ(post->status, 405);
  ASSERT_TRUE(conn->WriteAll(GetRequest("/")));
  auto get = ReadResponse(*conn);
  ASSERT_TRUE(get);
  EXPECT_EQ(get->status, 200);
  // A POST with a body: refused and closed (its body is never read).
  ASSERT_TRUE(conn->WriteAll(GetRequest("/", "Content-Length: 5\r\n", "POST")));
  auto with_body = ReadResponse(*conn);
  ASSERT_TRUE(with_body);
  EXPECT_EQ(with_body->status, 405);
  EXPECT_EQ(with_body->Header("connection"), "close");
  EXPECT_TRUE(conn->WaitClosed());
  EXPECT_EQ(calls.load(), 1);
  EXPECT_EQ(server->stats().rejected_method, 3u);
  EXPECT_EQ(server->stats().responses_4xx, 3u);
}

TEST(ServerTest, HandlerAnswersOtherMethodsWhenAskedWithoutReadingTheirBody) {
  std::atomic<int> calls{0};
  std::mutex mu;
  std::vector<std::string> methods;
  Server::Options options = TestOptions();
  options.handler_answers_other_methods = true;
  auto server = StartServer(options, [&](const HttpRequest& r, ResponseWriter& w) {
    ++calls;
    {
      std::lock_guard<std::mutex> lock(mu);
      methods.push_back(r.method);
    }
    w.Send(r.method == "GET" ? 200 : 401, "text/plain", "from the handler");
  });
  auto conn = Connect(server->port());
  // A bodiless DELETE: the handler's answer, and the connection stays usable.
  const auto del = Ask(*conn, GetRequest("/x", "", "DELETE"));
  ASSERT_TRUE(del);
  EXPECT_EQ(del->status, 401);
  EXPECT_EQ(del->body, "from the handler");
  const auto get = Ask(*conn, GetRequest("/"));
  ASSERT_TRUE(get);
  EXPECT_EQ(get->status, 200);
  // A POST announcing a body that is never sent: answered from its header alone, then the
  // connection closes (the body is not read, so nothing after it could be parsed).
  const auto post = Ask(*conn, GetRequest("/x", "Content-Length: 100000000\r\n", "POST"));
  ASSERT_TRUE(post);
  EXPECT_EQ(post->status, 401);
  EXPECT_EQ(post->Header("connection"), "close");
  EXPECT_TRUE(conn->WaitClosed());
  // A chunked PUT: the same.
  auto conn2 = Connect(server->port());
  const auto put = Ask(*conn2, GetRequest("/x", "Transfer-Encoding: chunked\r\n", "PUT"));
  ASSERT_TRUE(put);
  EXPECT_EQ(put->status, 401);
  EXPECT_TRUE(conn2->WaitClosed());
  // A GET with a body is still the server's 413: the handler never sees it.
  auto conn3 = Connect(server->port());
  const auto with_body = Ask(*conn3, GetRequest("/", "Content-Length: 5\r\n"));
  ASSERT_TRUE(with_body);
  EXPECT_EQ(with_body->status, 413);
  EXPECT_TRUE(conn3->WaitClosed());
  EXPECT_EQ(calls.load(), 4);
  {
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_EQ(methods, (std::vector<std::string>{"DELETE", "GET", "POST", "PUT"}));
  }
  EXPECT_EQ(server->stats().rejected_method, 0u);
  EXPECT_EQ(server->stats().rejected_body, 1u);
}

TEST(ServerTest, RefusesAnAnnouncedBodyWith413BeforeItIsSent) {
  std::atomic<int> calls{0};
  auto server = StartServer(TestOptions(), [&](const HttpRequest& r, ResponseWriter& w) {
    ++calls;
    Hello(r, w);
  });
  {
    auto conn = Connect(server->port());
    // 100 MB announced; only the header is sent, the body never.
    ASSERT_TRUE(conn->WriteAll(GetRequest("/", "Content-Length: 100000000\r\n")));
    auto response = ReadResponse(*conn);
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 413);
    EXPECT_NE(response->body.find("RequestEntityTooLarge"), std::string::npos);
    EXPECT_TRUE(conn->WaitClosed());
  }
  {
    auto conn = Connect(server->port());
    ASSERT_TRUE(conn->WriteAll(GetRequest("/", "Transfer-Encoding: chunked\r\n")));
    auto response = ReadResponse(*conn);
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 413);
    EXPECT_TRUE(conn->WaitClosed());
  }
  {
    auto conn = Connect(server->port());  // Content-Length: 0 is no body
    ASSERT_TRUE(conn->WriteAll(GetRequest("/", "Content-Length: 0\r\n")));
    auto response = ReadResponse(*conn);
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 200);
  }
  EXPECT_EQ(calls.load(), 1);
  EXPECT_EQ(server->stats().rejected_body, 2u);
}

TEST(ServerTest, RefusesAnOversizedHeaderWith431) {
  auto server = StartServer(TestOptions(), Hello);
  {
    // Under the 16 KiB default: served.
    auto conn = Connect(server->port());
    ASSERT_TRUE(conn->WriteAll(GetRequest("/", "X-Big: " + std::string(8000, 'a') + "\r\n")));
    auto response = ReadResponse(*conn);
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 200);
  }
  {
    // 1 MB: the server answers after the first 16 KiB; the rest may not be accepted.
    auto conn = Connect(server->port());
    std::thread sender(
        [&] { conn->WriteAll(GetRequest("/", "X-Big: " + std::string(1 << 20, 'a') + "\r\n")); });
    auto response = ReadResponse(*conn);
    sender.join();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 431);
    EXPECT_EQ(response->Header("connection"), "close");
    EXPECT_NE(response->body.find("\"code\":431"), std::string::npos);
  }
  EXPECT_EQ(server->stats().rejected_header_too_large, 1u);
}

TEST(ServerTest, MalformedRequestGets400AndIsClosed) {
  auto server = StartServer(TestOptions(), Hello);
  auto conn = Connect(server->port());
  ASSERT_TRUE(conn->WriteAll("GET / HTTP/1.1\r\nNo colon here\r\n\r\n"));
  auto response = ReadResponse(*conn);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 400);
  EXPECT_NE(response->body.find("BadRequest"), std::string::npos);
  EXPECT_TRUE(conn->WaitClosed());
  EXPECT_EQ(server->stats().rejected_bad_request, 1u);
}

TEST(ServerTest, SlowHeaderIsCutOffAtTheHeaderReadTimeout) {
  auto options = TestOptions();
  options.header_read_timeout = 300ms;
  auto server = StartServer(options, Hello);
  auto conn = Connect(server->port());
  // One byte every 50 ms: the whole header would take about 3 s.
  const std::string request = GetRequest("/", "X-Slow: " + std::string(40, 's') + "\r\n");
  bool cut_off = false;
  for (char c : request) {
    if (!conn->WriteAll(std::string_view(&c, 1))) {
      cut_off = true;
      break;
    }
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_TRUE(cut_off) << "the whole slow header was accepted";
  EXPECT_TRUE(conn->WaitClosed());
  EXPECT_TRUE(conn->buffer.empty()) << "answered: " << conn->buffer;
  // The socket closes at the deadline, and the count follows.
  EXPECT_TRUE(WaitFor([&] { return server->stats().header_timeouts == 1; }));
  EXPECT_TRUE(WaitFor([&] { return server->stats().connections_open == 0; }));
}

TEST(ServerTest, SilentConnectionIsClosedAtTheHeaderReadTimeout) {
  auto options = TestOptions();
  options.header_read_timeout = 200ms;
  auto server = StartServer(options, Hello);
  auto conn = Connect(server->port());
  EXPECT_TRUE(conn->WaitClosed());
  EXPECT_TRUE(WaitFor([&] { return server->stats().header_timeouts == 1; }));
}

TEST(ServerTest, IdleKeptAliveConnectionIsClosedAtTheIdleTimeout) {
  auto options = TestOptions();
  options.idle_timeout = 300ms;
  auto server = StartServer(options, Hello);
  auto conn = Connect(server->port());
  ASSERT_TRUE(conn->WriteAll(GetRequest("/")));
  ASSERT_TRUE(ReadResponse(*conn));
  const auto start = Clock::now();
  EXPECT_TRUE(conn->WaitClosed());
  EXPECT_GE(Clock::now() - start, 250ms);
  EXPECT_TRUE(WaitFor([&] { return server->stats().idle_timeouts == 1; }));
  EXPECT_EQ(server->stats().header_timeouts, 0u);
}

TEST(ServerTest, KeptAliveConnectionWaitsIdleTimeoutNotHeaderTimeoutForTheNextRequest) {
  auto options = TestOptions();
  options.header_read_timeout = 200ms;
  options.idle_timeout = 5s;
  auto server = StartServer(options, Hello);
  auto conn = Connect(server->port());
  ASSERT_TRUE(conn->WriteAll(GetRequest("/")));
  ASSERT_TRUE(ReadResponse(*conn));
  std::this_thread::sleep_for(600ms);  // well past the header timeout, within idle
  ASSERT_TRUE(conn->WriteAll(GetRequest("/")));
  auto second = ReadResponse(*conn);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->status, 200);
}

TEST(ServerTest, ClientThatStopsReadingIsDisconnectedAndWriteFails) {
  auto options = TestOptions();
  options.write_timeout = 300ms;
  std::promise<std::pair<bool, std::size_t>> outcome;
  auto server = StartServer(options, [&](const HttpRequest& r, ResponseWriter& w) {
    if (r.path != "/flood") return Hello(r, w);
    ASSERT_TRUE(w.Begin(200, "text/plain"));
    const std::string piece(64 * 1024, 'f');
    std::size_t written = 0;
    bool ok = true;
    // Far more than any socket buffer: ends only when Write() fails.
    while (ok && written < (std::size_t{1} << 30)) {
      ok = w.Write(piece);
      written += piece.size();
    }
    outcome.set_value({ok, written});
  });
  auto reader = Connect(server->port(), /*receive_buffer=*/4096);
  ASSERT_TRUE(reader->WriteAll(GetRequest("/flood")));
  auto future = outcome.get_future();
  ASSERT_EQ(future.wait_for(10s), std::future_status::ready);
  const auto [ok, written] = future.get();
  EXPECT_FALSE(ok);
  EXPECT_LT(written, std::size_t{64} << 20) << "the server buffered far more than it should";
  EXPECT_EQ(server->stats().write_timeouts, 1u);
  auto other = Fetch(server->port());
  ASSERT_TRUE(other);
  EXPECT_EQ(other->body, "hello");
}

TEST(ServerTest, InflightCapAnswers429WithRetryAfterWithoutRunningTheHandler) {
  auto options = TestOptions();
  options.worker_threads = 1;
  options.max_requests_inflight = 2;
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  std::atomic<int> calls{0};
  auto server = StartServer(options, [&](const HttpRequest& r, ResponseWriter& w) {
    ++calls;
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return release; });
    Hello(r, w);
  });
  auto running = Connect(server->port());
  auto queued = Connect(server->port());
  ASSERT_TRUE(running->WriteAll(GetRequest("/")));
  ASSERT_TRUE(WaitFor([&] { return calls.load() == 1; }));
  ASSERT_TRUE(queued->WriteAll(GetRequest("/")));
  ASSERT_TRUE(WaitFor([&] { return server->stats().requests_inflight == 2; }));

  auto refused = Connect(server->port());
  ASSERT_TRUE(refused->WriteAll(GetRequest("/")));
  auto response = ReadResponse(*refused);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 429);
  EXPECT_EQ(response->Header("retry-after"), "1");
  EXPECT_NE(response->body.find("TooManyRequests"), std::string::npos);
  EXPECT_EQ(calls.load(), 1);

  {
    std::lock_guard<std::mutex> lock(mu);
    release = true;
  }
  cv.notify_all();
  auto first = ReadResponse(*running);
  auto second = ReadResponse(*queued);
  ASSERT_TRUE(first && second);
  EXPECT_EQ(first->status, 200);
  EXPECT_EQ(second->status, 200);
  // The refused connection stays open and is served once there is room.
  ASSERT_TRUE(refused->WriteAll(GetRequest("/")));
  auto retried = ReadResponse(*refused);
  ASSERT_TRUE(retried);
  EXPECT_EQ(retried->status, 200);
  EXPECT_EQ(server->stats().rejected_inflight_cap, 1u);
  // A handler leaves the in-flight count just after its response is written.
  EXPECT_TRUE(WaitFor([&] { return server->stats().requests_inflight == 0; }));
}

TEST(ServerTest, ConnectionCapAnswers503AndCloses) {
  auto options = TestOptions();
  options.max_connections = 2;
  auto server = StartServer(options, Hello);
  auto a = Connect(server->port());
  auto b = Connect(server->port());
  ASSERT_TRUE(WaitFor([&] { return server->stats().connections_open == 2; }));
  auto c = Connect(server->port());
  ASSERT_TRUE(c);
  auto refused = ReadResponse(*c);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 503);
  EXPECT_NE(refused->body.find("ServiceUnavailable"), std::string::npos);
  EXPECT_TRUE(c->WaitClosed());
  EXPECT_EQ(server->stats().rejected_connection_cap, 1u);
  // The held connections are served; once one closes there is room again.
  ASSERT_TRUE(a->WriteAll(GetRequest("/")));
  ASSERT_TRUE(ReadResponse(*a));
  b.reset();
  ASSERT_TRUE(WaitFor([&] { return server->stats().connections_open == 1; }));
  auto d = Fetch(server->port());
  ASSERT_TRUE(d);
  EXPECT_EQ(d->status, 200);
}

TEST(ServerTest, SlowHeaderFloodStarvesNeitherThisServerNorAnother) {
  auto options = TestOptions();
  options.header_read_timeout = 30s;  // the flood stays for the whole test
  auto api = StartServer(options, Hello);
  auto probe_options = TestOptions();
  probe_options.name = "probe";
  auto probe = StartServer(probe_options, [](const HttpRequest&, ResponseWriter& w) {
    w.Send(200, "text/plain", "ok");
  });
  std::vector<std::unique_ptr<PlainConn>> flood;
  for (int i = 0; i < 200; ++i) {
    auto conn = Connect(api->port());
    ASSERT_TRUE(conn);
    ASSERT_TRUE(conn->WriteAll("GET / HTTP/1.1\r\nX-Slow: "));
    flood.push_back(std::move(conn));
  }
  ASSERT_TRUE(WaitFor([&] { return api->stats().connections_open == 200; }));
  const auto start = Clock::now();
  auto answered = Fetch(api->port());
  ASSERT_TRUE(answered);
  EXPECT_EQ(answered->body, "hello");
  auto probed = Fetch(probe->port());
  ASSERT_TRUE(probed);
  EXPECT_EQ(probed->body, "ok");
  EXPECT_LT(Clock::now() - start, 5s);
  EXPECT_EQ(api->stats().header_timeouts, 0u);
}

TEST(ServerTest, HandlerThatDoesNotAnswerOrThrowsGets500) {
  auto server = StartServer(TestOptions(), [](const HttpRequest& r, ResponseWriter& w) {
    if (r.path == "/throw") throw std::runtime_error("boom");
    if (r.path == "/throw-streaming") {
      w.Begin(200, "text/plain");
      w.Write("partial");
      throw std::runtime_error("boom");
    }
    (void)w;  // "/silent": no answer
  });
  auto conn = Connect(server->port());
  ASSERT_TRUE(conn->WriteAll(GetRequest("/silent")));
  auto silent = ReadResponse(*conn);
  ASSERT_TRUE(silent);
  EXPECT_EQ(silent->status, 500);
  EXPECT_NE(silent->body.find("InternalError"), std::string::npos);
  ASSERT_TRUE(conn->WriteAll(GetRequest("/throw")));
  auto threw = ReadResponse(*conn);
  ASSERT_TRUE(threw);
  EXPECT_EQ(threw->status, 500);
  ASSERT_TRUE(conn->WriteAll(GetRequest("/throw-streaming")));
  EXPECT_FALSE(ReadResponse(*conn)) << "a cut-short stream must not look complete";
  EXPECT_EQ(server->stats().responses_5xx, 2u);
}

TEST(ServerTest, StopUnblocksAStreamingHandlerAndIsIdempotent) {
  std::promise<bool> write_result;
  std::atomic<bool> streaming{false};
  auto server = StartServer(TestOptions(), [&](const HttpRequest&, ResponseWriter& w) {
    w.Begin(200, "text/plain");
    streaming = true;
    const std::string piece(64 * 1024, 's');
    bool ok = true;
    while (ok) ok = w.Write(piece);  // the client never reads
    write_result.set_value(ok);
  });
  auto conn = Connect(server->port(), 4096);
  ASSERT_TRUE(conn->WriteAll(GetRequest("/")));
  ASSERT_TRUE(WaitFor([&] { return streaming.load(); }));
  const int port = server->port();
  server->Stop();
  EXPECT_FALSE(write_result.get_future().get());
  server->Stop();
  EXPECT_EQ(server->port(), 0);
  EXPECT_EQ(ConnectFd(port), -1) << "still listening after Stop()";
}

TEST(ServerTest, StartFailsOnABadOrTakenAddress) {
  for (const char* address :
       {"nonsense", "127.0.0.1:99999", "127.0.0.1:", "::1:80", "[::1:80", "[]:80"}) {
    auto options = TestOptions();
    options.bind_address = address;
    Server server(options, Hello);
    std::string error;
    EXPECT_FALSE(server.Start(&error)) << address;
    EXPECT_FALSE(error.empty()) << address;
    server.Stop();
  }
  auto first = StartServer(TestOptions(), Hello);
  auto options = TestOptions();
  options.bind_address = "127.0.0.1:" + std::to_string(first->port());
  Server second(options, Hello);
  std::string error;
  EXPECT_FALSE(second.Start(&error));
  EXPECT_NE(error.find("cannot listen"), std::string::npos) << error;
  EXPECT_NE(error.find("in use"), std::string::npos) << "the cause is named: " << error;
}

TEST(ServerTest, ListensOnAllInterfacesAndOnIPv6Loopback) {
  auto options = TestOptions();
  options.bind_address = ":0";
  auto all = StartServer(options, Hello);
  auto via_loopback = Fetch(all->port());
  ASSERT_TRUE(via_loopback);
  EXPECT_EQ(via_loopback->status, 200);

  options.bind_address = "[::1]:0";
  Server v6(options, Hello);
  std::string error;
  if (!v6.Start(&error)) GTEST_SKIP() << "no IPv6 loopback here: " << error;
  const int fd = ::socket(AF_INET6, SOCK_STREAM, 0);
  sockaddr_in6 addr{};
  addr.sin6_family = AF_INET6;
  addr.sin6_addr = in6addr_loopback;
  addr.sin6_port = htons(static_cast<uint16_t>(v6.port()));
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  PlainConn conn(fd);
  ASSERT_TRUE(conn.WriteAll(GetRequest("/")));
  auto response = ReadResponse(conn);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->body, "hello");
}

// ---- TLS ----------------------------------------------------------------------------------

Server::Options TlsOptions() {
  Server::Options o = TestOptions();
  o.tls = true;
  return o;
}

std::vector<std::string> SubjectAltNames(X509* cert) {
  std::vector<std::string> out;
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; names && i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
    if (name->type == GEN_DNS) {
      out.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(name->d.dNSName)),
                       ASN1_STRING_length(name->d.dNSName));
    } else if (name->type == GEN_IPADD) {
      const int length = ASN1_STRING_length(name->d.iPAddress);
      char text[INET6_ADDRSTRLEN] = {};
      inet_ntop(length == 4 ? AF_INET : AF_INET6, ASN1_STRING_get0_data(name->d.iPAddress), text,
                sizeof(text));
      out.emplace_back(text);
    }
  }
  GENERAL_NAMES_free(names);
  return out;
}

TEST(ServerTlsTest, ServesASelfSignedCertificateWhenGivenNoFiles) {
  auto options = TlsOptions();
  options.tls_extra_names = {"eventbuffer.example.svc", "10.1.2.3"};
  std::promise<bool> tls_seen;
  auto server = StartServer(options, [&](const HttpRequest& r, ResponseWriter& w) {
    tls_seen.set_value(r.tls);
    Hello(r, w);
  });
  std::string error;
  auto conn = TlsConn::Open(server->port(), {}, &error);
  ASSERT_TRUE(conn) << error;
  ASSERT_TRUE(conn->WriteAll(GetRequest("/")));
  auto response = ReadResponse(*conn);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->body, "hello");
  EXPECT_TRUE(tls_seen.get_future().get());
  std::unique_ptr<X509, decltype(&X509_free)> cert(conn->PeerCertificate(), X509_free);
  ASSERT_TRUE(cert);
  EXPECT_EQ(X509_NAME_cmp(X509_get_subject_name(cert.get()), X509_get_issuer_name(cert.get())), 0);
  EXPECT_EQ(X509_verify(cert.get(), X509_get0_pubkey(cert.get())), 1) << "not self-signed";
  const auto names = SubjectAltNames(cert.get());
  for (const char* expected : {"localhost", "127.0.0.1", "eventbuffer.example.svc", "10.1.2.3"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), expected), names.end()) << expected;
  }
  EXPECT_EQ(EVP_PKEY_base_id(X509_get0_pubkey(cert.get())), EVP_PKEY_EC);
}

TEST(ServerTlsTest, RefusesTls11AndAcceptsTls12) {
  auto server = StartServer(TlsOptions(), Hello);
  TlsClientOptions old;
  old.max_version = TLS1_1_VERSION;
  old.cipher_list = "DEFAULT:@SECLEVEL=0";  // let this client offer TLS 1.1 at all
  std::string error;
  EXPECT_FALSE(TlsConn::Open(server->port(), old, &error));
  // The refusal came from the server, not from a client that could not offer TLS 1.1.
  EXPECT_TRUE(WaitFor([&] { return server->stats().tls_handshake_failures == 1; }));

  TlsClientOptions tls12;
  tls12.max_version = TLS1_2_VERSION;
  auto conn = TlsConn::Open(server->port(), tls12, &error);
  ASSERT_TRUE(conn) << error;
  EXPECT_EQ(conn->Version(), TLS1_2_VERSION);
  ASSERT_TRUE(conn->WriteAll(GetRequest("/")));
  auto response = ReadResponse(*conn);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
}

TEST(ServerTlsTest, PlainHttpOnTheTlsPortFailsTheHandshake) {
  auto server = StartServer(TlsOptions(), Hello);
  Connect(server->port()).reset();  // a TCP probe: not a failed handshake
  ASSERT_TRUE(WaitFor([&] { return server->stats().connections_open == 0; }));
  EXPECT_EQ(server->stats().tls_handshake_failures, 0u);
  auto conn = Connect(server->port());
  ASSERT_TRUE(conn->WriteAll(GetRequest("/")));
  EXPECT_TRUE(conn->WaitClosed());
  EXPECT_EQ(server->stats().tls_handshake_failures, 1u);
}

TEST(ServerTlsTest, PassesTheClientChainUnverifiedToTheHandler) {
  const Cert server_cert = MakeCert("server", nullptr, false);
  const Cert root = MakeCert("client root", nullptr, true);
  const Cert intermediate = MakeCert("client intermediate", &root, true);
  const Cert leaf = MakeCert("client leaf", &intermediate, false);
  const Cert stranger = MakeCert("self-signed stranger", nullptr, false);
  TempDir dir;
  auto options = TlsOptions();
  options.tls_cert_file = dir.Write("tls.crt", server_cert.cert_pem);
  options.tls_private_key_file = dir.Write("tls.key", server_cert.key_pem);
  std::mutex mu;
  std::vector<std::vector<std::string>> chains;
  auto server = StartServer(options, [&](const HttpRequest& r, ResponseWriter& w) {
    {
      std::lock_guard<std::mutex> lock(mu);
      chains.push_back(r.peer_certificates_der);
    }
    Hello(r, w);
  });
  auto request = [&](const TlsClientOptions& client) {
    std::string error;
    auto conn = TlsConn::Open(server->port(), client, &error);
    EXPECT_TRUE(conn) << error;
    if (!conn) return;
    EXPECT_EQ(conn->PeerDer(), server_cert.der);
    ASSERT_TRUE(conn->WriteAll(GetRequest("/")));
    auto response = ReadResponse(*conn);
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 200);
  };
  TlsClientOptions with_chain;
  with_chain.client = &leaf;
  with_chain.client_chain = {&intermediate};
  request(with_chain);
  TlsClientOptions untrusted;
  untrusted.client = &stranger;
  request(untrusted);
  request({});

  std::lock_guard<std::mutex> lock(mu);
  ASSERT_EQ(chains.size(), 3u);
  ASSERT_EQ(chains[0].size(), 2u);
  EXPECT_TRUE(chains[0][0] == leaf.der) << "leaf first";
  EXPECT_TRUE(chains[0][1] == intermediate.der);
  ASSERT_EQ(chains[1].size(), 1u);
  EXPECT_TRUE(chains[1][0] == stranger.der);
  EXPECT_TRUE(chains[2].empty());
}

TEST(ServerTlsTest, ReloadsTheCertificateWhenTheFilesChangeAndKeepsItOnABadPair) {
  const Cert first = MakeCert("first", nullptr, false);
  const Cert second = MakeCert("second", nullptr, false);
  TempDir dir;
  // A Secret volume: the files are symlinks through "..data" to a versioned directory.
  dir.Write("v1/tls.crt", first.cert_pem);
  dir.Write("v1/tls.key", first.key_pem);
  dir.Write("v2/tls.crt", second.cert_pem);
  dir.Write("v2/tls.key", second.key_pem);
  dir.Write("v3/tls.crt", "-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n");
  dir.Write("v3/tls.key", second.key_pem);
  namespace fs = std::filesystem;
  const fs::path root(dir.path());
  fs::create_directory_symlink("v1", root / "..data");
  fs::create_symlink("..data/tls.crt", root / "tls.crt");
  fs::create_symlink("..data/tls.key", root / "tls.key");
  auto swap_to = [&](const std::string& version) {
    fs::create_directory_symlink(version, root / "..data_tmp");
    fs::rename(root / "..data_tmp", root / "..data");  // atomic, as the kubelet does
  };

  auto options = TlsOptions();
  options.tls_cert_file = (root / "tls.crt").string();
  options.tls_private_key_file = (root / "tls.key").string();
  options.tls_reload_interval = 50ms;
  auto server = StartServer(options, Hello);
  auto served = [&] {
    std::string error;
    auto conn = TlsConn::Open(server->port(), {}, &error);
    return conn ? conn->PeerDer() : std::string();
  };
  EXPECT_TRUE(served() == first.der);

  swap_to("v2");
  EXPECT_TRUE(WaitFor([&] { return served() == second.der; })) << "new pair not served";
  EXPECT_EQ(server->stats().tls_reloads, 1u);

  const std::uint64_t failures_before = server->stats().tls_reload_failures;
  swap_to("v3");
  EXPECT_TRUE(WaitFor([&] { return server->stats().tls_reload_failures > failures_before; }));
  const std::uint64_t failures = server->stats().tls_reload_failures;
  std::this_thread::sleep_for(200ms);
  EXPECT_TRUE(served() == second.der) << "a bad pair replaced a good one";
  EXPECT_EQ(server->stats().tls_reload_failures, failures) << "the same bad pair is refused once";
  EXPECT_EQ(server->stats().tls_reloads, 1u);
}

TEST(ServerTlsTest, StartFailsOnAHalfPairAMismatchedKeyOrMissingFiles) {
  const Cert a = MakeCert("a", nullptr, false);
  const Cert b = MakeCert("b", nullptr, false);
  TempDir dir;
  const std::string a_crt = dir.Write("a.crt", a.cert_pem);
  const std::string b_key = dir.Write("b.key", b.key_pem);
  const std::string junk = dir.Write("junk.pem", "not PEM at all");
  struct Case {
    std::string cert, key, expect;
  };
  for (const Case& c : std::vector<Case>{{a_crt, "", "together"},
                                         {"", b_key, "together"},
                                         {a_crt, b_key, "does not match"},
                                         {junk, b_key, "certificate"},
                                         {a_crt, dir.path() + "/missing.key", "missing.key"}}) {
    auto options = TlsOptions();
    options.tls_cert_file = c.cert;
    options.tls_private_key_file = c.key;
    Server server(options, Hello);
    std::string error;
    EXPECT_FALSE(server.Start(&error)) << c.cert << " " << c.key;
    EXPECT_NE(error.find(c.expect), std::string::npos) << error;
  }
  auto options = TlsOptions();
  options.tls_extra_names = {"bad name!"};
  Server server(options, Hello);
  std::string error;
  EXPECT_FALSE(server.Start(&error));
}

// Interoperability with a real client: curl over TLS, a streamed and a plain response on one
// connection, and a HEAD.
TEST(ServerTlsTest, CurlFetchesStreamedAndPlainResponsesOverOneConnection) {
  if (std::system("curl --version > /dev/null 2>&1") != 0) GTEST_SKIP() << "no curl here";
  auto server = StartServer(TlsOptions(), [](const HttpRequest& r, ResponseWriter& w) {
    if (r.path == "/plain") return w.Send(200, "text/plain", "plain\n");
    w.Begin(200, "text/plain");
    for (int i = 0; i < 3; ++i) w.Write("chunk " + std::to_string(i) + "\n");
  });
  const std::string base = "https://127.0.0.1:" + std::to_string(server->port());
  // One curl call reuses its connection for both URLs; -I (HEAD) would apply to every URL
  // of a call, so the HEAD is a second call.
  const std::string get_command =
      "curl -sS -k --http1.1 --max-time 10 " + base + "/stream " + base + "/plain 2>&1";
  auto run = [](const std::string& cmd) {
    std::string out;
    FILE* pipe = ::popen(cmd.c_str(), "r");
    char buf[4096];
    while (pipe && std::fgets(buf, sizeof(buf), pipe)) out += buf;
    if (pipe) ::pclose(pipe);
    return out;
  };
  EXPECT_EQ(run(get_command), "chunk 0\nchunk 1\nchunk 2\nplain\n");
  EXPECT_EQ(server->stats().connections_accepted, 1u) << "curl did not keep the connection";
  const std::string head = run("curl -sS -k --http1.1 --max-time 10 -I " + base + "/plain 2>&1");
  EXPECT_NE(head.find("HTTP/1.1 200 OK"), std::string::npos) << head;
  EXPECT_NE(Lower(head).find("content-length: 6"), std::string::npos) << head;
}

TEST(ServerTlsTest, ConnectionCapClosesTlsConnectionsAtOnce) {
  auto options = TlsOptions();
  options.max_connections = 1;
  auto server = StartServer(options, Hello);
  std::string error;
  auto held = TlsConn::Open(server->port(), {}, &error);
  ASSERT_TRUE(held) << error;
  EXPECT_FALSE(TlsConn::Open(server->port(), {}, &error));
  EXPECT_EQ(server->stats().rejected_connection_cap, 1u);
  ASSERT_TRUE(held->WriteAll(GetRequest("/")));
  EXPECT_TRUE(ReadResponse(*held));
}

}  // namespace
}  // namespace eventbuffer::controller
