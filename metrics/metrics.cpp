#include "metrics/metrics.h"

#include <algorithm>
#include <sstream>
#include <stdexcept>

#include <prometheus/exposer.h>
#include <prometheus/text_serializer.h>

#include "metrics/family_util.h"
#include "metrics/process_collector.h"

namespace eventbuffer::metrics {

class Metrics::Scrape final : public prometheus::Collectable {
 public:
  explicit Scrape(const Metrics& m) : m_(m) {}
  std::vector<prometheus::MetricFamily> Collect() const override { return m_.Collect(); }

 private:
  const Metrics& m_;
};

Metrics::Metrics(MetricsOptions options)
    : options_(std::move(options)),
      registry_(std::make_shared<prometheus::Registry>()),
      buffer_(std::make_unique<BufferMetrics>(*registry_)),
      scrape_(std::make_shared<Scrape>(*this)) {}

Metrics::~Metrics() {
  exposer_.reset();  // no scrape may run past this point
  pause_.Stop();
}

void Metrics::Serve(const std::string& bind_address) {
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(bind_address, 2);
  } catch (const std::exception& e) {
    throw std::runtime_error("metrics: cannot listen on " + bind_address + ": " + e.what());
  }
  exposer_->RegisterCollectable(scrape_);
}

int Metrics::port() const {
  if (!exposer_) return 0;
  const auto ports = exposer_->GetListeningPorts();
  return ports.empty() ? 0 : ports.front();
}

void Metrics::AddCollector(Collector collector) {
  std::lock_guard<std::mutex> lock(collectors_mu_);
  collectors_.push_back(std::move(collector));
}

std::vector<prometheus::MetricFamily> Metrics::Collect() const {
  std::vector<prometheus::MetricFamily> out = registry_->Collect();
  {
    std::lock_guard<std::mutex> lock(collectors_mu_);
    for (const Collector& c : collectors_) {
      for (auto& f : c()) out.push_back(std::move(f));
    }
  }
  for (auto& f : buffer_->Collect()) out.push_back(std::move(f));
  for (auto& f : pause_.Collect()) out.push_back(std::move(f));
  if (options_.process_metrics) {
    for (auto& f : CollectProcessMetrics()) out.push_back(std::move(f));
  }
  auto info = internal::MakeFamily("eventbuffer_build_info",
                                   "Build of the running controller; the value is always 1.",
                                   prometheus::MetricType::Gauge);
  info.metric.push_back(internal::MakeGauge(1, {{"version", options_.version},
                                                {"revision", options_.revision},
                                                {"compiler", __VERSION__},
                                                {"cxx_standard", std::to_string(__cplusplus)}}));
  out.push_back(std::move(info));
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return out;
}

std::string Metrics::Render() const {
  std::ostringstream s;
  prometheus::TextSerializer().Serialize(s, Collect());
  return s.str();
}

}  // namespace eventbuffer::metrics
