// DedupIndex: the identities (event uid, resourceVersion) of the occurrences a part of the
// buffer evicted lately (tombstones), so that a relist or reconnect that delivers an evicted
// occurrence again does not bring it back at the end of its key. The occurrences the buffer
// stores are found by identity in its QueryIndex, which holds them anyway: a stored
// occurrence costs no entry here.
//
// An identity is kept as a 96-bit fingerprint instead of the ~50 bytes of text: the first of
// two independent 64-bit hashes of uid and resourceVersion (IdOf) whole, and the second
// folded to 32 bits. It lives in a flat open-addressing table of 16-byte slots kept at most
// 3/4 full, so an entry costs 21-43 bytes of table (16 / load factor) and 12 bytes in the
// eviction-order queue. A false duplicate needs the 64-bit hashes of two different
// identities to collide and their folded hashes too: about n^2 / 2^97 for n identities in
// one index.
//
// Times are kept at seconds resolution: a slot stores its retention time rounded UP to the
// next whole second, as an unsigned 32-bit count of seconds since the Unix epoch (times
// before 1970 are stored as 0, times after 2106-02-07 as that second). Rounding up means a
// tombstone is never forgotten by the age cutoff before its exact time is past the cutoff
// (the buffer then refuses its occurrence as expired anyway), only up to 999 ms later. (A
// time past 2106 is stored lower than it is, so its tombstone could go early, but only
// under a cutoff past 2106 too.)
//
// Bounded by the buffer's retention: tombstones are forgotten once their time is older than
// the age cutoff (the buffer then refuses the occurrence as expired anyway) and, oldest
// eviction first, once there are more than the tombstone cap.
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

// The two 64-bit hashes of record's (uid, resourceVersion); DedupIndex keeps 96 bits of them.
OccurrenceId IdOf(const EventRecord& record);

// The time retention uses for a record, in ms since the Unix epoch: OccurrenceTimeMs
// (event_query.h), the same clamped time the list order uses.
std::int64_t RecordTimeMs(const EventRecord& record);

class DedupIndex {
 public:
  DedupIndex() = default;
  DedupIndex(const DedupIndex&) = delete;
  DedupIndex& operator=(const DedupIndex&) = delete;

  // Records id as a tombstone with its retention time (an occurrence with this identity
  // was evicted). Returns false, and changes nothing, when id is known already.
  bool AddTombstone(OccurrenceId id, std::int64_t time_ms);
  // Forgets tombstones whose time is < cutoff_ms, at seconds resolution: whose stored time
  // (time_ms rounded up to a whole second, see above) is < cutoff_ms; then the oldest
  // tombstones beyond max_tombstones. Returns how many were forgotten.
  std::size_t PruneTombstones(std::int64_t cutoff_ms, std::size_t max_tombstones);

  bool Contains(OccurrenceId id) const;
  // Tombstones held (each is in the table and in the eviction-order queue once).
  std::size_t size() const { return size_; }
  // Bytes of the table (16 per slot) and the tombstone queue (12 per tombstone).
  std::size_t MemoryBytes() const;

 // Stored seconds for time_ms: rounded up, clamped to [0, 2^32 - 1].
  static std::uint32_t StoredSeconds(std::int64_t time_ms);

 private:
  // The 96 fingerprint bits an entry is known by: h1, and h2 folded to 32 bits. Never
  // {0, 0} (Normal), so that an empty slot is unambiguous.
  struct Key {
    std::uint64_t h1 = 0;
    std::uint32_t fp = 0;
  };
  static Key Normal(OccurrenceId id) {
    // Fold h2 to 32 bits: its low half xor its high half. h2 is fully mixed (IdOf), so
    // any 32 of its bits would do; the xor keeps both halves of an arbitrary id in play.
    Key k{id.h1, static_cast<std::uint32_t>(id.h2 ^ (id.h2 >> 32))};
    if (k.h1 == 0 && k.fp == 0) k.fp = 1;
    return k;
  }
  // Open addressing with linear probing over a power-of-two table of 16-byte slots: no
  // allocation per entry, four slots a cache line. fp holds the folded fingerprint, secs
  // the stored time (StoredSeconds). A slot with h1 == 0 and fp == 0 is empty: a stored
  // key is never {0, 0}. Load factor is kept at or below 3/4; erasure shifts the following
  // cluster back (no deletion markers).
  struct Slot {
    std::uint64_t h1 = 0;
    std::uint32_t fp = 0;
    std::uint32_t secs = 0;
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
  static bool Empty(const Slot& s) { return s.h1 == 0 && s.fp == 0; }
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
