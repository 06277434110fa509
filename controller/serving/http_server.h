// HttpServer: serves a ReadApi over HTTP with cpprestsdk's http_listener
// (--health-probe-bind-address, default ":8081").
//
// Thread safety: Start and Stop from one thread (main); requests are served on
// cpprestsdk's thread pool and call ReadApi::Handle concurrently.
#pragma once

#include <memory>
#include <string>

#include "controller/serving/read_api.h"

namespace eventbuffer::controller {

// Turns a bind address ("HOST:PORT", ":PORT", "[::1]:PORT") into host and port. An empty
// host means all interfaces (0.0.0.0). Returns false (with *error) when malformed.
bool ParseBindAddress(const std::string& address, std::string* host, int* port, std::string* error);

class HttpServer {
 public:
  // REQUIRES: api outlives the server.
  HttpServer(std::string bind_address, const ReadApi* api);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Starts listening. Returns false and sets *error when the address is bad or taken.
  bool Start(std::string* error);
  // Stops listening and waits for the listener to close. Idempotent.
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace eventbuffer::controller
