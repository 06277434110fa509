// QueryIndex: every occurrence the EventBuffer holds, by the Event's namespace
// (metadata.namespace), in list order (PositionLess, event_query.h), for pages of
// EventQuery and for lookups by Event name and revision. The buffer owns one; it is not
// per backend: it indexes the stored occurrences whichever backend serves them.
//
// Structure. One Namespace per metadata.namespace value, created on its first Add and
// dropped when its last occurrence is removed. Each holds
//   - its occurrences in list order in a vector of sorted blocks of at most
//     kBlockCapacity entries {time_ms, EventRef} (16 bytes each). Appends in time order
//     go to the end of the last block (or open a new one); evictions of the oldest take
//     from the front of the first block (a moving head: nothing shifts); an out-of-order
//     insert or a removal elsewhere shifts entries within one block only (a full block is
//     split in two, a sparse one merged with its neighbour);
//   - a flat open-addressing table of the records, hashed by (Event name,
//     resourceVersion), for Find (8 bytes a slot, at most 3/4 full).
// OccurrenceTimeMs is computed once per occurrence, by Add, and kept in its entry.
//
// Thread safety: every method may be called from any number of threads at once. Locks:
//   - map_mu_ (shared) guards the namespace map. Add and Remove hold it shared around
//     their one insert or erase; List and Find hold it shared only to copy the namespace
//     pointers they need. It is taken exclusively only to create a namespace or to drop an
//     empty one.
//   - each Namespace has its own shared mutex. Add and Remove hold it exclusively for one
//     insert or erase (O(log n) search plus at most one block's shift). List holds it
//     shared for at most kScanChunk entries at a time, then releases it and resumes after
//     the last position it looked at; Find holds it shared for one lookup. A waiting
//     writer goes before readers that arrive after it, so a writer waits at most for the
//     readers already inside (one chunk each), however many readers keep coming.
// No lock is ever held across two namespaces, so a merge over all namespaces never stalls
// a writer for more than one short batch of one namespace. Lock order: map_mu_, then one
// Namespace mutex.
//
// Invariants (for each namespace, under its mutex):
//   - no block is empty; each is sorted strictly by position; every position in block i
//     is before every position in block i+1;
//   - entry.time_ms == OccurrenceTimeMs(*entry.ref), and no two entries share a position
//     (an identity is indexed at most once);
//   - the name table holds exactly the records of the entries;
//   - a namespace in the map has at least one entry, except between its creation by Add
//     and that Add's insert (both under map_mu_). A dropped namespace is never written
//     again, so a reader still holding it sees it empty.
// Records are held by EventRef: a page's items stay valid after their eviction.
//
// What a page sees: not a snapshot. Because positions are stable and each scan resumes
// strictly after the last position it looked at, a pagination (each page started after
// the previous page's last item) returns every occurrence held for the whole pagination
// exactly once, in list order; an occurrence added or removed meanwhile appears at most
// once.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "eventbuffer/event_query.h"
#include "eventbuffer/event_record.h"

namespace eventbuffer {

class QueryIndex {
 public:
  // Entries a block holds at most.
  static constexpr std::size_t kBlockCapacity = 256;
  // Entries a List scans under one shared hold of a namespace lock.
  static constexpr std::size_t kScanChunk = 4096;

  QueryIndex() = default;
  ~QueryIndex();
  QueryIndex(const QueryIndex&) = delete;
  QueryIndex& operator=(const QueryIndex&) = delete;

  // Indexes record under its Event namespace. Returns false (and changes nothing) when an
  // occurrence with the same identity (Event name, uid, resourceVersion) or the same
  // position is already indexed there. REQUIRES: record != nullptr.
  bool Add(const EventRef& record);

  // Removes the occurrence at record's position from record's Event namespace. Returns
  // false when none is indexed there.
  bool Remove(const EventRecord& record);
  // Removes the occurrence at position from namespace ns. Returns false when none is.
  bool Remove(std::string_view ns, const OccurrencePosition& position);

  // The page of query: matching occurrences after query.after, in list order, of one
  // namespace or merged over all; at most query.limit (0: all) of them; `more` is true
  // exactly when one more matching occurrence followed the last item when it was looked
  // for. query.match is called under a namespace's shared lock: it must be quick and must
  // not call into this index.
  EventPage List(const EventQuery& query) const;

  // The occurrence in namespace ns whose Event is named event_name at revision
  // resource_version, or null.
  EventRef Find(std::string_view ns, std::string_view event_name,
                std::string_view resource_version) const;

  // How much one namespace holds: occurrences and EventRecord::MemoryBytes of their records.
  struct NamespaceUsage {
    std::string ns;
    std::size_t events = 0;
    std::size_t bytes = 0;
  };
  // Every namespace with its usage. No order. O(namespaces); each namespace's lock is held
  // shared for one read.
  std::vector<NamespaceUsage> Usage() const;

  // The first occurrence in list order (the oldest) of namespace ns, or null when it holds
  // none. O(1) under the namespace's shared lock.
  EventRef Oldest(std::string_view ns) const;
  // The first occurrence in list order over all namespaces, or null. O(namespaces).
  EventRef Oldest() const;

  // Occurrences indexed.
  std::size_t size() const { return size_.load(std::memory_order_relaxed); }
  // Namespaces with at least one occurrence.
  std::size_t NamespaceCount() const;
  // Bytes of the index's own structures (blocks, tables, namespaces), not the records.
  std::size_t MemoryBytes() const;

  // Implementation details follow.
 private:
  struct Namespace;
  struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };

  bool RemoveAt(std::string_view ns, std::int64_t time_ms, std::string_view uid,
                std::string_view rv);
  // Drops namespace ns from the map if it is (still) empty.
  void DropIfEmpty(std::string_view ns);
  std::shared_ptr<Namespace> Lookup(std::string_view ns) const;

  mutable std::shared_mutex map_mu_;
  std::unordered_map<std::string, std::shared_ptr<Namespace>, StringHash, std::equal_to<>> map_;
  // Relaxed: a statistic, exact once writers are quiet.
  std::atomic<std::size_t> size_{0};
};

}  // namespace eventbuffer
