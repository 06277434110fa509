// BufferMetrics: the EventBuffer's BufferObserver, publishing write latency, write stalls,
// verification results, mismatches, dedup hits, evictions, the gray-release state, config
// reloads and (at scrape) the buffer's size per backend.
//
// Families (all label combinations exist from construction, at 0):
//   eventbuffer_append_duration_seconds{backend}          histogram (AtomicHistogram)
//   eventbuffer_append_recent_duration_seconds{backend}   summary, 60 s window, .5 .95 .99
//                                                         (quantile label added)
//   eventbuffer_write_pause_seconds{backend}              histogram of stalls > 0
//   eventbuffer_write_pause_max_seconds{backend}          gauge, longest stall in 60 s
//   eventbuffer_verifications_total{result}, eventbuffer_mismatches_total{kind}
//   eventbuffer_evictions_total{reason}, eventbuffer_dedup_hits_total,
//   eventbuffer_truncated_messages_total
//   eventbuffer_gray_mode{mode}, eventbuffer_rollout_percent
//   eventbuffer_config_reloads_total{result}, eventbuffer_config_last_reload_successful,
//   eventbuffer_config_last_reload_success_timestamp_seconds
//   eventbuffer_objects{backend}, eventbuffer_events{backend}, eventbuffer_memory_bytes{backend}
//   eventbuffer_record_memory_bytes
//
// The summary's quantiles come from WindowQuantiles (lock-free, within 6.25 %), its _sum
// and _count from the append histogram (all sampled appends since start, as a Prometheus
// summary's _sum and _count are).
//
// Thread safety: every method may be called from any thread at once. OnAppend and OnStall
// are lock-free (relaxed atomics only). SetSizeSource and the size callback run under a
// mutex that only scrapes and SetSizeSource take.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>

#include "eventbuffer/buffer_observer.h"
#include "metrics/atomic_histogram.h"
#include "metrics/window_max.h"
#include "metrics/window_quantiles.h"

namespace eventbuffer::metrics {

// The size of the buffer, per backend, as the EventBuffer's Stats() reports it. Kept here so
// that metrics/ does not depend on event_buffer.h; the controller fills it from Stats().
struct BufferSizes {
  struct PerBackend {
    std::uint64_t objects = 0;  // keys (involved objects) held
    std::uint64_t events = 0;   // occurrences held
    std::uint64_t bytes = 0;    // the backend's own structures (records not included)
  };
  std::array<PerBackend, kBackendCount> backend{};  // indexed by Backend
  // Memory of the stored event records themselves, shared by both backends
  // (BufferStats::record_bytes): each record block and each revision's base counted once.
  std::uint64_t record_bytes = 0;
  // The buffer's own indexes, shared by both backends (BufferStats::dedup_bytes,
  // query_index_bytes).
  std::uint64_t dedup_bytes = 0;
  std::uint64_t query_index_bytes = 0;
  // The process-wide table of interned short strings (BufferStats::intern_*).
  std::uint64_t intern_bytes = 0;
  std::uint64_t intern_entries = 0;
  std::uint64_t intern_fallbacks = 0;  // values stored inline because the table was full
};

class BufferMetrics final : public BufferObserver {
 public:
  // Length of the windows behind the summary and the *_max_seconds gauges.
  static constexpr std::int64_t kWindowNs = 60'000'000'000;

  // Registers the counter and gauge families in `registry`; the histograms, the summary,
  // the max gauges and the sizes are produced by Collect().
  explicit BufferMetrics(prometheus::Registry& registry);
  ~BufferMetrics() override;

  BufferMetrics(const BufferMetrics&) = delete;
  BufferMetrics& operator=(const BufferMetrics&) = delete;

  // BufferObserver. Durations are in nanoseconds.
  void OnAppend(Backend backend, std::int64_t duration_ns, std::int64_t stall_ns) override;
  void OnStall(Backend backend, std::int64_t stall_ns) override;
  void OnVerification(VerifyResult result) override;
  void OnMismatch(MismatchKind kind) override;
  // Without a reason (callers that predate the reasons): counted as reason "budget".
  void OnEvictions(std::size_t count) override;
  void OnEvictionsByReason(EvictionReason reason, std::size_t count) override;
  void OnDedupHit() override;
  void OnMessageTruncated() override;
  // Sets eventbuffer_gray_mode{mode} to 1 for `mode`, 0 for the others, and the rollout percent.
  void OnModeChange(GrayMode mode, double rollout_percent) override;

  // Counts one configuration reload attempt; `success` false when the new file was rejected
  // (the previous configuration stays in force).
  void OnConfigReload(bool success);

  // Installs the function a scrape calls for the buffer sizes (the controller passes a
  // lambda over EventBuffer::Stats()). Without one, sizes read 0. The function must be
  // thread-safe and must not call back into these metrics.
  void SetSizeSource(std::function<BufferSizes()> source);

  // The families not kept in the registry: latency and stall histograms, the recent-latency
  // summary, the window max gauges and the buffer sizes. Called at scrape.
  std::vector<prometheus::MetricFamily> Collect() const;

  // For tests and benchmarks: observations recorded in the append histogram of `backend`.
  std::uint64_t AppendCount(Backend backend) const;

  // Implementation details follow.
 private:
  struct PerBackend {
    PerBackend();
    AtomicHistogram append;
    AtomicHistogram pause;
    WindowMax pause_max;
    WindowQuantiles recent;
  };
  void RecordStall(PerBackend& b, std::int64_t stall_ns);

  std::array<std::unique_ptr<PerBackend>, kBackendCount> backends_;
  std::array<prometheus::Counter*, kVerifyResultCount> verifications_{};
  std::array<prometheus::Counter*, kMismatchKindCount> mismatches_{};
  std::array<prometheus::Gauge*, kGrayModeCount> mode_{};
  std::array<prometheus::Counter*, kEvictionReasonCount> evictions_{};
  prometheus::Counter* dedup_hits_ = nullptr;
  prometheus::Counter* truncated_messages_ = nullptr;
  prometheus::Gauge* rollout_percent_ = nullptr;
  prometheus::Counter* reload_success_ = nullptr;
  prometheus::Counter* reload_failure_ = nullptr;
  prometheus::Gauge* last_reload_ok_ = nullptr;
  prometheus::Gauge* last_reload_success_time_ = nullptr;

  mutable std::mutex size_mu_;
  std::function<BufferSizes()> size_source_;  // guarded by size_mu_
};

}  // namespace eventbuffer::metrics
