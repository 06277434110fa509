// RevisionCache: the latest base record of recently seen Events, by uid, so that a decoder
// can build a new revision of an Event as a revision of its base (EventRecord::Builder::
// Build(previous)) and store only what changed.
//
// Direct-mapped by a hash of the uid: kSlots slots, a new Event takes its slot over. Each
// slot holds a reference to a full record, so up to kSlots records (and only full ones) may
// stay alive after the buffer evicted them, until their slot is reused; the buffer's
// record_bytes does not count them (docs/storage.md).
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
  static constexpr std::size_t kSlots = 8192;  // power of two

  RevisionCache() : slots_(std::make_unique<std::array<EventRef, kSlots>>()) {}

  // The base to build a new revision of uid against, or null.
  const EventRef& Lookup(std::string_view uid) const {
    const EventRef& r = (*slots_)[SlotOf(uid)];
    return r != nullptr && r->uid() == uid ? r : kNone;
  }
  // Remembers record as its Event's latest base when it is a full record (a revision's
  // base is already remembered, or was displaced by another Event).
  void Remember(const EventRef& record) {
    if (record->base() == nullptr) (*slots_)[SlotOf(record->uid())] = record;
  }

 private:
  static std::size_t SlotOf(std::string_view uid) { return segmented_detail::HashKey(uid) & (kSlots - 1); }
  static inline const EventRef kNone{};
  std::unique_ptr<std::array<EventRef, kSlots>> slots_;
};

}  // namespace eventbuffer
