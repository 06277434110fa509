// Storage backends side by side: MutexSliceMap (legacy), SegmentedSliceMap (atomic) and
// oneTBB's tbb::concurrent_hash_map<std::string, std::vector<V>> (the strongest common
// lock-based peer), on the workloads of issue 3. See docs/storage.md for results.
//
//   Append/<map>/threads:T/keys:K   1,000,000 appends of a 48-byte value into a fresh map,
//                                   T threads, K keys drawn uniformly (10,000 wide, 100 hot).
//                                   Reports ns_per_op (wall time / appends), cpu_ns_per_op
//                                   and faults_per_1k (minor page faults in the appends).
//   Latency/<map>/threads:T/keys:K  the same run with every 4th append timed: p50 ... p999,
//                                   max (ns).
//   GrowKeys/<map>                  one thread appends once to each of 1,000,000 new keys;
//                                   every append timed: max_ns, p9999_ns, slow_appends
//                                   (appends over 100 us); repeat_max_ns (worst append
//                                   that was as slow in a second fill); the machine's
//                                   floor_max_ns, floor_slow (windows of the mean append
//                                   time doing nothing); then the thread's CPU clock:
//                                   max_cpu_ns, slow_cpu_appends; for the segmented map
//                                   reserve_misses (new chunks the filler did not have
//                                   ready, faulted in by the appender). See Grow below.
//   GrowOneKey/<map>                one thread appends 1,000,000 values to one key; same.
//   Memory/<map>                    1,000,000 values over 10,000 keys, one thread: bytes per
//                                   element the map holds (operator new, plus for the
//                                   segmented map its 2 MiB chunks, which are mmap'ed), the
//                                   map's own MemoryBytes() per element, and the process's
//                                   ready chunk reserve in MiB (segmented only).
//
// Each benchmark builds a fresh map per iteration; construction and destruction are not
// timed (manual time). Run: build/tests/bench/slice_map_bench --benchmark_repetitions=5
// --benchmark_enable_random_interleaving=true --benchmark_report_aggregates_only=true
// (see docs/storage.md for the exact command).
#include <benchmark/benchmark.h>
#include <malloc.h>
#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#include <random>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "eventbuffer/mutex_slice_map.h"
#include "eventbuffer/segmented/slice_map.h"

#ifdef KEB_HAVE_TBB
#include <tbb/concurrent_hash_map.h>
#endif

// ---- Counting allocator: live heap bytes, switched on only by the Memory benchmark. ----
namespace {
std::atomic<bool> g_count_heap{false};
std::atomic<std::int64_t> g_heap_bytes{0};
void* CountedAlloc(std::size_t n, std::size_t align) {
  void* p = align <= alignof(std::max_align_t)
                ? std::malloc(n == 0 ? 1 : n)
                : std::aligned_alloc(align, (n + align - 1) / align * align);
  if (p == nullptr) throw std::bad_alloc();
  if (g_count_heap.load(std::memory_order_relaxed)) {
    g_heap_bytes.fetch_add(static_cast<std::int64_t>(malloc_usable_size(p)),
                           std::memory_order_relaxed);
  }
  return p;
}
void CountedFree(void* p) {
  if (p == nullptr) return;
  if (g_count_heap.load(std::memory_order_relaxed)) {
    g_heap_bytes.fetch_sub(static_cast<std::int64_t>(malloc_usable_size(p)),
                           std::memory_order_relaxed);
  }
  std::free(p);
}
}  // namespace

void* operator new(std::size_t n) { return CountedAlloc(n, 0); }
void* operator new[](std::size_t n) { return CountedAlloc(n, 0); }
void* operator new(std::size_t n, std::align_val_t a) {
  return CountedAlloc(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a) {
  return CountedAlloc(n, static_cast<std::size_t>(a));
}
void operator delete(void* p) noexcept { CountedFree(p); }
void operator delete[](void* p) noexcept { CountedFree(p); }
void operator delete(void* p, std::size_t) noexcept { CountedFree(p); }
void operator delete[](void* p, std::size_t) noexcept { CountedFree(p); }
void operator delete(void* p, std::align_val_t) noexcept { CountedFree(p); }
void operator delete[](void* p, std::align_val_t) noexcept { CountedFree(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { CountedFree(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { CountedFree(p); }

namespace eventbuffer {
namespace {

using Clock = std::chrono::steady_clock;

// The benchmark's element: a trivially copyable 48-byte value.
struct Value48 {
  std::array<std::uint64_t, 6> w;
};
static_assert(sizeof(Value48) == 48);

constexpr std::size_t kAppends = 1'000'000;

// ---- The three maps behind one small interface. ----
struct MutexMap {
  static constexpr const char* kName = "mutex";
  MutexSliceMap<Value48> m;
  void Append(const std::string& k, const Value48& v) { m.Append(k, v); }
  std::size_t MemoryBytes() const { return m.MemoryBytes(); }
  std::size_t Count(const std::string& k) const { return m.Count(k); }
};
struct SegmentedMap {
  static constexpr const char* kName = "segmented";
  SegmentedSliceMap<Value48> m;
  void Append(const std::string& k, const Value48& v) { m.Append(k, v); }
  std::size_t MemoryBytes() const { return m.MemoryBytes(); }
  std::size_t Count(const std::string& k) const { return m.Count(k); }
};
#ifdef KEB_HAVE_TBB
struct TbbMap {
  static constexpr const char* kName = "onetbb";
  tbb::concurrent_hash_map<std::string, std::vector<Value48>> m;
  void Append(const std::string& k, const Value48& v) {
    decltype(m)::accessor a;  // write lock on the element for the push_back
    m.insert(a, k);
    a->second.push_back(v);
  }
  std::size_t MemoryBytes() const { return 0; }  // not reported by the peer
  std::size_t Count(const std::string& k) const {
    decltype(m)::const_accessor a;
    return m.find(a, k) ? a->second.size() : 0;
  }
};
#endif

// ---- Inputs, built once. ----
std::string KeyName(std::size_t i) {
  // Shaped like real keys, "namespace/kind/name" of the involved object (~40 bytes).
  return "team-" + std::to_string(i % 97) + "/Pod/api-server-" + std::to_string(i) +
         "-7d9f8b6c5-x2k4p";
}
const std::vector<std::string>& Keys(std::size_t n) {
  static std::vector<std::string> keys;
  if (keys.size() < n) {
    keys.reserve(n);
    for (std::size_t i = keys.size(); i < n; ++i) keys.push_back(KeyName(i));
  }
  return keys;
}
// Per-thread sequences of key indices, uniform over [0, keys).
std::vector<std::vector<std::uint32_t>> Picks(std::size_t threads, std::size_t keys) {
  std::vector<std::vector<std::uint32_t>> picks(threads);
  for (std::size_t t = 0; t < threads; ++t) {
    std::mt19937_64 rng(1234 + t * 7 + keys);
    std::uniform_int_distribution<std::uint32_t> dist(0, static_cast<std::uint32_t>(keys - 1));
    picks[t].resize(kAppends / threads);
    for (auto& p : picks[t]) p = dist(rng);
  }
  return picks;
}

std::int64_t Ns(Clock::duration d) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
}
// CPU time of the calling thread: on a shared, loaded machine it shows the work per append
// without the time the thread spent waiting for a core.
std::int64_t ThreadCpuNs() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}
// Minor page faults taken by the calling thread so far (first touches of fresh memory).
std::int64_t ThreadMinorFaults() {
  rusage ru{};
  getrusage(RUSAGE_THREAD, &ru);
  return ru.ru_minflt;
}
// Sum of the workers' CPU time and page faults in the last RunAppends on this thread.
thread_local std::int64_t g_last_cpu_ns = 0;
thread_local std::int64_t g_last_faults = 0;

// Runs `threads` workers over a fresh map; worker t appends picks[t]. If sample_every > 0,
// every sample_every-th append is timed into samples. Returns the wall time of the appends.
template <class Map>
std::int64_t RunAppends(Map& map, const std::vector<std::vector<std::uint32_t>>& picks,
                        const std::vector<std::string>& keys, std::size_t sample_every,
                        std::vector<std::int64_t>* samples) {
  const std::size_t threads = picks.size();
  std::vector<std::vector<std::int64_t>> per_thread(threads);
  std::atomic<std::size_t> ready{0};
  std::atomic<bool> go{false};
  std::vector<Clock::time_point> ends(threads);
  std::vector<std::int64_t> cpu(threads, 0);
  std::vector<std::int64_t> faults(threads, 0);
  std::vector<std::thread> workers;
  for (std::size_t t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      const std::vector<std::uint32_t>& mine = picks[t];
      std::vector<std::int64_t>& out = per_thread[t];
      if (sample_every > 0) out.reserve(mine.size() / sample_every + 1);
      Value48 v{{t, 0, 0, 0, 0, 0}};
      ready.fetch_add(1);
      while (!go.load(std::memory_order_acquire)) {
      }
      const std::int64_t cpu0 = ThreadCpuNs();
      const std::int64_t faults0 = ThreadMinorFaults();
      for (std::size_t i = 0; i < mine.size(); ++i) {
        v.w[1] = i;
        if (sample_every > 0 && i % sample_every == 0) {
          const auto t0 = Clock::now();
          map.Append(keys[mine[i]], v);
          out.push_back(Ns(Clock::now() - t0));
        } else {
          map.Append(keys[mine[i]], v);
        }
      }
      ends[t] = Clock::now();
      cpu[t] = ThreadCpuNs() - cpu0;
      faults[t] = ThreadMinorFaults() - faults0;
    });
  }
  while (ready.load() < threads) std::this_thread::yield();
  const auto start = Clock::now();
  go.store(true, std::memory_order_release);
  for (auto& w : workers) w.join();
  const auto end = *std::max_element(ends.begin(), ends.end());
  g_last_cpu_ns = 0;
  for (std::int64_t c : cpu) g_last_cpu_ns += c;
  g_last_faults = 0;
  for (std::int64_t f : faults) g_last_faults += f;
  if (samples != nullptr) {
    for (auto& v : per_thread) samples->insert(samples->end(), v.begin(), v.end());
  }
  return Ns(end - start);
}

double Percentile(std::vector<std::int64_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  const std::size_t i =
      std::min(sorted.size() - 1, static_cast<std::size_t>(p * static_cast<double>(sorted.size())));
  return static_cast<double>(sorted[i]);
}

template <class Map>
void Append(benchmark::State& state) {
  const auto threads = static_cast<std::size_t>(state.range(0));
  const auto nkeys = static_cast<std::size_t>(state.range(1));
  const auto& keys = Keys(nkeys);
  const auto picks = Picks(threads, nkeys);
  std::int64_t total_ns = 0, cpu_ns = 0, faults = 0;
  for (auto _ : state) {
    auto map = std::make_unique<Map>();
    const std::int64_t ns = RunAppends(*map, picks, keys, 0, nullptr);
    state.SetIterationTime(static_cast<double>(ns) * 1e-9);
    total_ns += ns;
    cpu_ns += g_last_cpu_ns;
    faults += g_last_faults;
    map.reset();
  }
  const double ops = static_cast<double>(state.iterations() * kAppends);
  state.counters["ns_per_op"] = static_cast<double>(total_ns) / ops;
  // CPU time of all workers per append (work per append, whatever the machine's load).
  state.counters["cpu_ns_per_op"] = static_cast<double>(cpu_ns) / ops;
  // Minor page faults taken inside the appends (not in the map's construction), per 1000.
  state.counters["faults_per_1k"] = static_cast<double>(faults) * 1000 / ops;
}

template <class Map>
void Latency(benchmark::State& state) {
  const auto threads = static_cast<std::size_t>(state.range(0));
  const auto nkeys = static_cast<std::size_t>(state.range(1));
  const auto& keys = Keys(nkeys);
  const auto picks = Picks(threads, nkeys);
  std::vector<std::int64_t> samples;
  std::int64_t faults = 0;
  for (auto _ : state) {
    auto map = std::make_unique<Map>();
    const std::int64_t ns = RunAppends(*map, picks, keys, 4, &samples);
    state.SetIterationTime(static_cast<double>(ns) * 1e-9);
    faults += g_last_faults;
    map.reset();
  }
  std::sort(samples.begin(), samples.end());
  state.counters["p50_ns"] = Percentile(samples, 0.50);
  state.counters["p95_ns"] = Percentile(samples, 0.95);
  state.counters["p99_ns"] = Percentile(samples, 0.99);
  state.counters["p999_ns"] = Percentile(samples, 0.999);
  state.counters["max_ns"] = samples.empty() ? 0 : static_cast<double>(samples.back());
  state.counters["faults_per_1k"] =
      static_cast<double>(faults) * 1000 / static_cast<double>(state.iterations() * kAppends);
}

// Growth: one thread, every append timed. key_of(i) gives the key of the i-th append.
// Passes over a fresh map each:
//   1. wall clock per append: max_ns, p9999_ns, slow_appends (> 100 us);
//   2. the same again: repeat_max_ns = the largest min(pass 1, pass 2) of one append
//      position. A stall the map causes at a point of its growth (a rehash, a reallocation,
//      a table doubling) recurs at the same append; one the machine causes (the host
//      preempting the VM, an interrupt) almost never hits the same append twice. It cannot
//      see a map's stall that moves between passes, so max_ns stays the headline;
//   3. the machine's own floor over as many windows of the mean append time, doing no
//      work (a loop reading the clock): floor_max_ns, floor_slow (windows > 100 us). What a
//      map cannot do better than on this machine at this moment;
//   4. the thread's CPU clock per append (a system call, so only this pass uses it): its
//      worst append is the longest stall that cost the thread CPU time (rehash, reallocation,
//      allocation, page faults), without time spent waiting for a core.
template <class Map, class KeyOf>
void Grow(benchmark::State& state, KeyOf key_of) {
  std::vector<std::int64_t> lat(kAppends), again(kAppends);
  std::int64_t worst = 0, worst_cpu = 0, repeat_worst = 0, floor_worst = 0;
  double p9999 = 0, slow = 0, slow_cpu = 0, floor_slow = 0;
  // Fills a fresh map, out[i] = now() after the i-th append minus before it; returns the
  // whole fill's now() difference. now: a clock in ns (inlined: a generic lambda).
  auto timed_fill = [&key_of](std::vector<std::int64_t>& out, auto now) {
    auto map = std::make_unique<Map>();
    Value48 v{};
    const std::int64_t start = now();
    for (std::size_t i = 0; i < kAppends; ++i) {
      v.w[0] = i;
      const std::int64_t t0 = now();
      map->Append(key_of(i), v);
      out[i] = now() - t0;
    }
    const std::int64_t total = now() - start;
    map.reset();
    return total;
  };
  auto wall_ns = [] { return Ns(Clock::now().time_since_epoch()); };
  // Adds to `max` and `over` the largest time of `times` and those over 100 us.
  auto tally = [](const std::vector<std::int64_t>& times, std::int64_t& max, double& over) {
    max = std::max(max, *std::max_element(times.begin(), times.end()));
    over += static_cast<double>(
        std::count_if(times.begin(), times.end(), [](std::int64_t x) { return x > 100'000; }));
  };
  using segmented_detail::ChunkReserve;
  double misses = 0;
  for (auto _ : state) {
    const std::size_t misses0 = ChunkReserve::Global().GetStats().misses;
    const std::int64_t total = timed_fill(lat, wall_ns);
    misses += static_cast<double>(ChunkReserve::Global().GetStats().misses - misses0);
    state.SetIterationTime(static_cast<double>(total) * 1e-9);
    tally(lat, worst, slow);

    timed_fill(again, wall_ns);
    for (std::size_t i = 0; i < kAppends; ++i) {
      repeat_worst = std::max(repeat_worst, std::min(lat[i], again[i]));
    }
    std::sort(lat.begin(), lat.end());
    p9999 = std::max(p9999, Percentile(lat, 0.9999));

    const auto window = std::chrono::nanoseconds(total / static_cast<std::int64_t>(kAppends));
    for (std::size_t i = 0; i < kAppends; ++i) {
      const auto t0 = Clock::now();
      auto t = t0;
      while (t - t0 < window) t = Clock::now();
      again[i] = Ns(t - t0);
    }
    tally(again, floor_worst, floor_slow);

    timed_fill(lat, ThreadCpuNs);
    tally(lat, worst_cpu, slow_cpu);
  }
  const double n = static_cast<double>(state.iterations());
  state.counters["max_ns"] = static_cast<double>(worst);
  state.counters["p9999_ns"] = p9999;
  state.counters["slow_appends"] = slow / n;
  state.counters["repeat_max_ns"] = static_cast<double>(repeat_worst);
  state.counters["floor_max_ns"] = static_cast<double>(floor_worst);
  state.counters["floor_slow"] = floor_slow / n;
  state.counters["max_cpu_ns"] = static_cast<double>(worst_cpu);
  state.counters["slow_cpu_appends"] = slow_cpu / n;
  if constexpr (std::is_same_v<Map, SegmentedMap>) state.counters["reserve_misses"] = misses / n;
}

template <class Map>
void GrowKeys(benchmark::State& state) {
  const auto& keys = Keys(kAppends);
  Grow<Map>(state, [&keys](std::size_t i) -> const std::string& { return keys[i]; });
}

template <class Map>
void GrowOneKey(benchmark::State& state) {
  const std::string key = KeyName(7);
  Grow<Map>(state, [&key](std::size_t) -> const std::string& { return key; });
}

template <class Map>
void Memory(benchmark::State& state) {
  const auto& keys = Keys(10'000);
  const auto picks = Picks(1, 10'000);
  using segmented_detail::ChunkReserve;
  double heap_per = 0, own_per = 0, reserve_mib = 0;
  for (auto _ : state) {
    g_heap_bytes.store(0);
    g_count_heap.store(true);
    auto map = std::make_unique<Map>();
    const std::int64_t ns = RunAppends(*map, picks, keys, 0, nullptr);
    state.SetIterationTime(static_cast<double>(ns) * 1e-9);
    g_count_heap.store(false);
    // The segmented map's large chunks are mapped by the process-wide ChunkReserve, not
    // taken from the heap: add those this map holds (mapped now minus those still ready;
    // no other map is alive here). The ready and kept ones are the process's reserve,
    // reported apart (2-8 MiB made ahead, plus up to 128 MiB freed by maps destroyed in
    // the last seconds; not per element).
    // Let the filler finish the chunk it may be faulting in: such a chunk is mapped but
    // not ready yet, and would be counted as the map's.
    ChunkReserve::Global().WaitUntilFull(std::chrono::seconds(5));
    const ChunkReserve::Stats reserve = ChunkReserve::Global().GetStats();
    const std::size_t ready_bytes = (reserve.ready + reserve.kept) * ChunkReserve::kBytes;
    const std::size_t held_chunks = reserve.mapped_bytes - ready_bytes;
    heap_per = static_cast<double>(g_heap_bytes.load() + static_cast<std::int64_t>(held_chunks)) /
               static_cast<double>(kAppends);
    own_per = static_cast<double>(map->MemoryBytes()) / static_cast<double>(kAppends);
    reserve_mib = static_cast<double>(ready_bytes) / (1 << 20);
    map.reset();
  }
  // All memory the map holds (heap + its large chunks) per element; MemoryBytes() per
  // element (segments in use, index, keys); the process's ready and kept chunks in MiB.
  state.counters["heap_bytes_per_elem"] = heap_per;
  state.counters["own_bytes_per_elem"] = own_per;
  if constexpr (std::is_same_v<Map, SegmentedMap>) state.counters["reserve_mib"] = reserve_mib;
}

template <class M>
struct AppendFn {
  static void Run(benchmark::State& s) { Append<M>(s); }
};
template <class M>
struct LatencyFn {
  static void Run(benchmark::State& s) { Latency<M>(s); }
};
template <class M>
struct GrowKeysFn {
  static void Run(benchmark::State& s) { GrowKeys<M>(s); }
};
template <class M>
struct GrowOneKeyFn {
  static void Run(benchmark::State& s) { GrowOneKey<M>(s); }
};
template <class M>
struct MemoryFn {
  static void Run(benchmark::State& s) { Memory<M>(s); }
};

// Registers one benchmark per map, next to each other, so that the maps of one workload
// run back to back on the (shared, noisy) machine.
template <template <class> class Fn>
std::vector<benchmark::internal::Benchmark*> RegisterAll(const std::string& workload) {
  std::vector<benchmark::internal::Benchmark*> out;
  out.push_back(
      benchmark::RegisterBenchmark((workload + "/" + MutexMap::kName).c_str(), Fn<MutexMap>::Run));
  out.push_back(benchmark::RegisterBenchmark((workload + "/" + SegmentedMap::kName).c_str(),
                                             Fn<SegmentedMap>::Run));
#ifdef KEB_HAVE_TBB
  out.push_back(
      benchmark::RegisterBenchmark((workload + "/" + TbbMap::kName).c_str(), Fn<TbbMap>::Run));
#endif
  for (auto* b : out) b->UseManualTime()->Unit(benchmark::kMillisecond);
  return out;
}

void RegisterBenchmarks() {
  for (int keys : {10'000, 100}) {
    for (int threads : {1, 2, 4}) {
      for (auto* b : RegisterAll<AppendFn>("Append")) {
        b->ArgNames({"threads", "keys"})->Args({threads, keys})->Iterations(3);
      }
    }
  }
  for (int keys : {10'000, 100}) {
    for (int threads : {1, 2, 4}) {
      for (auto* b : RegisterAll<LatencyFn>("Latency")) {
        b->ArgNames({"threads", "keys"})->Args({threads, keys})->Iterations(1);
      }
    }
  }
  for (auto* b : RegisterAll<GrowKeysFn>("GrowKeys")) b->Iterations(1);
  for (auto* b : RegisterAll<GrowOneKeyFn>("GrowOneKey")) b->Iterations(1);
  for (auto* b : RegisterAll<MemoryFn>("Memory")) b->Iterations(1);
}

}  // namespace
}  // namespace eventbuffer

int main(int argc, char** argv) {
  eventbuffer::RegisterBenchmarks();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
