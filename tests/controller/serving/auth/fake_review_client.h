// A scripted ReviewClient for the delegated auth tests: counts calls per path, answers
// from handlers, and can hold calls until released (a hanging API server).
#pragma once

#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "controller/serving/auth/review_client.h"

namespace eventbuffer::controller::testing {

class FakeReviewClient final : public ReviewClient {
 public:
  using Handler = std::function<ReviewResponse(const std::string& body)>;

  ReviewResponse Post(std::string_view path, const std::string& json_body) override {
    return Call(std::string(path), json_body);
  }
  ReviewResponse Get(std::string_view path) override { return Call(std::string(path), ""); }

  // Answers for `path`; without one, a call answers {404, ...}.
  void On(const std::string& path, Handler handler) {
    std::lock_guard<std::mutex> lock(mu_);
    handlers_[path] = std::move(handler);
  }
  // Calls to `path` block until Release() while held.
  void Hold(const std::string& path) {
    std::lock_guard<std::mutex> lock(mu_);
    held_[path] = true;
  }
  void Release() {
    std::lock_guard<std::mutex> lock(mu_);
    held_.clear();
    changed_.notify_all();
  }
  // Calls currently blocked in Hold.
  int blocked() const {
    std::lock_guard<std::mutex> lock(mu_);
    return blocked_;
  }
  int Count(const std::string& path) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = bodies_.find(path);
    return it == bodies_.end() ? 0 : static_cast<int>(it->second.size());
  }
  std::vector<std::string> Bodies(const std::string& path) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = bodies_.find(path);
    return it == bodies_.end() ? std::vector<std::string>{} : it->second;
  }

 private:
  ReviewResponse Call(const std::string& path, const std::string& body) {
    Handler handler;
    {
      std::unique_lock<std::mutex> lock(mu_);
      bodies_[path].push_back(body);
      ++blocked_;
      changed_.wait(lock, [&] { return !held_[path]; });
      --blocked_;
      auto it = handlers_.find(path);
      if (it == handlers_.end()) return ReviewResponse{404, "{}", ""};
      handler = it->second;
    }
    return handler(body);
  }

  mutable std::mutex mu_;
  std::condition_variable changed_;
  std::map<std::string, Handler> handlers_;
  std::map<std::string, bool> held_;
  std::map<std::string, std::vector<std::string>> bodies_;
  int blocked_ = 0;
};

}  // namespace eventbuffer::controller::testing
