#include "eventbuffer/buffer_config.h"

#include "eventbuffer/message_limit.h"

#include <cmath>
#include <sstream>

namespace eventbuffer {

std::string ValidateBufferConfig(const BufferConfig& c) {
  std::ostringstream out;
  if (!std::isfinite(c.rollout_percent) || c.rollout_percent < 0 || c.rollout_percent > 100) {
    out << "eventBuffer.rolloutPercent: must be within [0, 100], got " << c.rollout_percent;
  } else if (!std::isfinite(c.verify.sample_rate) || c.verify.sample_rate < 0 ||
             c.verify.sample_rate > 1) {
    out << "eventBuffer.verify.sampleRate: must be within [0, 1], got " << c.verify.sample_rate;
  } else if (c.retention.max_age.count() <= 0) {
    out << "eventBuffer.retention.maxAge: must be positive, got " << c.retention.max_age.count()
        << "ms";
  } else if (c.retention.max_events == 0) {
    out << "eventBuffer.retention.maxEvents: must be positive";
  } else if (c.retention.max_events_per_object == 0) {
    out << "eventBuffer.retention.maxEventsPerObject: must be positive";
  } else if (c.retention.max_message_bytes < kMinMessageBytes) {
    out << "eventBuffer.retention.maxMessageBytes: must be at least " << kMinMessageBytes
        << ", got " << c.retention.max_message_bytes;
  } else if (c.retention.max_bytes == 0) {
    out << "eventBuffer.retention.maxBytes: must be positive";
  } else if (c.retention.max_clock_skew.count() < 0) {
    out << "eventBuffer.retention.maxClockSkew: must not be negative, got "
        << c.retention.max_clock_skew.count() << "ms";
  } else if (static_cast<std::size_t>(c.mode) >= kGrayModeCount) {
    out << "eventBuffer.mode: unknown mode " << static_cast<int>(c.mode);
  }
  return out.str();
}

}  // namespace eventbuffer
