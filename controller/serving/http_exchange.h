// HttpRequest, ResponseWriter, Handler: the contract between the hardened HTTP server
// (controller/serving/server.h) and what it serves (the eventbuffer.dev API, metrics,
// probes), and the input of delegated authentication (controller/serving/auth/).
//
// The server parses and bounds a request (header size, no body is read, method GET or HEAD
// unless Server::Options::handler_answers_other_methods) before any handler sees it; a
// handler only decides what to answer.
//
// Thread safety: a request and its writer belong to one handler call on one thread.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace eventbuffer::controller {

using HeaderFields = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  // "GET" or "HEAD"; any other only with Server::Options::handler_answers_other_methods
  std::string method;
  std::string target;  // as sent: path and query
  std::string path;    // the target up to '?', not percent-decoded
  std::string query;   // the target after '?' (without it), not percent-decoded; "" if none
  // Header fields in arrival order, names lower-cased; a name may repeat.
  HeaderFields headers;
  // TLS only: the certificate chain the client presented (leaf first, DER), NOT verified by
  // the server. Authentication verifies it against its own CAs (client CA, front-proxy CA).
  // Empty on plain HTTP or when the client sent none.
  std::vector<std::string> peer_certificates_der;
  bool tls = false;
  std::string remote_address;  // "ip:port" of the client

  // The first value of header `name` (case-insensitive), or nullopt.
  std::optional<std::string_view> Header(std::string_view name) const;
  // Every (name, value) whose name starts with `prefix` (case-insensitive), in order.
  std::vector<std::pair<std::string_view, std::string_view>> HeadersWithPrefix(
      std::string_view prefix) const;
};

// Makes a streamed body part by part: appends the next part to *out and returns true while
// more parts follow, false after appending the last (possibly empty) one. It owns what it
// needs: it may run after the handler returned.
using BodyProducer = std::function<bool(std::string* out)>;

// How a handler answers: either Send() once; or Begin() then any number of Write()s (the
// response ends when the handler returns); or Stream() (the response ends with the
// producer's last part). For a HEAD request the server drops the body (a streamed one ends
// with its header: Write() returns false, a producer is never called).
class ResponseWriter {
 public:
  virtual ~ResponseWriter() = default;
  // A whole response. `headers` are added as given (Content-Type and Content-Length are set
  // by the writer).
  virtual void Send(int status, std::string_view content_type, std::string body,
                    const HeaderFields& headers = {}) = 0;
  // Starts a streamed (chunked) response. Returns false when the client is gone.
  virtual bool Begin(int status, std::string_view content_type,
                     const HeaderFields& headers = {}) = 0;
  // Appends to a streamed body. Blocks while the client is behind (the server buffers a
  // bounded amount); returns false once the client is gone or its write deadline passed,
  // and the handler should then stop writing.
  virtual bool Write(std::string_view data) = 0;
  // Starts a streamed (chunked) response whose body `producer` makes on demand, then
  // returns: the handler should return too. The server calls the producer on a worker
  // thread whenever the client has taken what was made before (never two calls at once), so
  // no thread waits while a client is slow; it drops the producer once the client is gone.
  // May answer something else instead (the server: 429 when too many streams are open).
  // This default runs the producer to the end through Begin() and Write().
  virtual void Stream(int status, std::string_view content_type, BodyProducer producer,
                      const HeaderFields& headers = {}) {
    if (!Begin(status, content_type, headers)) return;
    std::string part;
    for (bool more = true; more;) {
      part.clear();
      more = producer(&part);
      if (!part.empty() && !Write(part)) return;
    }
  }
};

}  // namespace eventbuffer::controller
