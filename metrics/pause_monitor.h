// PauseMonitor: a jHiccup-style process pause meter. A dedicated thread sleeps for a fixed
// interval (1 ms) again and again and records how much longer than asked each sleep took.
// Whatever stops a runnable thread shows up as oversleep: CPU throttling by the cgroup
// quota, a starved CPU, page-fault or allocator stalls, a stopped process. It is the C++
// counterpart of a GC pause metric: it measures the process, not any one data structure.
//
// Families:
//   eventbuffer_process_pause_seconds      histogram of oversleep per interval
//   eventbuffer_process_pause_max_seconds  gauge, longest oversleep in the last 60 s
//
// The thread asks for 1 ns timer slack (prctl PR_SET_TIMERSLACK, per thread) so that the
// kernel's default 50 µs slack does not show up as a constant pause.
//
// Thread safety: Start, Stop and running() belong to one owner thread; Collect and the other
// accessors may be called from any thread at any time.
#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

#include <prometheus/metric_family.h>

#include "eventbuffer/periodic_thread.h"
#include "metrics/atomic_histogram.h"
#include "metrics/window_max.h"

namespace eventbuffer::metrics {

class PauseMonitor {
 public:
  // REQUIRES: interval > 0.
  explicit PauseMonitor(std::chrono::nanoseconds interval = std::chrono::milliseconds(1));
  // Stops the thread if it runs.
  ~PauseMonitor();

  PauseMonitor(const PauseMonitor&) = delete;
  PauseMonitor& operator=(const PauseMonitor&) = delete;

  // Starts the sampling thread. No effect when already running.
  void Start();
  // Stops and joins the sampling thread; returns within about one interval. No effect when
  // not running. The recorded data stays.
  void Stop();
  bool running() const { return thread_.running(); }

  // Records one oversleep of `ns` (used by the thread; public so tests can feed known values).
  void Record(std::int64_t ns);

  // Number of intervals recorded so far.
  std::uint64_t Samples() const { return hist_.Count(); }
  // Longest oversleep in the last 60 s, in nanoseconds.
  std::int64_t WindowMaxNs() const { return max_.Max(WindowMax::NowNs()); }

  // The two families, for a scrape.
  std::vector<prometheus::MetricFamily> Collect() const;

  // Oversleep bucket bounds in nanoseconds: 10 µs to 10 s.
  static std::vector<std::int64_t> BucketsNs();

  // Implementation details follow.
 private:
  const std::chrono::nanoseconds interval_;
  AtomicHistogram hist_;
  WindowMax max_;
  PeriodicThread thread_;
};

}  // namespace eventbuffer::metrics
