// EventBuffer benchmarks: the cost of the gray release, and the A/A soak.
//
//   BM_BuildRecord        building one EventRecord (part of every append below: subtract it)
//   BM_Append/<mode>      EventBuffer::Append ns/op in legacy, shadow, canary (50 %) and atomic
//                         mode, 1 and 2 writer threads, verification sampling off, then shadow
//                         with the default sampling (10 %) to show what verification costs
//   BM_ShadowSoak         >= 10,000,000 appends (--soak_appends=N) from 4 writer threads in
//                         shadow mode with write/read verification sampled, a background
//                         VerifySweep, a reader and retention running all the time; then a
//                         full sweep. Any mismatch fails the program (exit code 1).
//
// Short run for CI:
//   event_buffer_bench --soak_appends=1000000 --benchmark_filter=Soak
// Self-test of the failure path (must exit 1 and print A/A SOAK FAILED):
//   event_buffer_bench --soak_appends=200000 --soak_fault_every=10000 --benchmark_filter=Soak
// Full run:
//   event_buffer_bench --benchmark_min_time=1
#include <benchmark/benchmark.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "eventbuffer/event_buffer.h"
#include "tests/eventbuffer/faulty_slice_map.h"

namespace eventbuffer {
namespace {

std::uint64_t g_soak_appends = 10'000'000;
// --soak_fault_every=N: the soak's atomic backend drops every N-th append (a self-test that
// the soak really fails when the backends differ). 0: two correct backends (the A/A run).
std::uint64_t g_soak_fault_every = 0;
std::atomic<bool> g_failed{false};

const std::int64_t kNowMs = std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count();

// Builds occurrence i of writer w about object `object`: a small, realistic core/v1 Event.
class RecordFactory {
 public:
  explicit RecordFactory(int writer) : uid_prefix_("w" + std::to_string(writer) + "-") {}
  EventRef Make(std::uint64_t i, std::uint64_t object) {
    name_ = "api-7c5ddbdf54-" + std::to_string(object);
    uid_ = uid_prefix_ + std::to_string(i);
    EventRecord::Builder b;
    using F = EventRecord::Field;
    b.Set(F::kUid, uid_)
        .Set(F::kResourceVersion, "1")
        .Set(F::kNamespace, "prod")
        .Set(F::kName, name_)
        .Set(F::kInvolvedKind, "Pod")
        .Set(F::kInvolvedNamespace, "prod")
        .Set(F::kInvolvedName, name_)
        .Set(F::kReason, "BackOff")
        .Set(F::kMessage, "Back-off restarting failed container api in pod api_prod(6f1c2b9e)")
        .Set(F::kType, "Warning")
        .Set(F::kSourceComponent, "kubelet");
    b.numbers().count = 1;
    b.numbers().last_seen_unix_ms = kNowMs;
    b.numbers().receive_unix_ns = kNowMs * 1'000'000;
    return b.Build();
  }

 private:
  std::string uid_prefix_, name_, uid_;
};

constexpr std::uint64_t kObjects = 5000;

void BM_BuildRecord(benchmark::State& state) {
  RecordFactory f(state.thread_index());
  std::uint64_t i = 0;
  for (auto _ : state) {
    auto r = f.Make(i, i % kObjects);
    benchmark::DoNotOptimize(r);
    ++i;
  }
}
BENCHMARK(BM_BuildRecord)->Iterations(400'000);

std::unique_ptr<EventBuffer> g_buffer;

void BM_Append(benchmark::State& state) {
  const auto mode = static_cast<GrayMode>(state.range(0));
  const double sample_rate = static_cast<double>(state.range(1)) / 100.0;
  if (state.thread_index() == 0) {
    BufferConfig cfg;
    cfg.mode = mode;
    cfg.rollout_percent = 50;
    cfg.verify.sample_rate = sample_rate;
    g_buffer = std::make_unique<EventBuffer>(cfg);
  }
  RecordFactory f(state.thread_index());
  std::uint64_t i = 0;
  for (auto _ : state) {
    g_buffer->Append(
        f.Make(i, (i * 7 + static_cast<std::uint64_t>(state.thread_index())) % kObjects));
    ++i;
  }
  if (state.thread_index() == 0) {
    const BufferStats st = g_buffer->Stats();
    std::uint64_t mismatches = 0;
    for (auto m : st.mismatches) mismatches += m;
    state.counters["mismatches"] = static_cast<double>(mismatches);
    if (mismatches != 0) {
      g_failed = true;
      state.SkipWithError("mismatches between two correct backends");
    }
    g_buffer.reset();
  }
  state.SetLabel(std::string(GrayModeName(mode)) + " verify=" + std::to_string(state.range(1)) +
                 "%");
}

void AppendArgs(benchmark::internal::Benchmark* b) {
  for (int m = 0; m < 4; ++m) b->Args({m, 0});
  b->Args({static_cast<int>(GrayMode::kShadow), 10});
}
BENCHMARK(BM_Append)->Apply(AppendArgs)->Threads(1)->Threads(2)->Iterations(300'000)->UseRealTime();

void BM_ShadowSoak(benchmark::State& state) {
  constexpr int kWriters = 4;
  constexpr std::uint64_t kSoakObjects = 20'000;
  BufferConfig cfg;
  cfg.mode = GrayMode::kShadow;
  cfg.verify.sample_rate = 0.01;
  cfg.retention.max_events = 400'000;
  cfg.retention.max_events_per_object = 200;
  for (auto _ : state) {
    std::unique_ptr<SliceBackend> atomic = MakeAtomicBackend();
    if (g_soak_fault_every > 0) {
      auto faulty = std::make_unique<testing::FaultySliceBackend>();
      faulty->ArmEvery(testing::Fault::kDrop, g_soak_fault_every);
      atomic = std::move(faulty);
    }
    EventBuffer buffer(cfg, MakeLegacyBackend(), std::move(atomic));
    std::atomic<std::uint64_t> reported{0};
    buffer.SetMismatchSink([&](const MismatchReport& r) {
      if (reported.fetch_add(1) < 5) {
        std::fprintf(stderr, "MISMATCH key=%s kind=%s legacy=%zu atomic=%zu %s\n", r.key.c_str(),
                     std::string(MismatchKindName(r.kind)).c_str(), r.legacy_count, r.atomic_count,
                     r.first_difference.c_str());
      }
    });
    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> sweeps{0}, retention_passes{0}, reads{0};
    std::thread sweeper([&] {
      while (!stop.load(std::memory_order_relaxed)) sweeps += buffer.VerifySweep(500);
    });
    std::thread retention([&] {
      while (!stop.load(std::memory_order_relaxed)) {
        buffer.EnforceRetention(kNowMs);
        ++retention_passes;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    });
    std::thread reader([&] {
      std::uint64_t k = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        benchmark::DoNotOptimize(
            buffer.Read("prod/Pod/api-7c5ddbdf54-" + std::to_string(k++ % kSoakObjects)));
        ++reads;
      }
    });
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> writers;
    for (int w = 0; w < kWriters; ++w) {
      writers.emplace_back([&, w] {
        RecordFactory f(w);
        const std::uint64_t n =
            g_soak_appends / kWriters + (static_cast<std::uint64_t>(w) < g_soak_appends % kWriters);
        for (std::uint64_t i = 0; i < n; ++i) {
          // Writers share objects, so appends to one key interleave across threads.
          buffer.Append(f.Make(i, (i * 13 + static_cast<std::uint64_t>(w) * 7919) % kSoakObjects));
        }
      });
    }
    for (auto& t : writers) t.join();
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    stop = true;
    sweeper.join();
    retention.join();
    reader.join();
    // A final full round over the settled buffer.
    // One call covers the rest of the current round and one whole new round.
    const std::size_t final_keys = buffer.VerifySweep(2 * buffer.Stats().backend[0].objects + 1);
    const BufferStats st = buffer.Stats();
    std::uint64_t mismatches = 0;
    for (auto m : st.mismatches) mismatches += m;
    state.counters["appends"] = static_cast<double>(st.appended);
    state.counters["appends_per_s"] = static_cast<double>(st.appended) / seconds;
    state.counters["verified_match"] = static_cast<double>(st.verifications[0]);
    state.counters["mismatches"] = static_cast<double>(mismatches);
    state.counters["evictions"] = static_cast<double>(st.evictions);
    state.counters["sweep_keys"] = static_cast<double>(sweeps.load());
    state.counters["retention_passes"] = static_cast<double>(retention_passes.load());
    state.counters["reads"] = static_cast<double>(reads.load());
    state.counters["final_sweep_keys"] = static_cast<double>(final_keys);
    state.counters["held_legacy"] = static_cast<double>(st.backend[0].events);
    state.counters["held_atomic"] = static_cast<double>(st.backend[1].events);
    const bool sizes_differ = st.backend[0].events != st.backend[1].events ||
                              st.backend[0].objects != st.backend[1].objects;
    if (mismatches != 0 || reported.load() != 0 || sizes_differ || st.appended != g_soak_appends ||
        st.verifications[0] == 0) {
      g_failed = true;
      std::fprintf(stderr,
                   "\n*** A/A SOAK FAILED: mismatches=%llu reported=%llu appended=%llu/%llu "
                   "legacy=%zu atomic=%zu matches=%llu ***\n\n",
                   static_cast<unsigned long long>(mismatches),
                   static_cast<unsigned long long>(reported.load()),
                   static_cast<unsigned long long>(st.appended),
                   static_cast<unsigned long long>(g_soak_appends), st.backend[0].events,
                   st.backend[1].events, static_cast<unsigned long long>(st.verifications[0]));
      state.SkipWithError("A/A soak failed (see stderr)");
    }
  }
}
BENCHMARK(BM_ShadowSoak)->Iterations(1)->UseRealTime()->Unit(benchmark::kSecond);

}  // namespace
}  // namespace eventbuffer

int main(int argc, char** argv) {
  // Own flag first: --soak_appends=N (removed before Google Benchmark sees the arguments).
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    if (std::strncmp(argv[i], "--soak_appends=", 15) == 0) {
      eventbuffer::g_soak_appends = std::strtoull(argv[i] + 15, nullptr, 10);
    } else if (std::strncmp(argv[i], "--soak_fault_every=", 19) == 0) {
      eventbuffer::g_soak_fault_every = std::strtoull(argv[i] + 19, nullptr, 10);
    } else {
      args.push_back(argv[i]);
    }
  }
  int n = static_cast<int>(args.size());
  benchmark::Initialize(&n, args.data());
  if (benchmark::ReportUnrecognizedArguments(n, args.data())) return 2;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  if (eventbuffer::g_failed) {
    std::fprintf(stderr, "event_buffer_bench: FAILED (the two backends differ, see above)\n");
    return 1;
  }
  return 0;
}
