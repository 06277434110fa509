// Metrics: everything kube-eventbuffer exports on /metrics, in one object the controller
// creates once at start-up.
//
//   Metrics m({.version = KEB_VERSION});
//   EventBuffer buffer(config, &m.buffer());    // BufferObserver
//   m.buffer().SetSizeSource([&] { ... from buffer.Stats() ... });
//   controller::WatchMetrics watch(m.registry());   // the watch's families, same registry
//   m.StartPauseMonitor();
//   m.Serve("0.0.0.0:8080");                    // prometheus-cpp Exposer (civetweb)
//
// A scrape returns the prometheus-cpp registry (counters, gauges and low-rate histograms)
// plus the families computed at scrape: lock-free append/stall histograms, the windowed
// latency summary, window maxima, buffer sizes, the pause monitor, process_* from /proc and
// eventbuffer_build_info. docs/metrics.md lists every family.
//
// Thread safety: construction, Serve, StartPauseMonitor and destruction belong to one owner
// thread; the observers and Collect/Render are safe from any thread.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>

#include "metrics/buffer_metrics.h"
#include "metrics/pause_monitor.h"

namespace prometheus {
class Exposer;
}

namespace eventbuffer::metrics {

struct MetricsOptions {
  std::string version = "unknown";   // eventbuffer_build_info{version}
  std::string revision = "unknown";  // eventbuffer_build_info{revision}, e.g. a git commit
  bool process_metrics = true;       // export process_* from /proc
};

class Metrics {
 public:
  explicit Metrics(MetricsOptions options = {});
  // Stops the HTTP server and the pause monitor.
  ~Metrics();

  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  BufferMetrics& buffer() { return *buffer_; }
  PauseMonitor& pause_monitor() { return pause_; }
  prometheus::Registry& registry() { return *registry_; }

  // Families computed at every scrape by code outside metrics/ (the serving ports and
  // authentication in the controller). A collector must be thread-safe and must stay
  // callable until the Metrics is destroyed or no scrape can run any more.
  using Collector = std::function<std::vector<prometheus::MetricFamily>()>;
  void AddCollector(Collector collector);

  // Starts the process pause meter thread (PauseMonitor::Start).
  void StartPauseMonitor() { pause_.Start(); }

  // Serves /metrics on `bind_address` ("host:port" or ":port"; port 0 picks a free one).
  // Throws std::runtime_error when the address cannot be bound. REQUIRES: not serving yet.
  void Serve(const std::string& bind_address);
  // The port actually bound by Serve; 0 when not serving.
  int port() const;

  // Every family a scrape returns, sorted by name.
  std::vector<prometheus::MetricFamily> Collect() const;
  // The text exposition format of Collect().
  std::string Render() const;

  // Implementation details follow.
 private:
  class Scrape;  // the Collectable registered with the exposer

  const MetricsOptions options_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<BufferMetrics> buffer_;
  PauseMonitor pause_;
  mutable std::mutex collectors_mu_;  // guards collectors_
  std::vector<Collector> collectors_;
  std::shared_ptr<Scrape> scrape_;
  std::unique_ptr<prometheus::Exposer> exposer_;
};

}  // namespace eventbuffer::metrics
