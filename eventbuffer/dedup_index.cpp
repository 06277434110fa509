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

std::uint32_t DedupIndex::StoredSeconds(std::int64_t time_ms) {
  if (time_ms <= 0) return 0;
  // Rounded up: the stored time is never earlier than time_ms (see the header).
  const std::int64_t secs = time_ms / 1000 + (time_ms % 1000 != 0 ? 1 : 0);
  return secs >= std::int64_t{UINT32_MAX} ? UINT32_MAX : static_cast<std::uint32_t>(secs);
}

std::size_t DedupIndex::Find(Key k) const {
  const std::size_t mask = slots_.size() - 1;
  // The folded fingerprint comes from h2, which is fully mixed (splitmix64 finaliser), so
  // its low bits make a good table index.
  for (std::size_t i = k.fp & mask;; i = (i + 1) & mask) {
    const Slot& s = slots_[i];
    if (Empty(s) || (s.h1 == k.h1 && s.fp == k.fp)) return i;
  }
}

void DedupIndex::Resize(std::size_t capacity) {
  std::vector<Slot> old;
  old.swap(slots_);
  slots_.assign(capacity, Slot{});
  for (const Slot& s : old) {
    if (!Empty(s)) slots_[Find(Key{s.h1, s.fp})] = s;
  }
}

void DedupIndex::EraseAt(std::size_t i) {
  // Backward-shift deletion: move later members of the probe cluster into the hole when
  // their home slot is not after the hole (cyclically), so every lookup still finds them.
  const std::size_t mask = slots_.size() - 1;
  std::size_t hole = i;
  for (std::size_t j = (i + 1) & mask; !Empty(slots_[j]); j = (j + 1) & mask) {
    const std::size_t home = slots_[j].fp & mask;
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

bool DedupIndex::AddTombstone(OccurrenceId id, std::int64_t time_ms) {
  const Key k = Normal(id);
  // Grow before the load would pass 3/4.
  if ((size_ + 1) * 4 > slots_.size() * 3) Resize(slots_.empty() ? 16 : slots_.size() * 2);
  Slot& s = slots_[Find(k)];
  if (!Empty(s)) return false;
  s = Slot{k.h1, k.fp, StoredSeconds(time_ms)};
  ++size_;
  tombstone_order_.push_back(PackedKey::Of(k));
  return true;
}

std::size_t DedupIndex::PruneTombstones(std::int64_t cutoff_ms, std::size_t max_tombstones) {
  if (tombstone_order_.empty()) return 0;
  std::size_t forgotten = 0;
  // Every queued key has its slot: a key is queued when it is placed and leaves the queue
  // when its slot is erased.
  auto forget = [&](Key k) {
    EraseAt(Find(k));
    ++forgotten;
  };
  // Age: keep, in order, the tombstones not yet past the cutoff (at seconds resolution).
  std::deque<PackedKey> kept;
  for (const PackedKey& packed : tombstone_order_) {
    const Key k = packed.key();
    if (std::int64_t{slots_[Find(k)].secs} * 1000 < cutoff_ms) {
      forget(k);
    } else {
      kept.push_back(packed);
    }
  }
  tombstone_order_.swap(kept);
  // Count: the oldest evictions beyond the cap.
  while (tombstone_order_.size() > max_tombstones) {
    forget(tombstone_order_.front().key());
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
  return slots_.capacity() * sizeof(Slot) + tombstone_order_.size() * sizeof(PackedKey);
}

}  // namespace eventbuffer
