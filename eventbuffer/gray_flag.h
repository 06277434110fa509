// GrayFlag: which backend a key is written to and read from during the storage migration.
//
// Modes, from the old backend to the new one:
//   legacy  write the legacy MutexSliceMap only, read it;
//   shadow  write both backends, read legacy, verify the atomic backend against it;
//   canary  write both backends, read the atomic SegmentedSliceMap for rolloutPercent of the
//           keys (legacy for the rest), verify;
//   atomic  write the atomic backend only, read it.
//
// Key buckets. A key's bucket is KeyBucket(key) = Fnv1a64(key bytes) mod 1,000,000, where
// Fnv1a64 is the 64-bit FNV-1a hash (offset basis 0xcbf29ce484222325, prime 0x100000001b3)
// over the key's bytes exactly as stored ("namespace/kind/name", UTF-8, no terminator).
// In canary mode a key reads from the atomic backend iff bucket < round(rolloutPercent *
// 10,000): 100 % covers all 1,000,000 buckets and the step is 0.0001 %. The hash has no
// seed and does not depend on the process, platform or version, so every replica and
// every release puts a key in the same bucket, and raising the percentage only adds keys.
// Changing this function would silently move keys between backends: the tests pin it.
//
// GrayFlag is the one place that routes: EventBuffer keeps one per lock stripe and asks it
// which backends a write goes to (Writes), which backend serves a read (ReadBackend) and
// which backend is the reference for retention (Primary). Nothing else decides.
//
// Thread safety: GrayFlag is an immutable value; copy it freely.
#pragma once

#include <cstdint>
#include <string_view>

#include "eventbuffer/experiment.h"

namespace eventbuffer {

inline constexpr std::uint64_t kFnv1a64OffsetBasis = 0xcbf29ce484222325ULL;
inline constexpr std::uint64_t kFnv1a64Prime = 0x100000001b3ULL;
// Number of rollout buckets: one bucket is 0.0001 % of the keys.
inline constexpr std::uint32_t kRolloutBuckets = 1'000'000;

// The 64-bit FNV-1a hash of bytes.
constexpr std::uint64_t Fnv1a64(std::string_view bytes) noexcept {
  std::uint64_t h = kFnv1a64OffsetBasis;
  for (const char c : bytes) {
    h ^= static_cast<std::uint8_t>(c);
    h *= kFnv1a64Prime;
  }
  return h;
}

// The rollout bucket of a key hash, in [0, kRolloutBuckets).
constexpr std::uint32_t BucketOfHash(std::uint64_t key_hash) noexcept {
  return static_cast<std::uint32_t>(key_hash % kRolloutBuckets);
}

// The rollout bucket of a key, in [0, kRolloutBuckets).
constexpr std::uint32_t KeyBucket(std::string_view key) noexcept {
  return BucketOfHash(Fnv1a64(key));
}

// Parses "legacy" | "shadow" | "canary" | "atomic" (exact, lower case). Returns false and
// leaves *mode unchanged for anything else.
bool ParseGrayMode(std::string_view text, GrayMode* mode);

// Whether a mode writes the legacy / the atomic backend, and whether it writes both.
constexpr bool WritesLegacy(GrayMode m) noexcept { return m != GrayMode::kAtomic; }
constexpr bool WritesAtomic(GrayMode m) noexcept { return m != GrayMode::kLegacy; }
constexpr bool IsDualWrite(GrayMode m) noexcept {
  return m == GrayMode::kShadow || m == GrayMode::kCanary;
}

// Number of buckets [0, n) that a rollout percentage covers: round(percent * 10,000),
// clamped to [0, kRolloutBuckets]. NaN counts as 0.
std::uint32_t RolloutThreshold(double rollout_percent) noexcept;

class GrayFlag {
 public:
  GrayFlag() = default;
  // rollout_percent is clamped to [0, 100]; it only matters in canary mode.
  GrayFlag(GrayMode mode, double rollout_percent);

  GrayMode mode() const { return mode_; }
  double rollout_percent() const { return rollout_percent_; }
  // Buckets [0, threshold()) read from the atomic backend in canary mode.
  std::uint32_t threshold() const { return threshold_; }

  bool writes_legacy() const { return WritesLegacy(mode_); }
  bool writes_atomic() const { return WritesAtomic(mode_); }
  bool dual_write() const { return IsDualWrite(mode_); }
  // Whether this mode writes backend b.
  bool Writes(Backend b) const { return b == Backend::kLegacy ? writes_legacy() : writes_atomic(); }
  // The backend every write of this mode includes, and the reference for retention: legacy
  // while it is written, else atomic. The other written backend (in dual write) holds the
  // same sequence per key, so dropping from it what was dropped from this one keeps both
  // equal.
  Backend Primary() const { return writes_legacy() ? Backend::kLegacy : Backend::kAtomic; }

  // The backend that serves reads of a key in the given bucket (BucketOfHash of its
  // Fnv1a64 hash: callers that already hashed the key pass the bucket).
  Backend ReadBackendForBucket(std::uint32_t bucket) const;
  // The backend that serves reads of key.
  Backend ReadBackend(std::string_view key) const { return ReadBackendForBucket(KeyBucket(key)); }

 private:
  GrayMode mode_ = GrayMode::kShadow;
  double rollout_percent_ = 0;
  std::uint32_t threshold_ = 0;
};

}  // namespace eventbuffer
