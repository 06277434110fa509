// RevisionCache: recent records to build new records against, so that a record stores
// only what differs from one already held (EventRecord::Builder::Build(previous)):
//   - by Event uid: the first kept record of each recent Event, for its next revisions
//     (count++, a new resourceVersion and lastTimestamp: the rest is shared);
//   - by involved object uid: a recent full record about each object, for a new Event
//     about the same object (its involvedObject, source and reporting fields are shared).
//
// Two direct-mapped tables of Size::slots slots each, indexed by a hash of the uid; a newer
// record takes its slot over. Each slot holds a reference, so records may stay alive after
// the buffer evicted them, until their slot is reused; the buffer's record_bytes does not
// count them. Bounded: only records storing at most kMaxRememberedBytes, and
// Size::max_total_bytes in all (docs/storage.md). SizeFor sizes both to the buffer's
// retention, so that a buffer holding more Events keeps more of them at hand.
//
// Thread safety: none; one per decoding thread.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "eventbuffer/event_record.h"
#include "eventbuffer/segmented/key_hash.h"

namespace eventbuffer {

class RevisionCache {
 public:
  struct Size {
    // Per table, a power of two (SizeFor; the constructor rounds up).
    std::size_t slots = kMinSlots;
    // The MemoryBytes of the records remembered, at most: a record that would go over is
    // not remembered, so that what the cache may keep alive after the buffer evicted it
    // stays bounded.
    std::size_t max_total_bytes = kMinTotalBytes;
  };
  // A direct-mapped table finds fewer Events and objects once those with Events in flight
  // near its size: one slot per 8 occurrences the buffer may hold (max_events), at least
  // kMinSlots (16 bytes of slots per 8 held occurrences for both tables). The records it
  // remembers: an eighth of the record budget (max_bytes), between kMinTotalBytes and
  // kMaxTotalBytes; and no more slots than that fills with records of kBytesPerSlot (more
  // would stay empty). On the e2e bench, 1,000,000 held occurrences (the default retention:
  // 131,072 slots, 64 MiB) take about 11 % less memory than with 32,768 slots and 16 MiB
  // (docs/storage.md).
  static constexpr std::size_t kMinSlots = 32768;
  static constexpr std::size_t kBytesPerSlot = 256;
  static constexpr std::size_t kMinTotalBytes = std::size_t{16} << 20;
  static constexpr std::size_t kMaxTotalBytes = std::size_t{256} << 20;
  static Size SizeFor(std::size_t max_events, std::size_t max_bytes) {
    const std::size_t total = std::clamp(max_bytes / 8, kMinTotalBytes, kMaxTotalBytes);
    const std::size_t fillable = std::bit_floor(total / (2 * kBytesPerSlot));
    const std::size_t wanted = max_events / 8 + (max_events % 8 != 0);
    std::size_t slots = kMinSlots;
    while (slots < fillable && slots < wanted) slots *= 2;
    return Size{slots, total};
  }
  // Records storing more than this are not remembered: a base is kept alive by every
  // record sharing it, and a huge one (a 1 MiB message the buffer will truncate) must not
  // outlive its own eviction that way, nor be pinned here.
  static constexpr std::size_t kMaxRememberedBytes = 4 * 1024;

  RevisionCache() : RevisionCache(Size()) {}
  explicit RevisionCache(Size size)
      : mask_(std::bit_ceil(std::max<std::size_t>(size.slots, 1)) - 1),
        max_total_bytes_(size.max_total_bytes),
        events_(std::make_unique<EventRef[]>(mask_ + 1)),
        objects_(std::make_unique<EventRef[]>(mask_ + 1)) {}

  std::size_t slots() const { return mask_ + 1; }
  std::size_t max_total_bytes() const { return max_total_bytes_; }

  // The record to build a new record of Event uid about object involved_uid against: the
  // Event's own when it was seen recently, else one about the same object, else null.
  const EventRef& Lookup(std::string_view uid, std::string_view involved_uid = {}) const {
    const EventRef& e = events_[SlotOf(uid)];
    if (e != nullptr && e->uid() == uid) return e;
    if (involved_uid.empty()) return kNone;
    const EventRef& o = objects_[SlotOf(involved_uid)];
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
      Put(&events_[SlotOf(record->uid())], record);
    }
    if (base == nullptr) {
      const std::string_view object = record->Get(EventRecord::Field::kInvolvedUid);
      if (!object.empty()) Put(&objects_[SlotOf(object)], record);
    }
  }
  // MemoryBytes of the records remembered (a record in both tables counted twice).
  std::size_t bytes() const { return bytes_; }

 private:
  std::size_t SlotOf(std::string_view uid) const {
    return segmented_detail::HashKey(uid) & mask_;
  }
  void Put(EventRef* slot, const EventRef& record) {
    const std::size_t old = *slot ? (*slot)->MemoryBytes() : 0;
    if (bytes_ - old + record->MemoryBytes() > max_total_bytes_) return;
    bytes_ = bytes_ - old + record->MemoryBytes();
    *slot = record;
  }
  static inline const EventRef kNone{};
  std::size_t mask_;
  std::size_t max_total_bytes_;
  std::unique_ptr<EventRef[]> events_, objects_;
  std::size_t bytes_ = 0;
};

}  // namespace eventbuffer
