// RevisionCache: recent records to build new records against, so that a record stores
// only what differs from one already held (EventRecord::Builder::Build(previous)):
//   - by Event uid: the first kept record of each recent Event, for its next revisions
//     (count++, a new resourceVersion and lastTimestamp: the rest is shared);
//   - by involved object uid: a recent full record about each object, for a new Event
//     about the same object (its involvedObject, source and reporting fields are shared).
//
// Two direct-mapped tables of kSlots slots each, indexed by a hash of the uid; a newer
// record takes its slot over. Each slot holds a reference, so records may stay alive after
// the buffer evicted them, until their slot is reused; the buffer's record_bytes does not
// count them. Bounded: only records storing at most kMaxRememberedBytes, kMaxTotalBytes in
// all (docs/storage.md).
//
// Thread safety: none; one per decoding thread.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "eventbuffer/event_record.h"
#include "eventbuffer/segmented/key_hash.h"

namespace eventbuffer {

class RevisionCache {
 public:
  // Per table, power of two. A direct-mapped table finds fewer objects once the objects
  // with Events in flight near its size; 32,768 (512 KiB of slots for both tables) shares
  // 10 % more bytes than 8,192 on a stream over 25,000 objects (docs/storage.md).
  static constexpr std::size_t kSlots = 32768;
  // Records storing more than this are not remembered: a base is kept alive by every
  // record sharing it, and a huge one (a 1 MiB message the buffer will truncate) must not
  // outlive its own eviction that way, nor be pinned here.
  static constexpr std::size_t kMaxRememberedBytes = 4 * 1024;
  // And the records remembered are bounded in total (their MemoryBytes), so that what the
  // cache may keep alive after the buffer evicted it stays small: a record that would go
  // over is not remembered.
  static constexpr std::size_t kMaxTotalBytes = 16 << 20;

  RevisionCache() : events_(std::make_unique<Table>()), objects_(std::make_unique<Table>()) {}

  // The record to build a new record of Event uid about object involved_uid against: the
  // Event's own when it was seen recently, else one about the same object, else null.
  const EventRef& Lookup(std::string_view uid, std::string_view involved_uid = {}) const {
    const EventRef& e = (*events_)[SlotOf(uid)];
    if (e != nullptr && e->uid() == uid) return e;
    if (involved_uid.empty()) return kNone;
    const EventRef& o = (*objects_)[SlotOf(involved_uid)];
    if (o != nullptr && o->Get(EventRecord::Field::kInvolvedUid) == involved_uid) return o;
    return kNone;
  }
  // Remembers record: as its Event's first kept record unless it is a revision of one
  // (its base is of the same Event), and as its object's when it is a full record; not at
  // all when it stores more than kMaxRememberedBytes.
  void Remember(const EventRef& record) {
    if (record->StorageBytes() > kMaxRememberedBytes) return;
    const EventRecord* base = record->base();
    if (base == nullptr || base->uid() != record->uid()) {
      Put(&(*events_)[SlotOf(record->uid())], record);
    }
    if (base == nullptr) {
      const std::string_view object = record->Get(EventRecord::Field::kInvolvedUid);
      if (!object.empty()) Put(&(*objects_)[SlotOf(object)], record);
    }
  }
  // MemoryBytes of the records remembered (a record in both tables counted twice).
  std::size_t bytes() const { return bytes_; }

 private:
  using Table = std::array<EventRef, kSlots>;
  static std::size_t SlotOf(std::string_view uid) {
    return segmented_detail::HashKey(uid) & (kSlots - 1);
  }
  void Put(EventRef* slot, const EventRef& record) {
    const std::size_t old = *slot ? (*slot)->MemoryBytes() : 0;
    if (bytes_ - old + record->MemoryBytes() > kMaxTotalBytes) return;
    bytes_ = bytes_ - old + record->MemoryBytes();
    *slot = record;
  }
  static inline const EventRef kNone{};
  std::unique_ptr<Table> events_, objects_;
  std::size_t bytes_ = 0;
};

}  // namespace eventbuffer
