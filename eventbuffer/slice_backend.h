// SliceBackend: the storage interface the EventBuffer writes and reads, so that the two
// slice maps (and, in tests, a fault-injecting map) plug in behind one virtual API.
//
// SliceMapBackend<Map> adapts any map with the slice-map API (MutexSliceMap<EventRef>,
// SegmentedSliceMap<EventRef>) to it. MakeLegacyBackend() / MakeAtomicBackend() build the
// two production backends.
//
// Thread safety: as the adapted map. Both production maps allow any number of concurrent
// callers of every method; the EventBuffer additionally serialises all calls for one key
// (see event_buffer.h), so an implementation used only through the EventBuffer needs to be
// safe for concurrent calls on different keys.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "eventbuffer/append_stats.h"
#include "eventbuffer/event_record.h"

namespace eventbuffer {

// A non-owning reference to a callable, for callbacks that do not outlive the call they are
// passed to. Cheaper than std::function: no allocation, one indirect call.
template <class Sig>
class FunctionRef;

template <class R, class... Args>
class FunctionRef<R(Args...)> {
 public:
  template <class F, class = std::enable_if_t<!std::is_same_v<std::decay_t<F>, FunctionRef>>>
  FunctionRef(F&& f) noexcept  // NOLINT: implicit by design, like std::function
      : obj_(const_cast<void*>(static_cast<const void*>(std::addressof(f)))),
        call_([](void* obj, Args... args) -> R {
          return (*static_cast<std::remove_reference_t<F>*>(obj))(std::forward<Args>(args)...);
        }) {}
  R operator()(Args... args) const { return call_(obj_, std::forward<Args>(args)...); }

 private:
  void* obj_;
  R (*call_)(void*, Args...);
};

class SliceBackend {
 public:
  virtual ~SliceBackend() = default;

  // Appends value under key. If stats != nullptr the backend reports the stall of this
  // append in it (AppendStats).
  virtual void Append(std::string_view key, EventRef value, AppendStats* stats) = 0;
  // A copy of key's values in append order; empty when absent.
  virtual std::vector<EventRef> Read(std::string_view key) const = 0;
  // Calls f for each value of key in append order. REQUIRES: f does not call this backend.
  virtual void ForEach(std::string_view key, FunctionRef<void(const EventRef&)> f) const = 0;
  // Number of values under key.
  virtual std::size_t Count(std::string_view key) const = 0;
  // Keys holding at least one value, in no particular order.
  virtual std::vector<std::string> Keys() const = 0;
  virtual std::size_t KeyCount() const = 0;
  // Total number of values held.
  virtual std::size_t Size() const = 0;
  // Drops the oldest n values of key (fewer if it has fewer); returns how many.
  virtual std::size_t DropFront(std::string_view key, std::size_t n) = 0;
  // Drops leading values of key while pred is true; returns how many.
  // REQUIRES: pred does not call this backend.
  virtual std::size_t DropFrontWhile(std::string_view key,
                                     FunctionRef<bool(const EventRef&)> pred) = 0;
  // Removes key if it holds no values; returns whether it did.
  virtual bool EraseIfEmpty(std::string_view key) = 0;
  // Approximate bytes of the backend's own structures (records are shared, not counted).
  virtual std::size_t MemoryBytes() const = 0;
};

// Adapts a slice map with the MutexSliceMap/SegmentedSliceMap API to SliceBackend.
template <class Map>
class SliceMapBackend final : public SliceBackend {
 public:
  SliceMapBackend() = default;
  SliceMapBackend(const SliceMapBackend&) = delete;
  SliceMapBackend& operator=(const SliceMapBackend&) = delete;

  void Append(std::string_view key, EventRef value, AppendStats* stats) override {
    map_.Append(key, std::move(value), stats);
  }
  std::vector<EventRef> Read(std::string_view key) const override { return map_.Read(key); }
  void ForEach(std::string_view key, FunctionRef<void(const EventRef&)> f) const override {
    map_.ForEach(key, [&f](const EventRef& v) { f(v); });
  }
  std::size_t Count(std::string_view key) const override { return map_.Count(key); }
  std::vector<std::string> Keys() const override { return map_.Keys(); }
  std::size_t KeyCount() const override { return map_.KeyCount(); }
  std::size_t Size() const override { return map_.Size(); }
  std::size_t DropFront(std::string_view key, std::size_t n) override {
    return map_.DropFront(key, n);
  }
  std::size_t DropFrontWhile(std::string_view key,
                             FunctionRef<bool(const EventRef&)> pred) override {
    return map_.DropFrontWhile(key, [&pred](const EventRef& v) { return pred(v); });
  }
  bool EraseIfEmpty(std::string_view key) override { return map_.EraseIfEmpty(key); }
  std::size_t MemoryBytes() const override { return map_.MemoryBytes(); }

  Map& map() { return map_; }

 private:
  Map map_;
};

// The legacy backend: MutexSliceMap<EventRef>.
std::unique_ptr<SliceBackend> MakeLegacyBackend();
// The atomic backend: SegmentedSliceMap<EventRef>.
std::unique_ptr<SliceBackend> MakeAtomicBackend();

}  // namespace eventbuffer
