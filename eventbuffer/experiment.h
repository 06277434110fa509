// The vocabulary of the storage experiment (github/scientist's words for the migration
// from the legacy MutexSliceMap to the atomic SegmentedSliceMap): the two backends, the
// gray-release modes, what the verifier can find different, and a verification's result.
// The flag (gray_flag.h), the configuration (buffer_config.h), the verifier, the buffer and
// its observer all speak it; it depends on nothing.
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
    case GrayMode::kLegacy:
      return "legacy";
    case GrayMode::kShadow:
      return "shadow";
    case GrayMode::kCanary:
      return "canary";
    case GrayMode::kAtomic:
      return "atomic";
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
    case MismatchKind::kMissing:
      return "missing";
    case MismatchKind::kExtra:
      return "extra";
    case MismatchKind::kDuplicate:
      return "duplicate";
    case MismatchKind::kCorrupt:
      return "corrupt";
    case MismatchKind::kOrder:
      return "order";
  }
  return "unknown";
}

enum class VerifyResult : std::uint8_t { kMatch = 0, kMismatch = 1, kSkipped = 2 };
inline constexpr std::size_t kVerifyResultCount = 3;
inline constexpr std::string_view VerifyResultName(VerifyResult r) {
  switch (r) {
    case VerifyResult::kMatch:
      return "match";
    case VerifyResult::kMismatch:
      return "mismatch";
    case VerifyResult::kSkipped:
      return "skipped";
  }
  return "unknown";
}

}  // namespace eventbuffer
