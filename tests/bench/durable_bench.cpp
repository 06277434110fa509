// Durable store benchmarks (--data-dir, controller/durable/event_store.h).
//
//   BM_Restore            restore of --restore_events=N occurrences (default 1,000,000) from a
//                         database written beforehand: EventStore::Restore into a fresh
//                         EventBuffer through EventBuffer::Append, as main.cpp does at start.
//                         Counters: open_s (open with PRAGMA quick_check), restore_s (read,
//                         decode, Append), bytes_per_event (database file plus WAL over N).
//                         Target: restore_s <= 5 for 1M.
//   BM_Ingest/durable:0|1 the sink alone (BufferSink::Append of prebuilt records) without
//                         and with a store (its writer thread commits every 1 s meanwhile):
//                         the watch thread's share of the cost.
//   BM_WatchIngest/durable:0|1
//                         ingest end to end, the controller's path without the network: the
//                         real Watcher decodes --ingest_events=N watch lines (~1.2 KB core/v1
//                         Events, default 300,000) from an in-memory ListerWatcher into
//                         BufferSink and EventBuffer, without (0) and with (1) the store. The
//                         timed region runs from the start of the watch to the moment the last
//                         occurrence is in the buffer and, with the store, committed (a Flush
//                         after the last line). Counters: events_per_second, written and
//                         dropped (an occurrence dropped for a full queue fails the run).
//                         Target: durable events_per_second >= 0.85 x memory.
//
//   durable_bench --benchmark_filter=WatchIngest --benchmark_repetitions=5
//     --benchmark_enable_random_interleaving=true
//   durable_bench --benchmark_filter=BM_Ingest --benchmark_min_time=3
//   durable_bench --benchmark_filter=Restore --restore_events=1000000
// The database goes to $TMPDIR (default /tmp); put it on the disk you want to measure.
#include <benchmark/benchmark.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "controller/buffer_sink.h"
#include "controller/durable/event_store.h"
#include "controller/kube/lister_watcher.h"
#include "controller/kube/watcher.h"
#include "eventbuffer/event_buffer.h"
#include "tests/bench/bench_support.h"

namespace eventbuffer::controller {
namespace {

namespace fs = std::filesystem;

std::size_t g_restore_events = 1'000'000;
std::size_t g_ingest_events = 300'000;

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
  return b.Build();
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

// The writer alone: range(0) prebuilt occurrences queued, then committed by one Flush in the
// calling thread (one transaction). items/s = rows the writer commits per second of one core.
void BM_Commit(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  std::vector<EventRef> records;
  records.reserve(n);
  for (std::size_t i = 0; i < n; ++i) records.push_back(MakeEvent(i));
  const fs::path dir = TempDir("commit");
  for (auto _ : state) {
    state.PauseTiming();
    fs::remove_all(dir);
    EventStoreOptions o;
    o.dir = dir.string();
    o.queue_capacity = n;
    std::string error;
    auto store = EventStore::Open(o, &error);
    if (!store) {
      state.SkipWithError(error.c_str());
      return;
    }
    for (const EventRef& r : records) store->Append(r);
    state.ResumeTiming();
    if (!store->Flush()) state.SkipWithError("flush failed");
    state.PauseTiming();
    store.reset();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n));
  fs::remove_all(dir);
}
BENCHMARK(BM_Commit)->Arg(100'000)->Unit(benchmark::kMillisecond)->UseRealTime();

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

double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// A 64-bit mix (splitmix64's finalizer): uids that look random, as real ones do.
std::uint64_t Mix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9;
  x = (x ^ (x >> 27)) * 0x94d049bb133111eb;
  return x ^ (x >> 31);
}

std::string Uuid(std::uint64_t seed) {
  const std::uint64_t a = Mix(seed), b = Mix(seed ^ 0x5bd1e995);
  char buf[40];
  std::snprintf(buf, sizeof buf, "%08x-%04x-4%03x-8%03x-%012llx", static_cast<unsigned>(a >> 32),
                static_cast<unsigned>((a >> 16) & 0xffff), static_cast<unsigned>(a & 0xfff),
                static_cast<unsigned>((b >> 48) & 0xfff),
                static_cast<unsigned long long>(b & 0xffffffffffffULL));
  return buf;
}

// Watch line i: a ~1.2 KB MODIFIED core/v1 Event (a kubelet BackOff with managedFields)
// about one of 20,000 Pods, with its own random uid and an increasing resourceVersion.
std::string WatchLine(std::size_t i, const std::string& last_timestamp) {
  const std::string pod = "checkout-7d4b9c8f6d-" + std::to_string(100000 + i % 20'000);
  const std::string pod_uid = Uuid(1'000'000'000 + i % 20'000);
  return R"({"type":"MODIFIED","object":{"kind":"Event","apiVersion":"v1","metadata":{"name":")" +
         pod + R"(.17cb1e2f3a4b5c6d","namespace":"shop","uid":")" + Uuid(i) +
         R"(","resourceVersion":")" + std::to_string(8'000'000 + i) +
         R"(","creationTimestamp":"2024-05-01T10:00:00Z","managedFields":[{"manager":"kubelet","operation":"Update","apiVersion":"v1","time":"2024-05-01T10:13:22Z","fieldsType":"FieldsV1","fieldsV1":{"f:count":{},"f:firstTimestamp":{},"f:involvedObject":{},"f:lastTimestamp":{},"f:message":{},"f:reason":{},"f:reportingComponent":{},"f:reportingInstance":{},"f:source":{"f:component":{},"f:host":{}},"f:type":{}}}]},"involvedObject":{"kind":"Pod","namespace":"shop","name":")" +
         pod + R"(","uid":")" + pod_uid +
         R"(","apiVersion":"v1","resourceVersion":"812345","fieldPath":"spec.containers{app}"},"reason":"BackOff","message":"Back-off restarting failed container app in pod )" +
         pod + "_shop_" + pod_uid +
         R"(","source":{"component":"kubelet","host":"worker-2"},"firstTimestamp":"2024-05-01T10:00:00Z","lastTimestamp":")" +
         last_timestamp + R"(","count":14,"type":"Warning","eventTime":null,"reportingComponent":"kubelet","reportingInstance":"worker-2"}})";
}

// The API server in memory: an empty list at resourceVersion 7999999, then one watch that
// delivers every line and ends; the next watch waits until Cancel.
class LinesListerWatcher final : public ListerWatcher {
 public:
  explicit LinesListerWatcher(const std::vector<std::string>* lines) : lines_(lines) {}
  ApiResponse List(const ListRequest&) override {
    ApiResponse r;
    r.http_status = 200;
    r.body =
        R"({"kind":"EventList","apiVersion":"v1","metadata":{"resourceVersion":"7999999"},"items":[]})";
    return r;
  }
  ApiResponse Watch(const WatchRequest&, const LineHandler& on_line) override {
    ApiResponse r;
    if (!streamed_) {
      streamed_ = true;
      for (const std::string& line : *lines_) {
        if (!on_line(line)) break;
      }
      r.http_status = 200;
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
      cv_.notify_all();
      return r;
    }
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return cancelled_; });
    r.cancelled = true;
    return r;
  }
  void Cancel() override {
    std::lock_guard<std::mutex> lock(mu_);
    cancelled_ = true;
    cv_.notify_all();
  }
  // Waits until every line was handed to the watcher (and so to the sink).
  void WaitStreamed() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return done_; });
  }

 private:
  const std::vector<std::string>* lines_;
  bool streamed_ = false;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false, cancelled_ = false;
};

// range(0): 0 = memory only, 1 = with the durable store.
void BM_WatchIngest(benchmark::State& state) {
  const bool durable = state.range(0) == 1;
  static const std::vector<std::string>* lines = [] {
    const std::string last = bench::Rfc3339(kNowMs - 60'000);
    auto* v = new std::vector<std::string>();
    v->reserve(g_ingest_events);
    for (std::size_t i = 0; i < g_ingest_events; ++i) v->push_back(WatchLine(i, last));
    return v;
  }();
  const fs::path dir = TempDir("watch_ingest");
  BufferConfig config;  // the default gray mode
  config.verify.sample_rate = 0;
  config.retention.max_events = g_ingest_events * 2;
  config.retention.max_events_per_object = 100'000;
  config.retention.max_age = std::chrono::hours(24);
  for (auto _ : state) {
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
    auto buffer = std::make_unique<EventBuffer>(config);
    BufferSink sink(buffer.get(), store.get());
    LinesListerWatcher lw(lines);
    Watcher::Options wo;
    wo.seed = 1;
    Watcher watcher(&lw, &sink, nullptr, wo);
    const double cpu_start = CpuSeconds();
    const auto start = std::chrono::steady_clock::now();
    std::thread run([&watcher] { watcher.Run(); });
    lw.WaitStreamed();
    const auto streamed = std::chrono::steady_clock::now();
    if (store && !store->Flush()) state.SkipWithError("flush failed");
    const auto end = std::chrono::steady_clock::now();
    const double seconds = std::chrono::duration<double>(end - start).count();
    const double cpu = CpuSeconds() - cpu_start;
    state.counters["final_flush_ms"] = std::chrono::duration<double, std::milli>(end - streamed).count();
    watcher.Stop();
    run.join();
    state.SetIterationTime(seconds);
    const std::size_t appended = buffer->Stats().appended;
    state.counters["events_per_second"] = static_cast<double>(appended) / seconds;
    // CPU of the whole process (watch and writer threads): what the store costs in total,
    // less disturbed than wall time by other load on the machine.
    state.counters["events_per_cpu_second"] = static_cast<double>(appended) / cpu;
    if (appended != g_ingest_events) state.SkipWithError("not every line reached the buffer");
    if (store) {
      store->Stop();
      const EventStoreStats s = store->Stats();
      state.counters["written"] = static_cast<double>(s.written);
      state.counters["dropped"] = static_cast<double>(s.dropped_queue_full);
      state.counters["batches"] = static_cast<double>(s.batches);
      if (s.dropped_queue_full > 0 || s.written != g_ingest_events) {
        state.SkipWithError("occurrences did not reach the disk");
      }
      std::uint64_t disk = 0;
      for (const auto& e : fs::directory_iterator(dir)) disk += fs::file_size(e.path());
      state.counters["bytes_per_event"] =
          static_cast<double>(disk) / static_cast<double>(g_ingest_events);
    }
    store.reset();
    buffer.reset();
    fs::remove_all(dir);
  }
}
BENCHMARK(BM_WatchIngest)
    ->Arg(0)
    ->Arg(1)
    ->ArgName("durable")
    ->Iterations(1)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace eventbuffer::controller

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--restore_events=", 17) == 0) {
      eventbuffer::controller::g_restore_events = std::strtoull(argv[i] + 17, nullptr, 10);
    }
    if (std::strncmp(argv[i], "--ingest_events=", 16) == 0) {
      eventbuffer::controller::g_ingest_events = std::strtoull(argv[i] + 16, nullptr, 10);
    }
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
