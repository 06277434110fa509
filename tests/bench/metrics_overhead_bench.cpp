// Instrumentation overhead: what recording append latency costs on the write path.
//
// Each benchmark appends EventRefs into one backend map (the real MutexSliceMap or
// SegmentedSliceMap) from 1 or 2 threads over 4096 shared keys, instrumented the way
// EventBuffer::AppendTo does it:
//   Bare         map.Append(key, ref) with no stats and no clock (the EventBuffer without
//                an observer);
//   Sampled      production path: AppendStats always (stalls are always reported), two
//                steady_clock reads and OnAppend for 1 append in 16, into BufferMetrics;
//   SampledNull  the same, into an observer that does nothing (cost of the clocks alone);
//   Every        every append timed and recorded into BufferMetrics (no sampling);
//   EveryPromHistogram  every append recorded into a prometheus-cpp Histogram (which takes
//                a mutex per Observe) instead of the lock-free AtomicHistogram.
//   BufferAppend/*  the whole EventBuffer::Append in shadow mode with no observer, a null
//                observer and BufferMetrics (see BM_BufferAppend).
// Overhead = time per append of a variant / Bare (or NoObserver) − 1, same thread count.
//
//   build/tests/bench/metrics_overhead_bench --benchmark_repetitions=5
//   --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "eventbuffer/event_buffer.h"
#include "eventbuffer/event_record.h"
#include "eventbuffer/mutex_slice_map.h"
#include "eventbuffer/segmented/slice_map.h"
#include "metrics/atomic_histogram.h"
#include "metrics/buffer_metrics.h"

namespace {

using eventbuffer::Backend;
using eventbuffer::EventRef;
using Clock = std::chrono::steady_clock;

constexpr std::uint32_t kSampleMask = 15;  // as EventBuffer: 1 append in 16 is timed
constexpr std::size_t kKeys = 4096;
constexpr std::int64_t kItersPerThread = 1 << 20;

enum class Mode { kBare, kSampled, kSampledNull, kEvery, kEveryPromHistogram };

class NullObserver final : public eventbuffer::BufferObserver {
 public:
  void OnAppend(Backend, std::int64_t, std::int64_t) override {}
  void OnStall(Backend, std::int64_t) override {}
  void OnVerification(eventbuffer::VerifyResult) override {}
  void OnMismatch(eventbuffer::MismatchKind) override {}
  void OnEvictions(std::size_t) override {}
  void OnDedupHit() override {}
  void OnModeChange(eventbuffer::GrayMode, double) override {}
};

// Records every observation into a prometheus-cpp Histogram with the same buckets.
class PromHistogramObserver final : public eventbuffer::BufferObserver {
 public:
  PromHistogramObserver() {
    std::vector<double> bounds;
    for (auto ns : eventbuffer::metrics::AppendLatencyBucketsNs()) bounds.push_back(ns / 1e9);
    hist_ = &prometheus::BuildHistogram().Name("x").Register(registry_).Add({}, bounds);
  }
  void OnAppend(Backend, std::int64_t ns, std::int64_t) override { hist_->Observe(ns / 1e9); }
  void OnStall(Backend, std::int64_t) override {}
  void OnVerification(eventbuffer::VerifyResult) override {}
  void OnMismatch(eventbuffer::MismatchKind) override {}
  void OnEvictions(std::size_t) override {}
  void OnDedupHit() override {}
  void OnModeChange(eventbuffer::GrayMode, double) override {}

 private:
  prometheus::Registry registry_;
  prometheus::Histogram* hist_ = nullptr;
};

const std::vector<std::string>& Keys() {
  static const std::vector<std::string> keys = [] {
    std::vector<std::string> k;
    for (std::size_t i = 0; i < kKeys; ++i) k.push_back("shop/Pod/checkout-" + std::to_string(i));
    return k;
  }();
  return keys;
}

EventRef MakeRecord(int thread) {
  eventbuffer::EventRecord::Builder b;
  const std::string uid = "uid-" + std::to_string(thread);
  b.Set(eventbuffer::EventRecord::Field::kUid, uid)
      .Set(eventbuffer::EventRecord::Field::kResourceVersion, "1")
      .Set(eventbuffer::EventRecord::Field::kReason, "BackOff")
      .Set(eventbuffer::EventRecord::Field::kMessage, "Back-off restarting failed container");
  return b.Build();
}

// The map and observers of the current run: created by thread 0 before the timed loop and
// destroyed after it (the loop starts and ends with a barrier across the threads).
template <class Map>
struct Shared {
  std::atomic<Map*> map{nullptr};
  std::unique_ptr<eventbuffer::metrics::BufferMetrics> metrics;
  std::unique_ptr<prometheus::Registry> registry;
  NullObserver null_observer;
  PromHistogramObserver prom_observer;
};

template <class Map, Mode mode>
void BM_Append(benchmark::State& state) {
  static Shared<Map> shared;
  constexpr Backend backend = std::is_same_v<Map, eventbuffer::MutexSliceMap<EventRef>>
                                  ? Backend::kLegacy
                                  : Backend::kAtomic;
  if (state.thread_index() == 0) {
    shared.registry = std::make_unique<prometheus::Registry>();
    shared.metrics = std::make_unique<eventbuffer::metrics::BufferMetrics>(*shared.registry);
    shared.map.store(new Map(), std::memory_order_release);
  }
  Map* map;
  while ((map = shared.map.load(std::memory_order_acquire)) == nullptr) {
  }
  eventbuffer::BufferObserver* observer = nullptr;
  if constexpr (mode == Mode::kSampled || mode == Mode::kEvery) observer = shared.metrics.get();
  if constexpr (mode == Mode::kSampledNull) observer = &shared.null_observer;
  if constexpr (mode == Mode::kEveryPromHistogram) observer = &shared.prom_observer;

  const EventRef record = MakeRecord(state.thread_index());
  const auto& keys = Keys();
  std::size_t k = static_cast<std::size_t>(state.thread_index()) * 1013;
  std::uint32_t counter = 0;
  for (auto _ : state) {
    const std::string& key = keys[k++ & (kKeys - 1)];
    if constexpr (mode == Mode::kBare) {
      map->Append(key, record, nullptr);
    } else {
      eventbuffer::AppendStats stats;
      constexpr std::uint32_t mask =
          (mode == Mode::kEvery || mode == Mode::kEveryPromHistogram) ? 0 : kSampleMask;
      if ((++counter & mask) == 0) {
        const auto t0 = Clock::now();
        map->Append(key, record, &stats);
        const auto ns =
            std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count();
        observer->OnAppend(backend, ns, stats.stall_ns);
      } else {
        map->Append(key, record, &stats);
        if (stats.stall_ns > 0) observer->OnStall(backend, stats.stall_ns);
      }
    }
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    Map* done = shared.map.exchange(nullptr);
    delete done;
    shared.metrics.reset();
    shared.registry.reset();
  }
}

using Legacy = eventbuffer::MutexSliceMap<EventRef>;
using Atomic = eventbuffer::SegmentedSliceMap<EventRef>;

#define KEB_APPEND_BENCH(map, mode)        \
  BENCHMARK_TEMPLATE(BM_Append, map, mode) \
      ->Name("Append/" #map "/" #mode)     \
      ->Threads(1)                         \
      ->Threads(2)                         \
      ->Iterations(kItersPerThread)        \
      ->UseRealTime()

KEB_APPEND_BENCH(Atomic, Mode::kBare);
KEB_APPEND_BENCH(Atomic, Mode::kSampled);
KEB_APPEND_BENCH(Atomic, Mode::kSampledNull);
KEB_APPEND_BENCH(Atomic, Mode::kEvery);
KEB_APPEND_BENCH(Atomic, Mode::kEveryPromHistogram);
KEB_APPEND_BENCH(Legacy, Mode::kBare);
KEB_APPEND_BENCH(Legacy, Mode::kSampled);
KEB_APPEND_BENCH(Legacy, Mode::kEvery);

// The observer alone, with no map: the cost of one OnAppend into BufferMetrics.
void BM_OnAppendOnly(benchmark::State& state) {
  static std::unique_ptr<prometheus::Registry> registry;
  static std::unique_ptr<eventbuffer::metrics::BufferMetrics> metrics;
  static std::atomic<eventbuffer::metrics::BufferMetrics*> ready{nullptr};
  if (state.thread_index() == 0) {
    registry = std::make_unique<prometheus::Registry>();
    metrics = std::make_unique<eventbuffer::metrics::BufferMetrics>(*registry);
    ready.store(metrics.get(), std::memory_order_release);
  }
  eventbuffer::metrics::BufferMetrics* m;
  while ((m = ready.load(std::memory_order_acquire)) == nullptr) {
  }
  std::int64_t ns = 40;
  for (auto _ : state) {
    m->OnAppend(Backend::kAtomic, ns, 0);
    ns = ns * 7 % 9973 + 30;
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    ready.store(nullptr);
    metrics.reset();
    registry.reset();
  }
}
BENCHMARK(BM_OnAppendOnly)->Threads(1)->Threads(2)->UseRealTime();

// One observation into each histogram implementation, nothing else: the lock-free sharded
// AtomicHistogram against prometheus-cpp 1.0's Histogram (a mutex per Observe).
void BM_ObserveAtomicHistogram(benchmark::State& state) {
  static eventbuffer::metrics::AtomicHistogram hist(eventbuffer::metrics::AppendLatencyBucketsNs());
  std::int64_t ns = 40;
  for (auto _ : state) {
    hist.Observe(ns);
    ns = ns * 7 % 9973 + 30;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ObserveAtomicHistogram)->Threads(1)->Threads(2)->UseRealTime();

void BM_ObservePromHistogram(benchmark::State& state) {
  static prometheus::Registry registry;
  static prometheus::Histogram& hist = []() -> prometheus::Histogram& {
    std::vector<double> bounds;
    for (auto b : eventbuffer::metrics::AppendLatencyBucketsNs()) bounds.push_back(b / 1e9);
    return prometheus::BuildHistogram().Name("y").Register(registry).Add({}, bounds);
  }();
  std::int64_t ns = 40;
  for (auto _ : state) {
    hist.Observe(ns / 1e9);
    ns = ns * 7 % 9973 + 30;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ObservePromHistogram)->Threads(1)->Threads(2)->UseRealTime();

// The whole EventBuffer::Append in shadow mode (dual write, dedup, stripe lock; verification
// off so that only the instrumentation differs): no observer (no clocks, no stats), an
// observer that records nothing (sampling and clocks only), and BufferMetrics.
enum class Observer { kNone, kNull, kMetrics };

template <Observer kind>
void BM_BufferAppend(benchmark::State& state) {
  constexpr std::int64_t kRecords = 1 << 17;  // per thread, each a distinct occurrence
  static std::atomic<eventbuffer::EventBuffer*> shared{nullptr};
  static std::unique_ptr<prometheus::Registry> registry;
  static std::unique_ptr<eventbuffer::metrics::BufferMetrics> metrics;
  static NullObserver null_observer;
  if (state.thread_index() == 0) {
    eventbuffer::BufferConfig config;
    config.mode = eventbuffer::GrayMode::kShadow;
    config.verify.sample_rate = 0;
    config.retention.max_events = 10'000'000;
    config.retention.max_events_per_object = 1'000'000;
    eventbuffer::BufferObserver* observer = nullptr;
    if constexpr (kind == Observer::kNull) observer = &null_observer;
    if constexpr (kind == Observer::kMetrics) {
      registry = std::make_unique<prometheus::Registry>();
      metrics = std::make_unique<eventbuffer::metrics::BufferMetrics>(*registry);
      observer = metrics.get();
    }
    shared.store(new eventbuffer::EventBuffer(config, observer), std::memory_order_release);
  }
  // Records are built before the timed loop (each thread its own).
  std::vector<EventRef> records;
  records.reserve(kRecords);
  const std::int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                  std::chrono::system_clock::now().time_since_epoch())
                                  .count();
  for (std::int64_t i = 0; i < kRecords; ++i) {
    eventbuffer::EventRecord::Builder b;
    const std::string uid = "uid-" + std::to_string(state.thread_index()) + "-" + std::to_string(i);
    const std::string name = "checkout-" + std::to_string((i * 7 + state.thread_index()) % kKeys);
    b.Set(eventbuffer::EventRecord::Field::kUid, uid)
        .Set(eventbuffer::EventRecord::Field::kResourceVersion, "1")
        .Set(eventbuffer::EventRecord::Field::kInvolvedNamespace, "shop")
        .Set(eventbuffer::EventRecord::Field::kInvolvedKind, "Pod")
        .Set(eventbuffer::EventRecord::Field::kInvolvedName, name)
        .Set(eventbuffer::EventRecord::Field::kReason, "BackOff")
        .Set(eventbuffer::EventRecord::Field::kMessage, "Back-off restarting failed container");
    b.numbers().last_seen_unix_ms = now_ms;
    records.push_back(b.Build());
  }
  eventbuffer::EventBuffer* buffer;
  while ((buffer = shared.load(std::memory_order_acquire)) == nullptr) {
  }
  std::size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(buffer->Append(records[i++]));
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    delete shared.exchange(nullptr);
    metrics.reset();
    registry.reset();
  }
}
BENCHMARK_TEMPLATE(BM_BufferAppend, Observer::kNone)
    ->Name("BufferAppend/NoObserver")
    ->Threads(1)
    ->Threads(2)
    ->Iterations(1 << 17)
    ->UseRealTime();
BENCHMARK_TEMPLATE(BM_BufferAppend, Observer::kNull)
    ->Name("BufferAppend/NullObserver")
    ->Threads(1)
    ->Threads(2)
    ->Iterations(1 << 17)
    ->UseRealTime();
BENCHMARK_TEMPLATE(BM_BufferAppend, Observer::kMetrics)
    ->Name("BufferAppend/BufferMetrics")
    ->Threads(1)
    ->Threads(2)
    ->Iterations(1 << 17)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
