#include "eventbuffer/dedup_index.h"

#include <functional>
#include <string_view>

#include "eventbuffer/event_query.h"
#include "eventbuffer/gray_flag.h"

namespace eventbuffer {

namespace {

// splitmix64's finaliser: spreads the bits of std::hash, which may be weak on some inputs.
std::uint64_t Mix(std::uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

}  // namespace

OccurrenceId IdOf(const EventRecord& record) {
  const std::string_view uid = record.uid();
  const std::string_view rv = record.resource_version();
  // h1: FNV-1a over uid, a separator byte that never occurs in either, and rv.
  std::uint64_t h1 = Fnv1a64(uid);
  h1 ^= 0xffu;
  h1 *= kFnv1a64Prime;
  for (const char c : rv) {
    h1 ^= static_cast<std::uint8_t>(c);
    h1 *= kFnv1a64Prime;
  }
  // h2: an unrelated hash family (libstdc++'s murmur-based std::hash), mixed.
  const std::uint64_t h2 = Mix(std::hash<std::string_view>{}(uid)*0x9e3779b97f4a7c15ULL +
                               std::hash<std::string_view>{}(rv) + rv.size());
  return OccurrenceId{h1, h2};
}

std::int64_t RecordTimeMs(const EventRecord& record) { return OccurrenceTimeMs(record); }

std::size_t DedupIndex::Find(OccurrenceId id) const {
  const std::size_t mask = slots_.size() - 1;
  // h2 is fully mixed (splitmix64 finaliser), so its low bits make a good table index.
  for (std::size_t i = id.h2 & mask;; i = (i + 1) & mask) {
    const Slot& s = slots_[i];
    if (Empty(s) || (s.h1 == id.h1 && s.h2 == id.h2)) return i;
  }
}

void DedupIndex::Resize(std::size_t capacity) {
  std::vector<Slot> old;
  old.swap(slots_);
  slots_.assign(capacity, Slot{});
  for (const Slot& s : old) {
    if (!Empty(s)) slots_[Find(OccurrenceId{s.h1, s.h2})] = s;
  }
}

void DedupIndex::EraseAt(std::size_t i) {
  // Backward-shift deletion: move later members of the probe cluster into the hole when
  // their home slot is not after the hole (cyclically), so every lookup still finds them.
  const std::size_t mask = slots_.size() - 1;
  std::size_t hole = i;
  for (std::size_t j = (i + 1) & mask; !Empty(slots_[j]); j = (j + 1) & mask) {
    const std::size_t home = slots_[j].h2 & mask;
    const bool movable = hole <= j ? (home <= hole || home > j) : (home <= hole && home > j);
    if (movable) {
      slots_[hole] = slots_[j];
      hole = j;
    }
  }
  slots_[hole] = Slot{};
  --size_;
}

bool DedupIndex::Contains(OccurrenceId id) const {
  if (slots_.empty()) return false;
  return !Empty(slots_[Find(Normal(id))]);
}

bool DedupIndex::Insert(OccurrenceId id, std::int64_t time_ms) {
  id = Normal(id);
  if ((size_ + 1) * 2 > slots_.size()) Resize(slots_.empty() ? 16 : slots_.size() * 2);
  Slot& s = slots_[Find(id)];
  if (!Empty(s)) return false;
  s = Slot{id.h1, id.h2, time_ms, 1};
  ++size_;
  return true;
}

void DedupIndex::Evict(OccurrenceId id) {
  if (slots_.empty()) return;
  id = Normal(id);
  Slot& s = slots_[Find(id)];
  if (Empty(s) || !s.live) return;
  s.live = 0;
  tombstone_order_.push_back(id);
}

void DedupIndex::Erase(OccurrenceId id) {
  if (slots_.empty()) return;
  id = Normal(id);
  const std::size_t i = Find(id);
  if (!Empty(slots_[i]) && slots_[i].live) EraseAt(i);
}

std::size_t DedupIndex::PruneTombstones(std::int64_t cutoff_ms, std::size_t max_tombstones) {
  std::size_t forgotten = 0;
  auto forget = [&](OccurrenceId id) {
    const std::size_t i = Find(id);
    if (!Empty(slots_[i]) && !slots_[i].live) {
      EraseAt(i);
      ++forgotten;
    }
  };
  // Age: keep, in order, the tombstones not yet past the cutoff.
  std::deque<OccurrenceId> kept;
  for (const OccurrenceId& id : tombstone_order_) {
    const Slot& s = slots_[Find(id)];
    if (Empty(s) || s.live) continue;
    if (s.time_ms < cutoff_ms) {
      forget(id);
    } else {
      kept.push_back(id);
    }
  }
  tombstone_order_.swap(kept);
  // Count: the oldest evictions beyond the cap.
  while (tombstone_order_.size() > max_tombstones) {
    forget(tombstone_order_.front());
    tombstone_order_.pop_front();
  }
  // Give memory back when the table is mostly empty.
  if (slots_.size() > 64 && size_ * 8 < slots_.size()) {
    std::size_t cap = 16;
    while (cap < size_ * 4) cap *= 2;
    Resize(cap);
  }
  return forgotten;
}

std::size_t DedupIndex::MemoryBytes() const {
  return slots_.capacity() * sizeof(Slot) + tombstone_order_.size() * sizeof(OccurrenceId);
}

}  // namespace eventbuffer
