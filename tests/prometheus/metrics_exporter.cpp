// keb_metrics_exporter: serves the metrics library on a loopback port while a synthetic
// workload feeds every family, so the exposition, the rules and the dashboard can be
// checked against a real Prometheus without the controller.
//
// Usage: keb_metrics_exporter --listen 127.0.0.1:0 [--port-file FILE] [--seconds N]
// Prints "listening on PORT" and writes PORT to FILE; exits after N seconds (default 120)
// or on SIGTERM/SIGINT.
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <thread>

#include "controller/kube/watch_metrics.h"
#include "metrics/metrics.h"

namespace {

std::atomic<bool> g_stop{false};

void HandleSignal(int) { g_stop.store(true); }

using eventbuffer::Backend;
using eventbuffer::GrayMode;
using eventbuffer::MismatchKind;
using eventbuffer::VerifyResult;
using eventbuffer::controller::RestartReason;

// One writer thread: appends into both backends with log-normal-ish durations (the atomic
// backend a little faster), now and then a stall, a verification, a dedup hit.
void Writer(eventbuffer::metrics::Metrics& m, unsigned seed, std::atomic<std::uint64_t>& events) {
  std::mt19937_64 rng(seed);
  std::lognormal_distribution<double> legacy(std::log(900.0), 0.6);
  std::lognormal_distribution<double> atomic(std::log(400.0), 0.5);
  std::uniform_int_distribution<int> pct(0, 999);
  while (!g_stop.load(std::memory_order_relaxed)) {
    for (int i = 0; i < 50; ++i) {
      const int p = pct(rng);
      m.buffer().OnAppend(Backend::kLegacy, static_cast<std::int64_t>(legacy(rng)),
                          p < 20 ? 2000 + p * 100 : 0);
      m.buffer().OnAppend(Backend::kAtomic, static_cast<std::int64_t>(atomic(rng)),
                          p < 5 ? 5000 : 0);
      if (p < 3) m.buffer().OnStall(Backend::kLegacy, 30'000);
      if (p < 100) m.buffer().OnVerification(VerifyResult::kMatch);
      if (p == 999) m.buffer().OnVerification(VerifyResult::kSkipped);
      if (p < 10) m.buffer().OnDedupHit();
      events.fetch_add(1, std::memory_order_relaxed);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string listen = "127.0.0.1:0";
  std::string port_file;
  int seconds = 120;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--listen" && i + 1 < argc) {
      listen = argv[++i];
    } else if (a == "--port-file" && i + 1 < argc) {
      port_file = argv[++i];
    } else if (a == "--seconds" && i + 1 < argc) {
      seconds = std::stoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: %s --listen HOST:PORT [--port-file FILE] [--seconds N]\n",
                   argv[0]);
      return 2;
    }
  }
  std::signal(SIGTERM, HandleSignal);
  std::signal(SIGINT, HandleSignal);

  eventbuffer::metrics::Metrics m({.version = "test", .revision = "exporter"});
  m.buffer().OnModeChange(GrayMode::kShadow, 0);
  m.buffer().OnConfigReload(true);
  std::atomic<std::uint64_t> events{0};
  m.buffer().SetSizeSource([&events] {
    eventbuffer::metrics::BufferSizes s;
    const std::uint64_t n = events.load(std::memory_order_relaxed);
    for (auto& b : s.backend) b = {n / 20 + 1, n, n * 60};
    s.record_bytes = n * 550;
    return s;
  });
  m.StartPauseMonitor();
  m.Serve(listen);
  std::printf("listening on %d\n", m.port());
  std::fflush(stdout);
  if (!port_file.empty()) {
    std::ofstream(port_file + ".tmp") << m.port() << "\n";
    std::rename((port_file + ".tmp").c_str(), port_file.c_str());
  }

  std::thread w1(Writer, std::ref(m), 1u, std::ref(events));
  std::thread w2(Writer, std::ref(m), 2u, std::ref(events));
  // The watch side: a relist, then a steady trickle of events, bookmarks and restarts.
  eventbuffer::controller::WatchMetrics watch(m.registry());
  watch.OnRelist();
  watch.OnApiRequest("list", 200, 0.04);
  watch.OnProgress();
  std::mt19937 rng(3);
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  for (int tick = 0; !g_stop.load() && std::chrono::steady_clock::now() < end; ++tick) {
    watch.OnWatchEvent(tick % 3 == 0 ? "MODIFIED" : "ADDED");
    watch.OnEventLag(0.2 + (rng() % 1000) / 1000.0);
    watch.OnProgress();
    if (tick % 10 == 0) {
      watch.OnWatchEvent("BOOKMARK");
      watch.OnBookmark();
    }
    if (tick % 40 == 39) {
      watch.OnWatchRestart(RestartReason::kTimeout);
      watch.OnApiRequest("watch", 200, 4.0);
    }
    if (tick % 100 == 99) m.buffer().OnEvictions(5);
    if (tick % 200 == 199) watch.OnDecodeFailure("list");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  g_stop.store(true);
  w1.join();
  w2.join();
  return 0;
}
