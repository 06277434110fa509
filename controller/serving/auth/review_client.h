// ReviewClient: how delegated authentication and authorization talk to the API server
// (TokenReview, SubjectAccessReview, and the extension-apiserver-authentication ConfigMap).
// KubeReviewClient (kube_review_client.h) is the real one; tests use fakes.
//
// DeadlineReviewClient bounds every call of another ReviewClient in wall time, so that a
// hanging API server (or a hanging fake) fails closed after the deadline whatever the
// inner client does.
//
// Thread safety: implementations must allow concurrent calls from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include <simdjson.h>

namespace eventbuffer::controller {

struct ReviewResponse {
  int http_status = 0;  // 0: no answer (network error, timeout, refused locally)
  std::string body;
  std::string error;  // why http_status is 0, for logs (never contains a token)
};

class ReviewClient {
 public:
  virtual ~ReviewClient() = default;
  // POSTs `json_body` (Content-Type application/json) to `path` on the API server.
  virtual ReviewResponse Post(std::string_view path, const std::string& json_body) = 0;
  // GETs `path`. The default answers {0, "", "GET not supported"}: reviews need only Post.
  virtual ReviewResponse Get(std::string_view path);
};

class DeadlineReviewClient final : public ReviewClient {
 public:
  // Each call runs `inner` on a thread of its own and waits for at most `timeout`; after
  // that it answers {0, "", "timeout"} and the inner call is left to finish on its thread.
  // At most `max_in_flight` inner calls run at once (abandoned ones included); further
  // calls are refused with {0, "", "too many reviews in flight"}.
  // REQUIRES: inner outlives this object; max_in_flight >= 1.
  DeadlineReviewClient(ReviewClient* inner, std::chrono::milliseconds timeout,
                       std::size_t max_in_flight = 256);
  // Waits until every inner call has returned (the inner client's own timeout bounds this).
  ~DeadlineReviewClient() override;
  DeadlineReviewClient(const DeadlineReviewClient&) = delete;
  DeadlineReviewClient& operator=(const DeadlineReviewClient&) = delete;

  ReviewResponse Post(std::string_view path, const std::string& json_body) override;
  ReviewResponse Get(std::string_view path) override;

  // Inner calls that have not returned yet (for tests).
  std::size_t in_flight() const;

  // Implementation details follow.
 private:
  struct Shared;
  ReviewResponse Run(bool post, std::string_view path, const std::string& body);

  ReviewClient* const inner_;
  const std::chrono::milliseconds timeout_;
  const std::size_t max_in_flight_;
  std::shared_ptr<Shared> shared_;
};

// Posts a review (TokenReview, SubjectAccessReview) and checks its envelope: an answer, a
// 2xx status, a JSON body with a `status` object. Returns "" with *status pointing into
// *parser's document, else what went wrong ("no answer" or the client's error, "HTTP 500",
// "unparsable answer").
std::string PostReview(ReviewClient* client, std::string_view path, const std::string& body,
                       simdjson::dom::parser* parser, simdjson::dom::object* status);

}  // namespace eventbuffer::controller
