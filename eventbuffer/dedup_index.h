// DedupIndex: the identities (event uid, resourceVersion) of the occurrences a part of the
// buffer holds or recently evicted, so that a relist or reconnect that delivers the same
// occurrence again does not store it twice.
//
// An identity is kept as a 95-bit fingerprint instead of the ~50 bytes of text: the first of
// two independent 64-bit hashes of uid and resourceVersion (IdOf) whole, and the second
// folded to 31 bits. It lives in a flat open-addressing table of 16-byte slots kept at most
// 3/4 full, so an entry costs 21-43 bytes of table (16 / load factor). A false duplicate needs
// the 64-bit hashes of two different identities to collide and their folded hashes too:
// about n^2 / 2^96 for n identities in one index. (95 bits, not 96: the fingerprint word
// shares its top bit with the live flag so that the time keeps all 32 bits of its word.)
//
// Times are kept at seconds resolution: a slot stores its retention time rounded UP to the
// next whole second, as an unsigned 32-bit count of seconds since the Unix epoch (times
// before 1970 are stored as 0, times after 2106-02-07 as that second). Rounding up means a
// tombstone is never forgotten by the age cutoff before its exact time is past the cutoff
// (the buffer then refuses its occurrence as expired anyway), only up to 999 ms later. (A
// time past 2106 is stored lower than it is, so its tombstone could go early, but only
// under a cutoff past 2106 too.)
//
// Bounded by the buffer's retention: an entry is *live* while its occurrence is stored and
// becomes a *tombstone* when retention evicts it, so a later re-delivery stays a duplicate
// instead of coming back at the end of its key. Tombstones are forgotten once their time is
// older than the age cutoff (the buffer then refuses the occurrence as expired anyway) and,
// oldest first, once there are more than the tombstone cap. So the index never holds more
// than (stored occurrences + cap) entries. The EventBuffer keeps only tombstones here
// (AddTombstone): it finds the occurrences it stores by identity in its QueryIndex, which
// holds them anyway, so a stored occurrence costs no slot in this table.
//
// Thread safety: none. The EventBuffer owns one index per lock stripe and calls it only
// under that stripe's mutex.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <vector>

#include "eventbuffer/event_record.h"

namespace eventbuffer {

struct OccurrenceId {
  std::uint64_t h1 = 0;
  std::uint64_t h2 = 0;
  bool operator==(const OccurrenceId&) const = default;
};

// The two 64-bit hashes of record's (uid, resourceVersion); DedupIndex keeps 95 bits of them.
OccurrenceId IdOf(const EventRecord& record);

// The time retention uses for a record, in ms since the Unix epoch: OccurrenceTimeMs
// (event_query.h), the same clamped time the list order uses.
std::int64_t RecordTimeMs(const EventRecord& record);

class DedupIndex {
 public:
  DedupIndex() = default;
  DedupIndex(const DedupIndex&) = delete;
  DedupIndex& operator=(const DedupIndex&) = delete;

  // Records id as stored, with its retention time. Returns false (and changes nothing) when
  // id is already known, live or tombstone: the occurrence is a duplicate.
  bool Insert(OccurrenceId id, std::int64_t time_ms);
  // Turns a live id into a tombstone (its occurrence was evicted). No-op when unknown.
  void Evict(OccurrenceId id);
  // Records id as a tombstone with its retention time, as Insert then Evict would. No-op
  // when id is known already.
  void AddTombstone(OccurrenceId id, std::int64_t time_ms);
  // Forgets tombstones whose time is < cutoff_ms, at seconds resolution: whose stored time
  // (time_ms rounded up to a whole second, see above) is < cutoff_ms; then the oldest
  // tombstones beyond max_tombstones. Returns how many were forgotten.
  std::size_t PruneTombstones(std::int64_t cutoff_ms, std::size_t max_tombstones);

  bool Contains(OccurrenceId id) const;
  std::size_t size() const { return size_; }
  std::size_t tombstones() const { return tombstone_order_.size(); }
  // Bytes of the table (16 per slot) and the tombstone queue (12 per tombstone).
  std::size_t MemoryBytes() const;

 // Stored seconds for time_ms: rounded up, clamped to [0, 2^32 - 1].
  static std::uint32_t StoredSeconds(std::int64_t time_ms);

 private:
  // The 95 fingerprint bits an entry is known by: h1, and h2 folded to 31 bits. Never
  // {0, 0} (Normal), so that an empty slot is unambiguous.
  struct Key {
    std::uint64_t h1 = 0;
    std::uint32_t fp = 0;  // < 2^31
  };
  static Key Normal(OccurrenceId id) {
    // Fold h2 to 31 bits: its low bits xor its high bits. h2 is fully mixed (IdOf), so
    // any 31 of its bits would do; the xor keeps both halves of an arbitrary id in play.
    const std::uint64_t folded = id.h2 ^ (id.h2 >> 33);
    Key k{id.h1, static_cast<std::uint32_t>(folded & kFpMask)};
    if (k.h1 == 0 && k.fp == 0) k.fp = 1;
    return k;
  }
  static constexpr std::uint32_t kFpMask = 0x7fffffffu;
  static constexpr std::uint32_t kLiveBit = 0x80000000u;
  // Open addressing with linear probing over a power-of-two table of 16-byte slots: no
  // allocation per entry, four slots a cache line. tag holds the folded fingerprint in bits
  // 0..30 and the live flag in bit 31; secs the stored time (StoredSeconds). A slot with
  // h1 == 0 and tag == 0 is empty: a stored key is never {0, 0}, so an occupied slot has
  // h1 != 0 or a nonzero fingerprint whether live or a tombstone. Load factor is kept at or
  // below 3/4; erasure shifts the following cluster back (no deletion markers).
  struct Slot {
    std::uint64_t h1 = 0;
    std::uint32_t tag = 0;
    std::uint32_t secs = 0;
    std::uint32_t fp() const { return tag & kFpMask; }
    bool live() const { return (tag & kLiveBit) != 0; }
  };
  static_assert(sizeof(Slot) == 16);
  // A tombstone's key in eviction order, packed into 12 bytes.
  struct PackedKey {
    std::uint32_t h1_lo = 0, h1_hi = 0, fp = 0;
    static PackedKey Of(Key k) {
      return PackedKey{static_cast<std::uint32_t>(k.h1), static_cast<std::uint32_t>(k.h1 >> 32),
                       k.fp};
    }
    Key key() const { return Key{std::uint64_t{h1_hi} << 32 | h1_lo, fp}; }
  };
  static_assert(sizeof(PackedKey) == 12);
  static bool Empty(const Slot& s) { return s.h1 == 0 && s.tag == 0; }
  // Stores k (live, or a tombstone queued for pruning) unless it is known. Returns whether
  // it was stored.
  bool Place(Key k, std::int64_t time_ms, bool live);
  // Index of k's slot, or of the empty slot where it would go. REQUIRES: table not full.
  std::size_t Find(Key k) const;
  void EraseAt(std::size_t i);
  void Resize(std::size_t capacity);

  std::vector<Slot> slots_;
  std::size_t size_ = 0;
  // Tombstones in eviction order.
  std::deque<PackedKey> tombstone_order_;
};

}  // namespace eventbuffer
