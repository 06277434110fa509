// The cost of building records, and the bytes a record takes, for the two shapes of Event
// traffic: distinct Events (each a full record: interned short strings, offsets only for
// stored fields) and revisions of recent Events (each stored as the fields that changed
// from its base, found through a RevisionCache).
//
//   build/tests/bench/record_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//
// Reports ns per record built (the per-append cost of the sharing is BM_Build/revision minus
// what building a full record costs) and counters: block_bytes (EventRecord::MemoryBytes
// per record, own block only) and, for revisions, the share that found a base.
#include <benchmark/benchmark.h>

#include <array>
#include <string>
#include <vector>

#include "eventbuffer/event_record.h"
#include "eventbuffer/revision_cache.h"

namespace {

using eventbuffer::EventRecord;
using eventbuffer::EventRef;
using eventbuffer::RevisionCache;
using Field = EventRecord::Field;

// The fields of a kubelet BackOff Event about pod i (as the e2e stream's), ~380 bytes of text.
struct Fields {
  std::array<std::string, EventRecord::kFieldCount> f;
};

Fields EventOf(std::size_t i, int revision) {
  Fields e;
  const std::string id = std::to_string(100000 + i);
  const std::string pod = "checkout-7d4b9c8f6d-" + id;
  auto set = [&](Field k, std::string v) { e.f[static_cast<std::size_t>(k)] = std::move(v); };
  set(Field::kUid, "a0b1c2d3-e4f5-4a6b-8c7d-" + id + "0000000");
  set(Field::kResourceVersion, std::to_string(8000000 + i * 8 + static_cast<std::size_t>(revision)));
  set(Field::kNamespace, "shop");
  set(Field::kName, pod + ".17cb1e2f3a4b5c6d");
  set(Field::kInvolvedKind, "Pod");
  set(Field::kInvolvedNamespace, "shop");
  set(Field::kInvolvedName, pod);
  set(Field::kInvolvedUid, "3f1c8a52-7a1e-4c8e-9d2b-" + id + "0000000");
  set(Field::kInvolvedApiVersion, "v1");
  set(Field::kInvolvedFieldPath, "spec.containers{app}");
  set(Field::kReason, "BackOff");
  set(Field::kMessage, "Back-off restarting failed container app in pod " + pod +
                           "_shop_3f1c8a52-7a1e-4c8e-9d2b-1b2c3d4e5f60");
  set(Field::kType, "Warning");
  set(Field::kFirstTimestamp, "2024-05-01T10:00:00Z");
  set(Field::kLastTimestamp, "2024-05-01T10:0" + std::to_string(revision) + ":00Z");
  set(Field::kSourceComponent, "kubelet");
  set(Field::kSourceHost, "worker-" + std::to_string(i % 3));
  set(Field::kReportingComponent, "kubelet");
  set(Field::kReportingInstance, "worker-" + std::to_string(i % 3));
  set(Field::kCreationTimestamp, "2024-05-01T10:00:00Z");
  return e;
}

EventRecord::Builder BuilderOf(const Fields& e, int count) {
  EventRecord::Builder b;
  for (std::size_t k = 0; k < EventRecord::kFieldCount; ++k) b.Set(static_cast<Field>(k), e.f[k]);
  b.numbers().count = count;
  b.DeriveLastSeen();  // as the decoder does: Build then takes the number without a parse
  return b;
}

// Distinct Events: every record full.
void BM_Build_Distinct(benchmark::State& state) {
  std::vector<Fields> events;
  for (std::size_t i = 0; i < 4096; ++i) events.push_back(EventOf(i, 0));
  std::size_t i = 0, bytes = 0;
  for (auto _ : state) {
    EventRef r = BuilderOf(events[i++ & 4095], 1).Build();
    bytes += r->MemoryBytes();
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["block_bytes"] = static_cast<double>(bytes) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_Build_Distinct);

// Each Event as ADDED then 4 MODIFIED (new resourceVersion, lastTimestamp and count), as a
// decoder sees them: looked up in and remembered by a RevisionCache. Arg 0: without the
// cache (every record full, the cost without sharing); 1: with it.
void BM_Build_Revisions(benchmark::State& state) {
  const bool share = state.range(0) == 1;
  std::vector<std::array<Fields, 5>> events;
  for (std::size_t i = 0; i < 1024; ++i) {
    events.push_back({EventOf(i, 0), EventOf(i, 1), EventOf(i, 2), EventOf(i, 3), EventOf(i, 4)});
  }
  RevisionCache cache;
  std::size_t n = 0, bytes = 0, shared = 0;
  for (auto _ : state) {
    // Revisions of 8 Events interleaved, as a watch delivers a few crash-looping pods.
    const std::size_t group = (n / 40) % 128, k = n % 40;
    const std::size_t event = group * 8 + k % 8;
    const int revision = static_cast<int>(k / 8);
    const Fields& f = events[event][static_cast<std::size_t>(revision)];
    const EventRecord::Builder b = BuilderOf(f, revision + 1);
    EventRef r;
    if (share) {
      r = b.Build(cache.Lookup(f.f[0]));
      cache.Remember(r);
    } else {
      r = b.Build();
    }
    bytes += r->MemoryBytes();
    shared += r->base() != nullptr;
    benchmark::DoNotOptimize(r);
    ++n;
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["block_bytes"] = static_cast<double>(bytes) / static_cast<double>(state.iterations());
  state.counters["shared"] = static_cast<double>(shared) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_Build_Revisions)->Arg(0)->Arg(1);

// Reading every field of a record back: a full record, and a revision (one hop to its base).
void BM_ReadAllFields(benchmark::State& state) {
  const bool revision = state.range(0) == 1;
  const Fields f0 = EventOf(1, 0), f1 = EventOf(1, 1);
  const EventRef base = BuilderOf(f0, 1).Build();
  const EventRef r = revision ? BuilderOf(f1, 2).Build(base) : base;
  for (auto _ : state) {
    std::size_t total = 0;
    for (std::size_t k = 0; k < EventRecord::kFieldCount; ++k) {
      total += r->Get(static_cast<Field>(k)).size();
    }
    benchmark::DoNotOptimize(total);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ReadAllFields)->Arg(0)->Arg(1);

}  // namespace

BENCHMARK_MAIN();
