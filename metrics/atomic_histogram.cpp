#include "metrics/atomic_histogram.h"

#include <algorithm>
#include <cassert>
#include <limits>

namespace eventbuffer::metrics {

// Up to 31 buckets (+Inf) and the sum fit one shard; each shard starts on its own cache
// line so that two threads writing different shards never share a line.
struct alignas(64) AtomicHistogram::Shard {
  static constexpr std::size_t kMaxSlots = 31;
  std::atomic<std::uint64_t> counts[kMaxSlots] = {};
  std::atomic<std::int64_t> sum_ns{0};
};

AtomicHistogram::AtomicHistogram(std::vector<std::int64_t> upper_bounds_ns)
    : bounds_(std::move(upper_bounds_ns)),
      slots_(bounds_.size() + 1),
      shards_(std::make_unique<Shard[]>(kShards)) {
  assert(!bounds_.empty() && slots_ <= Shard::kMaxSlots);
  assert(std::is_sorted(bounds_.begin(), bounds_.end()));
}

AtomicHistogram::~AtomicHistogram() = default;

std::size_t AtomicHistogram::ShardIndex() const {
  // Threads are numbered in the order they first observe any AtomicHistogram; the first
  // kShards threads get a shard of their own in every histogram.
  static std::atomic<std::size_t> next_thread{0};
  thread_local const std::size_t index =
      next_thread.fetch_add(1, std::memory_order_relaxed) % kShards;
  return index;
}

void AtomicHistogram::Observe(std::int64_t ns) {
  if (ns < 0) ns = 0;
  // First bound >= ns: Prometheus buckets are "less than or equal".
  const auto it = std::lower_bound(bounds_.begin(), bounds_.end(), ns);
  const auto slot = static_cast<std::size_t>(it - bounds_.begin());
  Shard& shard = shards_[ShardIndex()];
  // Relaxed is enough: each counter is an independent statistic, and a scrape only needs
  // every increment to become visible eventually, not in any order with the others.
  shard.counts[slot].fetch_add(1, std::memory_order_relaxed);
  shard.sum_ns.fetch_add(ns, std::memory_order_relaxed);
}

prometheus::ClientMetric::Histogram AtomicHistogram::Snapshot() const {
  std::vector<std::uint64_t> per_slot(slots_, 0);
  std::int64_t sum_ns = 0;
  for (std::size_t s = 0; s < kShards; ++s) {
    for (std::size_t i = 0; i < slots_; ++i) {
      per_slot[i] += shards_[s].counts[i].load(std::memory_order_relaxed);
    }
    sum_ns += shards_[s].sum_ns.load(std::memory_order_relaxed);
  }
  prometheus::ClientMetric::Histogram h;
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < slots_; ++i) {
    cumulative += per_slot[i];
    prometheus::ClientMetric::Bucket b;
    b.cumulative_count = cumulative;
    b.upper_bound = i < bounds_.size() ? static_cast<double>(bounds_[i]) / 1e9
                                       : std::numeric_limits<double>::infinity();
    h.bucket.push_back(b);
  }
  h.sample_count = cumulative;
  h.sample_sum = static_cast<double>(sum_ns) / 1e9;
  return h;
}

std::uint64_t AtomicHistogram::Count() const {
  std::uint64_t n = 0;
  for (std::size_t s = 0; s < kShards; ++s) {
    for (std::size_t i = 0; i < slots_; ++i) {
      n += shards_[s].counts[i].load(std::memory_order_relaxed);
    }
  }
  return n;
}

std::vector<std::int64_t> AppendLatencyBucketsNs() {
  std::vector<std::int64_t> b;
  for (std::int64_t ns = 100; b.size() < 21; ns *= 2) b.push_back(ns);
  return b;  // 100 ns .. 104.8576 ms
}

}  // namespace eventbuffer::metrics
