#include "controller/serving/auth/review_client.h"

#include <system_error>
#include <thread>

namespace eventbuffer::controller {

ReviewResponse ReviewClient::Get(std::string_view /*path*/) {
  return ReviewResponse{0, "", "GET not supported"};
}

// State shared by the client and its call threads: a call thread may outlive the wait of
// its caller, so what it touches when it ends lives as long as any thread holds it.
struct DeadlineReviewClient::Shared {
  std::mutex mu;
  std::condition_variable changed;
  std::size_t in_flight = 0;  // guarded by mu
};

namespace {

// One call's result, handed from its thread to the waiting caller.
struct CallState {
  std::mutex mu;
  std::condition_variable done_cv;
  bool done = false;  // guarded by mu
  ReviewResponse response;
};

}  // namespace

DeadlineReviewClient::DeadlineReviewClient(ReviewClient* inner, std::chrono::milliseconds timeout,
                                           std::size_t max_in_flight)
    : inner_(inner),
      timeout_(timeout),
      max_in_flight_(max_in_flight),
      shared_(std::make_shared<Shared>()) {}

DeadlineReviewClient::~DeadlineReviewClient() {
  std::unique_lock<std::mutex> lock(shared_->mu);
  shared_->changed.wait(lock, [this] { return shared_->in_flight == 0; });
}

std::size_t DeadlineReviewClient::in_flight() const {
  std::lock_guard<std::mutex> lock(shared_->mu);
  return shared_->in_flight;
}

ReviewResponse DeadlineReviewClient::Post(std::string_view path, const std::string& json_body) {
  return Run(true, path, json_body);
}

ReviewResponse DeadlineReviewClient::Get(std::string_view path) { return Run(false, path, {}); }

ReviewResponse DeadlineReviewClient::Run(bool post, std::string_view path,
                                         const std::string& body) {
  {
    std::lock_guard<std::mutex> lock(shared_->mu);
    if (shared_->in_flight >= max_in_flight_) {
      return ReviewResponse{0, "", "too many reviews in flight"};
    }
    ++shared_->in_flight;
  }
  auto call = std::make_shared<CallState>();
  std::thread worker;
  try {
    worker =
        std::thread([inner = inner_, shared = shared_, call, post, path = std::string(path), body] {
          ReviewResponse response;
          try {
            response = post ? inner->Post(path, body) : inner->Get(path);
          } catch (const std::exception& e) {
            response = ReviewResponse{0, "", std::string("review client threw: ") + e.what()};
          } catch (...) {
            response = ReviewResponse{0, "", "review client threw"};
          }
          {
            std::lock_guard<std::mutex> lock(call->mu);
            call->response = std::move(response);
            call->done = true;
          }
          call->done_cv.notify_all();
          // Last: after this the destructor may return, so `inner` is not touched below. The
          // mutex and condition variable live in `shared`, which this thread still holds.
          std::lock_guard<std::mutex> lock(shared->mu);
          --shared->in_flight;
          shared->changed.notify_all();
        });
  } catch (const std::system_error& e) {
    std::lock_guard<std::mutex> lock(shared_->mu);
    --shared_->in_flight;
    shared_->changed.notify_all();
    return ReviewResponse{0, "", std::string("cannot start a review thread: ") + e.what()};
  }
  worker.detach();

  std::unique_lock<std::mutex> lock(call->mu);
  if (!call->done_cv.wait_for(lock, timeout_, [&call] { return call->done; })) {
    return ReviewResponse{0, "", "timeout after " + std::to_string(timeout_.count()) + " ms"};
  }
  return std::move(call->response);
}

std::string PostReview(ReviewClient* client, std::string_view path, const std::string& body,
                       simdjson::dom::parser* parser, simdjson::dom::object* status) {
  const ReviewResponse response = client->Post(path, body);
  if (response.http_status == 0) return response.error.empty() ? "no answer" : response.error;
  if (response.http_status < 200 || response.http_status > 299) {
    return "HTTP " + std::to_string(response.http_status);
  }
  simdjson::dom::element root;
  if (parser->parse(simdjson::padded_string(response.body)).get(root) != simdjson::SUCCESS ||
      root["status"].get(*status) != simdjson::SUCCESS) {
    return "unparsable answer";
  }
  return "";
}

}  // namespace eventbuffer::controller
