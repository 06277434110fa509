#include "metrics/buffer_metrics.h"

#include <chrono>
#include <string>

#include "metrics/family_util.h"

namespace eventbuffer::metrics {
namespace {

using internal::MakeFamily;
using internal::MakeGauge;
using prometheus::MetricType;

constexpr Backend kBackends[] = {Backend::kLegacy, Backend::kAtomic};

std::string Str(std::string_view s) { return std::string(s); }

const std::vector<double> kRecentQuantiles = {0.5, 0.95, 0.99};

}  // namespace

BufferMetrics::PerBackend::PerBackend()
    : append(AppendLatencyBucketsNs()),
      pause(AppendLatencyBucketsNs()),
      pause_max(kWindowNs, 6),
      recent(kWindowNs, 6) {}

BufferMetrics::BufferMetrics(prometheus::Registry& registry) {
  for (Backend b : kBackends)
    backends_[static_cast<std::size_t>(b)] = std::make_unique<PerBackend>();

  auto& verifications = prometheus::BuildCounter()
                            .Name("eventbuffer_verifications_total")
                            .Help("Per-key comparisons of the two backends, by result.")
                            .Register(registry);
  for (std::size_t i = 0; i < kVerifyResultCount; ++i) {
    verifications_[i] =
        &verifications.Add({{"result", Str(VerifyResultName(static_cast<VerifyResult>(i)))}});
  }
  auto& mismatches = prometheus::BuildCounter()
                         .Name("eventbuffer_mismatches_total")
                         .Help("Differences found between the legacy and atomic backends, by kind.")
                         .Register(registry);
  for (std::size_t i = 0; i < kMismatchKindCount; ++i) {
    mismatches_[i] =
        &mismatches.Add({{"kind", Str(MismatchKindName(static_cast<MismatchKind>(i)))}});
  }
  auto& evictions = prometheus::BuildCounter()
                        .Name("eventbuffer_evictions_total")
                        .Help("Event occurrences removed by retention, by reason: age, "
                              "per_object, budget, namespace_share.")
                        .Register(registry);
  for (std::size_t i = 0; i < kEvictionReasonCount; ++i) {
    evictions_[i] =
        &evictions.Add({{"reason", Str(EvictionReasonName(static_cast<EvictionReason>(i)))}});
  }
  truncated_messages_ = &prometheus::BuildCounter()
                            .Name("eventbuffer_truncated_messages_total")
                            .Help("Event occurrences stored with their message truncated to "
                                  "retention.maxMessageBytes.")
                            .Register(registry)
                            .Add({});
  dedup_hits_ = &prometheus::BuildCounter()
                     .Name("eventbuffer_dedup_hits_total")
                     .Help("Appends dropped because the buffer already held that occurrence.")
                     .Register(registry)
                     .Add({});
  auto& mode = prometheus::BuildGauge()
                   .Name("eventbuffer_gray_mode")
                   .Help("Gray-release mode of the buffer: 1 for the active mode, 0 otherwise.")
                   .Register(registry);
  for (std::size_t i = 0; i < kGrayModeCount; ++i) {
    mode_[i] = &mode.Add({{"mode", Str(GrayModeName(static_cast<GrayMode>(i)))}});
  }
  mode_[static_cast<std::size_t>(GrayMode::kLegacy)]->Set(1);
  rollout_percent_ = &prometheus::BuildGauge()
                          .Name("eventbuffer_rollout_percent")
                          .Help("Percentage of keys read from the atomic backend in canary mode.")
                          .Register(registry)
                          .Add({});
  auto& reloads = prometheus::BuildCounter()
                      .Name("eventbuffer_config_reloads_total")
                      .Help("Configuration reload attempts, by result.")
                      .Register(registry);
  reload_success_ = &reloads.Add({{"result", "success"}});
  reload_failure_ = &reloads.Add({{"result", "failure"}});
  last_reload_ok_ =
      &prometheus::BuildGauge()
           .Name("eventbuffer_config_last_reload_successful")
           .Help("1 if the last configuration reload succeeded (or none was tried), else 0.")
           .Register(registry)
           .Add({});
  last_reload_ok_->Set(1);
  last_reload_success_time_ = &prometheus::BuildGauge()
                                   .Name("eventbuffer_config_last_reload_success_timestamp_seconds")
                                   .Help("Unix time of the last successful configuration load.")
                                   .Register(registry)
                                   .Add({});
  last_reload_success_time_->SetToCurrentTime();
}

BufferMetrics::~BufferMetrics() = default;

void BufferMetrics::OnAppend(Backend backend, std::int64_t duration_ns, std::int64_t stall_ns) {
  PerBackend& b = *backends_[static_cast<std::size_t>(backend)];
  b.append.Observe(duration_ns);
  b.recent.Observe(duration_ns);
  if (stall_ns > 0) RecordStall(b, stall_ns);
}

void BufferMetrics::OnStall(Backend backend, std::int64_t stall_ns) {
  if (stall_ns > 0) RecordStall(*backends_[static_cast<std::size_t>(backend)], stall_ns);
}

void BufferMetrics::RecordStall(PerBackend& b, std::int64_t stall_ns) {
  b.pause.Observe(stall_ns);
  b.pause_max.Record(stall_ns, WindowMax::NowNs());
}

void BufferMetrics::OnVerification(VerifyResult result) {
  verifications_[static_cast<std::size_t>(result)]->Increment();
}

void BufferMetrics::OnMismatch(MismatchKind kind) {
  mismatches_[static_cast<std::size_t>(kind)]->Increment();
}

void BufferMetrics::OnEvictions(std::size_t count) {
  OnEvictionsByReason(EvictionReason::kBudget, count);
}

void BufferMetrics::OnEvictionsByReason(EvictionReason reason, std::size_t count) {
  evictions_[static_cast<std::size_t>(reason)]->Increment(static_cast<double>(count));
}

void BufferMetrics::OnDedupHit() { dedup_hits_->Increment(); }

void BufferMetrics::OnMessageTruncated() { truncated_messages_->Increment(); }

void BufferMetrics::OnModeChange(GrayMode mode, double rollout_percent) {
  for (std::size_t i = 0; i < kGrayModeCount; ++i) {
    mode_[i]->Set(i == static_cast<std::size_t>(mode) ? 1 : 0);
  }
  rollout_percent_->Set(rollout_percent);
}

void BufferMetrics::OnConfigReload(bool success) {
  (success ? reload_success_ : reload_failure_)->Increment();
  last_reload_ok_->Set(success ? 1 : 0);
  if (success) last_reload_success_time_->SetToCurrentTime();
}

void BufferMetrics::SetSizeSource(std::function<BufferSizes()> source) {
  std::lock_guard<std::mutex> lock(size_mu_);
  size_source_ = std::move(source);
}

std::uint64_t BufferMetrics::AppendCount(Backend backend) const {
  return backends_[static_cast<std::size_t>(backend)]->append.Count();
}

namespace {
// A gauge family of one unlabelled sample.
prometheus::MetricFamily OneGauge(std::string name, std::string help, std::uint64_t value) {
  auto family = MakeFamily(std::move(name), std::move(help), MetricType::Gauge);
  family.metric.push_back(MakeGauge(static_cast<double>(value)));
  return family;
}
}  // namespace

std::vector<prometheus::MetricFamily> BufferMetrics::Collect() const {
  auto append = MakeFamily("eventbuffer_append_duration_seconds",
                           "Duration of sampled appends into one backend.", MetricType::Histogram);
  auto pause = MakeFamily("eventbuffer_write_pause_seconds",
                          "Write stalls: time an append waited for a lock held by another "
                          "writer or spent in a structural change (rehash, reallocation, "
                          "segment allocation).",
                          MetricType::Histogram);
  auto pause_max = MakeFamily("eventbuffer_write_pause_max_seconds",
                              "Longest write stall in the last 60 s.", MetricType::Gauge);
  auto recent = MakeFamily("eventbuffer_append_recent_duration_seconds",
                           "Duration of sampled appends into one backend: quantiles over the "
                           "last 60 s, sum and count since start.",
                           MetricType::Summary);
  const std::int64_t now = WindowMax::NowNs();
  const std::int64_t coarse_now = WindowQuantiles::CoarseNowNs();
  for (Backend b : kBackends) {
    const PerBackend& pb = *backends_[static_cast<std::size_t>(b)];
    const std::vector<prometheus::ClientMetric::Label> labels = {{"backend", Str(BackendName(b))}};
    prometheus::ClientMetric m;
    m.label = labels;
    m.histogram = pb.append.Snapshot();
    append.metric.push_back(m);
    prometheus::ClientMetric r;
    r.label = labels;
    r.summary.sample_count = m.histogram.sample_count;
    r.summary.sample_sum = m.histogram.sample_sum;
    const auto q = pb.recent.Quantiles(kRecentQuantiles, coarse_now);
    for (std::size_t i = 0; i < q.size(); ++i) {
      r.summary.quantile.push_back({kRecentQuantiles[i], q[i] / 1e9});
    }
    recent.metric.push_back(std::move(r));
    m.histogram = pb.pause.Snapshot();
    pause.metric.push_back(m);
    pause_max.metric.push_back(MakeGauge(static_cast<double>(pb.pause_max.Max(now)) / 1e9, labels));
  }

  BufferSizes sizes;
  {
    std::lock_guard<std::mutex> lock(size_mu_);
    if (size_source_) sizes = size_source_();
  }
  auto objects = MakeFamily("eventbuffer_objects", "Involved objects (keys) held, per backend.",
                            MetricType::Gauge);
  auto events =
      MakeFamily("eventbuffer_events", "Event occurrences held, per backend.", MetricType::Gauge);
  auto bytes = MakeFamily("eventbuffer_memory_bytes",
                          "Approximate memory of each backend's own structures, in bytes (the "
                          "event records, shared by both backends, are not included).",
                          MetricType::Gauge);
  for (Backend b : kBackends) {
    const auto& s = sizes.backend[static_cast<std::size_t>(b)];
    const std::vector<prometheus::ClientMetric::Label> labels = {{"backend", Str(BackendName(b))}};
    objects.metric.push_back(MakeGauge(static_cast<double>(s.objects), labels));
    events.metric.push_back(MakeGauge(static_cast<double>(s.events), labels));
    bytes.metric.push_back(MakeGauge(static_cast<double>(s.bytes), labels));
  }
  auto records = OneGauge("eventbuffer_record_memory_bytes",
                          "Approximate memory of the stored event records, shared by both "
                          "backends, in bytes.",
                          sizes.record_bytes);
  auto index_bytes = MakeFamily("eventbuffer_index_memory_bytes",
                                "Memory of the buffer's own indexes, shared by both backends: "
                                "the dedup index of held identities and the list index, in bytes.",
                                MetricType::Gauge);
  index_bytes.metric.push_back(
      MakeGauge(static_cast<double>(sizes.dedup_bytes), {{"index", "dedup"}}));
  index_bytes.metric.push_back(
      MakeGauge(static_cast<double>(sizes.query_index_bytes), {{"index", "list"}}));
  auto intern_bytes = OneGauge("eventbuffer_intern_table_bytes",
                               "Memory of the table of interned short strings (namespaces, "
                               "kinds, reasons, hosts...) the records refer to, in bytes.",
                               sizes.intern_bytes);
  auto intern_entries = OneGauge("eventbuffer_intern_table_entries",
                                 "Distinct short strings in the intern table.", sizes.intern_entries);
  auto intern_fallbacks =
      MakeFamily("eventbuffer_intern_fallbacks_total",
                 "Short strings stored inline in their record because the intern table was full.",
                 MetricType::Counter);
  intern_fallbacks.metric.push_back(
      internal::MakeCounter(static_cast<double>(sizes.intern_fallbacks)));
  return {std::move(append),       std::move(recent),         std::move(pause),
          std::move(pause_max),    std::move(objects),        std::move(events),
          std::move(bytes),        std::move(records),        std::move(intern_bytes),
          std::move(intern_entries), std::move(intern_fallbacks), std::move(index_bytes)};
}

}  // namespace eventbuffer::metrics
