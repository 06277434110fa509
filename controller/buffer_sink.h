// BufferSink: the Watcher's EventSink into the EventBuffer. Every decoded occurrence goes to
// EventBuffer::Append (which drops duplicates); with a durable store (--data-dir), each one
// the buffer stored (kStored) is also queued for the store, as the buffer stored it (a long
// message truncated). The first completed list makes the buffer ready (readiness waits for
// it).
//
// Thread safety: Append and OnSynced come from the watch thread; synced() from any thread.
#pragma once

#include <spdlog/spdlog.h>

#include <atomic>

#include "controller/durable/event_store.h"
#include "controller/kube/watcher.h"
#include "eventbuffer/event_buffer.h"

namespace eventbuffer::controller {

class BufferSink final : public EventSink {
 public:
  // REQUIRES: buffer (and store, unless null) outlive the sink.
  explicit BufferSink(EventBuffer* buffer, EventStore* store = nullptr)
      : buffer_(buffer), store_(store) {}
  void Append(EventRef record) override {
    if (store_ == nullptr) {
      buffer_->Append(record);
      return;
    }
    // The store keeps what the buffer stored (a long message truncated), not the decoded
    // original.
    EventRef stored;
    if (buffer_->Append(record, &stored) == EventBuffer::AppendResult::kStored) {
      store_->Append(std::move(stored));
    }
  }
  void OnSynced() override {
    if (!synced_.exchange(true, std::memory_order_acq_rel)) {
      spdlog::info("first list is in the buffer: ready");
    }
  }
  bool synced() const { return synced_.load(std::memory_order_acquire); }

 private:
  EventBuffer* buffer_;
  EventStore* store_;
  std::atomic<bool> synced_{false};
};

}  // namespace eventbuffer::controller
