// MutexSliceMap: the legacy storage backend. One std::mutex guards one
// std::unordered_map<std::string, std::vector<V>>; every operation takes the lock.
//
// It is the control in the storage migration (see docs/storage.md): keep it small and
// boring so that the comparison with SegmentedSliceMap is honest.
//
// Thread safety: every public method may be called from any number of threads at once.
// Each method holds the one mutex for its whole duration, so every operation is atomic
// with respect to every other; a reader therefore always sees a prefix of a key's values
// in append order (trivially: it sees the state between two whole operations).
//
// Invariants (under the mutex):
//   - a key is in the map iff it was appended to and not removed by EraseIfEmpty;
//   - for each key, the held values are slice.values[slice.head, size()), in append order;
//     slots before `head` hold moved-from/reset values (already destroyed content);
//   - size_ == sum over keys of (values.size() - head).
//
// Values are not copied by readers under the lock except into the vector Read returns;
// ForEach calls f while holding the lock, so f must not call back into the same map.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "eventbuffer/append_stats.h"

namespace eventbuffer {

template <class V>
class MutexSliceMap {
 public:
  MutexSliceMap() = default;
  MutexSliceMap(const MutexSliceMap&) = delete;
  MutexSliceMap& operator=(const MutexSliceMap&) = delete;
  MutexSliceMap(MutexSliceMap&&) = delete;
  MutexSliceMap& operator=(MutexSliceMap&&) = delete;

  // Appends value under key (creating the key). Safe from many threads at once.
  // If stats != nullptr, sets stats->stall_ns to the time spent waiting for the lock
  // (only when it was not free at once) plus the time of a rehash or vector
  // reallocation this append caused; 0 on the fast path, which reads no clock.
  void Append(std::string_view key, V value, AppendStats* stats = nullptr) {
    std::int64_t stall_ns = 0;
    std::unique_lock<std::mutex> lock(mu_, std::try_to_lock);
    if (!lock.owns_lock()) {
      const auto t0 = Clock::now();
      lock.lock();
      stall_ns += Elapsed(t0);
    }
    auto it = map_.find(key);
    if (it == map_.end()) {
      // A new key: an insertion may rehash the whole table (a stall for every writer).
      const bool rehash = static_cast<float>(map_.size() + 1) >
                          static_cast<float>(map_.bucket_count()) * map_.max_load_factor();
      const auto t0 = rehash ? Clock::now() : Clock::time_point{};
      it = map_.try_emplace(std::string(key)).first;
      if (rehash) stall_ns += Elapsed(t0);
    }
    Slice& slice = it->second;
    if (slice.values.size() == slice.values.capacity()) {
      // Vector reallocation: every value of the key is moved to a new block.
      const auto t0 = Clock::now();
      slice.values.push_back(std::move(value));
      stall_ns += Elapsed(t0);
    } else {
      slice.values.push_back(std::move(value));
    }
    ++size_;
    if (stats != nullptr) stats->stall_ns = stall_ns;
  }

  // A copy of key's values in append order; empty when the key is absent.
  std::vector<V> Read(std::string_view key) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = map_.find(key);
    if (it == map_.end()) return {};
    const Slice& s = it->second;
    return std::vector<V>(s.values.begin() + static_cast<std::ptrdiff_t>(s.head), s.values.end());
  }

  // Calls f(const V&) for each value of key in append order, under the lock.
  // REQUIRES: f does not call any method of this map.
  template <class F>
  void ForEach(std::string_view key, F&& f) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = map_.find(key);
    if (it == map_.end()) return;
    const Slice& s = it->second;
    for (std::size_t i = s.head; i < s.values.size(); ++i) f(s.values[i]);
  }

  // Number of values held under key (0 when absent).
  std::size_t Count(std::string_view key) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = map_.find(key);
    return it == map_.end() ? 0 : it->second.values.size() - it->second.head;
  }

  // The keys currently holding at least one value, in no particular order.
  std::vector<std::string> Keys() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::string> keys;
    keys.reserve(map_.size());
    for (const auto& [k, s] : map_) {
      if (s.values.size() > s.head) keys.push_back(k);
    }
    return keys;
  }

  // Number of keys currently holding at least one value.
  std::size_t KeyCount() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::size_t n = 0;
    for (const auto& kv : map_) n += kv.second.values.size() > kv.second.head ? 1 : 0;
    return n;
  }

  // Total number of values held.
  std::size_t Size() const {
    std::lock_guard<std::mutex> lock(mu_);
    return size_;
  }

  // Drops (destroys) the oldest n values of key, fewer if it holds fewer; returns how many.
  std::size_t DropFront(std::string_view key, std::size_t n) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = map_.find(key);
    if (it == map_.end()) return 0;
    Slice& s = it->second;
    const std::size_t dropped = std::min(n, s.values.size() - s.head);
    for (std::size_t i = 0; i < dropped; ++i) s.values[s.head + i] = V{};
    s.head += dropped;
    Compact(s);
    size_ -= dropped;
    return dropped;
  }

  // Drops the leading values of key while pred(const V&) is true; returns how many.
  // REQUIRES: pred does not call any method of this map.
  template <class Pred>
  std::size_t DropFrontWhile(std::string_view key, Pred&& pred) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = map_.find(key);
    if (it == map_.end()) return 0;
    Slice& s = it->second;
    std::size_t dropped = 0;
    while (s.head < s.values.size() && pred(std::as_const(s.values[s.head]))) {
      s.values[s.head] = V{};
      ++s.head;
      ++dropped;
    }
    Compact(s);
    size_ -= dropped;
    return dropped;
  }

  // Removes key if it holds no values; returns true if it was removed.
  bool EraseIfEmpty(std::string_view key) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = map_.find(key);
    if (it == map_.end() || it->second.values.size() > it->second.head) return false;
    map_.erase(it);
    return true;
  }

  // Approximate bytes owned by the map itself: the hash table, its nodes, the key strings
  // held out of line and the vectors' capacity. Not V's own heap. Walks every key: O(keys).
  std::size_t MemoryBytes() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::size_t bytes = sizeof(*this) + map_.bucket_count() * sizeof(void*);
    for (const auto& [k, s] : map_) {
      // One node per key: next pointer, the pair, and the cached hash code.
      bytes += sizeof(void*) + sizeof(std::pair<const std::string, Slice>) + sizeof(std::size_t);
      if (k.capacity() > 15) bytes += k.capacity() + 1;  // beyond the small-string buffer
      bytes += s.values.capacity() * sizeof(V);
    }
    return bytes;
  }

 private:
  using Clock = std::chrono::steady_clock;

  struct Slice {
    std::vector<V> values;
    std::size_t head = 0;  // values[0, head) are dropped
  };

  // Transparent hashing so that string_view lookups do not build a std::string.
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };

  static std::int64_t Elapsed(Clock::time_point t0) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count();
  }

  // Keeps the dropped prefix and unused capacity bounded: once half the vector is dropped
  // the live values move to the front, and the block shrinks when it is mostly empty, so
  // retention frees memory and DropFront stays amortized O(1) per dropped value.
  static void Compact(Slice& s) {
    if (s.head == 0 || s.head * 2 < s.values.size()) return;
    s.values.erase(s.values.begin(), s.values.begin() + static_cast<std::ptrdiff_t>(s.head));
    s.head = 0;
    if (s.values.capacity() > 16 && s.values.size() * 4 < s.values.capacity()) {
      s.values.shrink_to_fit();
    }
  }

  mutable std::mutex mu_;
  std::unordered_map<std::string, Slice, Hash, std::equal_to<>> map_;
  std::size_t size_ = 0;
};

}  // namespace eventbuffer
