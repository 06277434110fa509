// BufferObserver: how the EventBuffer reports what it does, without knowing the metrics
// backend. metrics/ implements it; tests may record calls.
//
// Thread safety: called from any writer, reader or maintenance thread at once; an
// implementation must be thread-safe and cheap (no locks on OnAppend).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace eventbuffer {

enum class Backend : std::uint8_t { kLegacy = 0, kAtomic = 1 };
inline constexpr std::size_t kBackendCount = 2;
inline constexpr std::string_view BackendName(Backend b) {
  return b == Backend::kLegacy ? "legacy" : "atomic";
}

// Gray-release modes, from legacy-only to atomic-only.
enum class GrayMode : std::uint8_t { kLegacy = 0, kShadow = 1, kCanary = 2, kAtomic = 3 };
inline constexpr std::size_t kGrayModeCount = 4;
inline constexpr std::string_view GrayModeName(GrayMode m) {
  switch (m) {
    case GrayMode::kLegacy: return "legacy";
    case GrayMode::kShadow: return "shadow";
    case GrayMode::kCanary: return "canary";
    case GrayMode::kAtomic: return "atomic";
  }
  return "unknown";
}

// What the verifier found different between the backends for one key.
enum class MismatchKind : std::uint8_t {
  kMissing = 0,    // an occurrence the legacy backend has and the atomic one lacks
  kExtra = 1,      // an occurrence the atomic backend has and the legacy one lacks
  kDuplicate = 2,  // an occurrence held more than once by one backend
  kCorrupt = 3,    // same identity, different content
  kOrder = 4,      // same occurrences, different per-key order where order is defined
};
inline constexpr std::size_t kMismatchKindCount = 5;
inline constexpr std::string_view MismatchKindName(MismatchKind k) {
  switch (k) {
    case MismatchKind::kMissing: return "missing";
    case MismatchKind::kExtra: return "extra";
    case MismatchKind::kDuplicate: return "duplicate";
    case MismatchKind::kCorrupt: return "corrupt";
    case MismatchKind::kOrder: return "order";
  }
  return "unknown";
}

enum class VerifyResult : std::uint8_t { kMatch = 0, kMismatch = 1, kSkipped = 2 };
inline constexpr std::size_t kVerifyResultCount = 3;
inline constexpr std::string_view VerifyResultName(VerifyResult r) {
  switch (r) {
    case VerifyResult::kMatch: return "match";
    case VerifyResult::kMismatch: return "mismatch";
    case VerifyResult::kSkipped: return "skipped";
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
  virtual void OnDedupHit() = 0;
  virtual void OnModeChange(GrayMode mode, double rollout_percent) = 0;
};

}  // namespace eventbuffer
