#include "metrics/window_max.h"

#include <algorithm>
#include <cassert>
#include <chrono>

namespace eventbuffer::metrics {

WindowMax::WindowMax(std::int64_t window_ns, int slots)
    : slice_ns_(window_ns / slots),
      slots_(slots),
      ring_(std::make_unique<std::atomic<std::uint64_t>[]>(static_cast<std::size_t>(slots))) {
  assert(slots >= 1 && slice_ns_ > 0);
  // Epoch field all ones: a slice no real time maps to for ~5 years at 10 s slices, so an
  // unused slot never counts as current.
  for (int i = 0; i < slots_; ++i) ring_[i].store(kEpochMask << kValueBits);
}

std::int64_t WindowMax::NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void WindowMax::Record(std::int64_t value, std::int64_t now_ns) {
  value = std::clamp<std::int64_t>(value, 0, kMaxValue);
  const std::int64_t slice = now_ns / slice_ns_;
  const std::uint64_t epoch = static_cast<std::uint64_t>(slice) & kEpochMask;
  std::atomic<std::uint64_t>& slot = ring_[static_cast<std::size_t>(slice % slots_)];
  const std::uint64_t wanted = (epoch << kValueBits) | static_cast<std::uint64_t>(value);
  // Relaxed is enough: the slot word is self-contained (epoch and value change together in
  // one CAS) and guards no other memory.
  std::uint64_t cur = slot.load(std::memory_order_relaxed);
  while (true) {
    const std::uint64_t cur_epoch = cur >> kValueBits;
    const std::int64_t cur_value = static_cast<std::int64_t>(cur & ((1ULL << kValueBits) - 1));
    // Same slice and already at least as large: nothing to do. A slot holding a newer slice
    // (a stale now_ns from a slow caller) is left alone too.
    if (cur_epoch == epoch && cur_value >= value) return;
    if (cur_epoch != epoch && cur_epoch != kEpochMask &&
        ((epoch - cur_epoch) & kEpochMask) > (kEpochMask >> 1)) {
      return;
    }
    if (slot.compare_exchange_weak(cur, wanted, std::memory_order_relaxed)) return;
  }
}

std::int64_t WindowMax::Max(std::int64_t now_ns) const {
  const std::int64_t slice = now_ns / slice_ns_;
  std::int64_t best = 0;
  for (int i = 0; i < slots_; ++i) {
    const std::uint64_t word = ring_[i].load(std::memory_order_relaxed);
    const std::uint64_t epoch = word >> kValueBits;
    if (epoch == kEpochMask) continue;
    // Age of the slot's slice in slices, modulo the epoch width.
    const std::uint64_t age = (static_cast<std::uint64_t>(slice) - epoch) & kEpochMask;
    if (age < static_cast<std::uint64_t>(slots_)) {
      best = std::max(best, static_cast<std::int64_t>(word & ((1ULL << kValueBits) - 1)));
    }
  }
  return best;
}

}  // namespace eventbuffer::metrics
