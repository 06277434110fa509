#include "metrics/window_quantiles.h"

#include <time.h>

#include <algorithm>
#include <bit>
#include <cassert>
#include <cmath>
#include <limits>

namespace eventbuffer::metrics {

struct WindowQuantiles::Slice {
  // The slice number (now / slice_ns) these counts belong to; -1 before first use.
  std::atomic<std::int64_t> epoch{-1};
  std::atomic<std::uint32_t> counts[kBuckets] = {};
};

WindowQuantiles::WindowQuantiles(std::int64_t window_ns, int slots)
    : slice_ns_(window_ns / slots), slots_(slots), slices_(std::make_unique<Slice[]>(slots)) {
  assert(slots >= 1 && slice_ns_ > 0);
}

WindowQuantiles::~WindowQuantiles() = default;

std::int64_t WindowQuantiles::CoarseNowNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

int WindowQuantiles::BucketOf(std::int64_t ns) {
  // Values below kSubBuckets get a bucket each; above, a power of two [2^e, 2^(e+1)) is cut
  // into kSubBuckets equal parts by the three bits below the leading one.
  if (ns < kSubBuckets) return ns < 0 ? 0 : static_cast<int>(ns);
  const auto v = static_cast<std::uint64_t>(ns);
  const int e = std::bit_width(v) - 1;  // 2^e <= v < 2^(e+1), e >= 3
  if (e > kMaxExponent) return kBuckets - 1;
  const int sub = static_cast<int>((v >> (e - 3)) & (kSubBuckets - 1));
  return (e - 2) * kSubBuckets + sub;
}

double WindowQuantiles::BucketMid(int bucket) {
  if (bucket < kSubBuckets) return bucket;
  const int e = bucket / kSubBuckets + 2;
  const int sub = bucket % kSubBuckets;
  const double width = std::ldexp(1.0, e - 3);
  return std::ldexp(1.0, e) + (sub + 0.5) * width;
}

void WindowQuantiles::ObserveAt(std::int64_t ns, std::int64_t now_ns) {
  const std::int64_t epoch = now_ns / slice_ns_;
  Slice& s = slices_[static_cast<std::size_t>(epoch % slots_)];
  // Relaxed throughout: the counts are statistics, not a publication of other memory.
  std::int64_t seen = s.epoch.load(std::memory_order_relaxed);
  if (seen != epoch) {
    if (seen > epoch) return;  // a caller with a stale clock: that slice is gone
    if (s.epoch.compare_exchange_strong(seen, epoch, std::memory_order_relaxed)) {
      for (auto& c : s.counts) c.store(0, std::memory_order_relaxed);
    }
  }
  s.counts[BucketOf(ns)].fetch_add(1, std::memory_order_relaxed);
}

std::vector<double> WindowQuantiles::Quantiles(const std::vector<double>& qs,
                                               std::int64_t now_ns) const {
  const std::int64_t epoch = now_ns / slice_ns_;
  std::vector<std::uint64_t> merged(kBuckets, 0);
  std::uint64_t total = 0;
  for (int i = 0; i < slots_; ++i) {
    const Slice& s = slices_[i];
    const std::int64_t e = s.epoch.load(std::memory_order_relaxed);
    if (e < 0 || e > epoch || epoch - e >= slots_) continue;
    for (int b = 0; b < kBuckets; ++b) {
      const std::uint64_t c = s.counts[b].load(std::memory_order_relaxed);
      merged[b] += c;
      total += c;
    }
  }
  std::vector<double> out;
  out.reserve(qs.size());
  for (double q : qs) {
    if (total == 0) {
      out.push_back(std::numeric_limits<double>::quiet_NaN());
      continue;
    }
    // The smallest bucket whose cumulative count reaches rank ceil(q * total) (at least 1).
    const auto rank = std::max<std::uint64_t>(
        1, static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(total))));
    std::uint64_t cumulative = 0;
    int b = 0;
    for (; b < kBuckets; ++b) {
      cumulative += merged[b];
      if (cumulative >= rank) break;
    }
    out.push_back(BucketMid(std::min(b, kBuckets - 1)));
  }
  return out;
}

}  // namespace eventbuffer::metrics
