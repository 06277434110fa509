#include "controller/serving/auth/kube_review_client.h"

#include <cpprest/containerstream.h>
#include <cpprest/http_client.h>

#include "controller/kube/api_client.h"

namespace eventbuffer::controller {

namespace http = web::http;
namespace client = web::http::client;

struct KubeReviewClient::Impl {
  KubeConfig config;
  TokenSource* token;
  Options options;
  std::unique_ptr<client::http_client> http_client;

  ReviewResponse Send(const http::method& method, std::string_view path, const std::string* body) {
    ReviewResponse result;
    for (int attempt = 0; attempt < 2; ++attempt) {
      result = SendOnce(method, path, body);
      if (result.http_status != 401) return result;
      token->Invalidate();
      if (!token->from_file()) return result;
    }
    return result;
  }

  ReviewResponse SendOnce(const http::method& method, std::string_view path,
                          const std::string* body) {
    http::http_request request(method);
    request.set_request_uri(std::string(path));
    request.headers().add("Accept", "application/json");
    request.headers().add("User-Agent", options.user_agent);
    const std::string bearer = token->Token();
    if (!bearer.empty()) request.headers().add("Authorization", "Bearer " + bearer);
    if (body != nullptr) request.set_body(*body, "application/json");

    ReviewResponse result;
    try {
      http::http_response response = http_client->request(request).get();
      concurrency::streams::container_buffer<std::string> buffer;
      response.body().read_to_end(buffer).get();
      result.http_status = response.status_code();
      result.body = std::move(buffer.collection());
    } catch (const std::exception& e) {
      result.http_status = 0;
      result.body.clear();
      result.error = e.what();
    }
    return result;
  }
};

KubeReviewClient::KubeReviewClient(KubeConfig config, TokenSource* token, Options options)
    : impl_(std::make_unique<Impl>()) {
  impl_->config = std::move(config);
  impl_->token = token;
  impl_->options = std::move(options);
  client::http_client_config cfg;
  cfg.set_timeout(impl_->options.timeout);
  ApplyClusterTls(impl_->config, &cfg);
  impl_->http_client = std::make_unique<client::http_client>(impl_->config.server, cfg);
}

KubeReviewClient::~KubeReviewClient() = default;

ReviewResponse KubeReviewClient::Post(std::string_view path, const std::string& json_body) {
  return impl_->Send(http::methods::POST, path, &json_body);
}

ReviewResponse KubeReviewClient::Get(std::string_view path) {
  return impl_->Send(http::methods::GET, path, nullptr);
}

}  // namespace eventbuffer::controller
