#include "controller/serving/endpoints.h"

#include <spdlog/spdlog.h>

#include "controller/serving/status.h"

namespace eventbuffer::controller {

namespace {

// Answers a request whose method is not GET or HEAD with 405 and returns false. After
// Admit: the Kubernetes API authenticates and authorizes a request (a POST as `create`, a
// DELETE as `delete`, ...) before it finds that the method is not served.
bool ReadOnly(const HttpRequest& request, ResponseWriter& writer) {
  if (request.method == "GET" || request.method == "HEAD") return true;
  writer.Send(405, "application/json",
              StatusJson(405, "the server does not allow this method on the requested resource"),
              {{"Allow", "GET, HEAD"}});
  return false;
}

// Checks the request; on refusal answers it and returns false.
bool Admit(DelegatingAuth* auth, const HttpRequest& request, ResponseWriter& writer) {
  if (auth == nullptr) return true;
  AuthResult r = auth->Check(request);
  if (r.allowed) return true;
  spdlog::debug("refused {} {} from {}: {} ({})", request.method, request.path,
                request.remote_address, r.http_status, r.reason);
  writer.Send(r.http_status, "application/json", std::move(r.body));
  return false;
}

}  // namespace

Server::Handler SecureApiHandler(DelegatingAuth* auth, const EventsApi* api,
                                 const Probes* probes) {
  return [auth, api, probes](const HttpRequest& request, ResponseWriter& writer) {
    if (!Admit(auth, request, writer) || !ReadOnly(request, writer)) return;
    if (probes != nullptr &&
        (request.path == "/livez" || request.path == "/healthz" || request.path == "/readyz")) {
      return probes->Handle(request, writer);
    }
    api->Handle(request, writer);
  };
}

Server::Handler MetricsHandler(DelegatingAuth* auth, std::function<std::string()> render) {
  return [auth, render = std::move(render)](const HttpRequest& request, ResponseWriter& writer) {
    if (!Admit(auth, request, writer) || !ReadOnly(request, writer)) return;
    if (request.path != "/metrics") {
      writer.Send(404, "application/json",
                  StatusJson(404, "the metrics port serves only /metrics"));
      return;
    }
    writer.Send(200, "text/plain; version=0.0.4; charset=utf-8", render());
  };
}

}  // namespace eventbuffer::controller
