// FaultySliceBackend: a SliceBackend for tests that stores like a slice map and, when armed,
// corrupts what it stores: drops an append, stores it twice, stores it before the previous
// value (reorder), or stores a copy with a changed message (same identity, other content).
//
// Thread safety: one mutex guards everything, like MutexSliceMap.
#pragma once

#include <cstddef>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "eventbuffer/slice_backend.h"

namespace eventbuffer::testing {

enum class Fault { kNone, kDrop, kDuplicate, kReorder, kCorrupt };

class FaultySliceBackend final : public SliceBackend {
 public:
  // Applies fault to the next `times` appends.
  void Arm(Fault fault, std::size_t times = 1) {
    std::lock_guard<std::mutex> lock(mu_);
    fault_ = fault;
    remaining_ = times;
  }
  // Applies fault to every `every`-th append from now on (every >= 1).
  void ArmEvery(Fault fault, std::size_t every) {
    std::lock_guard<std::mutex> lock(mu_);
    fault_ = fault;
    every_ = every;
    remaining_ = SIZE_MAX;
  }
  std::size_t faults_injected() const {
    std::lock_guard<std::mutex> lock(mu_);
    return injected_;
  }

  void Append(std::string_view key, EventRef value, AppendStats* stats) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (stats != nullptr) stats->stall_ns = 0;
    auto& v = map_[std::string(key)];
    ++appends_;
    const bool fire =
        fault_ != Fault::kNone && remaining_ > 0 && (every_ == 0 || appends_ % every_ == 0);
    if (!fire) {
      v.push_back(std::move(value));
      return;
    }
    if (remaining_ != SIZE_MAX) --remaining_;
    ++injected_;
    switch (fault_) {
      case Fault::kNone:
      case Fault::kDrop:
        break;
      case Fault::kDuplicate:
        v.push_back(value);
        v.push_back(std::move(value));
        break;
      case Fault::kReorder:
        v.insert(v.empty() ? v.end() : v.end() - 1, std::move(value));
        break;
      case Fault::kCorrupt: {
        EventRecord::Builder b;
        for (std::size_t i = 0; i < EventRecord::kFieldCount; ++i) {
          const auto f = static_cast<EventRecord::Field>(i);
          b.Set(f, value->Get(f));
        }
        b.SetNumbers(value->numbers());
        const std::string bad = std::string(value->message()) + " (bit flip)";
        b.Set(EventRecord::Field::kMessage, bad);
        v.push_back(b.Build());
        break;
      }
    }
  }
  std::vector<EventRef> Read(std::string_view key) const override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = map_.find(std::string(key));
    return it == map_.end() ? std::vector<EventRef>{}
                            : std::vector<EventRef>(it->second.begin(), it->second.end());
  }
  void ForEach(std::string_view key, FunctionRef<void(const EventRef&)> f) const override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = map_.find(std::string(key));
    if (it == map_.end()) return;
    for (const auto& v : it->second) f(v);
  }
  std::size_t Count(std::string_view key) const override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = map_.find(std::string(key));
    return it == map_.end() ? 0 : it->second.size();
  }
  std::vector<std::string> Keys() const override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::string> keys;
    for (const auto& [k, v] : map_) {
      if (!v.empty()) keys.push_back(k);
    }
    return keys;
  }
  std::size_t KeyCount() const override { return Keys().size(); }
  std::size_t Size() const override {
    std::lock_guard<std::mutex> lock(mu_);
    std::size_t n = 0;
    for (const auto& kv : map_) n += kv.second.size();
    return n;
  }
  std::size_t DropFront(std::string_view key, std::size_t n) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = map_.find(std::string(key));
    if (it == map_.end()) return 0;
    const std::size_t d = std::min(n, it->second.size());
    it->second.erase(it->second.begin(), it->second.begin() + static_cast<std::ptrdiff_t>(d));
    return d;
  }
  std::size_t DropFrontWhile(std::string_view key,
                             FunctionRef<bool(const EventRef&)> pred) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = map_.find(std::string(key));
    if (it == map_.end()) return 0;
    std::size_t d = 0;
    while (!it->second.empty() && pred(it->second.front())) {
      it->second.pop_front();
      ++d;
    }
    return d;
  }
  bool EraseIfEmpty(std::string_view key) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = map_.find(std::string(key));
    if (it == map_.end() || !it->second.empty()) return false;
    map_.erase(it);
    return true;
  }
  std::size_t MemoryBytes() const override { return 0; }

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::deque<EventRef>> map_;
  Fault fault_ = Fault::kNone;
  std::size_t remaining_ = 0, every_ = 0, appends_ = 0, injected_ = 0;
};

}  // namespace eventbuffer::testing
