// FromStreamStart: the emulator's fast stream is watch-only (a list reports the
// resourceVersion after it). This decorator of the real client turns the first watch into a
// watch from the stream's start; everything else goes to the client unchanged. Used by the
// benchmarks that ingest the fast stream (e2e_bench, serving_bench).
#pragma once

#include <string>
#include <utility>

#include "controller/kube/lister_watcher.h"

namespace eventbuffer::bench {

class FromStreamStart final : public controller::ListerWatcher {
 public:
  FromStreamStart(controller::ListerWatcher* inner, std::string first_rv)
      : inner_(inner), first_rv_(std::move(first_rv)) {}
  controller::ApiResponse List(const controller::ListRequest& r) override {
    return inner_->List(r);
  }
  controller::ApiResponse Watch(const controller::WatchRequest& r,
                                const controller::LineHandler& on_line) override {
    controller::WatchRequest request = r;
    if (!used_) {
      used_ = true;
      request.resource_version = first_rv_;
    }
    return inner_->Watch(request, on_line);
  }
  void Cancel() override { inner_->Cancel(); }

 private:
  controller::ListerWatcher* inner_;
  std::string first_rv_;
  bool used_ = false;
};

}  // namespace eventbuffer::bench
