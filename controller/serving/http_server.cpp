#include "controller/serving/http_server.h"

#include <cpprest/http_listener.h>
#include <spdlog/spdlog.h>

#include <charconv>

namespace eventbuffer::controller {

namespace http = web::http;
namespace listener = web::http::experimental::listener;

bool ParseBindAddress(const std::string& address, std::string* host, int* port,
                      std::string* error) {
  const std::size_t colon = address.rfind(':');
  if (colon == std::string::npos) {
    *error = "bind address '" + address + "' must be HOST:PORT or :PORT";
    return false;
  }
  std::string h = address.substr(0, colon);
  const std::string p = address.substr(colon + 1);
  int value = -1;
  const auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), value);
  if (ec != std::errc() || end != p.data() + p.size() || value < 0 || value > 65535) {
    *error = "bind address '" + address + "' has a bad port";
    return false;
  }
  if (h.empty()) h = "0.0.0.0";
  if (h.find(':') != std::string::npos && h.front() != '[') h = "[" + h + "]";
  *host = h;
  *port = value;
  return true;
}

struct HttpServer::Impl {
  std::string bind_address;
  const ReadApi* api;
  std::unique_ptr<listener::http_listener> listener;
};

HttpServer::HttpServer(std::string bind_address, const ReadApi* api)
    : impl_(std::make_unique<Impl>()) {
  impl_->bind_address = std::move(bind_address);
  impl_->api = api;
}

HttpServer::~HttpServer() { Stop(); }

bool HttpServer::Start(std::string* error) {
  std::string host;
  int port = 0;
  if (!ParseBindAddress(impl_->bind_address, &host, &port, error)) return false;
  try {
    const std::string url = "http://" + host + ":" + std::to_string(port);
    impl_->listener = std::make_unique<listener::http_listener>(url);
    const ReadApi* api = impl_->api;
    impl_->listener->support([api](const http::http_request& request) {
      HttpReply reply;
      try {
        const web::uri& uri = request.relative_uri();
        reply = api->Handle(request.method(), uri.path(), uri.query());
      } catch (const std::exception& e) {
        reply = HttpReply{500, std::string("{\"error\":\"internal error\"}"), "application/json"};
        spdlog::error("read API request failed: {}", e.what());
      }
      http::http_response response(static_cast<http::status_code>(reply.status));
      response.set_body(std::move(reply.body), reply.content_type);
      request.reply(response).then([](pplx::task<void> t) {
        try {
          t.get();
        } catch (const std::exception&) {
          // The client went away: nothing to do.
        }
      });
    });
    impl_->listener->open().wait();
  } catch (const std::exception& e) {
    *error = "cannot listen on " + impl_->bind_address + ": " + e.what();
    impl_->listener.reset();
    return false;
  }
  return true;
}

void HttpServer::Stop() {
  if (!impl_->listener) return;
  try {
    impl_->listener->close().wait();
  } catch (const std::exception& e) {
    spdlog::warn("closing the read API listener: {}", e.what());
  }
  impl_->listener.reset();
}

}  // namespace eventbuffer::controller
