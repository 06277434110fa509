// BufferObserver: how the EventBuffer reports what it does, without knowing the metrics
// backend. metrics/ implements it; tests may record calls.
//
// Thread safety: called from any writer, reader or maintenance thread at once; an
// implementation must be thread-safe and cheap (no locks on OnAppend).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "eventbuffer/experiment.h"

namespace eventbuffer {

// Why occurrences were evicted.
enum class EvictionReason : std::uint8_t {
  kAge,             // older than retention.maxAge
  kPerObject,       // beyond retention.maxEventsPerObject for their object
  kBudget,          // over maxBytes or maxEvents, no namespace beyond its fair share: oldest
  kNamespaceShare,  // over maxBytes or maxEvents, from the namespace holding the most
};
inline constexpr std::size_t kEvictionReasonCount = 4;
// "age", "per_object", "budget", "namespace_share" (the metrics' label values).
constexpr std::string_view EvictionReasonName(EvictionReason r) {
  switch (r) {
    case EvictionReason::kAge:
      return "age";
    case EvictionReason::kPerObject:
      return "per_object";
    case EvictionReason::kBudget:
      return "budget";
    case EvictionReason::kNamespaceShare:
      return "namespace_share";
  }
  return "unknown";
}

class BufferObserver {
 public:
  virtual ~BufferObserver() = default;
  // One append into one backend: its total duration and the part of it that was a stall
  // (AppendStats::stall_ns). Called only for sampled appends: the buffer decides which.
  virtual void OnAppend(Backend backend, std::int64_t duration_ns, std::int64_t stall_ns) = 0;
  // A stall seen on an append that was not otherwise sampled (stalls are always reported).
  virtual void OnStall(Backend backend, std::int64_t stall_ns) = 0;
  virtual void OnVerification(VerifyResult result) = 0;
  virtual void OnMismatch(MismatchKind kind) = 0;
  virtual void OnEvictions(std::size_t count) = 0;
  // count occurrences evicted for reason (the buffer calls this one; by default it forwards
  // to OnEvictions(count)).
  virtual void OnEvictionsByReason(EvictionReason reason, std::size_t count) {
    (void)reason;
    OnEvictions(count);
  }
  virtual void OnDedupHit() = 0;
  virtual void OnModeChange(GrayMode mode, double rollout_percent) = 0;
  // An occurrence was stored with its message truncated (RetentionConfig::max_message_bytes).
  virtual void OnMessageTruncated() {}
};

}  // namespace eventbuffer
