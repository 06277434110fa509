// BufferSink: the Watcher's EventSink into the EventBuffer. Every decoded occurrence goes to
// EventBuffer::Append (which drops duplicates); the first completed list makes the buffer
// ready (readiness waits for it).
//
// Thread safety: Append and OnSynced come from the watch thread; synced() from any thread.
#pragma once

#include <spdlog/spdlog.h>

#include <atomic>

#include "controller/kube/watcher.h"
#include "eventbuffer/event_buffer.h"

namespace eventbuffer::controller {

class BufferSink final : public EventSink {
 public:
  // REQUIRES: buffer outlives the sink.
  explicit BufferSink(EventBuffer* buffer) : buffer_(buffer) {}
  void Append(EventRef record) override { buffer_->Append(record); }
  void OnSynced() override {
    if (!synced_.exchange(true, std::memory_order_acq_rel)) {
      spdlog::info("first list is in the buffer: ready");
    }
  }
  bool synced() const { return synced_.load(std::memory_order_acquire); }

 private:
  EventBuffer* buffer_;
  std::atomic<bool> synced_{false};
};

}  // namespace eventbuffer::controller
