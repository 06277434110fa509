#include "eventbuffer/gray_flag.h"

#include <algorithm>
#include <cmath>

namespace eventbuffer {

bool ParseGrayMode(std::string_view text, GrayMode* mode) {
  for (std::size_t i = 0; i < kGrayModeCount; ++i) {
    const auto m = static_cast<GrayMode>(i);
    if (text == GrayModeName(m)) {
      *mode = m;
      return true;
    }
  }
  return false;
}

std::uint32_t RolloutThreshold(double rollout_percent) noexcept {
  if (!(rollout_percent > 0)) return 0;  // also NaN
  if (rollout_percent >= 100) return kRolloutBuckets;
  const double buckets = std::round(rollout_percent * (kRolloutBuckets / 100.0));
  return static_cast<std::uint32_t>(std::min(buckets, static_cast<double>(kRolloutBuckets)));
}

GrayFlag::GrayFlag(GrayMode mode, double rollout_percent)
    : mode_(mode),
      rollout_percent_(std::isnan(rollout_percent) ? 0 : std::clamp(rollout_percent, 0.0, 100.0)),
      threshold_(RolloutThreshold(rollout_percent_)) {}

Backend GrayFlag::ReadBackendForBucket(std::uint32_t bucket) const {
  switch (mode_) {
    case GrayMode::kLegacy:
    case GrayMode::kShadow:
      return Backend::kLegacy;
    case GrayMode::kCanary:
      return bucket < threshold_ ? Backend::kAtomic : Backend::kLegacy;
    case GrayMode::kAtomic:
      return Backend::kAtomic;
  }
  return Backend::kLegacy;
}

}  // namespace eventbuffer
