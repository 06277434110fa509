// KubeReviewClient: the ReviewClient that talks to the real API server over cpprestsdk,
// with the controller's own identity: the TLS trust of the KubeConfig (cluster CA only,
// ApplyClusterTls) and its bearer token from the TokenSource. After a 401 the token is
// invalidated and, when it comes from a file (it may have rotated), the request is sent
// once more, as ApiClient does.
//
// Every request has a timeout (`Options::timeout`, cpprestsdk's timer for each send and
// receive), so an API server that does not answer gives {0, "", error} in bounded time. A
// server that trickles bytes can restart that timer; DelegatingAuth therefore wraps every
// ReviewClient in a DeadlineReviewClient, which bounds the whole call.
//
// The request bodies (which hold the tokens under review) are never logged.
//
// Thread safety: Post and Get may be called from any thread at once.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "controller/kube/kube_config.h"
#include "controller/kube/token_source.h"
#include "controller/serving/auth/review_client.h"

namespace eventbuffer::controller {

class KubeReviewClient final : public ReviewClient {
 public:
  struct Options {
    std::chrono::milliseconds timeout{10000};
    std::string user_agent = "kube-eventbuffer";
  };

  // REQUIRES: token outlives the client.
  KubeReviewClient(KubeConfig config, TokenSource* token, Options options);
  ~KubeReviewClient() override;
  KubeReviewClient(const KubeReviewClient&) = delete;
  KubeReviewClient& operator=(const KubeReviewClient&) = delete;

  ReviewResponse Post(std::string_view path, const std::string& json_body) override;
  ReviewResponse Get(std::string_view path) override;

  // Implementation details follow.
 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace eventbuffer::controller
