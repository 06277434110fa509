// DedupIndex: the identities (event uid, resourceVersion) of the occurrences a part of the
// buffer holds or recently evicted, so that a relist or reconnect that delivers the same
// occurrence again does not store it twice.
//
// An identity is kept as a 128-bit fingerprint (two independent 64-bit hashes of uid and
// resourceVersion), 16 bytes instead of the ~50 bytes of text; a false duplicate needs
// both hashes of two different identities to collide.
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
#include <unordered_map>

#include "eventbuffer/event_record.h"

namespace eventbuffer {

struct OccurrenceId {
  std::uint64_t h1 = 0;
  std::uint64_t h2 = 0;
  bool operator==(const OccurrenceId&) const = default;
};

// The fingerprint of record's (uid, resourceVersion).
OccurrenceId IdOf(const EventRecord& record);

// The time retention uses for a record, in ms since the Unix epoch: last_seen_unix_ms, or
// receive_unix_ns / 1e6 when that is 0.
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

  bool Contains(OccurrenceId id) const { return entries_.count(id) != 0; }
  std::size_t size() const { return entries_.size(); }
  std::size_t tombstones() const { return tombstones_; }

 private:
  struct IdHash {
    std::size_t operator()(const OccurrenceId& id) const { return id.h1 ^ (id.h2 * 31); }
  };
  struct Entry {
    std::int64_t time_ms;
    bool live;
  };

  std::unordered_map<OccurrenceId, Entry, IdHash> entries_;
  // Tombstones in eviction order; may hold ids already forgotten by the age prune.
  std::deque<OccurrenceId> tombstone_order_;
  std::size_t tombstones_ = 0;
};

}  // namespace eventbuffer
