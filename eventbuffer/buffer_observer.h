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
  virtual void OnDedupHit() = 0;
  virtual void OnModeChange(GrayMode mode, double rollout_percent) = 0;
};

}  // namespace eventbuffer
