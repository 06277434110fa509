// QueryIndex against the eventbuffer.dev API's targets.
//
// The world: 1,000,000 occurrences of 100,000 objects in 200 namespaces (5,000 each), a
// quarter of them type=Warning, times mostly in order (1 % up to 10 s late), realistic
// uids, names and RFC 3339 timestamps; while the List benchmarks run, a writer thread adds
// ~10,000 occurrences/s (new ones at the end) and evicts as many of the oldest.
//
//   BM_ListOneNamespaceFiltered  a 500-item page of one namespace with a field-selector-like
//                                filter (involvedObject.kind=Pod, ~80 % of items), from a
//                                random position; p50/p95/p99 latency in ms (target p95 <= 20)
//   BM_ListAllNamespacesWarnings a 500-item page over all namespaces with type=Warning
//                                (~1/4), from a random position (target p95 <= 20 ms)
//   BM_WalkNamespace             one whole namespace page by page (500 a page, no filter);
//                                items/s (target >= 200k/s)
//   BM_Find                      Find by Event name and revision
//   BM_Add/N                     ns per Add into an index growing to 1M (in time order but
//                                for the 1 % that are late) over N namespaces (200, and 1:
//                                one namespace of 1M); bytes per occurrence when full
//   BM_RemoveOldest              ns per Remove of the oldest occurrence
//
//   build/tests/bench/query_index_bench
// (one run; the machine and its load go into docs with the numbers).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "eventbuffer/query_index.h"
#include "tests/bench/bench_support.h"

namespace eventbuffer {
namespace {

using F = EventRecord::Field;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kOccurrences = 1'000'000;
constexpr std::size_t kObjects = 100'000;
constexpr std::size_t kNamespaces = 200;
constexpr std::int64_t kStartMs = 1'714'557'600'000;  // 2024-05-01T10:00:00Z

using bench::Rfc3339;

// Occurrence i: object i % kObjects, namespace object % namespaces, i seconds after the
// start (1 % of them up to 10 s earlier: late arrivals).
EventRef MakeOccurrence(std::uint64_t i, std::mt19937_64& rng,
                        std::uint64_t namespaces = kNamespaces) {
  const std::uint64_t object = i % kObjects;
  const std::string ns = "team-" + std::to_string(object % namespaces);
  const std::string pod = "api-7c5ddbdf54-" + std::to_string(object);
  const std::string name = pod + ".17cb1e2f3a4b5c6d";
  char uid[40];
  std::snprintf(uid, sizeof uid, "a0b1c2d3-e4f5-4a6b-8c7d-%012llx",
                static_cast<unsigned long long>(object));
  const std::string rv = std::to_string(10'000'000 + i);
  std::int64_t t = kStartMs + static_cast<std::int64_t>(i) * 1000;  // 1 s apart: unique-ish
  if (rng() % 100 == 0) t -= static_cast<std::int64_t>(rng() % 10'000);
  const std::string last = Rfc3339(t);
  const bool warning = rng() % 4 == 0;
  const std::uint64_t kind = rng() % 10;
  EventRecord::Builder b;
  b.Set(F::kUid, uid)
      .Set(F::kResourceVersion, rv)
      .Set(F::kNamespace, ns)
      .Set(F::kName, name)
      .Set(F::kInvolvedKind, kind < 8 ? "Pod" : (kind == 8 ? "Deployment" : "ReplicaSet"))
      .Set(F::kInvolvedNamespace, ns)
      .Set(F::kInvolvedName, pod)
      .Set(F::kReason, warning ? "BackOff" : "Pulled")
      .Set(F::kMessage, "Back-off restarting failed container app in pod " + pod)
      .Set(F::kType, warning ? "Warning" : "Normal")
      .Set(F::kFirstTimestamp, "2024-05-01T10:00:00Z")
      .Set(F::kLastTimestamp, last)
      .Set(F::kSourceComponent, "kubelet");
  b.numbers().count = 1;
  return b.Build();
}

std::vector<EventRef> MakeOccurrences(std::uint64_t first, std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<EventRef> out;
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i) out.push_back(MakeOccurrence(first + i, rng));
  return out;
}

// The populated index, its random starting positions, and the background writer.
class World {
 public:
  static World& Get() {
    static World world;
    return world;
  }
  const QueryIndex& index() const { return index_; }
  const OccurrencePosition& RandomAfter(std::mt19937_64& rng) const {
    return afters_[rng() % afters_.size()];
  }

  ~World() {
    stop_.store(true);
    writer_.join();
    std::fprintf(stderr, "writer: %llu occurrences added and evicted during the run\n",
                 static_cast<unsigned long long>(written_.load()));
  }

 private:
  World() {
    held_ = MakeOccurrences(0, kOccurrences, 1);
    for (const auto& r : held_) index_.Add(r);
    std::mt19937_64 rng(2);
    // Starting points from the first 90 %: a page from there is full.
    for (int i = 0; i < 20'000; ++i) {
      afters_.push_back(PositionOf(*held_[rng() % (kOccurrences * 9 / 10)]));
    }
    writer_ = std::thread([this] { Write(); });
  }

  // ~10,000 adds/s (ten every millisecond) and as many evictions of the oldest.
  void Write() {
    std::mt19937_64 rng(3);
    std::uint64_t next = kOccurrences;
    std::size_t oldest = 0;
    auto tick = Clock::now();
    while (!stop_.load(std::memory_order_relaxed)) {
      for (int k = 0; k < 10; ++k) {
        index_.Add(MakeOccurrence(next++, rng));
        index_.Remove(*held_[oldest]);
        held_[oldest++].reset();
        written_.fetch_add(1, std::memory_order_relaxed);
        if (oldest == held_.size()) return;
      }
      tick += std::chrono::milliseconds(1);
      std::this_thread::sleep_until(tick);
    }
  }

  QueryIndex index_;
  std::vector<EventRef> held_;
  std::vector<OccurrencePosition> afters_;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> written_{0};
  std::thread writer_;
};

void ReportLatencies(benchmark::State& state, std::vector<double>& ms, std::size_t items) {
  std::sort(ms.begin(), ms.end());
  const auto at = [&](double q) {
    return ms.empty() ? 0.0 : ms[std::min(ms.size() - 1, static_cast<std::size_t>(q * ms.size()))];
  };
  state.counters["p50_ms"] = at(0.50);
  state.counters["p95_ms"] = at(0.95);
  state.counters["p99_ms"] = at(0.99);
  state.counters["max_ms"] = ms.empty() ? 0.0 : ms.back();
  state.counters["items_per_page"] =
      ms.empty() ? 0.0 : static_cast<double>(items) / static_cast<double>(ms.size());
}

void BM_ListOneNamespaceFiltered(benchmark::State& state) {
  const World& world = World::Get();
  std::mt19937_64 rng(4);
  std::vector<double> ms;
  std::size_t items = 0;
  for (auto _ : state) {
    EventQuery q;
    q.after = world.RandomAfter(rng);
    // The namespace of that position's occurrence: its uid ends in the object number.
    const unsigned long long object = std::stoull(q.after->uid.substr(24), nullptr, 16);
    q.ns = "team-" + std::to_string(object % kNamespaces);
    q.match = [](const EventRecord& r) { return r.Get(F::kInvolvedKind) == "Pod"; };
    q.limit = 500;
    const auto t0 = Clock::now();
    const EventPage page = world.index().List(q);
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    items += page.items.size();
    benchmark::DoNotOptimize(page.items.data());
  }
  ReportLatencies(state, ms, items);
}
BENCHMARK(BM_ListOneNamespaceFiltered)->MinTime(2);

void BM_ListAllNamespacesWarnings(benchmark::State& state) {
  const World& world = World::Get();
  std::mt19937_64 rng(5);
  std::vector<double> ms;
  std::size_t items = 0;
  for (auto _ : state) {
    EventQuery q;
    q.after = world.RandomAfter(rng);
    q.match = [](const EventRecord& r) { return r.type() == "Warning"; };
    q.limit = 500;
    const auto t0 = Clock::now();
    const EventPage page = world.index().List(q);
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    items += page.items.size();
    benchmark::DoNotOptimize(page.items.data());
  }
  ReportLatencies(state, ms, items);
}
BENCHMARK(BM_ListAllNamespacesWarnings)->MinTime(2);

void BM_WalkNamespace(benchmark::State& state) {
  const World& world = World::Get();
  std::mt19937_64 rng(6);
  std::size_t items = 0, pages = 0;
  for (auto _ : state) {
    EventQuery q;
    q.ns = "team-" + std::to_string(rng() % kNamespaces);
    q.limit = 500;
    for (;;) {
      const EventPage page = world.index().List(q);
      items += page.items.size();
      ++pages;
      if (!page.more) break;
      q.after = PositionOf(*page.items.back());
    }
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(items));
  state.counters["pages"] = static_cast<double>(pages);
}
BENCHMARK(BM_WalkNamespace)->MinTime(2)->UseRealTime();

void BM_Find(benchmark::State& state) {
  const World& world = World::Get();
  std::mt19937_64 rng(7);
  std::size_t found = 0;
  for (auto _ : state) {
    // A recent occurrence (the writer evicts the oldest): index i in the upper half.
    const std::uint64_t i = kOccurrences / 2 + rng() % (kOccurrences / 2);
    const std::uint64_t object = i % kObjects;
    const std::string ns = "team-" + std::to_string(object % kNamespaces);
    const std::string name = "api-7c5ddbdf54-" + std::to_string(object) + ".17cb1e2f3a4b5c6d";
    const std::string rv = std::to_string(10'000'000 + i);
    found += world.index().Find(ns, name, rv) != nullptr;
  }
  state.counters["found_share"] =
      static_cast<double>(found) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_Find);

// CPU time of the calling thread (the machine may be shared: wall time would count waits).
double ThreadCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// ns (thread CPU time) per Add into an index that grows to 1M, and the memory the index
// needs per occurrence once full. Records are built in chunks of 1024 just before they are
// added, as the watch decodes them just before the buffer stores them (cache-warm).
void BM_Add(benchmark::State& state) {
  const auto namespaces = static_cast<std::uint64_t>(state.range(0));
  std::size_t bytes = 0;
  double total_cpu = 0;
  for (auto _ : state) {
    auto index = std::make_unique<QueryIndex>();
    std::mt19937_64 rng(8);
    std::vector<EventRef> chunk;
    double cpu = 0;
    for (std::uint64_t first = 0; first < kOccurrences; first += 1024) {
      chunk.clear();
      for (std::uint64_t i = first; i < first + 1024 && i < kOccurrences; ++i) {
        chunk.push_back(MakeOccurrence(i, rng, namespaces));
      }
      const double t0 = ThreadCpuSeconds();
      for (const auto& r : chunk) index->Add(r);
      cpu += ThreadCpuSeconds() - t0;
    }
    state.SetIterationTime(cpu);
    total_cpu += cpu;
    bytes = index->MemoryBytes();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kOccurrences));
  state.counters["ns_per_add"] =
      total_cpu * 1e9 / static_cast<double>(state.iterations() * kOccurrences);
  const double per = static_cast<double>(bytes) / static_cast<double>(kOccurrences);
  state.counters["bytes_per_occurrence"] = per;
  state.counters["bytes_beyond_eventref"] = per - static_cast<double>(sizeof(EventRef));
}
BENCHMARK(BM_Add)
    ->Arg(kNamespaces)
    ->Arg(1)
    ->UseManualTime()
    ->Iterations(3)
    ->Unit(benchmark::kMillisecond);

// ns (thread CPU time) per Remove, oldest first as retention evicts, from a full index.
void BM_RemoveOldest(benchmark::State& state) {
  const std::vector<EventRef> records = MakeOccurrences(0, kOccurrences, 9);
  double total_cpu = 0;
  for (auto _ : state) {
    QueryIndex index;
    for (const auto& r : records) index.Add(r);
    const double t0 = ThreadCpuSeconds();
    for (const auto& r : records) index.Remove(*r);
    const double cpu = ThreadCpuSeconds() - t0;
    state.SetIterationTime(cpu);
    total_cpu += cpu;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kOccurrences));
  state.counters["ns_per_remove"] =
      total_cpu * 1e9 / static_cast<double>(state.iterations() * kOccurrences);
}
BENCHMARK(BM_RemoveOldest)->UseManualTime()->Iterations(2)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace eventbuffer

BENCHMARK_MAIN();
