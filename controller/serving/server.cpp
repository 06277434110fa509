#include "controller/serving/server.h"

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <cstring>
#include <ctime>
#include <deque>
#include <fstream>
#include <limits>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>
#include <unordered_map>

#include "controller/file_text.h"
#include "controller/serving/status.h"

namespace eventbuffer::controller {

namespace {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;
using Clock = std::chrono::steady_clock;

// TLS 1.2 suites: forward secrecy and AEAD only (TLS 1.3 suites are all of that kind).
constexpr char kTls12Ciphers[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

// ---- Bind address --------------------------------------------------------------------------

// "HOST:PORT", ":PORT", "[V6]:PORT" -> an endpoint to bind.
bool ResolveBindAddress(const std::string& address, tcp::endpoint* endpoint, std::string* error) {
  const std::size_t colon = address.rfind(':');
  if (colon == std::string::npos) {
    *error = "bind address '" + address + "' must be HOST:PORT, :PORT or [IPv6]:PORT";
    return false;
  }
  std::string host = address.substr(0, colon);
  const std::string port_text = address.substr(colon + 1);
  int port = -1;
  const auto [end, ec] =
      std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || ec != std::errc() || end != port_text.data() + port_text.size() ||
      port < 0 || port > 65535) {
    *error = "bind address '" + address + "' has a bad port";
    return false;
  }
  if (!host.empty() && host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') {
      *error = "bind address '" + address + "' has an unclosed '['";
      return false;
    }
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string::npos) {
    *error = "bind address '" + address + "': write an IPv6 host in brackets, [::1]:PORT";
    return false;
  }
  if (host.empty()) host = "0.0.0.0";
  boost::system::error_code addr_ec;
  const net::ip::address ip = net::ip::make_address(host, addr_ec);
  if (!addr_ec) {
    *endpoint = tcp::endpoint(ip, static_cast<unsigned short>(port));
    return true;
  }
  net::io_context ioc;
  tcp::resolver resolver(ioc);
  auto results = resolver.resolve(host, port_text, tcp::resolver::passive, addr_ec);
  if (addr_ec || results.empty()) {
    *error = "bind address '" + address + "': cannot resolve '" + host +
             "': " + (addr_ec ? addr_ec.message() : "no address");
    return false;
  }
  *endpoint = results.begin()->endpoint();
  return true;
}

std::string EndpointText(const tcp::endpoint& endpoint) {
  const net::ip::address address = endpoint.address();
  std::string host = address.to_string();
  if (address.is_v6()) host = "[" + host + "]";
  return host + ":" + std::to_string(endpoint.port());
}

// ---- TLS -----------------------------------------------------------------------------------

struct EvpPkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct X509Free {
  void operator()(X509* p) const { X509_free(p); }
};
struct BioFree {
  void operator()(BIO* p) const { BIO_free(p); }
};

std::string OpenSslError() {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "unknown OpenSSL error";
  char text[256];
  ERR_error_string_n(code, text, sizeof(text));
  return text;
}

std::string BioText(BIO* bio) {
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(size));
}

std::string Sha256Fingerprint(X509* cert) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (X509_digest(cert, EVP_sha256(), digest, &size) != 1) return "?";
  std::string out;
  char hex[4];
  for (unsigned int i = 0; i < size; ++i) {
    std::snprintf(hex, sizeof(hex), i == 0 ? "%02X" : ":%02X", digest[i]);
    out += hex;
  }
  return out;
}

// The fingerprint of the first certificate in a PEM text, or "?".
std::string PemFingerprint(const std::string& pem) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return "?";
  std::unique_ptr<X509, X509Free> cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  ERR_clear_error();
  return cert ? Sha256Fingerprint(cert.get()) : "?";
}

bool IsDnsName(const std::string& name) {
  if (name.empty() || name.size() > 253) return false;
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.' && c != '*') {
      return false;
    }
  }
  return true;
}

// The subjectAltName value of the self-signed certificate, e.g. "DNS:localhost,IP:127.0.0.1".
bool SelfSignedAltNames(const std::vector<std::string>& extra, std::string* out,
                        std::string* error) {
  *out = "DNS:localhost,IP:127.0.0.1,IP:::1";
  for (const std::string& name : extra) {
    boost::system::error_code ec;
    const net::ip::address ip = net::ip::make_address(name, ec);
    if (!ec) {
      *out += ",IP:" + ip.to_string();
    } else if (IsDnsName(name)) {
      *out += ",DNS:" + name;
    } else {
      *error = "extra name '" + name +
               "' of the self-signed certificate is neither a DNS name "
               "nor an IP address";
      return false;
    }
  }
  return true;
}

bool AddExtension(X509* cert, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (ext == nullptr) return false;
  const bool ok = X509_add_ext(cert, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  return ok;
}

// A self-signed EC P-256 certificate valid for a year, as PEM.
bool MakeSelfSignedCertificate(const std::string& alt_names, std::string* cert_pem,
                               std::string* key_pem, std::string* fingerprint, std::string* error) {
  std::unique_ptr<EVP_PKEY, EvpPkeyFree> key(EVP_EC_gen("P-256"));
  std::unique_ptr<X509, X509Free> cert(X509_new());
  if (!key || !cert) {
    *error = "cannot make a self-signed certificate: " + OpenSslError();
    return false;
  }
  unsigned char serial_bytes[16];
  BIGNUM* serial = nullptr;
  bool ok = RAND_bytes(serial_bytes, sizeof(serial_bytes)) == 1;
  serial_bytes[0] &= 0x7f;  // a positive serial number
  ok = ok && (serial = BN_bin2bn(serial_bytes, sizeof(serial_bytes), nullptr)) != nullptr;
  ok = ok && BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(cert.get())) != nullptr;
  BN_free(serial);
  X509_NAME* name = X509_get_subject_name(cert.get());
  ok = ok && X509_set_version(cert.get(), 2) == 1 &&
       X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600) != nullptr &&
       X509_gmtime_adj(X509_getm_notAfter(cert.get()), 365L * 24 * 3600) != nullptr &&
       X509_set_pubkey(cert.get(), key.get()) == 1 &&
       X509_NAME_add_entry_by_txt(
           name, "CN", MBSTRING_ASC,
           reinterpret_cast<const unsigned char*>("eventbuffer-controller self-signed"), -1, -1,
           0) == 1 &&
       X509_set_issuer_name(cert.get(), name) == 1 &&
       AddExtension(cert.get(), NID_basic_constraints, "critical,CA:FALSE") &&
       AddExtension(cert.get(), NID_key_usage, "critical,digitalSignature") &&
       AddExtension(cert.get(), NID_ext_key_usage, "serverAuth") &&
       AddExtension(cert.get(), NID_subject_key_identifier, "hash") &&
       AddExtension(cert.get(), NID_subject_alt_name, alt_names.c_str()) &&
       X509_sign(cert.get(), key.get(), EVP_sha256()) > 0;
  std::unique_ptr<BIO, BioFree> cert_bio(BIO_new(BIO_s_mem()));
  std::unique_ptr<BIO, BioFree> key_bio(BIO_new(BIO_s_mem()));
  ok = ok && cert_bio && key_bio && PEM_write_bio_X509(cert_bio.get(), cert.get()) == 1 &&
       PEM_write_bio_PrivateKey(key_bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) ==
           1;
  if (!ok) {
    *error = "cannot make a self-signed certificate: " + OpenSslError();
    return false;
  }
  *cert_pem = BioText(cert_bio.get());
  *key_pem = BioText(key_bio.get());
  *fingerprint = Sha256Fingerprint(cert.get());
  return true;
}

// Authentication verifies client certificates itself, against its own CAs, from
// HttpRequest::peer_certificates_der: the handshake accepts whatever the client presents.
int AcceptAnyClientCertificate(int /*preverify_ok*/, X509_STORE_CTX* /*ctx*/) { return 1; }

// A server context for one certificate/key pair (PEM), or nullptr with *error.
std::shared_ptr<ssl::context> MakeTlsContext(const std::string& cert_pem,
                                             const std::string& key_pem, std::string* error) {
  auto context = std::make_shared<ssl::context>(ssl::context::tls_server);
  SSL_CTX* ctx = context->native_handle();
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                               SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET);
  // No resumption: every connection presents (and authentication sees) the client's chain.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets(ctx, 0);
  static constexpr unsigned char kSessionContext[] = "eventbuffer";
  SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof(kSessionContext) - 1);
  // Ask for a client certificate, never require one, never fail on it.
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, AcceptAnyClientCertificate);
  if (SSL_CTX_set_cipher_list(ctx, kTls12Ciphers) != 1) {
    *error = "cannot set the TLS cipher suites: " + OpenSslError();
    return nullptr;
  }
  boost::system::error_code ec;
  context->use_certificate_chain(net::buffer(cert_pem), ec);
  if (ec) {
    *error = "bad certificate: " + ec.message();
    ERR_clear_error();
    return nullptr;
  }
  std::unique_ptr<BIO, BioFree> key_bio(
      BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size())));
  std::unique_ptr<EVP_PKEY, EvpPkeyFree> key(
      key_bio ? PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!key) {
    *error = "bad private key: " + OpenSslError();
    return nullptr;
  }
  if (SSL_CTX_use_PrivateKey(ctx, key.get()) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
    *error = "the private key does not match the certificate";
    ERR_clear_error();
    return nullptr;
  }
  return context;
}

bool ReadWholeFile(const std::string& path, std::string* out, std::string* error) {
  if (ReadFileText(path, out)) return true;
  *error = "cannot read '" + path + "'";
  return false;
}

// The client's chain as presented, leaf first, DER. On the server side OpenSSL keeps the
// leaf apart from the rest of the chain.
std::vector<std::string> PeerChainDer(SSL* ssl) {
  std::vector<std::string> out;
  auto der = [](X509* cert) {
    std::string bytes;
    const int size = i2d_X509(cert, nullptr);
    if (size <= 0) return bytes;
    bytes.resize(static_cast<std::size_t>(size));
    auto* p = reinterpret_cast<unsigned char*>(bytes.data());
    i2d_X509(cert, &p);
    return bytes;
  };
  std::unique_ptr<X509, X509Free> leaf(SSL_get1_peer_certificate(ssl));
  if (!leaf) return out;
  out.push_back(der(leaf.get()));
  STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl);
  const int n = chain ? sk_X509_num(chain) : 0;
  for (int i = 0; i < n; ++i) {
    std::string bytes = der(sk_X509_value(chain, i));
    if (i == 0 && bytes == out.front()) continue;  // some builds list the leaf here too
    out.push_back(std::move(bytes));
  }
  return out;
}

// ---- Response heads ------------------------------------------------------------------------

bool IsTokenChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool IsValidHeaderName(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    if (!IsTokenChar(c)) return false;
  }
  return true;
}

bool IsValidHeaderValue(std::string_view value) {
  for (char c : value) {
    if (c == '\r' || c == '\n' || c == '\0') return false;
  }
  return true;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

// The server owns the framing of a response: handlers cannot set these.
bool IsReservedHeader(std::string_view name) {
  for (std::string_view reserved :
       {"content-length", "transfer-encoding", "connection", "content-type", "date"}) {
    if (EqualsIgnoreCase(name, reserved)) return true;
  }
  return false;
}

std::string HttpDate() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char text[64];
  std::strftime(text, sizeof(text), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return text;
}

struct Framing {
  std::optional<std::uint64_t> content_length;  // Content-Length
  bool chunked = false;                         // Transfer-Encoding: chunked
  bool close = false;                           // Connection: close
};

std::string ResponseHead(int status, std::string_view content_type, const HeaderFields& headers,
                         const Framing& framing) {
  const auto beast_reason = http::obsolete_reason(http::int_to_status(status));
  std::string_view reason(beast_reason.data(), beast_reason.size());
  if (http::int_to_status(status) == http::status::unknown) reason = "Unknown";
  std::string out;
  out.reserve(256);
  out.append("HTTP/1.1 ").append(std::to_string(status)).append(" ").append(reason);
  out.append("\r\nDate: ").append(HttpDate()).append("\r\n");
  if (!content_type.empty() && IsValidHeaderValue(content_type)) {
    out.append("Content-Type: ").append(content_type).append("\r\n");
  }
  if (framing.content_length) {
    out.append("Content-Length: ").append(std::to_string(*framing.content_length)).append("\r\n");
  }
  if (framing.chunked) out.append("Transfer-Encoding: chunked\r\n");
  if (framing.close) out.append("Connection: close\r\n");
  for (const auto& [name, value] : headers) {
    if (!IsValidHeaderName(name) || !IsValidHeaderValue(value) || IsReservedHeader(name)) {
      spdlog::warn("response header '{}' dropped: reserved or not a valid header field", name);
      continue;
    }
    out.append(name).append(": ").append(value).append("\r\n");
  }
  out.append("\r\n");
  return out;
}

// A whole error response with a Status body (no body for HEAD).
std::string ErrorResponse(int status, std::string_view message, bool head, bool close,
                          const HeaderFields& headers = {}) {
  const std::string body = StatusJson(status, message);
  Framing framing;
  framing.content_length = body.size();
  framing.close = close;
  std::string out = ResponseHead(status, "application/json", headers, framing);
  if (!head) out += body;
  return out;
}

bool IsQuietDisconnect(const boost::system::error_code& ec) {
  return ec == net::error::eof || ec == net::error::connection_reset ||
         ec == net::error::broken_pipe || ec == net::error::operation_aborted ||
         ec == http::error::end_of_stream || ec == http::error::partial_message ||
         ec == ssl::error::stream_truncated;
}

bool IsHttpParseError(const boost::system::error_code& ec) {
  return ec.category() == boost::system::error_code(http::error::bad_method).category();
}

// Lowers the calling thread's scheduling priority to `nice` (Linux: a nice value is per
// thread). Raising a nice value needs no privilege; a failure is logged and ignored.
void SetThreadNice(int nice, const std::string& server_name) {
  if (nice == 0) return;
  if (setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), nice) != 0) {
    spdlog::warn("{}: cannot set thread nice {}: {}", server_name, nice, std::strerror(errno));
  }
}

// ---- Workers -------------------------------------------------------------------------------

// A fixed pool of threads running tasks in FIFO order.
class WorkerPool {
 public:
  // Each thread first lowers its priority to `nice` (0: unchanged).
  void Start(int threads, int nice, const std::string& name) {
    for (int i = 0; i < threads; ++i) {
      threads_.emplace_back([this, nice, name] {
        SetThreadNice(nice, name);
        Loop();
      });
    }
  }
  void Post(std::function<void()> task) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
      tasks_.push_back(std::move(task));
    }
    cv_.notify_one();
  }
  // Drops queued tasks, waits for running ones and joins the threads.
  void Stop() {
    std::deque<std::function<void()>> dropped;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      dropped.swap(tasks_);
    }
    cv_.notify_all();
    dropped.clear();
    for (std::thread& t : threads_) t.join();
    threads_.clear();
  }

 private:
  void Loop() {
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
        if (stopping_) return;
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      task();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

// ---- The handler <-> socket channel --------------------------------------------------------

// The bytes of one response on their way from the handler (a worker thread) to the socket
// (the session's strand). The handler appends to `pending` (bounded by kStreamBufferBytes for
// streamed data) and asks the session to write; the session takes `pending` whole and
// writes it, then takes again. `dead` (client gone, write deadline, Stop) makes every later
// Write() fail.
struct ResponseChannel {
  ~ResponseChannel() {
    if (stream_count != nullptr) stream_count->fetch_sub(1, std::memory_order_relaxed);
  }

  std::mutex mu;
  std::condition_variable space;  // pending shrank, or dead
  std::string pending;
  bool kick_posted = false;  // a Kick is on its way to the session
  bool done = false;         // the handler returned; pending holds the response's end
  bool dead = false;
  bool close_after = false;  // close the connection after this response
  // A Stream() response: its producer (dropped at the end, or when the client is gone),
  // whether its parts are chunked, and whether it waits for the session to take `pending`
  // before it makes more (then the session posts the next Produce step).
  std::shared_ptr<BodyProducer> producer;
  bool chunked = false;
  bool producer_waiting = false;
  // The server's count of open streams, released with the channel.
  std::atomic<std::int64_t>* stream_count = nullptr;
};

// Appends one part of a streamed body to `out`, as a chunk when `chunked`.
void AppendPart(std::string* out, std::string_view part, bool chunked) {
  if (part.empty()) return;  // an empty chunk would end the body
  if (chunked) {
    char size[20];
    const int n = std::snprintf(size, sizeof(size), "%zx\r\n", part.size());
    out->append(size, static_cast<std::size_t>(n));
    out->append(part);
    out->append("\r\n");
  } else {
    out->append(part);
  }
}

class Session;

}  // namespace

// ---- Server::Impl --------------------------------------------------------------------------

struct Server::Impl {
  Impl(Options o, Handler h) : options(std::move(o)), handler(std::move(h)) {}

  void OnAccept(boost::system::error_code ec, tcp::socket socket);
  void DoAccept();
  void ScheduleReload();
  void CheckReload();
  void CountStatus(int status);
  void RunHandler(const HttpRequest& request, const std::shared_ptr<ResponseChannel>& channel,
                  const std::shared_ptr<Session>& session, bool head, bool http10, bool keep_alive);
  // On a worker: runs a Stream() response's producer until `pending` holds
  // kStreamBufferBytes or the body ends.
  void Produce(const std::shared_ptr<ResponseChannel>& channel,
               const std::shared_ptr<Session>& session);

  const Options options;
  const Handler handler;

  // Stats (relaxed atomics: independent counters, read for export only).
  std::atomic<std::uint64_t> accepted{0}, open{0}, rejected_connection_cap{0},
      rejected_header_too_large{0}, rejected_body{0}, rejected_method{0}, rejected_inflight_cap{0},
      rejected_bad_request{0}, header_timeouts{0}, idle_timeouts{0}, write_timeouts{0},
      tls_handshake_failures{0}, tls_reloads{0}, tls_reload_failures{0};
  std::atomic<std::uint64_t> responses[5] = {};
  // Handlers queued or running; incremented on the I/O thread, decremented by a worker.
  std::atomic<std::int64_t> inflight{0};
  // Stream() responses not yet ended (their channels alive).
  std::atomic<std::int64_t> streams{0};

  std::atomic<bool> stopping{false};
  bool started = false;
  bool stopped = false;
  std::atomic<int> bound_port{0};

  // Open sessions, for Stop().
  std::mutex sessions_mu;
  std::unordered_map<Session*, std::weak_ptr<Session>> sessions;

  // TLS: the context for new handshakes (swapped on reload), and the file contents last
  // tried. Accessed on the acceptor's strand only (after Start()).
  std::shared_ptr<ssl::context> tls_context;
  bool tls_from_files = false;
  std::string last_cert_pem, last_key_pem;
  bool last_read_failed = false;

  WorkerPool workers;

  // Declared last: destroyed first, with the handlers (and so the sessions) it still holds,
  // while the members above are alive.
  net::io_context ioc;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
  std::optional<net::strand<net::io_context::executor_type>> accept_strand;
  std::optional<tcp::acceptor> acceptor;
  std::optional<net::steady_timer> accept_retry_timer;
  std::optional<net::steady_timer> reload_timer;
  std::vector<std::thread> io_threads;
  std::mutex io_done_mu;
  std::condition_variable io_done_cv;
  int io_running = 0;
};

// ---- Session -------------------------------------------------------------------------------

namespace {

// One connection: handshake, header reads with their deadlines, the limits, dispatch to a
// worker, and writing the response the worker produces. Every member is used on the
// session's strand only, except Kick() and PostClose() (any thread).
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Server::Impl* server, tcp::socket socket, std::shared_ptr<ssl::context> tls_context)
      : server_(server), tls_context_(std::move(tls_context)), start_(Clock::now()) {
    if (tls_context_) {
      tls_.emplace(std::move(socket), *tls_context_);
    } else {
      plain_.emplace(std::move(socket));
    }
    server_->open.fetch_add(1, std::memory_order_relaxed);
  }

  ~Session() {
    {
      std::lock_guard<std::mutex> lock(server_->sessions_mu);
      server_->sessions.erase(this);
    }
    server_->open.fetch_sub(1, std::memory_order_relaxed);
  }

  // Starts the connection on its strand.
  void Start() {
    net::dispatch(Tcp().get_executor(), [self = shared_from_this()] { self->OnStart(); });
  }

  // From any thread: the worker has appended to the channel.
  void Kick() {
    net::post(Tcp().get_executor(), [self = shared_from_this()] { self->OnKick(); });
  }

  // From any thread: close the connection; `done` runs on the strand afterwards.
  void PostClose(std::function<void()> done) {
    net::post(Tcp().get_executor(), [self = shared_from_this(), done = std::move(done)] {
      self->Close();
      done();
    });
  }

 private:
  template <class F>
  void WithStream(F&& f) {
    if (tls_) {
      f(*tls_);
    } else {
      f(*plain_);
    }
  }
  beast::tcp_stream& Tcp() { return tls_ ? beast::get_lowest_layer(*tls_) : *plain_; }
  const Server::Options& options() const { return server_->options; }

  void OnStart() {
    boost::system::error_code ec;
    Tcp().socket().set_option(tcp::no_delay(true), ec);
    const tcp::endpoint remote = Tcp().socket().remote_endpoint(ec);
    remote_address_ = ec ? "unknown" : EndpointText(remote);
    // The handshake and the first header share one deadline from the connection start.
    Tcp().expires_at(start_ + options().header_read_timeout);
    if (tls_) {
      tls_->async_handshake(
          ssl::stream_base::server,
          [self = shared_from_this()](boost::system::error_code ec) { self->OnHandshake(ec); });
    } else {
      ReadHeader();
    }
  }

  void OnHandshake(boost::system::error_code ec) {
    if (closed_) return;
    if (ec) {
      if (ec == beast::error::timeout) {
        server_->header_timeouts.fetch_add(1, std::memory_order_relaxed);
      } else if (ec != net::error::eof && ec != net::error::connection_reset &&
                 ec != ssl::error::stream_truncated) {
        // (A bare connect and close, as a TCP probe does, is not a failed handshake.)
        server_->tls_handshake_failures.fetch_add(1, std::memory_order_relaxed);
        spdlog::debug("{}: TLS handshake with {} failed: {}", options().name, remote_address_,
                      ec.message());
      }
      Close();
      return;
    }
    peer_certificates_der_ = PeerChainDer(tls_->native_handle());
    ReadHeader();
  }

  // After a response on a kept-alive connection: wait (idle_timeout) for the first byte of
  // the next request, then give its header header_read_timeout.
  void ReadNextRequest() {
    if (buffer_.size() > 0) {  // pipelined: the next request has begun already
      Tcp().expires_after(options().header_read_timeout);
      ReadHeader();
      return;
    }
    Tcp().expires_after(options().idle_timeout);
    WithStream([this](auto& stream) {
      stream.async_read_some(
          buffer_.prepare(1024),
          [self = shared_from_this()](boost::system::error_code ec, std::size_t n) {
            self->OnIdleRead(ec, n);
          });
    });
  }

  void OnIdleRead(boost::system::error_code ec, std::size_t n) {
    if (closed_) return;
    if (ec) {
      if (ec == beast::error::timeout) {
        server_->idle_timeouts.fetch_add(1, std::memory_order_relaxed);
      }
      Close();
      return;
    }
    buffer_.commit(n);
    Tcp().expires_after(options().header_read_timeout);
    ReadHeader();
  }

  void ReadHeader() {
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(options().max_header_bytes));
    // A body is refused from its header and never read: no limit here, so that the header
    // of any announced length parses and gets its 413.
    parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
    WithStream([this](auto& stream) {
      http::async_read_header(stream, buffer_, *parser_,
                              [self = shared_from_this()](boost::system::error_code ec,
                                                          std::size_t) { self->OnHeader(ec); });
    });
  }

  void OnHeader(boost::system::error_code ec) {
    if (closed_) return;
    if (ec == http::error::header_limit) {
      server_->rejected_header_too_large.fetch_add(1, std::memory_order_relaxed);
      WriteOwn(431,
               ErrorResponse(431,
                             "the request header exceeds " +
                                 std::to_string(options().max_header_bytes) + " bytes",
                             false, true),
               true);
      return;
    }
    if (ec == beast::error::timeout) {
      server_->header_timeouts.fetch_add(1, std::memory_order_relaxed);
      Close();
      return;
    }
    if (ec == http::error::body_limit) {
      server_->rejected_body.fetch_add(1, std::memory_order_relaxed);
      WriteOwn(413, ErrorResponse(413, "a request body is not accepted here", false, true), true);
      return;
    }
    if (ec && (IsQuietDisconnect(ec) || !IsHttpParseError(ec))) {
      Close();
      return;
    }
    if (ec) {
      server_->rejected_bad_request.fetch_add(1, std::memory_order_relaxed);
      WriteOwn(400, ErrorResponse(400, "malformed HTTP request: " + ec.message(), false, true),
               true);
      return;
    }

    const auto& request = parser_->get();
    const bool head = request.method() == http::verb::head;
    const bool has_body = (parser_->content_length() && *parser_->content_length() > 0) ||
                          request.count(http::field::transfer_encoding) > 0;
    const bool http10 = request.version() < 11;
    const bool other_method = request.method() != http::verb::get && !head;
    // A body is never read: the connection closes after the response to a request with one.
    const bool keep_alive = request.keep_alive() && !http10 && !(other_method && has_body);
    if (other_method && !options().handler_answers_other_methods) {
      server_->rejected_method.fetch_add(1, std::memory_order_relaxed);
      const bool close = has_body || !keep_alive;
      WriteOwn(405,
               ErrorResponse(405, "only GET and HEAD are served here", false, close,
                             {{"Allow", "GET, HEAD"}}),
               close);
      return;
    }
    if (has_body && !other_method) {
      server_->rejected_body.fetch_add(1, std::memory_order_relaxed);
      WriteOwn(413, ErrorResponse(413, "a request body is not accepted here", head, true), true);
      return;
    }
    // Reserve a place among the requests in flight, or refuse without running the handler.
    const std::int64_t before = server_->inflight.fetch_add(1, std::memory_order_relaxed);
    if (before >= server_->options.max_requests_inflight) {
      server_->inflight.fetch_sub(1, std::memory_order_relaxed);
      server_->rejected_inflight_cap.fetch_add(1, std::memory_order_relaxed);
      WriteOwn(429,
               ErrorResponse(429, "too many requests in flight, retry later", head, !keep_alive,
                             {{"Retry-After", "1"}}),
               !keep_alive);
      return;
    }

    auto exchange = std::make_shared<HttpRequest>();
    exchange->method = std::string(request.method_string());
    exchange->target = std::string(request.target());
    const std::size_t question = exchange->target.find('?');
    exchange->path = exchange->target.substr(0, question);
    exchange->query =
        question == std::string::npos ? std::string() : exchange->target.substr(question + 1);
    for (const auto& field : request) {
      std::string name(field.name_string());
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      exchange->headers.emplace_back(std::move(name), std::string(field.value()));
    }
    exchange->peer_certificates_der = peer_certificates_der_;
    exchange->tls = tls_.has_value();
    exchange->remote_address = remote_address_;
    parser_.reset();

    channel_ = std::make_shared<ResponseChannel>();
    keep_alive_ = keep_alive;
    Server::Impl* server = server_;
    server_->workers.Post(
        [server, exchange, channel = channel_, self = shared_from_this(), head, http10,
         keep_alive] { server->RunHandler(*exchange, channel, self, head, http10, keep_alive); });
  }

  // Writes a response the server produced itself, then reads the next request or closes.
  void WriteOwn(int status, std::string response, bool close) {
    server_->CountStatus(status);
    own_response_ = std::move(response);
    Tcp().expires_after(options().write_timeout);
    WithStream([this, close](auto& stream) {
      net::async_write(
          stream, net::buffer(own_response_),
          [self = shared_from_this(), close](boost::system::error_code ec, std::size_t) {
            self->OnOwnWritten(ec, close);
          });
    });
  }

  void OnOwnWritten(boost::system::error_code ec, bool close) {
    if (closed_) return;
    own_response_.clear();
    if (ec) {
      if (ec == beast::error::timeout) {
        server_->write_timeouts.fetch_add(1, std::memory_order_relaxed);
      }
      Close();
    } else if (close) {
      Close();
    } else {
      ReadNextRequest();
    }
  }

  void OnKick() {
    if (closed_ || writing_ || !channel_) return;
    Pump();
  }

  // Takes what the handler has written and writes it; at the response's end, reads the
  // next request or closes.
  void Pump() {
    bool done = false;
    bool close_after = false;
    bool resume = false;
    {
      std::lock_guard<std::mutex> lock(channel_->mu);
      channel_->kick_posted = false;
      write_buffer_.clear();
      write_buffer_.swap(channel_->pending);
      done = channel_->done;
      close_after = channel_->close_after;
      if (channel_->producer_waiting && !channel_->dead) {
        channel_->producer_waiting = false;  // `pending` is empty again: make more
        resume = true;
      }
    }
    channel_->space.notify_all();
    if (resume) {
      Server::Impl* server = server_;
      server_->workers.Post([server, channel = channel_, self = shared_from_this()] {
        server->Produce(channel, self);
      });
    }
    if (!write_buffer_.empty()) {
      writing_ = true;
      Tcp().expires_after(options().write_timeout);
      WithStream([this](auto& stream) {
        net::async_write(stream, net::buffer(write_buffer_),
                         [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                           self->OnResponseWritten(ec);
                         });
      });
      return;
    }
    if (!done) return;
    channel_.reset();
    if (close_after || !keep_alive_) {
      Close();
    } else {
      ReadNextRequest();
    }
  }

  void OnResponseWritten(boost::system::error_code ec) {
    writing_ = false;
    if (closed_) return;
    if (ec) {
      if (ec == beast::error::timeout) {
        server_->write_timeouts.fetch_add(1, std::memory_order_relaxed);
        spdlog::debug("{}: {} did not read its response within the write timeout", options().name,
                      remote_address_);
      }
      Close();
      return;
    }
    Pump();
  }

  void Close() {
    if (closed_) return;
    closed_ = true;
    if (channel_) {
      std::shared_ptr<BodyProducer> producer;  // dropped outside the lock
      {
        std::lock_guard<std::mutex> lock(channel_->mu);
        channel_->dead = true;
        channel_->pending.clear();
        producer.swap(channel_->producer);
      }
      channel_->space.notify_all();
    }
    boost::system::error_code ec;
    Tcp().socket().shutdown(tcp::socket::shutdown_both, ec);
    Tcp().close();
  }

  Server::Impl* const server_;
  const std::shared_ptr<ssl::context> tls_context_;  // kept alive for this connection
  const Clock::time_point start_;
  std::optional<beast::tcp_stream> plain_;
  std::optional<beast::ssl_stream<beast::tcp_stream>> tls_;
  std::string remote_address_;
  std::vector<std::string> peer_certificates_der_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::empty_body>> parser_;
  std::shared_ptr<ResponseChannel> channel_;  // the response being produced, if any
  bool keep_alive_ = false;
  bool writing_ = false;
  bool closed_ = false;
  std::string write_buffer_;
  std::string own_response_;
};

// The ResponseWriter a handler gets: formats the response and feeds the channel.
class ChannelWriter : public ResponseWriter {
 public:
  ChannelWriter(Server::Impl* server, std::shared_ptr<ResponseChannel> channel,
                std::shared_ptr<Session> session, bool head, bool http10, bool keep_alive)
      : server_(server),
        channel_(std::move(channel)),
        session_(std::move(session)),
        head_(head),
        http10_(http10),
        keep_alive_(keep_alive) {}

  void Send(int status, std::string_view content_type, std::string body,
            const HeaderFields& headers) override {
    if (state_ != State::kNone) {
      spdlog::error("handler answered a request twice; the second answer is dropped");
      return;
    }
    state_ = State::kSent;
    if (status < 200 || status > 599) {
      spdlog::error("handler answered with HTTP status {}; sent 500 instead", status);
      SendInternalError();
      return;
    }
    const bool no_body = status == 204 || status == 304;
    Framing framing;
    if (!no_body) framing.content_length = body.size();
    framing.close = !keep_alive_;
    std::string out = ResponseHead(status, content_type, headers, framing);
    if (!head_ && !no_body) out += body;
    server_->CountStatus(status);
    Append(std::move(out), false);
  }

  bool Begin(int status, std::string_view content_type, const HeaderFields& headers) override {
    if (state_ != State::kNone) {
      spdlog::error("handler began a response after answering; dropped");
      return false;
    }
    if (status < 200 || status > 599 || status == 204 || status == 304) {
      spdlog::error("handler began a streamed response with HTTP status {}; sent 500 instead",
                    status);
      state_ = State::kSent;
      SendInternalError();
      return false;
    }
    state_ = State::kStreaming;
    Framing framing;
    chunked_ = !http10_;  // HTTP/1.0: the body ends when the connection closes
    framing.chunked = chunked_;
    framing.close = !keep_alive_ || !chunked_;
    if (!chunked_) MarkCloseAfter();
    server_->CountStatus(status);
    return Append(ResponseHead(status, content_type, headers, framing), false);
  }

  bool Write(std::string_view data) override {
    if (state_ != State::kStreaming) {
      if (state_ == State::kNone) spdlog::error("handler called Write() before Begin()");
      return false;
    }
    if (head_) return false;             // the response to HEAD ended with its header
    if (data.empty()) return IsAlive();  // an empty chunk would end the body
    while (!data.empty()) {
      std::unique_lock<std::mutex> lock(channel_->mu);
      channel_->space.wait(lock, [this] {
        return channel_->dead || channel_->pending.size() < Server::kStreamBufferBytes;
      });
      if (channel_->dead) return false;
      const std::size_t room = Server::kStreamBufferBytes - channel_->pending.size();
      const std::string_view piece = data.substr(0, room);
      data.remove_prefix(piece.size());
      AppendPart(&channel_->pending, piece, chunked_);
      const bool kick = !channel_->kick_posted;
      channel_->kick_posted = true;
      lock.unlock();
      if (kick) session_->Kick();
    }
    return true;
  }

  void Stream(int status, std::string_view content_type, BodyProducer producer,
              const HeaderFields& headers) override {
    if (state_ != State::kNone) {
      spdlog::error("handler began a response after answering; dropped");
      return;
    }
    // Open streams hold their buffers while their clients read at their own pace: bounded.
    if (server_->streams.fetch_add(1, std::memory_order_relaxed) >=
        server_->options.max_streams) {
      server_->streams.fetch_sub(1, std::memory_order_relaxed);
      server_->rejected_inflight_cap.fetch_add(1, std::memory_order_relaxed);
      state_ = State::kSent;
      server_->CountStatus(429);
      Append(ErrorResponse(429, "too many streamed responses in progress, retry later", head_,
                           !keep_alive_, {{"Retry-After", "1"}}),
             false);
      return;
    }
    {
      std::lock_guard<std::mutex> lock(channel_->mu);
      channel_->stream_count = &server_->streams;
    }
    if (!Begin(status, content_type, headers) || head_) return;
    std::lock_guard<std::mutex> lock(channel_->mu);
    if (channel_->dead) return;
    channel_->producer = std::make_shared<BodyProducer>(std::move(producer));
    channel_->chunked = chunked_;
    state_ = State::kProducing;
  }

  // Whether the response continues in Server::Impl::Produce after the handler returned.
  bool producing() const { return state_ == State::kProducing; }

  // After the handler returned (or threw: `failed`). Completes the response, unless a
  // producer goes on making it (producing()).
  void Finish(bool failed) {
    if (state_ == State::kProducing) {
      if (!failed) return;
      std::shared_ptr<BodyProducer> producer;
      {
        std::lock_guard<std::mutex> lock(channel_->mu);
        producer.swap(channel_->producer);
      }
      state_ = State::kStreaming;  // ends below as a failed stream
    }
    if (state_ == State::kNone) {
      if (!failed) spdlog::error("handler returned without answering; sent 500");
      state_ = State::kSent;
      SendInternalError();
    } else if (state_ == State::kStreaming && failed) {
      MarkCloseAfter();  // no terminating chunk: the client sees the body cut short
    }
    std::string end = state_ == State::kStreaming && chunked_ && !head_ && !failed
                          ? std::string("0\r\n\r\n")
                          : std::string();
    Append(std::move(end), /*done=*/true);
  }

 private:
  enum class State { kNone, kSent, kStreaming, kProducing };

  void SendInternalError() {
    server_->CountStatus(500);
    Append(ErrorResponse(500, "internal error", head_, !keep_alive_), false);
  }

  void MarkCloseAfter() {
    std::lock_guard<std::mutex> lock(channel_->mu);
    channel_->close_after = true;
  }

  bool IsAlive() {
    std::lock_guard<std::mutex> lock(channel_->mu);
    return !channel_->dead;
  }

  // Appends unbounded (a whole response, or a head) and asks the session to write. `done`:
  // this is the end of the response (set with the data, so the session never sees the end
  // before the last bytes).
  bool Append(std::string data, bool done) {
    bool kick = false;
    bool alive = false;
    {
      std::lock_guard<std::mutex> lock(channel_->mu);
      alive = !channel_->dead;
      if (alive && (!data.empty() || done)) {
        channel_->pending.append(data);
        if (done) channel_->done = true;
        kick = !channel_->kick_posted;
        channel_->kick_posted = true;
      }
    }
    if (kick) session_->Kick();
    return alive;
  }

  Server::Impl* const server_;
  const std::shared_ptr<ResponseChannel> channel_;
  const std::shared_ptr<Session> session_;
  const bool head_;
  const bool http10_;
  const bool keep_alive_;
  State state_ = State::kNone;
  bool chunked_ = false;
};

}  // namespace

// ---- Server::Impl methods ------------------------------------------------------------------

void Server::Impl::RunHandler(const HttpRequest& request,
                              const std::shared_ptr<ResponseChannel>& channel,
                              const std::shared_ptr<Session>& session, bool head, bool http10,
                              bool keep_alive) {
  ChannelWriter writer(this, channel, session, head, http10, keep_alive);
  bool failed = false;
  try {
    handler(request, writer);
  } catch (const std::exception& e) {
    failed = true;
    spdlog::error("{}: handler for {} {} failed: {}", options.name, request.method, request.path,
                  e.what());
  } catch (...) {
    failed = true;
    spdlog::error("{}: handler for {} {} failed", options.name, request.method, request.path);
  }
  writer.Finish(failed);
  const bool producing = !failed && writer.producing();
  inflight.fetch_sub(1, std::memory_order_relaxed);
  if (producing) Produce(channel, session);
}

void Server::Impl::Produce(const std::shared_ptr<ResponseChannel>& channel,
                           const std::shared_ptr<Session>& session) {
  std::shared_ptr<BodyProducer> producer;
  bool chunked = false;
  {
    std::lock_guard<std::mutex> lock(channel->mu);
    if (channel->dead || !channel->producer) return;
    producer = channel->producer;
    chunked = channel->chunked;
  }
  std::string part;
  for (;;) {
    part.clear();
    bool more = false;
    bool failed = false;
    try {
      more = (*producer)(&part);
    } catch (const std::exception& e) {
      failed = true;
      spdlog::error("{}: a streamed response failed: {}", options.name, e.what());
    } catch (...) {
      failed = true;
      spdlog::error("{}: a streamed response failed", options.name);
    }
    bool kick = false;
    bool stop = false;
    {
      std::lock_guard<std::mutex> lock(channel->mu);
      if (channel->dead) return;  // the client is gone: Close() dropped the producer
      if (failed) {
        part.clear();  // no terminating chunk: the client sees the body cut short
        channel->close_after = true;
      }
      AppendPart(&channel->pending, part, chunked);
      if (failed || !more) {
        if (!failed && chunked) channel->pending.append("0\r\n\r\n");
        if (!chunked) channel->close_after = true;
        channel->done = true;
        channel->producer.reset();
        stop = true;
      } else if (channel->pending.size() >= Server::kStreamBufferBytes) {
        channel->producer_waiting = true;  // Pump() posts the next step
        stop = true;
      }
      kick = !channel->kick_posted;
      channel->kick_posted = true;
    }
    if (kick) session->Kick();
    if (stop) return;
  }
}

void Server::Impl::CountStatus(int status) {
  const int index = status / 100 - 1;
  if (index >= 0 && index < 5) responses[index].fetch_add(1, std::memory_order_relaxed);
}

void Server::Impl::DoAccept() {
  acceptor->async_accept(net::make_strand(ioc),
                         [this](boost::system::error_code ec, tcp::socket socket) {
                           OnAccept(ec, std::move(socket));
                         });
}

void Server::Impl::OnAccept(boost::system::error_code ec, tcp::socket socket) {
  if (stopping.load(std::memory_order_acquire) || ec == net::error::operation_aborted) return;
  if (ec) {
    // Out of file descriptors and the like: try again shortly instead of spinning.
    spdlog::warn("{}: accept failed: {}", options.name, ec.message());
    accept_retry_timer->expires_after(std::chrono::milliseconds(100));
    accept_retry_timer->async_wait([this](boost::system::error_code wait_ec) {
      if (!wait_ec && !stopping.load(std::memory_order_acquire)) DoAccept();
    });
    return;
  }
  accepted.fetch_add(1, std::memory_order_relaxed);
  if (open.load(std::memory_order_relaxed) >= static_cast<std::uint64_t>(options.max_connections)) {
    rejected_connection_cap.fetch_add(1, std::memory_order_relaxed);
    boost::system::error_code ignored;
    if (!options.tls) {
      // Best effort, without waiting: a short response fits any socket buffer.
      static const std::string kResponse =
          ErrorResponse(503, "too many open connections", false, true);
      socket.non_blocking(true, ignored);
      socket.write_some(net::buffer(kResponse), ignored);
      if (!ignored) CountStatus(503);
    }
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
    DoAccept();
    return;
  }
  auto session =
      std::make_shared<Session>(this, std::move(socket), options.tls ? tls_context : nullptr);
  {
    std::lock_guard<std::mutex> lock(sessions_mu);
    sessions.emplace(session.get(), session);
  }
  session->Start();
  DoAccept();
}

void Server::Impl::ScheduleReload() {
  reload_timer->expires_after(options.tls_reload_interval);
  reload_timer->async_wait([this](boost::system::error_code ec) {
    if (ec || stopping.load(std::memory_order_acquire)) return;
    CheckReload();
    ScheduleReload();
  });
}

// Re-reads both files (a Secret volume swaps a symlink: the paths stay, the content
// changes) and, when their content changed, serves the new pair to new handshakes. A pair
// that does not load (half-rotated, garbage) is logged once and the old one kept; it is
// tried again once either file changes again.
void Server::Impl::CheckReload() {
  std::string cert, key, error;
  if (!ReadWholeFile(options.tls_cert_file, &cert, &error) ||
      !ReadWholeFile(options.tls_private_key_file, &key, &error)) {
    if (!last_read_failed) {
      spdlog::warn("{}: TLS certificate reload: {}; keeping the current certificate", options.name,
                   error);
      tls_reload_failures.fetch_add(1, std::memory_order_relaxed);
    }
    last_read_failed = true;
    return;
  }
  last_read_failed = false;
  if (cert == last_cert_pem && key == last_key_pem) return;
  last_cert_pem = cert;
  last_key_pem = key;
  std::shared_ptr<ssl::context> context = MakeTlsContext(cert, key, &error);
  if (!context) {
    tls_reload_failures.fetch_add(1, std::memory_order_relaxed);
    spdlog::error(
        "{}: TLS certificate reload from {} and {} refused: {}; keeping the current "
        "certificate",
        options.name, options.tls_cert_file, options.tls_private_key_file, error);
    return;
  }
  tls_context = std::move(context);
  tls_reloads.fetch_add(1, std::memory_order_relaxed);
  spdlog::info("{}: TLS certificate reloaded from {} (SHA-256 {})", options.name,
               options.tls_cert_file, PemFingerprint(cert));
}

// ---- Server --------------------------------------------------------------------------------

Server::Server(Options options, Handler handler)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(handler))) {}

Server::~Server() { Stop(); }

int Server::port() const { return impl_->bound_port.load(std::memory_order_relaxed); }

Server::Stats Server::stats() const {
  const Impl& s = *impl_;
  auto get = [](const std::atomic<std::uint64_t>& v) { return v.load(std::memory_order_relaxed); };
  Stats out;
  out.connections_accepted = get(s.accepted);
  out.connections_open = get(s.open);
  const std::int64_t inflight = s.inflight.load(std::memory_order_relaxed);
  out.requests_inflight = inflight > 0 ? static_cast<std::uint64_t>(inflight) : 0;
  out.rejected_connection_cap = get(s.rejected_connection_cap);
  out.rejected_header_too_large = get(s.rejected_header_too_large);
  out.rejected_body = get(s.rejected_body);
  out.rejected_method = get(s.rejected_method);
  out.rejected_inflight_cap = get(s.rejected_inflight_cap);
  out.rejected_bad_request = get(s.rejected_bad_request);
  out.header_timeouts = get(s.header_timeouts);
  out.idle_timeouts = get(s.idle_timeouts);
  out.write_timeouts = get(s.write_timeouts);
  out.tls_handshake_failures = get(s.tls_handshake_failures);
  out.tls_reloads = get(s.tls_reloads);
  out.tls_reload_failures = get(s.tls_reload_failures);
  out.responses_1xx = get(s.responses[0]);
  out.responses_2xx = get(s.responses[1]);
  out.responses_3xx = get(s.responses[2]);
  out.responses_4xx = get(s.responses[3]);
  out.responses_5xx = get(s.responses[4]);
  return out;
}

bool Server::Start(std::string* error) {
  Impl& s = *impl_;
  const Options& o = s.options;
  if (s.started) {
    *error = "server " + o.name + " was started already";
    return false;
  }
  s.started = true;
  auto fail = [&](const std::string& message) {
    *error = o.name + " server: " + message;
    s.stopped = true;
    return false;
  };
  if (o.io_threads < 1 || o.worker_threads < 1 || o.max_connections < 1 ||
      o.max_requests_inflight < 1) {
    return fail(
        "io_threads, worker_threads, max_connections and max_requests_inflight must be "
        "at least 1");
  }
  if (o.max_header_bytes < 1024 || o.max_header_bytes > (1u << 30)) {
    return fail("max_header_bytes must be between 1 KiB and 1 GiB");
  }
  if (o.header_read_timeout.count() <= 0 || o.idle_timeout.count() <= 0 ||
      o.write_timeout.count() <= 0 || o.tls_reload_interval.count() <= 0) {
    return fail("timeouts and the TLS reload interval must be positive");
  }

  if (o.tls) {
    if (o.tls_cert_file.empty() != o.tls_private_key_file.empty()) {
      return fail(
          "the TLS certificate file and private key file must be given together (got "
          "only the " +
          std::string(o.tls_cert_file.empty() ? "key" : "certificate") + " file)");
    }
    std::string cert, key, message;
    if (o.tls_cert_file.empty()) {
      std::string alt_names, fingerprint;
      if (!SelfSignedAltNames(o.tls_extra_names, &alt_names, &message) ||
          !MakeSelfSignedCertificate(alt_names, &cert, &key, &fingerprint, &message)) {
        return fail(message);
      }
      spdlog::warn(
          "{}: serving TLS with a self-signed certificate made at start (SHA-256 {}; "
          "{}); clients cannot verify it: give a certificate and key file",
          o.name, fingerprint, alt_names);
    } else {
      if (!ReadWholeFile(o.tls_cert_file, &cert, &message) ||
          !ReadWholeFile(o.tls_private_key_file, &key, &message)) {
        return fail(message);
      }
      s.tls_from_files = true;
    }
    s.tls_context = MakeTlsContext(cert, key, &message);
    if (!s.tls_context) {
      return fail(s.tls_from_files
                      ? o.tls_cert_file + " / " + o.tls_private_key_file + ": " + message
                      : message);
    }
    s.last_cert_pem = std::move(cert);
    s.last_key_pem = std::move(key);
  }

  tcp::endpoint endpoint;
  std::string message;
  if (!ResolveBindAddress(o.bind_address, &endpoint, &message)) return fail(message);
  s.accept_strand.emplace(net::make_strand(s.ioc));
  s.acceptor.emplace(*s.accept_strand);
  s.accept_retry_timer.emplace(*s.accept_strand);
  s.reload_timer.emplace(*s.accept_strand);
  boost::system::error_code ec;
  s.acceptor->open(endpoint.protocol(), ec);
  if (!ec) s.acceptor->set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) s.acceptor->bind(endpoint, ec);
  if (!ec) s.acceptor->listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    const std::string why = ec.message();  // before close() overwrites ec
    s.acceptor->close(ec);
    return fail("cannot listen on " + o.bind_address + ": " + why);
  }
  const tcp::endpoint bound = s.acceptor->local_endpoint(ec);
  s.bound_port.store(ec ? 0 : bound.port(), std::memory_order_relaxed);

  s.workers.Start(o.worker_threads, o.thread_nice, o.name);
  s.work.emplace(s.ioc.get_executor());
  net::post(*s.accept_strand, [&s] {
    s.DoAccept();
    if (s.tls_from_files) s.ScheduleReload();
  });
  s.io_running = o.io_threads;
  for (int i = 0; i < o.io_threads; ++i) {
    s.io_threads.emplace_back([&s] {
      SetThreadNice(s.options.thread_nice, s.options.name);
      for (;;) {
        try {
          s.ioc.run();
          break;
        } catch (const std::exception& e) {
          spdlog::error("{}: I/O thread caught: {}", s.options.name, e.what());
        }
      }
      std::lock_guard<std::mutex> lock(s.io_done_mu);
      --s.io_running;
      s.io_done_cv.notify_all();
    });
  }
  spdlog::info("{}: serving {} on {}", o.name, o.tls ? "HTTPS" : "HTTP", EndpointText(bound));
  return true;
}

void Server::Stop() {
  Impl& s = *impl_;
  if (!s.started || s.stopped) return;
  s.stopped = true;
  s.stopping.store(true, std::memory_order_release);

  // 1. No new connections: close the listener on its strand, and wait for that.
  {
    std::mutex mu;
    std::condition_variable cv;
    bool closed = false;
    net::post(*s.accept_strand, [&] {
      boost::system::error_code ec;
      s.acceptor->close(ec);
      s.accept_retry_timer->cancel();
      s.reload_timer->cancel();
      std::lock_guard<std::mutex> lock(mu);
      closed = true;
      cv.notify_all();
    });
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return closed; });
  }

  // 2. Close every connection on its strand; this also fails the Write()s of handlers.
  std::vector<std::shared_ptr<Session>> open_sessions;
  {
    std::lock_guard<std::mutex> lock(s.sessions_mu);
    for (auto& [raw, weak] : s.sessions) {
      if (auto session = weak.lock()) open_sessions.push_back(std::move(session));
    }
  }
  {
    auto mu = std::make_shared<std::mutex>();
    auto cv = std::make_shared<std::condition_variable>();
    auto remaining = std::make_shared<std::size_t>(open_sessions.size());
    for (auto& session : open_sessions) {
      session->PostClose([mu, cv, remaining] {
        std::lock_guard<std::mutex> lock(*mu);
        if (--*remaining == 0) cv->notify_all();
      });
    }
    open_sessions.clear();
    std::unique_lock<std::mutex> lock(*mu);
    cv->wait(lock, [&] { return *remaining == 0; });
  }

  // 3. Wait for running handlers, drop queued ones.
  s.workers.Stop();

  // 4. Let the I/O threads finish what is left (closed sockets complete at once), then
  // stop them outright if something still lingers.
  s.work.reset();
  {
    std::unique_lock<std::mutex> lock(s.io_done_mu);
    s.io_done_cv.wait_for(lock, std::chrono::seconds(2), [&] { return s.io_running == 0; });
  }
  s.ioc.stop();
  for (std::thread& t : s.io_threads) t.join();
  s.io_threads.clear();
  s.bound_port.store(0, std::memory_order_relaxed);
  spdlog::info("{}: stopped", s.options.name);
}

}  // namespace eventbuffer::controller
