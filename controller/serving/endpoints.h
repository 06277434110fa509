// The handlers of the two authenticated serving ports, composed from their parts:
//
//   secure port (--secure-port, TLS): DelegatingAuth::Check, then the eventbuffer.dev API
//       (EventsApi); /livez, /healthz and /readyz go to the probes instead (as the API
//       server serves them on its secure port; --authorization-always-allow-paths lets them
//       in without credentials by default). A refused request gets the 401/403 Status of
//       the check; nothing of the buffer is read for it. A method other than GET or HEAD
//       (the port's Server passes them on: handler_answers_other_methods) is checked the
//       same way, as the verb it maps to (POST create, DELETE delete, ...), and then
//       refused with 405 MethodNotAllowed: so a user without the right gets 401/403 for a
//       write, as from the API server, and nobody can write.
//   metrics port (--metrics-bind-address): with --metrics-secure, DelegatingAuth::Check
//       (non-resource "get /metrics") first; then GET /metrics answers the text exposition
//       format and any other path 404; other methods 405 after the check. Without
//       --metrics-secure (auth null) it is open.
//
// Thread safety: the handlers run on the servers' worker threads, many at once; the parts
// they call are thread-safe and must outlive the servers.
#pragma once

#include <functional>
#include <string>

#include "controller/serving/api/events_api.h"
#include "controller/serving/auth/delegating_auth.h"
#include "controller/serving/probes.h"
#include "controller/serving/server.h"

namespace eventbuffer::controller {

// REQUIRES: auth and api are not null. probes null: the probe paths are the API's (404).
Server::Handler SecureApiHandler(DelegatingAuth* auth, const EventsApi* api,
                                 const Probes* probes = nullptr);

// auth null: no authentication (plain metrics). render returns the exposition text.
Server::Handler MetricsHandler(DelegatingAuth* auth, std::function<std::string()> render);

}  // namespace eventbuffer::controller
