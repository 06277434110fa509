#include "eventbuffer/dedup_index.h"

#include <functional>
#include <string_view>

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

std::int64_t RecordTimeMs(const EventRecord& record) {
  const auto& n = record.numbers();
  return n.last_seen_unix_ms != 0 ? n.last_seen_unix_ms : n.receive_unix_ns / 1'000'000;
}

bool DedupIndex::Insert(OccurrenceId id, std::int64_t time_ms) {
  return entries_.try_emplace(id, Entry{time_ms, true}).second;
}

void DedupIndex::Evict(OccurrenceId id) {
  auto it = entries_.find(id);
  if (it == entries_.end() || !it->second.live) return;
  it->second.live = false;
  tombstone_order_.push_back(id);
  ++tombstones_;
}

void DedupIndex::Erase(OccurrenceId id) {
  auto it = entries_.find(id);
  if (it != entries_.end() && it->second.live) entries_.erase(it);
}

std::size_t DedupIndex::PruneTombstones(std::int64_t cutoff_ms, std::size_t max_tombstones) {
  std::size_t forgotten = 0;
  // Age: walk the eviction order and forget every old tombstone; the deque keeps the
  // entries that are still tombstones, in order.
  std::deque<OccurrenceId> kept;
  for (const OccurrenceId& id : tombstone_order_) {
    auto it = entries_.find(id);
    if (it == entries_.end() || it->second.live) continue;  // stale slot
    if (it->second.time_ms < cutoff_ms) {
      entries_.erase(it);
      ++forgotten;
    } else {
      kept.push_back(id);
    }
  }
  tombstone_order_.swap(kept);
  // Count: oldest evictions first.
  while (tombstone_order_.size() > max_tombstones) {
    auto it = entries_.find(tombstone_order_.front());
    tombstone_order_.pop_front();
    if (it != entries_.end() && !it->second.live) {
      entries_.erase(it);
      ++forgotten;
    }
  }
  tombstones_ = tombstone_order_.size();
  return forgotten;
}

}  // namespace eventbuffer
