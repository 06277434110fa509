// Probes: the handler of the probe port (--health-probe-bind-address, default :8081, plain
// HTTP as the kubelet expects). It serves exactly three paths and nothing else:
//   /livez    200 "ok" while the process's loops make progress (Hooks::live), else 500
//   /healthz  the same as /livez (controller-runtime's name for it)
//   /readyz   200 "ok" once the buffer holds its first list (Hooks::ready) and the
//             controller is not shutting down, else 503 with the reason
//   anything else: 404 Status. A probe never touches the buffer's data.
//
// Thread safety: Handle may run on several threads at once if the hooks may; the shutdown
// flag is an atomic.
#pragma once

#include <atomic>
#include <functional>
#include <string>

#include "controller/serving/http_exchange.h"

namespace eventbuffer::controller {

class Probes {
 public:
  struct Hooks {
    // Whether the process is alive; on false, *why says what is stuck.
    std::function<bool(std::string* why)> live;
    // Whether the buffer is ready to serve (restored and first list in).
    std::function<bool()> ready;
  };

  explicit Probes(Hooks hooks) : hooks_(std::move(hooks)) {}

  // From now on /readyz fails (SIGTERM: endpoints move away before serving stops).
  void BeginShutdown() { shutting_down_.store(true, std::memory_order_relaxed); }

  void Handle(const HttpRequest& request, ResponseWriter& writer) const;

 private:
  Hooks hooks_;
  std::atomic<bool> shutting_down_{false};
};

}  // namespace eventbuffer::controller
