// Decoder throughput: events/s and MB/s for ~1 KB core/v1 watch lines on one core.
// Compares EventDecoder (simdjson DOM, fields copied into one EventRecord block) with
// parsing the same line into cpprestsdk's web::json::value (parse only, no record built).
//
//   build/tests/bench/decoder_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>
#include <cpprest/json.h>

#include <string>
#include <vector>

#include "controller/kube/event_decoder.h"

namespace {

// Realistic watch lines of about 1 KB (a kubelet BackOff event with managedFields), each
// with its own uid and resourceVersion.
std::vector<std::string> MakeLines(std::size_t n) {
  std::vector<std::string> lines;
  lines.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::string id = std::to_string(100000 + i);
    std::string pod = "checkout-7d4b9c8f6d-" + id;
    lines.push_back(
        R"({"type":"MODIFIED","object":{"kind":"Event","apiVersion":"v1","metadata":{"name":")" +
        pod + R"(.17cb1e2f3a4b5c6d","namespace":"shop","uid":"a0b1c2d3-e4f5-4a6b-8c7d-)" + id +
        R"(0000000","resourceVersion":")" + std::to_string(8000000 + i) +
        R"(","creationTimestamp":"2024-05-01T10:00:00Z","managedFields":[{"manager":"kubelet","operation":"Update","apiVersion":"v1","time":"2024-05-01T10:13:22Z","fieldsType":"FieldsV1","fieldsV1":{"f:count":{},"f:firstTimestamp":{},"f:involvedObject":{},"f:lastTimestamp":{},"f:message":{},"f:reason":{},"f:reportingComponent":{},"f:reportingInstance":{},"f:source":{"f:component":{},"f:host":{}},"f:type":{}}}]},"involvedObject":{"kind":"Pod","namespace":"shop","name":")" +
        pod + R"(","uid":"3f1c8a52-7a1e-4c8e-9d2b-)" + id +
        R"(0000000","apiVersion":"v1","resourceVersion":"812345","fieldPath":"spec.containers{app}"},"reason":"BackOff","message":"Back-off restarting failed container app in pod )" +
        pod + R"(_shop_3f1c8a52-7a1e-4c8e-9d2b-1b2c3d4e5f60","source":{"component":"kubelet","host":"worker-2"},"firstTimestamp":"2024-05-01T10:00:00Z","lastTimestamp":"2024-05-01T10:13:22Z","count":14,"type":"Warning","eventTime":null,"reportingComponent":"kubelet","reportingInstance":"worker-2"}})");
  }
  return lines;
}

const std::vector<std::string>& Lines() {
  static const std::vector<std::string> lines = MakeLines(4096);
  return lines;
}

void BM_EventDecoder_WatchLine(benchmark::State& state) {
  eventbuffer::controller::EventDecoder decoder;
  const auto& lines = Lines();
  std::size_t i = 0, bytes = 0;
  for (auto _ : state) {
    const std::string& line = lines[i++ & 4095];
    auto r = decoder.DecodeWatchLine(line, 1);
    if (!r.ok()) state.SkipWithError(r.error.ToString().c_str());
    benchmark::DoNotOptimize(r.value.record);
    bytes += line.size();
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
  state.counters["line_bytes"] = static_cast<double>(bytes) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_EventDecoder_WatchLine);

void BM_CppRestJson_ParseOnly(benchmark::State& state) {
  const auto& lines = Lines();
  std::size_t i = 0, bytes = 0;
  for (auto _ : state) {
    const std::string& line = lines[i++ & 4095];
    std::error_code ec;
    auto v = web::json::value::parse(line, ec);
    benchmark::DoNotOptimize(v);
    bytes += line.size();
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
}
BENCHMARK(BM_CppRestJson_ParseOnly);

// A 500-item list page, as one list request returns it.
void BM_EventDecoder_ListPage500(benchmark::State& state) {
  const auto& lines = Lines();
  std::string body = R"({"kind":"EventList","apiVersion":"v1","metadata":{"resourceVersion":"9000000","continue":"x"},"items":[)";
  for (int i = 0; i < 500; ++i) {
    const std::string& line = lines[static_cast<std::size_t>(i)];
    const auto start = line.find("\"object\":") + 9;
    if (i) body.push_back(',');
    body.append(line, start, line.size() - start - 1);
  }
  body.append("]}");
  eventbuffer::controller::EventDecoder decoder;
  for (auto _ : state) {
    auto r = decoder.DecodeList(body, 1);
    if (!r.ok() || r.value.items.size() != 500) state.SkipWithError(r.error.ToString().c_str());
    benchmark::DoNotOptimize(r.value.items.data());
  }
  state.SetItemsProcessed(state.iterations() * 500);
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(body.size()));
}
BENCHMARK(BM_EventDecoder_ListPage500);

}  // namespace

BENCHMARK_MAIN();
