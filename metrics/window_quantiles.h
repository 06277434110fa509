// WindowQuantiles: quantiles of nanosecond durations over a sliding time window, with a
// lock-free Observe, for the per-pod P50/P95/P99 summary.
//
// prometheus-cpp's Summary (CKMS over age buckets, behind a mutex) costs several
// microseconds per Observe here, which would cost more than the appends it measures. This
// sketch counts observations in log-linear buckets instead: 8 sub-buckets per power of two
// from 1 ns to 2^40 ns (~18 min), so a reported quantile is within 1/16 (6.25 %) of a value
// of the true rank. The window is a ring of `slots` time slices; Observe adds to the
// current slice, a query merges the slices inside the window.
//
// Thread safety: Observe and Quantiles may be called from any number of threads at once.
// Observe is lock-free: a coarse clock read and one or two relaxed atomic operations.
// Approximation: the first observer of a new slice zeroes that slice's counts; an
// observation another thread adds to the same slice during that reset may be lost. This
// happens only at a slice boundary (every window/slots) and affects a handful of samples.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

namespace eventbuffer::metrics {

class WindowQuantiles {
 public:
  static constexpr int kSubBuckets = 8;  // per power of two
  static constexpr int kMaxExponent = 40;
  // Values 0..7 exactly, then kSubBuckets per power of two up to 2^(kMaxExponent+1), then
  // one overflow bucket.
  static constexpr int kBuckets = (kMaxExponent - 1) * kSubBuckets + 1;

  // REQUIRES: window_ns > 0, slots >= 1.
  WindowQuantiles(std::int64_t window_ns, int slots);
  ~WindowQuantiles();

  WindowQuantiles(const WindowQuantiles&) = delete;
  WindowQuantiles& operator=(const WindowQuantiles&) = delete;

  // Records a duration of `ns` (clamped to [0, 2^41)) now.
  void Observe(std::int64_t ns) { ObserveAt(ns, CoarseNowNs()); }
  // Records at monotonic time `now_ns` (tests use a synthetic clock).
  void ObserveAt(std::int64_t ns, std::int64_t now_ns);

  // The requested quantiles (each in [0, 1]) of the observations in the window ending at
  // `now_ns`, in nanoseconds; NaN for each when the window is empty.
  std::vector<double> Quantiles(const std::vector<double>& qs, std::int64_t now_ns) const;
  std::vector<double> Quantiles(const std::vector<double>& qs) const {
    return Quantiles(qs, CoarseNowNs());
  }

  // CLOCK_MONOTONIC_COARSE in nanoseconds (a few ns to read; millisecond resolution).
  static std::int64_t CoarseNowNs();

  // Bucket index of a value, and the value a bucket reports (its midpoint). Exposed for tests.
  static int BucketOf(std::int64_t ns);
  static double BucketMid(int bucket);

  // Implementation details follow.
 private:
  struct Slice;
  const std::int64_t slice_ns_;
  const int slots_;
  std::unique_ptr<Slice[]> slices_;
};

}  // namespace eventbuffer::metrics
