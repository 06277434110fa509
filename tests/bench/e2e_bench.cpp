// End-to-end benchmark: one fast watch stream from the API-server emulator, through the
// real ApiClient (TLS, chunked reading), Watcher (decode, resourceVersion bookkeeping) and
// EventBuffer (with its production metrics observer), into the buffer.
//
// Reports per gray mode:
//   events_per_second   occurrences appended / wall time from the watch request to the last
//                       append (the whole stream)
//   p50_us, p95_us, p99_us  event-to-buffer latency: from the moment the watch line was
//                       complete in the client (the decoder stamps it) to the end of
//                       EventBuffer::Append
//   rss_bytes_per_event growth of the process's resident set while ingesting, divided by
//                       the occurrences held (records, both maps, dedup index, allocator)
//   rss_trimmed_bytes_per_event, rss_settled_bytes_per_event  the same after malloc_trim,
//                       and after 6.5 s idle (the atomic map's chunk reserve given back)
//   heap_bytes_per_event  growth of malloc's bytes in use (mallinfo2), per occurrence
//   map_bytes_per_event, index_bytes_per_event, record_bytes_per_event  the backends'
//                       structures, the dedup and list indexes, the records (BufferStats)
//   cpu_seconds         CPU time of the whole process during the run (all threads)
//   events_per_cpu_second  occurrences / cpu_seconds
// and "decode_only": the same stream through client and decoder, dropped before the buffer.
//
// Needs a running emulator: tests/bench/e2e_bench.sh starts one with --scenario fast-stream
// and runs this program pinned to one core, once per mode (fresh process, honest RSS).
// Environment: KEB_E2E_KUBECONFIG (the emulator's kubeconfig), KEB_E2E_FIRST_RV (the
// stream's first resourceVersion - 1), KEB_E2E_EVENTS (events in the stream),
// KEB_E2E_READ_LINE=1 (read lines with cpprestsdk's read_line instead of chunks).
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#ifdef KEB_VERSION  // built with the controller

#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <thread>
#include <vector>

#include "controller/kube/api_client.h"
#include "controller/kube/kube_config.h"
#include "controller/kube/token_source.h"
#include "controller/kube/watch_metrics.h"
#include "controller/kube/watcher.h"
#include "controller/malloc_arenas.h"
#include "eventbuffer/event_buffer.h"
#include "metrics/metrics.h"
#include "tests/bench/from_stream_start.h"

namespace {

using namespace eventbuffer;
using namespace eventbuffer::controller;
using bench::FromStreamStart;

std::int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

long RssBytes() {
  std::ifstream in("/proc/self/statm");
  long pages_total = 0, pages_resident = 0;
  in >> pages_total >> pages_resident;
  return pages_resident * sysconf(_SC_PAGESIZE);
}

double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? "" : v;
}

// Appends to the buffer and records each occurrence's event-to-buffer latency.
class TimingSink final : public EventSink {
 public:
  // The latency log is allocated and its pages touched here, so that a sink made before
  // the memory baseline keeps the bench's own log out of the bytes per held occurrence.
  explicit TimingSink(std::size_t expected) {
    latencies_ns_.resize(expected + 1024);
    latencies_ns_.clear();
  }
  // buffer may be null: the occurrence is dropped (measures the client and decoder alone).
  // Before the first Append.
  void set_buffer(EventBuffer* buffer) { buffer_ = buffer; }
  void Append(EventRef record) override {
    const std::int64_t received = record->receive_unix_ns();
    if (buffer_ != nullptr) buffer_->Append(record);
    if (latencies_ns_.size() < latencies_ns_.capacity()) {
      latencies_ns_.push_back(
          static_cast<std::uint32_t>(std::clamp<std::int64_t>(NowNs() - received, 0, UINT32_MAX)));
    }
    last_append_ns_.store(NowNs(), std::memory_order_relaxed);
    count_.fetch_add(1, std::memory_order_release);
  }
  std::size_t count() const { return count_.load(std::memory_order_acquire); }
  std::int64_t last_append_ns() const { return last_append_ns_.load(std::memory_order_relaxed); }
  std::vector<std::uint32_t>& latencies() { return latencies_ns_; }

 private:
  EventBuffer* buffer_ = nullptr;
  std::vector<std::uint32_t> latencies_ns_;
  std::atomic<std::size_t> count_{0};
  std::atomic<std::int64_t> last_append_ns_{0};
};

double Percentile(std::vector<std::uint32_t>& v, double p) {
  if (v.empty()) return 0;
  const std::size_t i = std::min(v.size() - 1, static_cast<std::size_t>(p * (v.size() - 1)));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(i), v.end());
  return v[i] / 1000.0;
}

// As the controller's main() does (controller/malloc_arenas.h), before any thread starts:
// the figures measured here are the controller's.
[[maybe_unused]] const bool kOneMallocArena =
    (eventbuffer::controller::LimitMallocArenas(), true);

void BM_EndToEnd(benchmark::State& state, GrayMode mode, bool store = true) {
  const std::string kubeconfig = Env("KEB_E2E_KUBECONFIG");
  const std::string first_rv = Env("KEB_E2E_FIRST_RV");
  const std::size_t expected = std::strtoull(Env("KEB_E2E_EVENTS").c_str(), nullptr, 10);
  if (kubeconfig.empty() || first_rv.empty() || expected == 0) {
    state.SkipWithError("run through tests/bench/e2e_bench.sh (needs the emulator)");
    return;
  }
  InitializeHttpThreads(2);
  KubeConfig kube;
  std::string error;
  if (!LoadKubeconfig(kubeconfig, &kube, &error)) {
    state.SkipWithError(error.c_str());
    return;
  }
  for (auto _ : state) {
    auto token = kube.token_file.empty() ? TokenSource::Static(kube.token)
                                         : TokenSource::FromFile(kube.token_file);
    metrics::Metrics metrics({.version = KEB_VERSION, .process_metrics = false});
    BufferConfig config;
    config.mode = mode;
    config.rollout_percent = mode == GrayMode::kCanary ? 50 : 0;
    config.retention.max_events = std::max<std::size_t>(expected * 2, 1000);
    config.retention.max_events_per_object = 100000;
    config.retention.max_age = std::chrono::hours(24 * 365 * 30);
    ApiClient::Options client_options;
    if (Env("KEB_E2E_READ_LINE") == "1") {
      client_options.read_mode = ApiClient::Options::ReadMode::kReadLine;
    }
    ApiClient client(kube, token.get(), client_options);
    FromStreamStart lw(&client, first_rv);
    TimingSink sink(expected);
    malloc_trim(0);
    const long rss_before = RssBytes();
    const std::size_t heap_before = mallinfo2().uordblks;
    auto buffer = std::make_unique<EventBuffer>(config, &metrics.buffer());
    sink.set_buffer(store ? buffer.get() : nullptr);
    WatchMetrics watch_metrics(metrics.registry());
    // As the controller's main() sizes it for the retention.
    Watcher::Options watcher_options;
    watcher_options.revision_cache =
        RevisionCache::SizeFor(config.retention.max_events, config.retention.max_bytes);
    Watcher watcher(&lw, &sink, &watch_metrics, watcher_options);
    const double cpu_before = CpuSeconds();
    const std::int64_t start_ns = NowNs();
    std::thread run([&watcher] { watcher.Run(); });
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (sink.count() < expected && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    const std::int64_t end_ns = sink.last_append_ns();
    const double cpu = CpuSeconds() - cpu_before;
    watcher.Stop();
    run.join();
    const std::size_t held =
        store ? buffer->Stats().backend[mode == GrayMode::kLegacy ? 0 : 1].events : 0;
    const long rss_after = RssBytes();
    // The same after giving the allocator's free pages back: transient buffers (watch
    // chunks read ahead of the decoder, decoded lines) freed during the run no longer count,
    // so this is what holding the occurrences costs.
    malloc_trim(0);
    const long rss_trimmed = RssBytes();
    // And once the process has been idle for a while: the atomic map's chunk reserve (up to
    // 32 MiB mapped ahead while growing fast) goes back after 5 s without takes
    // (segmented/chunks.h). This is what a process holding the occurrences keeps.
    std::this_thread::sleep_for(std::chrono::milliseconds(6500));
    malloc_trim(0);
    const long rss_settled = RssBytes();
    const std::size_t heap_after = mallinfo2().uordblks;
    const BufferStats stats = buffer->Stats();
    if (sink.count() < expected) {
      state.SkipWithError("stream did not complete within 120 s");
      return;
    }
    const double seconds = (end_ns - start_ns) / 1e9;
    state.SetIterationTime(seconds);
    state.counters["events"] = static_cast<double>(sink.count());
    state.counters["held"] = static_cast<double>(held);
    state.counters["events_per_second"] = sink.count() / seconds;
    state.counters["p50_us"] = Percentile(sink.latencies(), 0.50);
    state.counters["p95_us"] = Percentile(sink.latencies(), 0.95);
    state.counters["p99_us"] = Percentile(sink.latencies(), 0.99);
    state.counters["rss_bytes_per_event"] =
        held > 0 ? static_cast<double>(rss_after - rss_before) / held : 0;
    state.counters["rss_trimmed_bytes_per_event"] =
        held > 0 ? static_cast<double>(rss_trimmed - rss_before) / held : 0;
    state.counters["rss_settled_bytes_per_event"] =
        held > 0 ? static_cast<double>(rss_settled - rss_before) / held : 0;
    // The allocator's view of the same growth (bytes in use), and what the buffer counts as
    // record memory (record_bytes): the gap to RSS is the indexes, maps and allocator slack.
    state.counters["heap_bytes_per_event"] =
        held > 0 ? (static_cast<double>(heap_after) - static_cast<double>(heap_before)) / held : 0;
    state.counters["record_bytes_per_event"] =
        held > 0 ? static_cast<double>(stats.record_bytes) / held : 0;
    // The backends' own structures (both maps in shadow mode; the atomic map's are mmap'd,
    // outside the heap figure).
    state.counters["index_bytes_per_event"] =
        held > 0 ? static_cast<double>(stats.dedup_bytes + stats.query_index_bytes) / held : 0;
    state.counters["map_bytes_per_event"] =
        held > 0 ? static_cast<double>(stats.backend[0].bytes + stats.backend[1].bytes) / held : 0;
    state.counters["cpu_seconds"] = cpu;
    // The rate one fully available core would sustain: occurrences per CPU-second of the
    // whole process. Equals events_per_second when the process is CPU-bound on its core;
    // higher when it waited for the emulator or shared the core with other load.
    state.counters["events_per_cpu_second"] = cpu > 0 ? sink.count() / cpu : 0;
  }
}

BENCHMARK_CAPTURE(BM_EndToEnd, atomic, GrayMode::kAtomic)
    ->Iterations(1)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_EndToEnd, shadow, GrayMode::kShadow)
    ->Iterations(1)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
// The client and decoder alone: occurrences are decoded and dropped (no buffer).
BENCHMARK_CAPTURE(BM_EndToEnd, decode_only, GrayMode::kAtomic, false)
    ->Iterations(1)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_EndToEnd, legacy, GrayMode::kLegacy)
    ->Iterations(1)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();

#else  // built without the controller

int main() {
  std::puts("e2e_bench: built without the controller (-DKEB_WITH_CONTROLLER=OFF): skipped");
  return 0;
}

#endif
