// AtomicHistogram: a Prometheus histogram whose Observe takes no lock.
//
// prometheus-cpp 1.0's Histogram::Observe takes a mutex per call, which two writer threads
// recording every sampled append would contend on. This histogram keeps its counts in
// kShards cache-line-sized shards of relaxed atomics; each thread writes the shard it was
// given on first use, and a scrape sums the shards.
//
// Thread safety: Observe may be called from any number of threads at once; Snapshot may run
// concurrently with them. A snapshot is not an atomic cut: an observation racing with it may
// be counted in one bucket and not yet in the sum. Counts are derived from the buckets, so a
// snapshot is always internally consistent (_count equals the +Inf bucket and buckets are
// cumulative and non-decreasing).
//
// Invariants: bucket bounds are fixed at construction; counts only grow.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include <prometheus/client_metric.h>

namespace eventbuffer::metrics {

class AtomicHistogram {
 public:
  static constexpr std::size_t kShards = 8;

  // `upper_bounds_ns`: the bucket upper bounds in nanoseconds, strictly increasing.
  // REQUIRES: upper_bounds_ns is non-empty and strictly increasing.
  explicit AtomicHistogram(std::vector<std::int64_t> upper_bounds_ns);
  ~AtomicHistogram();

  AtomicHistogram(const AtomicHistogram&) = delete;
  AtomicHistogram& operator=(const AtomicHistogram&) = delete;

  // Records one observation of `ns` nanoseconds (negative values count as 0). Lock-free:
  // a bucket search over the bounds plus two relaxed fetch_adds on this thread's shard.
  void Observe(std::int64_t ns);

  // The current counts as a Prometheus histogram in seconds (bounds and sum divided by 1e9).
  prometheus::ClientMetric::Histogram Snapshot() const;

  // Total number of observations so far (sum over all shards and buckets).
  std::uint64_t Count() const;

  const std::vector<std::int64_t>& upper_bounds_ns() const { return bounds_; }

  // Implementation details follow.
 private:
  struct Shard;
  std::size_t ShardIndex() const;

  const std::vector<std::int64_t> bounds_;
  const std::size_t slots_;  // bounds_.size() + 1 (+Inf)
  std::unique_ptr<Shard[]> shards_;
};

// Bucket bounds for write latencies and stalls: 100 ns doubling up to ~105 ms (21 bounds),
// identical for both backends so their quantiles compare like with like.
std::vector<std::int64_t> AppendLatencyBucketsNs();

}  // namespace eventbuffer::metrics
