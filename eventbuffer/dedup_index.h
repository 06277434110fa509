// DedupIndex: the identities (event uid, resourceVersion) of the occurrences a part of the
// buffer holds or recently evicted, so that a relist or reconnect that delivers the same
// occurrence again does not store it twice.
//
// An identity is kept as a 128-bit fingerprint (two independent 64-bit hashes of uid and
// resourceVersion) instead of the ~50 bytes of text, in a flat open-addressing table (32
// bytes a slot, at most half full); a false duplicate needs both hashes of two different
// identities to collide.
//
// Bounded by the buffer's retention: an entry is *live* while its occurrence is stored and
// becomes a *tombstone* when retention evicts it, so a later re-delivery stays a duplicate
// instead of coming back at the end of its key. Tombstones are forgotten once their time is
// older than the age cutoff (the buffer then refuses the occurrence as expired anyway) and,
// oldest first, once there are more than the tombstone cap. So the index never holds more
// than (stored occurrences + cap) entries.
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

// The fingerprint of record's (uid, resourceVersion).
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
  // Forgets a live id altogether (its store was undone). No-op when unknown.
  void Erase(OccurrenceId id);
  // Forgets tombstones whose time is < cutoff_ms; then the oldest tombstones beyond
  // max_tombstones. Returns how many were forgotten.
  std::size_t PruneTombstones(std::int64_t cutoff_ms, std::size_t max_tombstones);

  bool Contains(OccurrenceId id) const;
  std::size_t size() const { return size_; }
  std::size_t tombstones() const { return tombstone_order_.size(); }
  // Bytes of the table and the tombstone queue.
  std::size_t MemoryBytes() const;

 private:
  // Open addressing with linear probing over a power-of-two table of 32-byte slots: no
  // allocation per entry, one cache line per lookup in the common case. A slot with
  // h1 == h2 == 0 is empty (an id that hashes to that is stored as {0, 1}). Load factor is
  // kept at or below 1/2; erasure shifts the following cluster back (no deletion markers).
  struct Slot {
    std::uint64_t h1 = 0, h2 = 0;
    std::int64_t time_ms = 0;
    std::uint32_t live = 0;
  };
  static OccurrenceId Normal(OccurrenceId id) {
    if (id.h1 == 0 && id.h2 == 0) id.h2 = 1;
    return id;
  }
  static bool Empty(const Slot& s) { return s.h1 == 0 && s.h2 == 0; }
  // Index of id's slot, or of the empty slot where it would go. REQUIRES: table not full.
  std::size_t Find(OccurrenceId id) const;
  void EraseAt(std::size_t i);
  void Resize(std::size_t capacity);

  std::vector<Slot> slots_;
  std::size_t size_ = 0;
  // Tombstones in eviction order.
  std::deque<OccurrenceId> tombstone_order_;
};

}  // namespace eventbuffer
