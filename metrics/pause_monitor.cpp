#include "metrics/pause_monitor.h"

#include <sys/prctl.h>

#include "metrics/family_util.h"

namespace eventbuffer::metrics {

PauseMonitor::PauseMonitor(std::chrono::nanoseconds interval)
    : interval_(interval), hist_(BucketsNs()), max_(60'000'000'000, 6) {}

PauseMonitor::~PauseMonitor() { Stop(); }

std::vector<std::int64_t> PauseMonitor::BucketsNs() {
  return {10'000,        25'000,        50'000,        100'000,       250'000,
          500'000,       1'000'000,     2'500'000,     5'000'000,     10'000'000,
          25'000'000,    50'000'000,    100'000'000,   250'000'000,   500'000'000,
          1'000'000'000, 2'500'000'000, 5'000'000'000, 10'000'000'000};
}

void PauseMonitor::Start() {
  // Each round sleeps until its deadline; whatever kept the thread from waking on time is
  // the pause. Timer slack is per thread: only this thread's sleeps become precise.
  thread_.Start(
      interval_,
      [this](PeriodicThread::Clock::time_point deadline) {
        const auto late = PeriodicThread::Clock::now() - deadline;
        Record(std::chrono::duration_cast<std::chrono::nanoseconds>(late).count());
      },
      [] { prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL); });
}

void PauseMonitor::Stop() { thread_.Stop(); }

void PauseMonitor::Record(std::int64_t ns) {
  hist_.Observe(ns);
  max_.Record(ns, WindowMax::NowNs());
}

std::vector<prometheus::MetricFamily> PauseMonitor::Collect() const {
  auto hist = internal::MakeFamily(
      "eventbuffer_process_pause_seconds",
      "Process pauses: how much longer than 1 ms a sleeping thread took to wake up.",
      prometheus::MetricType::Histogram);
  prometheus::ClientMetric m;
  m.histogram = hist_.Snapshot();
  hist.metric.push_back(m);
  auto max = internal::MakeFamily("eventbuffer_process_pause_max_seconds",
                                  "Longest process pause in the last 60 s.",
                                  prometheus::MetricType::Gauge);
  max.metric.push_back(internal::MakeGauge(static_cast<double>(WindowMaxNs()) / 1e9));
  return {std::move(hist), std::move(max)};
}

}  // namespace eventbuffer::metrics
