#include "eventbuffer/query_index.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <functional>
#include <limits>
#include <mutex>
#include <thread>
#include <tuple>
#include <utility>

namespace eventbuffer {

namespace {

using Field = EventRecord::Field;

struct Entry {
  std::int64_t time_ms = 0;
  EventRef ref;
};

// A position as views into a record or into the caller's strings.
struct Pos {
  std::int64_t time_ms;
  std::string_view uid, rv;
};

int Compare(const Entry& e, const Pos& p) {
  if (e.time_ms != p.time_ms) return e.time_ms < p.time_ms ? -1 : 1;
  return ComparePositions(e.time_ms, e.ref->uid(), e.ref->resource_version(), p.time_ms, p.uid,
                          p.rv);
}
bool EntryLess(const Entry& a, const Entry& b) {
  if (a.time_ms != b.time_ms) return a.time_ms < b.time_ms;
  return ComparePositions(a.time_ms, a.ref->uid(), a.ref->resource_version(), b.time_ms,
                          b.ref->uid(), b.ref->resource_version()) < 0;
}

// Hash of (Event name, resourceVersion): 8 bytes per multiply, then a final mix so that
// the top bits (which pick the home slot) depend on every input bit.
std::uint64_t MixWord(std::uint64_t h, std::uint64_t v) {
  h = (h ^ v) * 0x9e3779b97f4a7c15ULL;
  return h ^ (h >> 29);
}
std::uint64_t HashBytes(std::uint64_t h, std::string_view s) {
  const char* p = s.data();
  std::size_t n = s.size();
  for (; n >= 8; p += 8, n -= 8) {
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    h = MixWord(h, v);
  }
  std::uint64_t v = 0;
  if (n > 0) std::memcpy(&v, p, n);
  return MixWord(h, v ^ (std::uint64_t{n} << 56));
}
std::uint64_t NameHash(std::string_view name, std::string_view rv) {
  std::uint64_t h = HashBytes(HashBytes(0x243f6a8885a308d3ULL, name), rv);
  h *= 0xff51afd7ed558ccdULL;
  return h ^ (h >> 32);
}
std::uint64_t NameHash(const EventRecord& r) {
  return NameHash(r.Get(Field::kName), r.resource_version());
}

// Where a scan resumes: strictly after this position. Holds the record it points into (or
// views the caller's OccurrencePosition, which outlives the List call).
struct Cursor {
  bool set = false;
  Pos pos{0, {}, {}};
  EventRef hold;

  void After(const Entry& e) {
    hold = e.ref;
    pos = Pos{e.time_ms, hold->uid(), hold->resource_version()};
    set = true;
  }
};

// Open-addressing set of records keyed by (Event name, resourceVersion): linear probing
// over a power-of-two table, at most 3/4 full, erasure by backward shift (no markers). The
// home slot is taken from the hash's top bits. A slot is the record's address with a
// 16-bit tag from the hash in the address's unused top 16 bits (user-space addresses on
// x86-64 and AArch64 Linux fit in 48 bits): probes compare the tag before touching a
// record. In a table of up to 2^16 slots the tag is the hash's top 16 bits, so a slot's
// home follows from its tag alone and moving and rehashing never read records. In a
// larger one the top bits are the home's own (neighbouring slots would share them and
// every probe would read its record), so the tag is taken from bits 32-47 instead, and
// moving and rehashing read the record to find the home (and retag). Should an address
// ever use its top bits, the table drops the tags for good (correct, just slower).
class NameTable {
 public:
  static std::uint64_t Hash(const EventRecord& r) { return NameHash(r); }

  const EventRecord* Find(std::string_view name, std::string_view rv) const {
    return FindIf(NameHash(name, rv), [&](const EventRecord& o) {
      return o.resource_version() == rv && o.Get(Field::kName) == name;
    });
  }

  // Whether a record with r's identity (Event name, uid, resourceVersion) is in the table.
  // hash: Hash(r).
  bool ContainsIdentity(const EventRecord& r, std::uint64_t hash) const {
    const std::string_view rv = r.resource_version();
    return FindIf(hash, [&](const EventRecord& o) {  // uid and name read only on a tag match
             return o.resource_version() == rv && o.uid() == r.uid() &&
                    o.Get(Field::kName) == r.Get(Field::kName);
           }) != nullptr;
  }

  void Insert(const EventRecord* r, std::uint64_t hash) {
    if ((count_ + 1) * 4 > slots_.size() * 3) Rehash(std::max<std::size_t>(8, slots_.size() * 2));
    const auto address = reinterpret_cast<std::uintptr_t>(r);
    if (tagged_ && (address & ~kAddressMask) != 0) DropTags();
    std::size_t i = hash >> shift_;
    while (slots_[i] != 0) i = (i + 1) & mask();
    slots_[i] = tagged_ ? address | TagOf(hash) : address;
    ++count_;
  }

  void Erase(const EventRecord* r, std::uint64_t hash) {
    if (slots_.empty()) return;
    std::size_t i = hash >> shift_;
    while (RecordOf(slots_[i]) != r) {
      if (slots_[i] == 0) return;
      i = (i + 1) & mask();
    }
    // Backward shift: move each following slot of the cluster into the hole unless its
    // home lies cyclically in (hole, its place].
    for (std::size_t j = (i + 1) & mask(); slots_[j] != 0; j = (j + 1) & mask()) {
      const std::size_t home = HomeOf(slots_[j]);
      const bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
      if (!stays) {
        slots_[i] = slots_[j];
        i = j;
      }
    }
    slots_[i] = 0;
    --count_;
    if (slots_.size() > 64 && count_ * 8 < slots_.size()) Rehash(slots_.size() / 2);
  }

  std::size_t MemoryBytes() const { return slots_.capacity() * sizeof(std::uintptr_t); }

 private:
  static constexpr std::uintptr_t kAddressMask = (std::uintptr_t{1} << 48) - 1;
  // Whether a table of `shift` (home = hash >> shift) takes its tags from the top bits.
  static bool TopTags(int shift) { return shift >= 48; }
  // The tag of hash in this table: its top 16 bits, or bits 32-47 in a table over 2^16.
  std::uintptr_t TagOf(std::uint64_t hash) const {
    return static_cast<std::uintptr_t>(TopTags(shift_) ? hash : hash << 16) & ~kAddressMask;
  }
  std::size_t mask() const { return slots_.size() - 1; }
  // The first record on hash's probe sequence for which match(record) holds, or null.
  template <class Match>
  const EventRecord* FindIf(std::uint64_t hash, Match&& match) const {
    if (slots_.empty()) return nullptr;
    const std::uintptr_t tag = TagOf(hash);
    for (std::size_t i = hash >> shift_;; i = (i + 1) & mask()) {
      const std::uintptr_t slot = slots_[i];
      if (slot == 0) return nullptr;
      if (tagged_ && (slot & ~kAddressMask) != tag) continue;
      const EventRecord* r = RecordOf(slot);
      if (match(*r)) return r;
    }
  }
  const EventRecord* RecordOf(std::uintptr_t slot) const {
    return reinterpret_cast<const EventRecord*>(tagged_ ? slot & kAddressMask : slot);
  }
  std::size_t HomeOf(std::uintptr_t slot) const {
    if (tagged_ && TopTags(shift_)) return slot >> shift_;  // the tag holds the bits needed
    return Hash(*RecordOf(slot)) >> shift_;
  }
  void DropTags() {
    for (std::uintptr_t& slot : slots_) slot &= kAddressMask;
    tagged_ = false;
  }
  void Rehash(std::size_t capacity) {
    std::vector<std::uintptr_t> old(capacity, 0);
    old.swap(slots_);
    const bool top_tags_before = TopTags(shift_);
    shift_ = 64 - std::countr_zero(capacity);
    // The old tags give the new homes when both tables take top tags; otherwise each
    // record is read for its hash, which gives its home and its tag in the new table.
    const bool from_tags = tagged_ && top_tags_before && TopTags(shift_);
    for (std::uintptr_t slot : old) {
      if (slot == 0) continue;
      std::size_t i;
      if (from_tags) {
        i = slot >> shift_;
      } else {
        const EventRecord* r = RecordOf(slot);
        const std::uint64_t hash = Hash(*r);
        i = hash >> shift_;
        if (tagged_) slot = reinterpret_cast<std::uintptr_t>(r) | TagOf(hash);
      }
      while (slots_[i] != 0) i = (i + 1) & mask();
      slots_[i] = slot;
    }
  }

  std::vector<std::uintptr_t> slots_;  // 0: empty
  std::size_t count_ = 0;
  int shift_ = 64;  // home slot = hash >> shift_
  bool tagged_ = true;
};

// A shared mutex that lets a waiting writer in before new readers. glibc's rwlock (behind
// std::shared_mutex) prefers readers: readers paging through one namespace in overlapping
// chunks could keep its writer out indefinitely. Here a reader arriving while a writer
// waits yields until the writer has the lock, so a writer waits at most for the readers
// already inside, each of which holds the lock for one chunk at most.
class WriterFirstMutex {
 public:
  void lock() {
    // Relaxed: only a hint for arriving readers; the mutex itself orders the data.
    waiting_.fetch_add(1, std::memory_order_relaxed);
    mu_.lock();
    waiting_.fetch_sub(1, std::memory_order_relaxed);
  }
  void unlock() { mu_.unlock(); }
  void lock_shared() {
    while (waiting_.load(std::memory_order_relaxed) > 0) std::this_thread::yield();
    mu_.lock_shared();
  }
  void unlock_shared() { mu_.unlock_shared(); }

 private:
  std::shared_mutex mu_;
  std::atomic<int> waiting_{0};
};

// A sorted run of entries: the live ones are v[head, v.size()). v never holds more than
// kBlockCapacity slots; the slots before head are empty (their refs released).
struct Block {
  std::vector<Entry> v;
  std::size_t head = 0;

  std::size_t size() const { return v.size() - head; }
  const Entry& front() const { return v[head]; }
  const Entry& back() const { return v.back(); }
  // Makes room for `extra` more entries. A small block grows by doubling; from
  // kWholeFrom entries on, straight to a whole block, so a block is reallocated a few
  // times while small and then never again (the partial allocations a growing block
  // frees would stay resident between the records allocated around them).
  void Reserve(std::size_t extra) {
    constexpr std::size_t kWholeFrom = 32;
    const std::size_t need = v.size() + extra;
    if (need <= v.capacity()) return;
    v.reserve(need > kWholeFrom ? QueryIndex::kBlockCapacity : std::max(need, 2 * v.capacity()));
  }
  // Drops the empty slots before head.
  void Compact() {
    if (head == 0) return;
    v.erase(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(head));
    head = 0;
  }
};

}  // namespace

struct QueryIndex::Namespace {
  mutable WriterFirstMutex mu;
  std::vector<std::unique_ptr<Block>> blocks;
  NameTable names;
  std::size_t count = 0;
  std::size_t bytes = 0;  // EventRecord::MemoryBytes of the entries' records

  // The first entry at or after p (strict = false) or after p (strict = true), as (block,
  // slot); (blocks.size(), 0) when there is none.
  std::pair<std::size_t, std::size_t> Seek(const Pos& p, bool strict) const {
    const auto before = [&](const Entry& e) {
      const int c = Compare(e, p);
      return strict ? c <= 0 : c < 0;
    };
    // First block whose last entry is not before the target: the target is in it.
    std::size_t lo = 0, hi = blocks.size();
    while (lo < hi) {
      const std::size_t mid = (lo + hi) / 2;
      if (before(blocks[mid]->back())) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    if (lo == blocks.size()) return {lo, 0};
    const Block& b = *blocks[lo];
    std::size_t l = b.head, h = b.v.size();
    while (l < h) {
      const std::size_t mid = (l + h) / 2;
      if (before(b.v[mid])) {
        l = mid + 1;
      } else {
        h = mid;
      }
    }
    return {lo, l};
  }

  // Block bi is full: moves entries from it to a neighbour with room for two or more, half
  // of that room (the next block takes b's last entries at its front, or the previous one
  // b's first at its end), and updates (bi, i), the insertion point, to where it now is;
  // both blocks keep room, so the entry fits wherever it lands. Returns false (and
  // changes nothing) when neither neighbour has that room. Random inserts among the
  // newest entries (Events of the same second arrive in uid order, not position order)
  // then fill blocks to ~90 % instead of splitting them to half-full ones that are never
  // filled again.
  bool MakeRoom(std::size_t* bi, std::size_t* i) {
    Block* b = blocks[*bi].get();
    if (*bi + 1 < blocks.size() && blocks[*bi + 1]->size() + 2 <= kBlockCapacity) {
      Block* next = blocks[*bi + 1].get();
      next->Compact();
      const std::size_t k = (kBlockCapacity - next->v.size()) / 2;
      const std::size_t keep = kBlockCapacity - k;
      next->Reserve(k);
      next->v.insert(next->v.begin(), std::make_move_iterator(b->v.begin() + keep),
                     std::make_move_iterator(b->v.end()));
      b->v.resize(keep);
      if (*i > keep) {  // among the moved ones (i == keep: at b's end, which has room)
        ++*bi;
        *i -= keep;
      }
      return true;
    }
    if (*bi > 0 && blocks[*bi - 1]->v.size() + 2 <= kBlockCapacity) {
      Block* prev = blocks[*bi - 1].get();
      const std::size_t k = (kBlockCapacity - prev->v.size()) / 2;
      const std::size_t old_prev = prev->v.size();
      prev->Reserve(k);
      prev->v.insert(prev->v.end(), std::make_move_iterator(b->v.begin()),
                     std::make_move_iterator(b->v.begin() + static_cast<std::ptrdiff_t>(k)));
      b->v.erase(b->v.begin(), b->v.begin() + static_cast<std::ptrdiff_t>(k));
      if (*i < k) {  // among the moved ones (i == k: at b's front, which has room)
        --*bi;
        *i += old_prev;
      } else {
        *i -= k;
      }
      return true;
    }
    return false;
  }

  bool Insert(Entry e) {
    const EventRecord* record = e.ref.get();
    const std::uint64_t hash = NameTable::Hash(*record);
    // The same occurrence delivered again (whatever its time says): not indexed twice. This
    // is the buffer's duplicate check for stored occurrences (EventBuffer::Append).
    if (names.ContainsIdentity(*record, hash)) return false;
    const Pos p{e.time_ms, record->uid(), record->resource_version()};
    if (blocks.empty() || Compare(blocks.back()->back(), p) < 0) {
      // In order (the common case): append to the last block, or open a new one.
      if (blocks.empty() || blocks.back()->v.size() == kBlockCapacity) {
        blocks.push_back(std::make_unique<Block>());
      }
      blocks.back()->Reserve(1);
      blocks.back()->v.push_back(std::move(e));
    } else {
      auto [bi, i] = Seek(p, false);
      Block* b = blocks[bi].get();
      if (Compare(b->v[i], p) == 0) return false;  // this position is indexed already
      if (b->v.size() == kBlockCapacity && b->head == 0) {
        if (MakeRoom(&bi, &i)) {
          b = blocks[bi].get();
        } else {
          // Its neighbours are full too: move the upper half to a new block after it.
          auto upper = std::make_unique<Block>();
          const std::size_t mid = kBlockCapacity / 2;
          upper->v.reserve(kBlockCapacity);
          upper->v.assign(std::make_move_iterator(b->v.begin() + mid),
                          std::make_move_iterator(b->v.end()));
          b->v.resize(mid);
          blocks.insert(blocks.begin() + static_cast<std::ptrdiff_t>(bi) + 1, std::move(upper));
          if (i > mid) {
            b = blocks[bi + 1].get();
            i -= mid;
          }  // i == mid: at the end of the lower half, which has room now
        }
      }
      if (b->v.size() < kBlockCapacity) {
        b->Reserve(1);
        b->v.insert(b->v.begin() + static_cast<std::ptrdiff_t>(i), std::move(e));
      } else {
        // No room at the end but free slots before head: shift the front part down.
        std::move(b->v.begin() + static_cast<std::ptrdiff_t>(b->head),
                  b->v.begin() + static_cast<std::ptrdiff_t>(i),
                  b->v.begin() + static_cast<std::ptrdiff_t>(b->head) - 1);
        --b->head;
        b->v[i - 1] = std::move(e);
      }
    }
    names.Insert(record, hash);
    ++count;
    bytes += record->MemoryBytes();
    return true;
  }

  bool Erase(const Pos& p) {
    if (blocks.empty()) return false;
    std::size_t bi = 0, i = blocks[0]->head;
    // Eviction takes the oldest first: try the front before searching.
    if (Compare(blocks[0]->front(), p) != 0) {
      std::tie(bi, i) = Seek(p, false);
      if (bi == blocks.size() || Compare(blocks[bi]->v[i], p) != 0) return false;
    }
    Block& b = *blocks[bi];
    names.Erase(b.v[i].ref.get(), NameTable::Hash(*b.v[i].ref));
    --count;
    bytes -= b.v[i].ref->MemoryBytes();
    if (i == b.head) {
      b.v[i] = Entry{};
      ++b.head;
    } else if (i + 1 == b.v.size()) {
      b.v.pop_back();
    } else if (i - b.head < b.v.size() - i) {
      std::move_backward(b.v.begin() + static_cast<std::ptrdiff_t>(b.head),
                         b.v.begin() + static_cast<std::ptrdiff_t>(i),
                         b.v.begin() + static_cast<std::ptrdiff_t>(i) + 1);
      b.v[b.head] = Entry{};
      ++b.head;
    } else {
      b.v.erase(b.v.begin() + static_cast<std::ptrdiff_t>(i));
    }
    if (b.size() == 0) {
      blocks.erase(blocks.begin() + static_cast<std::ptrdiff_t>(bi));
    } else if (b.size() < kBlockCapacity / 4 && bi + 1 < blocks.size() &&
               b.size() + blocks[bi + 1]->size() <= kBlockCapacity / 2) {
      // Sparse after removals in the middle: merge with the next block.
      Block& next = *blocks[bi + 1];
      b.Compact();
      b.Reserve(next.size());
      b.v.insert(b.v.end(),
                 std::make_move_iterator(next.v.begin() + static_cast<std::ptrdiff_t>(next.head)),
                 std::make_move_iterator(next.v.end()));
      blocks.erase(blocks.begin() + static_cast<std::ptrdiff_t>(bi) + 1);
    }
    return true;
  }

  // Appends to *out the entries after cursor that match, until *out holds `want`, the end
  // is reached, or kScanChunk entries were looked at; moves the cursor to the last entry
  // looked at. Returns true when the end was reached. REQUIRES: mu held (shared).
  bool CollectLocked(Cursor* cursor, const std::function<bool(const EventRecord&)>& match,
                     std::size_t want, std::vector<Entry>* out) const {
    std::size_t bi = 0, i = blocks.empty() ? 0 : blocks[0]->head;
    if (cursor->set) std::tie(bi, i) = Seek(cursor->pos, true);
    const Entry* last = nullptr;
    bool end = false;
    for (std::size_t scanned = 0;; ++scanned) {
      if (bi == blocks.size()) {
        end = true;
        break;
      }
      if (scanned == kScanChunk || out->size() >= want) break;
      const Block& b = *blocks[bi];
      const Entry& e = b.v[i];
      last = &e;
      if (!match || match(*e.ref)) out->push_back(e);
      if (++i == b.v.size()) {
        ++bi;
        i = bi < blocks.size() ? blocks[bi]->head : 0;
      }
    }
    if (last != nullptr) cursor->After(*last);
    return end;
  }

  // As CollectLocked, taking the lock.
  bool Collect(Cursor* cursor, const std::function<bool(const EventRecord&)>& match,
               std::size_t want, std::vector<Entry>* out) const {
    std::shared_lock<WriterFirstMutex> lock(mu);
    return CollectLocked(cursor, match, want, out);
  }

  std::size_t MemoryBytes() const {
    std::size_t bytes =
        sizeof(Namespace) + blocks.capacity() * sizeof(blocks[0]) + names.MemoryBytes();
    for (const auto& b : blocks) bytes += sizeof(Block) + b->v.capacity() * sizeof(Entry);
    return bytes;
  }
};

QueryIndex::~QueryIndex() = default;

std::shared_ptr<QueryIndex::Namespace> QueryIndex::Lookup(std::string_view ns) const {
  std::shared_lock<std::shared_mutex> lock(map_mu_);
  const auto it = map_.find(ns);
  return it == map_.end() ? nullptr : it->second;
}

bool QueryIndex::Add(const EventRef& record) {
  Entry e{OccurrenceTimeMs(*record), record};
  const std::string_view ns = record->Get(Field::kNamespace);
  bool added;
  {
    std::shared_lock<std::shared_mutex> map_lock(map_mu_);
    const auto it = map_.find(ns);
    if (it != map_.end()) {
      Namespace& n = *it->second;
      std::unique_lock<WriterFirstMutex> lock(n.mu);
      added = n.Insert(std::move(e));
      if (added) size_.fetch_add(1, std::memory_order_relaxed);
      return added;
    }
  }
  // First occurrence of this namespace (or it was dropped meanwhile): create it under the
  // exclusive map lock, so no DropIfEmpty can run between creation and insert.
  std::unique_lock<std::shared_mutex> map_lock(map_mu_);
  auto& slot = map_[std::string(ns)];
  if (!slot) slot = std::make_shared<Namespace>();
  std::unique_lock<WriterFirstMutex> lock(slot->mu);
  added = slot->Insert(std::move(e));
  if (added) size_.fetch_add(1, std::memory_order_relaxed);
  return added;
}

bool QueryIndex::RemoveAt(std::string_view ns, std::int64_t time_ms, std::string_view uid,
                          std::string_view rv) {
  bool now_empty = false;
  {
    std::shared_lock<std::shared_mutex> map_lock(map_mu_);
    const auto it = map_.find(ns);
    if (it == map_.end()) return false;
    Namespace& n = *it->second;
    std::unique_lock<WriterFirstMutex> lock(n.mu);
    if (!n.Erase(Pos{time_ms, uid, rv})) return false;
    now_empty = n.count == 0;
  }
  size_.fetch_sub(1, std::memory_order_relaxed);
  if (now_empty) DropIfEmpty(ns);
  return true;
}

bool QueryIndex::Remove(const EventRecord& record) {
  return RemoveAt(record.Get(Field::kNamespace), OccurrenceTimeMs(record), record.uid(),
                  record.resource_version());
}

bool QueryIndex::Remove(std::string_view ns, const OccurrencePosition& position) {
  return RemoveAt(ns, position.time_ms, position.uid, position.resource_version);
}

void QueryIndex::DropIfEmpty(std::string_view ns) {
  std::unique_lock<std::shared_mutex> map_lock(map_mu_);
  const auto it = map_.find(ns);
  if (it == map_.end()) return;
  {
    // Writers hold map_mu_ while they write, so none is inside this namespace now; the
    // lock orders this read after the last one's writes.
    std::unique_lock<WriterFirstMutex> lock(it->second->mu);
    if (it->second->count != 0) return;
  }
  map_.erase(it);
}

EventPage QueryIndex::List(const EventQuery& query) const {
  EventPage page;
  // Collect one more than the limit to tell whether more follow.
  // (A limit of SIZE_MAX is as good as none: no overflow.)
  constexpr std::size_t kAll = std::numeric_limits<std::size_t>::max();
  const std::size_t want = query.limit == 0 || query.limit == kAll ? kAll : query.limit + 1;
  Cursor start;
  if (query.after) {
    start.set = true;
    start.pos = Pos{query.after->time_ms, query.after->uid, query.after->resource_version};
  }
  std::vector<Entry> got;

  if (query.ns) {
    const std::shared_ptr<Namespace> n = Lookup(*query.ns);
    if (n == nullptr) return page;
    Cursor cursor = start;
    while (!n->Collect(&cursor, query.match, want, &got) && got.size() < want) {
    }
  } else {
    // k-way merge: each namespace is read in batches of matching entries (each batch under
    // one short shared hold), the heads merged by position. A namespace's batch size
    // starts near its share of the page and doubles on each refill.
    std::vector<std::shared_ptr<Namespace>> spaces;
    {
      std::shared_lock<std::shared_mutex> lock(map_mu_);
      spaces.reserve(map_.size());
      for (const auto& [name, n] : map_) spaces.push_back(n);
    }
    if (spaces.empty()) return page;
    constexpr std::size_t kMinBatch = 8, kMaxBatch = 1024;
    const std::size_t first_batch = std::clamp<std::size_t>(
        2 * std::min(want, kMaxBatch) / spaces.size(), kMinBatch, kMaxBatch);
    struct Stream {
      const Namespace* ns;
      Cursor cursor;
      std::vector<Entry> buf;
      std::size_t pos = 0;
      std::size_t batch;
      bool end = false;
    };
    std::vector<Stream> streams;
    streams.reserve(spaces.size());
    const auto refill = [&](Stream& s) {
      s.buf.clear();
      s.pos = 0;
      while (s.buf.empty() && !s.end)
        s.end = s.ns->Collect(&s.cursor, query.match, s.batch, &s.buf);
      s.batch = std::min(s.batch * 2, kMaxBatch);
      return !s.buf.empty();
    };
    std::vector<std::size_t> heap;  // indexes of streams with a head, min-heap by head
    const auto later = [&](std::size_t a, std::size_t b) {
      return EntryLess(streams[b].buf[streams[b].pos], streams[a].buf[streams[a].pos]);
    };
    for (const auto& n : spaces) {
      streams.push_back(Stream{n.get(), start, {}, 0, first_batch, false});
      if (refill(streams.back())) heap.push_back(streams.size() - 1);
    }
    std::make_heap(heap.begin(), heap.end(), later);
    while (!heap.empty() && got.size() < want) {
      std::pop_heap(heap.begin(), heap.end(), later);
      Stream& s = streams[heap.back()];
      got.push_back(std::move(s.buf[s.pos]));
      if (++s.pos < s.buf.size() || refill(s)) {
        std::push_heap(heap.begin(), heap.end(), later);
      } else {
        heap.pop_back();
      }
    }
  }

  if (want != kAll && got.size() > query.limit) {
    page.more = true;
    got.resize(query.limit);
  }
  page.items.reserve(got.size());
  for (Entry& e : got) page.items.push_back(std::move(e.ref));
  return page;
}

EventRef QueryIndex::Find(std::string_view ns, std::string_view event_name,
                          std::string_view resource_version) const {
  const std::shared_ptr<Namespace> n = Lookup(ns);
  if (n == nullptr) return nullptr;
  std::shared_lock<WriterFirstMutex> lock(n->mu);
  const EventRecord* r = n->names.Find(event_name, resource_version);
  if (r == nullptr) return nullptr;
  // The table holds the record; its entry holds the EventRef to hand out.
  const auto [bi, i] = n->Seek(Pos{OccurrenceTimeMs(*r), r->uid(), r->resource_version()}, false);
  if (bi == n->blocks.size() || n->blocks[bi]->v[i].ref.get() != r) return nullptr;
  return n->blocks[bi]->v[i].ref;
}

std::vector<QueryIndex::NamespaceUsage> QueryIndex::Usage() const {
  std::vector<std::pair<std::string, std::shared_ptr<Namespace>>> spaces;
  {
    std::shared_lock<std::shared_mutex> lock(map_mu_);
    spaces.reserve(map_.size());
    for (const auto& [name, n] : map_) spaces.emplace_back(name, n);
  }
  std::vector<NamespaceUsage> out;
  out.reserve(spaces.size());
  for (auto& [name, n] : spaces) {
    std::shared_lock<WriterFirstMutex> lock(n->mu);
    if (n->count == 0) continue;
    out.push_back(NamespaceUsage{std::move(name), n->count, n->bytes});
  }
  return out;
}

EventRef QueryIndex::Oldest(std::string_view ns) const {
  const std::shared_ptr<Namespace> n = Lookup(ns);
  if (n == nullptr) return nullptr;
  std::shared_lock<WriterFirstMutex> lock(n->mu);
  if (n->blocks.empty()) return nullptr;
  return n->blocks.front()->front().ref;
}

EventRef QueryIndex::Oldest() const {
  std::vector<std::shared_ptr<Namespace>> spaces;
  {
    std::shared_lock<std::shared_mutex> lock(map_mu_);
    spaces.reserve(map_.size());
    for (const auto& [name, n] : map_) spaces.push_back(n);
  }
  Entry best;
  for (const auto& n : spaces) {
    std::shared_lock<WriterFirstMutex> lock(n->mu);
    if (n->blocks.empty()) continue;
    const Entry& e = n->blocks.front()->front();
    if (best.ref == nullptr || EntryLess(e, best)) best = e;
  }
  return best.ref;
}

std::size_t QueryIndex::NamespaceCount() const {
  std::shared_lock<std::shared_mutex> lock(map_mu_);
  return map_.size();
}

std::size_t QueryIndex::MemoryBytes() const {
  std::vector<std::shared_ptr<Namespace>> spaces;
  std::size_t bytes = sizeof(QueryIndex);
  {
    std::shared_lock<std::shared_mutex> lock(map_mu_);
    bytes += map_.bucket_count() * sizeof(void*);
    for (const auto& [name, n] : map_) {
      // Node: key, value and the hash-chain pointer, roughly.
      bytes += sizeof(std::string) + name.capacity() + sizeof(n) + 2 * sizeof(void*);
      spaces.push_back(n);
    }
  }
  for (const auto& n : spaces) {
    std::shared_lock<WriterFirstMutex> lock(n->mu);
    bytes += n->MemoryBytes();
  }
  return bytes;
}

}  // namespace eventbuffer
