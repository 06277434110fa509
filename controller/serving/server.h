// Server: one hardened HTTP/1.1 listener (plain or TLS) built on Boost.Beast, serving one
// Handler. The controller runs one per port: the secure API port (TLS), the metrics port and
// the probe port, each its own Server with its own threads, so that a flood on one port does
// not starve the others.
//
// What the server enforces before a handler sees a request (every refusal is counted in
// Stats; every error it answers itself has a Kubernetes Status JSON body, see status.h):
//   - TLS (when on): minimum TLS 1.2 (ECDHE + AEAD suites for 1.2), no renegotiation, no
//     session resumption (so every connection presents its full client chain). A client
//     certificate is requested but not required and never verified here: the chain the
//     client presented (leaf first, DER) goes to HttpRequest::peer_certificates_der for
//     authentication to verify against its own CAs. The certificate comes from
//     tls_cert_file/tls_private_key_file (PEM), re-read every tls_reload_interval: when the
//     content changed the new pair serves new handshakes (a rotated Kubernetes Secret); a bad
//     pair is logged and counted and the old one kept. With neither file a self-signed
//     certificate (EC P-256; SANs localhost, 127.0.0.1, ::1 and tls_extra_names) is made in
//     memory at Start() and logged as such (warning).
//   - header_read_timeout (10 s): the TLS handshake and the whole request header must arrive
//     within it, counted from the connection start; on a kept-alive connection, from the
//     first byte of the next request (the wait for that byte is the idle_timeout, 60 s).
//     On either timeout the connection is closed without an answer.
//   - max_header_bytes (16 KiB): a larger request header gets 431 and the connection closes.
//   - A malformed request gets 400 and the connection closes.
//   - Methods other than GET and HEAD get 405 with `Allow: GET, HEAD` (nothing of the request
//     is echoed). The connection stays open unless the request announced a body.
//   - A request announcing a body (Content-Length > 0 or any Transfer-Encoding) gets 413 and
//     the connection closes; the body is never read.
//   - max_connections (1024) open connections: a connection beyond it is closed at once; on
//     plain HTTP it is first sent a 503 Status (one non-blocking write, best effort).
//   - max_requests_inflight (400; queued + running handlers, as kube-apiserver's
//     --max-requests-inflight): a request beyond it gets 429 with `Retry-After: 1`, answered
//     on the I/O thread without running the handler. The connection stays open.
//   - write_timeout (30 s): each write of response data to the socket must finish within it;
//     a client that stops reading is disconnected and the handler's Write() returns false.
//
// Responses: Send() gives a Content-Length response; Begin()/Write() and Stream() a chunked
// one (HTTP/1.0 clients: delimited by closing the connection). Between the handler thread
// and the socket the server buffers at most kStreamBufferBytes (plus the write in progress
// and, for Stream(), one part); Write() blocks while that buffer is full, holding its worker;
// Stream() holds no thread: its producer runs again on a worker once the session has taken
// the buffer. At most max_streams Stream() responses are open at once. Keep-alive works after both. A HEAD request is answered like GET
// without the body; on HEAD, Write() returns false at once (the response ends with its
// header). A handler that returns without answering, or throws before answering, gets a 500
// Status sent for it; one that throws while streaming has its connection closed (the client
// sees a truncated chunked body).
//
// Threads: io_threads (1) run the accept loop, TLS, parsing, limits and socket writes, and
// never run a handler; worker_threads (4) run handlers, one request at a time each. A slow
// or hostile client costs one socket, a timer and its buffers, never a thread.
//
// Thread safety: Start() and Stop() are called from one thread (a Server is started at most
// once); port() and stats() may be called from any thread. The handler is called
// concurrently from the worker threads. Stop() waits for running handlers to return: a
// streaming handler must stop when Write() returns false (it does once Stop() begins), and
// Stop() must not be called from a handler.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "controller/serving/http_exchange.h"

namespace eventbuffer::controller {

class Server {
 public:
  using Handler = std::function<void(const HttpRequest&, ResponseWriter&)>;

  // Per streamed response, the most the handler may be ahead of the socket (bytes queued
  // for writing, in addition to the one write in progress).
  static constexpr std::size_t kStreamBufferBytes = 256 * 1024;

  struct Options {
    // "HOST:PORT", ":PORT" (all IPv4 interfaces, 0.0.0.0), "[::1]:PORT". Port 0: any free
    // port (see port()). HOST may be an IP literal or a name that resolves (localhost).
    std::string bind_address = ":8443";
    // A name for logs ("secure", "metrics", "probe").
    std::string name = "http";

    bool tls = false;
    // PEM files; both or neither. Neither (with tls): a self-signed certificate.
    std::string tls_cert_file;         // the certificate chain, leaf first
    std::string tls_private_key_file;  // its private key
    // Extra subjectAltNames of the self-signed certificate: DNS names or IP literals.
    std::vector<std::string> tls_extra_names;
    std::chrono::milliseconds tls_reload_interval = std::chrono::seconds(10);

    std::size_t max_header_bytes = 16 * 1024;
    std::chrono::milliseconds header_read_timeout = std::chrono::seconds(10);
    std::chrono::milliseconds idle_timeout = std::chrono::seconds(60);
    std::chrono::milliseconds write_timeout = std::chrono::seconds(30);
    int max_connections = 1024;

    int io_threads = 1;
    int worker_threads = 4;
    int max_requests_inflight = 400;
    // Streamed responses (ResponseWriter::Stream) open at once: each holds up to
    // kStreamBufferBytes plus one part while its client reads. Beyond it: 429 with
    // `Retry-After: 1` (counted with the in-flight refusals).
    int max_streams = 64;
    // Nice value of this server's I/O and worker threads (0: the process's own). A port
    // that must not take CPU from the watch (the read API) runs at a higher nice value.
    int thread_nice = 0;
    // Methods other than GET and HEAD: false, the server answers 405 itself and the handler
    // never sees them; true, they go to the handler as any request does (which must answer
    // them: the Kubernetes API authenticates and authorizes a request before it looks at
    // its method, so a write is 401 or 403 before it is 405). Their body is never read
    // either way: with a body announced, the connection closes after the response. A GET
    // or HEAD with a body is 413 from the server in both cases.
    bool handler_answers_other_methods = false;
  };

  // Counters since Start(); connections_open and requests_inflight are gauges.
  struct Stats {
    std::uint64_t connections_accepted = 0;  // every accepted TCP connection, even if refused
    std::uint64_t connections_open = 0;
    std::uint64_t requests_inflight = 0;  // handlers queued or running
    // Refusals by reason.
    std::uint64_t rejected_connection_cap = 0;    // max_connections reached
    std::uint64_t rejected_header_too_large = 0;  // 431
    std::uint64_t rejected_body = 0;              // 413
    std::uint64_t rejected_method = 0;            // 405 (by the server itself)
    std::uint64_t rejected_inflight_cap = 0;      // 429
    std::uint64_t rejected_bad_request = 0;       // 400
    std::uint64_t header_timeouts = 0;            // handshake or header not in time
    std::uint64_t idle_timeouts = 0;              // keep-alive connection idle too long
    std::uint64_t write_timeouts = 0;             // client did not read its response in time
    std::uint64_t tls_handshake_failures = 0;     // not counting timeouts or a bare close
    // Certificate files re-read with a changed content: used, or refused (old pair kept).
    std::uint64_t tls_reloads = 0;
    std::uint64_t tls_reload_failures = 0;
    // Responses started, by status class (the server's own errors included).
    std::uint64_t responses_1xx = 0;
    std::uint64_t responses_2xx = 0;
    std::uint64_t responses_3xx = 0;
    std::uint64_t responses_4xx = 0;
    std::uint64_t responses_5xx = 0;
  };

  // REQUIRES: handler is callable from several threads at once.
  Server(Options options, Handler handler);
  ~Server();  // Stop()s.
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds, loads or makes the certificate and starts the threads. Returns false with *error
  // (the server is then stopped) when the address is bad or taken, the certificate files
  // are missing, unreadable, do not match or only one is given, or an option is out of
  // range. REQUIRES: called at most once.
  bool Start(std::string* error);
  // Closes the listener and every connection, waits for running handlers and joins every
  // thread. Idempotent; no-op before Start().
  void Stop();

  // The bound port (useful with port 0); 0 before a successful Start().
  int port() const;
  Stats stats() const;

  // Implementation details follow.
  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace eventbuffer::controller
