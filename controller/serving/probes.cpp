#include "controller/serving/probes.h"

#include "controller/serving/status.h"

namespace eventbuffer::controller {

void Probes::Handle(const HttpRequest& request, ResponseWriter& writer) const {
  const std::string& path = request.path;
  if (path == "/livez" || path == "/healthz") {
    std::string why;
    if (!hooks_.live || hooks_.live(&why)) {
      writer.Send(200, "text/plain; charset=utf-8", "ok");
    } else {
      writer.Send(500, "text/plain; charset=utf-8", "not live: " + why);
    }
    return;
  }
  if (path == "/readyz") {
    if (shutting_down_.load(std::memory_order_relaxed)) {
      writer.Send(503, "text/plain; charset=utf-8", "not ready: shutting down");
    } else if (hooks_.ready && !hooks_.ready()) {
      writer.Send(503, "text/plain; charset=utf-8", "not ready: the first list is not in yet");
    } else {
      writer.Send(200, "text/plain; charset=utf-8", "ok");
    }
    return;
  }
  writer.Send(404, "application/json",
              StatusJson(404, "the probe port serves only /livez, /healthz and /readyz"));
}

}  // namespace eventbuffer::controller
