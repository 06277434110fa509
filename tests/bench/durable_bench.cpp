// Durable store benchmarks (--data-dir, controller/durable/event_store.h).
//
//   BM_Restore            restore of --restore_events=N occurrences (default 1,000,000) from a
//                         database written beforehand: EventStore::Restore into a fresh
//                         EventBuffer through EventBuffer::Append, as main.cpp does at start.
//                         Counters: open_s (open with PRAGMA quick_check), restore_s (read,
//                         decode, Append), bytes_per_event (database file plus WAL over N).
//                         Target: restore_s <= 5 for 1M.
//   BM_Ingest/memory      the watch thread's path (BufferSink::Append) without a store;
//   BM_Ingest/durable     with a store (its writer thread commits every 1 s meanwhile).
//                         Target: durable items/s >= 0.85 x memory items/s.
//
//   durable_bench --benchmark_filter=Ingest --benchmark_min_time=3
//   durable_bench --benchmark_filter=Restore --restore_events=1000000
// The database goes to $TMPDIR (default /tmp); put it on the disk you want to measure.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>

#include "controller/buffer_sink.h"
#include "controller/durable/event_store.h"
#include "eventbuffer/event_buffer.h"

namespace eventbuffer::controller {
namespace {

namespace fs = std::filesystem;

std::size_t g_restore_events = 1'000'000;

const std::int64_t kNowMs = std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count();

fs::path TempDir(const std::string& name) {
  const char* tmp = std::getenv("TMPDIR");
  fs::path p = fs::path(tmp != nullptr ? tmp : "/tmp") /
               ("durable_bench_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(p);
  return p;
}

// Occurrence i: a realistic core/v1 Event about one of 100,000 Pods (10 per Pod at 1M).
EventRef MakeEvent(std::uint64_t i) {
  const std::string object = "api-7c5ddbdf54-" + std::to_string(i % 100'000);
  const std::string uid = "6f1c2a3e-8d4b-4c2a-9e1f-" + std::to_string(100'000'000'000 + i);
  const std::string rv = std::to_string(5'000'000 + i);
  const std::string name = object + ".17c8a3f2b4d1e0a9";
  const std::string pod_uid =
      "a1b2c3d4-0000-4000-8000-" + std::to_string(100'000'000'000 + i % 100'000);
  EventRecord::Builder b;
  using F = EventRecord::Field;
  b.Set(F::kUid, uid)
      .Set(F::kResourceVersion, rv)
      .Set(F::kNamespace, "prod")
      .Set(F::kName, name)
      .Set(F::kInvolvedKind, "Pod")
      .Set(F::kInvolvedNamespace, "prod")
      .Set(F::kInvolvedName, object)
      .Set(F::kInvolvedUid, pod_uid)
      .Set(F::kInvolvedApiVersion, "v1")
      .Set(F::kInvolvedFieldPath, "spec.containers{api}")
      .Set(F::kReason, "BackOff")
      .Set(F::kMessage,
           "Back-off restarting failed container api in pod " + object + "_prod(" + pod_uid + ")")
      .Set(F::kType, "Warning")
      .Set(F::kFirstTimestamp, "2024-05-01T10:00:00Z")
      .Set(F::kLastTimestamp, "2024-05-01T10:05:00Z")
      .Set(F::kSourceComponent, "kubelet")
      .Set(F::kSourceHost, "worker-17")
      .Set(F::kCreationTimestamp, "2024-05-01T10:00:00Z");
  b.numbers().count = 7;
  b.numbers().last_seen_unix_ms = kNowMs - 3'600'000 + static_cast<std::int64_t>(i / 1000);
  b.numbers().receive_unix_ns = b.numbers().last_seen_unix_ms * 1'000'000;
  return std::make_shared<const EventRecord>(b.Build());
}

BufferConfig Config() {
  BufferConfig c;
  c.mode = GrayMode::kShadow;
  c.verify.sample_rate = 0;
  c.retention.max_age = std::chrono::hours(24);
  c.retention.max_events = 2'000'000;
  return c;
}

void BM_Restore(benchmark::State& state) {
  const fs::path dir = TempDir("restore");
  EventStoreOptions o;
  o.dir = dir.string();
  o.max_bytes = 0;
  o.queue_capacity = 1 << 22;
  std::string error;
  {
    auto store = EventStore::Open(o, &error);
    if (!store) {
      state.SkipWithError(error.c_str());
      return;
    }
    for (std::size_t i = 0; i < g_restore_events; ++i) {
      store->Append(MakeEvent(i));
      if (i % 100'000 == 99'999) store->Flush();
    }
    store->Flush();
  }
  std::uint64_t disk = 0;
  for (const auto& e : fs::directory_iterator(dir)) disk += fs::file_size(e.path());
  double seconds = 0, open_seconds = 0;
  std::size_t restored = 0;
  for (auto _ : state) {
    const auto open_start = std::chrono::steady_clock::now();
    auto store = EventStore::Open(o, &error);  // includes PRAGMA quick_check
    open_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - open_start).count();
    EventBuffer buffer(Config());
    const auto start = std::chrono::steady_clock::now();
    restored = store->Restore([&](EventRef r) { buffer.Append(r); });
    seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    state.PauseTiming();
    if (buffer.Stats().appended != g_restore_events) state.SkipWithError("restore lost events");
    state.ResumeTiming();
  }
  state.counters["restore_s"] = seconds;
  state.counters["open_s"] = open_seconds;
  state.counters["events"] = static_cast<double>(restored);
  state.counters["bytes_per_event"] =
      static_cast<double>(disk) / static_cast<double>(g_restore_events);
  fs::remove_all(dir);
}
BENCHMARK(BM_Restore)->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime();

// range(0): 0 = memory only, 1 = with the durable store.
void BM_Ingest(benchmark::State& state) {
  const bool durable = state.range(0) == 1;
  const fs::path dir = TempDir("ingest");
  // Prebuilt records: the benchmark measures the sink, not the decoder.
  constexpr std::size_t kRecords = 1 << 20;
  static const std::vector<EventRef>* records = [] {
    auto* v = new std::vector<EventRef>();
    v->reserve(kRecords);
    for (std::size_t i = 0; i < kRecords; ++i) v->push_back(MakeEvent(i));
    return v;
  }();
  std::unique_ptr<EventStore> store;
  if (durable) {
    EventStoreOptions o;
    o.dir = dir.string();
    std::string error;
    store = EventStore::Open(o, &error);
    if (!store) {
      state.SkipWithError(error.c_str());
      return;
    }
    store->Start();
  }
  auto buffer = std::make_unique<EventBuffer>(Config());
  auto sink = std::make_unique<BufferSink>(buffer.get(), store.get());
  std::size_t i = 0;
  for (auto _ : state) {
    if (i == kRecords) {  // every record stored: start over with an empty buffer
      state.PauseTiming();
      sink.reset();
      buffer = std::make_unique<EventBuffer>(Config());
      sink = std::make_unique<BufferSink>(buffer.get(), store.get());
      i = 0;
      state.ResumeTiming();
    }
    sink->Append((*records)[i++]);
  }
  state.SetItemsProcessed(state.iterations());
  if (store) {
    store->Stop();
    const EventStoreStats s = store->Stats();
    state.counters["written"] = static_cast<double>(s.written);
    state.counters["dropped"] = static_cast<double>(s.dropped_queue_full);
  }
  sink.reset();
  buffer.reset();
  store.reset();
  fs::remove_all(dir);
}
BENCHMARK(BM_Ingest)->Arg(0)->Arg(1)->ArgName("durable")->UseRealTime();

}  // namespace
}  // namespace eventbuffer::controller

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--restore_events=", 17) == 0) {
      eventbuffer::controller::g_restore_events = std::strtoull(argv[i] + 17, nullptr, 10);
    }
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
