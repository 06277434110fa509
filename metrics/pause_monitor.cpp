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
  if (thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = false;
  }
  thread_ = std::thread([this] { Run(); });
}

void PauseMonitor::Stop() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

bool PauseMonitor::running() const { return thread_.joinable(); }

void PauseMonitor::Record(std::int64_t ns) {
  hist_.Observe(ns);
  max_.Record(ns, WindowMax::NowNs());
}

void PauseMonitor::Run() {
  // Timer slack is per thread: only this thread's sleeps become precise.
  prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    const auto start = std::chrono::steady_clock::now();
    const auto deadline = start + interval_;
    // wait_until returns at the deadline, at Stop, or spuriously; only a full interval is
    // a sample (a spurious early wakeup just waits again for the same deadline).
    while (!stop_ && std::chrono::steady_clock::now() < deadline) {
      cv_.wait_until(lock, deadline);
    }
    if (stop_) break;
    const auto late = std::chrono::steady_clock::now() - deadline;
    lock.unlock();
    Record(std::chrono::duration_cast<std::chrono::nanoseconds>(late).count());
    lock.lock();
  }
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
