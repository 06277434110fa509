// BufferConfig: the EventBuffer's run-time configuration (gray-release flag, verification,
// retention). controller/config.* reads it from YAML; EventBuffer::Reconfigure applies it.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

#include "eventbuffer/experiment.h"

namespace eventbuffer {

struct RetentionConfig {
  // Occurrences whose time (last seen, else receive time) is older than now - max_age are
  // evicted. REQUIRES: > 0.
  std::chrono::milliseconds max_age{std::chrono::hours(1)};
  // Upper bound on occurrences held in the whole buffer (oldest evicted first). REQUIRES: > 0.
  std::size_t max_events = 1'000'000;
  // Upper bound on occurrences held per involved object (oldest evicted first). REQUIRES: > 0.
  std::size_t max_events_per_object = 1000;
  // Longest message kept: a longer one is stored cut at a UTF-8 boundary and followed by a
  // marker stating its original length (message_limit.h). REQUIRES: >= kMinMessageBytes.
  std::size_t max_message_bytes = 16 * 1024;
  // How far past its receive time an occurrence's own time may be: a later time is clamped
  // to receive time + max_clock_skew for retention and list order (OccurrenceTimeMs). Fixed
  // for the life of an EventBuffer (Reconfigure refuses to change it). REQUIRES: >= 0.
  std::chrono::milliseconds max_clock_skew{std::chrono::minutes(5)};
  // Upper bound on the memory of the stored records (BufferStats::record_bytes), enforced
  // when an append goes over it: occurrences are evicted (fairly over namespaces, see
  // EventBuffer) down to 63/64 of it, so evictions come in batches. The controller derives
  // the default from the container's memory limit (memory_limit.h). REQUIRES: > 0.
  std::size_t max_bytes = std::size_t{512} << 20;
};

struct VerifyConfig {
  // Share of appends and of reads, in [0, 1], after which the touched key is verified.
  double sample_rate = 0.1;
};

struct BufferConfig {
  GrayMode mode = GrayMode::kShadow;
  // Share of keys, in percent [0, 100] (fractions allowed), that read from the atomic
  // backend in canary mode.
  double rollout_percent = 0;
  VerifyConfig verify;
  RetentionConfig retention;
};

// Returns "" when config is valid, else "<field>: <problem>" naming the field as the YAML
// configuration spells it, e.g. "eventBuffer.rolloutPercent: must be within [0, 100], got 120".
std::string ValidateBufferConfig(const BufferConfig& config);

}  // namespace eventbuffer
