// SegmentedSliceMap: the atomic storage backend. A lock-free hash trie of keys, each key
// holding an append-only chain of segments; memory is reclaimed with epochs.
//
// Thread safety
//   Every public method may be called from any number of threads at once, except the
//   destructor. Append, Read, ForEach, Count, Keys, KeyCount, Size and MemoryBytes take no
//   lock. DropFront, DropFrontWhile and EraseIfEmpty serialize with each other per key
//   (a striped mutex chosen by the key's hash) but never block appends or reads; they then
//   take the epoch domain's mutex briefly to hand over memory for reclamation.
//   Callbacks (ForEach's f, DropFrontWhile's pred) run inside an epoch critical section:
//   they may call this map, but a slow callback delays memory reclamation process-wide.
//
// Guarantees
//   - Per key, values have one total order (slot order), consistent with each writer's own
//     order: a writer's later append claims a later slot.
//   - A reader sees a contiguous run of that order that ends at a prefix of it: never a gap,
//     a torn value, or a value twice. Appends still in flight are not visible, and neither
//     is any value behind them, until they complete.
//   - No element is ever moved: a value stays in the slot where it was constructed until it
//     is destroyed.
//
// Structure
//   Index: a lock-free hash trie from key to Slice (TrieIndex, index.h), keyed by a 64-bit
//   hash (HashKey, key_hash.h). Nothing in it is ever rehashed or moved, so growth costs
//   O(1) per insert.
//   Key: a Slice (hash, tail pointer and tail word in its first line, key bytes inline,
//   head index, head segment). Slices and Inner nodes are carved from the same pre-faulted
//   pool as segments (32-byte size classes up to 256 bytes; longer keys' slices from
//   operator new), but from chunks of their own, so that the index stays packed and cached
//   apart from the values.
//   Values: a singly linked chain of Segments (8, 16, ... up to 1024 slots, allocated once,
//   never zeroed); segment g of a chain (its generation) has capacity min(8 << g, 1024).
//   The counts of the tail segment, the one appends go to, live in the slice's tail word,
//   next to the tail pointer, so that an append touches no segment header, only its slot:
//       bit 63: closed (the key was erased; no slot may be claimed anymore)
//       bit 62: big (the generation's capacity is 1024)
//       bits 40..61: generation of the segment the counts are for
//       bits 24..39: claimed (slots handed out; may exceed cap by losing claimers)
//       bits 12..23: readable (a prefix all of whose slots were committed)
//       bits 0..11: committed (slots whose value is fully constructed)
//   The tail pointer carries the generation's low 16 bits in its top bits. A writer loads
//   the tail, claims slot i with fetch_add on the tail word, and when the tail names the
//   word's generation and i < cap, constructs the value in the slot, then increments
//   committed with a release CAS; when that makes committed equal to the number of claimed
//   slots (no append in flight), the same CAS sets readable = committed. A reader loads
//   the word once (acquire): if committed == min(claimed, cap) it may read all those slots,
//   otherwise the readable prefix. The word costs no per-slot flag.
//   When a claim finds the tail segment full, the claimer (and any other that comes by:
//   every step can be completed by whoever sees it pending) links the next segment,
//   freezes the counts into the full segment's own word (same layout, claimed = cap), moves
//   the tail word to the next generation with one CAS, and then the tail pointer. An
//   append that claimed before the move and commits after it finds the generation changed
//   and commits into the frozen word instead.
//
// Invariants
//   I1. Slots [0, readable) and, when committed == min(claimed, cap), [0, committed) of a
//       segment hold fully constructed values, by its counts (the tail word for the tail
//       generation, the segment's own word before it); the readable prefix only grows.
//   I2. A segment gets a `next` only after it was full (a claim returned index >= cap), so
//       every segment but the last of a chain is completely claimed.
//   I3. head (logical index of the oldest held value) never passes the end of the readable
//       prefix, and head_seg is the segment containing head (or the one before, full and
//       completely dropped, while it is the last of the chain or the tail has not left
//       it); segments before head_seg have been retired.
//   I4. The tail pointer is at or before the tail word's segment (it moves after the word)
//       and only moves forward. A segment is retired only after the tail has moved past
//       it, so a retired segment is frozen.
//   I5. A closed key's tail segment holds no value and none is in flight; its slice is
//       marked dead and is unlinked from the index before being retired.
//   I6. Index nodes (Inner) are never removed while the map lives; Slices, Segments and
//       Collision lists are freed only through the epoch domain (EBR), so a pointer loaded
//       inside an EpochGuard stays valid until the guard ends. Because nothing is freed
//       under a live guard, no CAS on a pointer in this file can suffer ABA.
//   I7. A segment's frozen word is published (release) before the tail word leaves its
//       generation, and holds every commit the tail word had for it; later commits of
//       that generation go to the frozen word. So a reader that loads the tail word
//       (acquire) sees, for every earlier segment, at least the counts the tail word last
//       had for it, and successive reads of a key never show a shorter prefix.
//   Generations are compared modulo 2^22 (in readers) and 2^16 (the tail tag, against a
//   claim made right after loading it): mistaking one segment for another would take a
//   chain of 4 million segments, or 65,536 segments filled (over 67 million appends to
//   one key) between two adjacent instructions of one thread.
//
// Reclamation (why readers are safe)
//   Retention advances head (readers skip dropped slots from then on), unlinks fully
//   dropped segments from the chain, and hands them and the dropped slots of a partly
//   dropped segment to EpochDomain::Retire. A retired item runs only once every thread that
//   was inside a critical section at retirement has left it (epoch.h), i.e. once
//   no reader that could have loaded the old head or segment pointer is still running.
//   Dropped values are destroyed then (shared_ptr counts fall) and whole segments freed.
//   Reclamation runs at the end of each DropFront/DropFrontWhile/EraseIfEmpty and in
//   CollectGarbage().
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <mutex>
#include <new>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "eventbuffer/append_stats.h"
#include "eventbuffer/segmented/epoch.h"
#include "eventbuffer/segmented/index.h"
#include "eventbuffer/segmented/key_hash.h"
#include "eventbuffer/segmented/pool.h"
#include "eventbuffer/segmented/prefetch.h"

namespace eventbuffer {

template <class V>
class SegmentedSliceMap {
  static_assert(std::is_nothrow_move_constructible_v<V>,
                "a claimed slot must always be committed: V's move must not throw");

 public:
  struct Options {
    // The index root has 2^root_bits slots (8 bytes each). 16 suits up to a few million
    // keys; tests may use fewer bits to force deep tries.
    unsigned root_bits = 16;
    // Replaces the built-in key hash (HashKey); tests use a weak hash to force collisions.
    std::uint64_t (*hash)(std::string_view) = nullptr;
    // Whether a thread that keeps appending takes its segment memory in 2 MiB chunks faulted
    // in ahead by a background thread (chunks.h). false: small chunks only, no
    // background thread, at the cost of page faults on the appending threads.
    bool large_chunks = true;
  };

  SegmentedSliceMap() : SegmentedSliceMap(Options{}) {}
  explicit SegmentedSliceMap(Options options);
  // REQUIRES: no other thread uses the map anymore.
  ~SegmentedSliceMap();
  SegmentedSliceMap(const SegmentedSliceMap&) = delete;
  SegmentedSliceMap& operator=(const SegmentedSliceMap&) = delete;
  SegmentedSliceMap(SegmentedSliceMap&&) = delete;
  SegmentedSliceMap& operator=(SegmentedSliceMap&&) = delete;

  // Appends value under key (creating the key). Lock-free. If stats != nullptr, sets
  // stats->stall_ns to the time spent creating the key or allocating a new segment
  // (0 on the fast path, which reads no clock).
  void Append(std::string_view key, V value, AppendStats* stats = nullptr);

  // A copy of key's visible values in append order (see Guarantees); empty when absent.
  std::vector<V> Read(std::string_view key) const;

  // Calls f(const V&) for each visible value of key in append order (same guarantee as
  // Read). f runs inside an epoch critical section (see Thread safety).
  template <class F>
  void ForEach(std::string_view key, F&& f) const;

  // Values held under key: appends completed minus values dropped. Exact when no append
  // to key is in flight; otherwise it may also count appends still in flight (it goes by
  // slot position), and completed appends that a Read would not show yet because an
  // earlier append of the same key is still in flight. O(1).
  std::size_t Count(std::string_view key) const;

  // Keys currently holding at least one value (no particular order). Walks the index.
  std::vector<std::string> Keys() const;
  // Number of keys currently holding at least one value. Walks the index.
  std::size_t KeyCount() const;
  // Total values held (completed appends minus drops). O(stripes), no lock.
  std::size_t Size() const;

  // Drops the oldest n values of key (fewer if fewer are visible); returns how many.
  // The values are destroyed once no reader can see them anymore.
  std::size_t DropFront(std::string_view key, std::size_t n);
  // Drops the leading visible values of key while pred(const V&) is true; returns how many.
  template <class Pred>
  std::size_t DropFrontWhile(std::string_view key, Pred&& pred);
  // Removes key if it holds no values and no append to it is in flight; returns true if
  // removed. The key's memory is reclaimed once no reader can see it. A later Append of
  // the same key creates it afresh.
  bool EraseIfEmpty(std::string_view key);

  // Approximate bytes owned by the structure: index root and nodes, slices with their key
  // bytes, segments (header and all slots, used or not), counters. Not V's own heap. Memory
  // waiting for reclamation is still counted. O(stripes).
  std::size_t MemoryBytes() const;

  // Runs pending reclamation (values and segments dropped, keys erased) that no reader can
  // see anymore, process-wide. Called by retention; idle maintenance and tests may call it.
  void CollectGarbage() { domain_->TryReclaim(3); }

  // ---------------------------------------------------------------------------------------
  // Implementation details follow.
 private:
  using Clock = std::chrono::steady_clock;
  using EpochDomain = segmented_detail::EpochDomain;
  using EpochGuard = segmented_detail::EpochGuard;
  using EpochRecord = segmented_detail::EpochRecord;

  static constexpr std::uint32_t kFirstSegmentCap = 8;
  static constexpr std::uint32_t kMaxSegmentCap = 1024;  // 16-bit counters need <= 65535
  static constexpr std::size_t kStripes = 64;
  static constexpr std::size_t kDropLocks = 64;

  // Word layout (the slice's tail word and a segment's frozen word; see header comment).
  static constexpr std::uint64_t kCountMask = 0xfff;  // committed, readable: <= 1024
  static constexpr std::uint64_t kCommittedOne = 1;
  static constexpr std::uint64_t kReadableShift = 12;
  static constexpr std::uint64_t kClaimedShift = 24;
  static constexpr std::uint64_t kClaimedMask = 0xffff;
  static constexpr std::uint64_t kClaimOne = std::uint64_t{1} << kClaimedShift;
  static constexpr std::uint64_t kGenShift = 40;
  static constexpr std::uint64_t kGenMask = (std::uint64_t{1} << 22) - 1;
  static constexpr std::uint64_t kGenOne = std::uint64_t{1} << kGenShift;
  static constexpr std::uint64_t kBig = std::uint64_t{1} << 62;
  static constexpr std::uint64_t kClosed = std::uint64_t{1} << 63;
  static std::uint32_t Committed(std::uint64_t w) {
    return static_cast<std::uint32_t>(w & kCountMask);
  }
  static std::uint32_t ReadableField(std::uint64_t w) {
    return static_cast<std::uint32_t>((w >> kReadableShift) & kCountMask);
  }
  static std::uint32_t Claimed(std::uint64_t w) {
    return static_cast<std::uint32_t>((w >> kClaimedShift) & kClaimedMask);
  }
  static std::uint32_t Gen(std::uint64_t w) {
    return static_cast<std::uint32_t>((w >> kGenShift) & kGenMask);
  }
  // Capacity of the segment a tail word describes: it follows from the segment's position
  // (caps double from kFirstSegmentCap up to kMaxSegmentCap; kBig is set from then on).
  static std::uint32_t CapOf(std::uint64_t w) {
    return (w & kBig) != 0 ? kMaxSegmentCap : kFirstSegmentCap << Gen(w);
  }
  // The tail word of the segment after the one w describes: no slot claimed yet.
  static std::uint64_t NextGenWord(std::uint64_t w) {
    const std::uint64_t gen = (Gen(w) + 1) & kGenMask;
    const bool big = (w & kBig) != 0 || (kFirstSegmentCap << (Gen(w) + 1)) >= kMaxSegmentCap;
    return (gen << kGenShift) | (big ? kBig : 0);
  }
  // w with one more commit, for a segment of capacity cap. When that leaves no append in
  // flight (committed == min(claimed, cap)), every claimed slot is built, so all of them
  // become readable.
  static std::uint64_t WithCommit(std::uint64_t w, std::uint32_t cap) {
    const std::uint32_t committed = Committed(w) + 1;
    std::uint64_t nw = w + kCommittedOne;
    if (committed == std::min(Claimed(w), cap)) {
      nw = (nw & ~(kCountMask << kReadableShift)) | (std::uint64_t{committed} << kReadableShift);
    }
    return nw;
  }
  // The frozen word of a full segment whose last tail word was w: every slot claimed.
  static std::uint64_t FrozenWord(std::uint64_t w) {
    const std::uint64_t cap = CapOf(w);
    return (cap << kClaimedShift) | (w & ((kCountMask << kReadableShift) | kCountMask));
  }
  // The tail pointer carries the low 16 bits of its segment's generation in its top bits
  // (user-space addresses are below 2^48 on x86-64 and AArch64; NewSegment checks).
  static constexpr unsigned kTagShift = 48;
  static std::uintptr_t TagTail(const void* seg, std::uint32_t gen) {
    return reinterpret_cast<std::uintptr_t>(seg) |
           (static_cast<std::uintptr_t>(gen & 0xffff) << kTagShift);
  }
  static std::uint32_t TailGen16(std::uintptr_t t) {
    return static_cast<std::uint32_t>(t >> kTagShift);
  }
  // Whether the tail value t points at the segment of generation gen (by its tag).
  static bool TailIsGen(std::uintptr_t t, std::uint32_t gen) {
    return TailGen16(t) == (gen & 0xffff);
  }
  static constexpr std::uintptr_t kTailPtrMask = (std::uintptr_t{1} << kTagShift) - 1;

  struct Segment {
    Segment(std::uint64_t b, std::uint32_t c) : base(b), cap(c) {}
    std::atomic<std::uint64_t> word{0};
    std::atomic<Segment*> next{nullptr};
    const std::uint64_t base;  // logical index of slot 0 within the key
    const std::uint32_t cap;
    // Slots [0, destroyed) have been handed to reclamation (or destroyed). Written only by
    // droppers of this key (under its drop lock) and read by reclamation (after mu_).
    std::uint32_t destroyed = 0;
    static constexpr std::size_t SlotsOffset() {
      return (sizeof(Segment) + alignof(V) - 1) / alignof(V) * alignof(V);
    }
    V* slots() { return reinterpret_cast<V*>(reinterpret_cast<char*>(this) + SlotsOffset()); }
    const V* slots() const {
      return reinterpret_cast<const V*>(reinterpret_cast<const char*>(this) + SlotsOffset());
    }
    // Number of leading slots a reader may read given word w (I1).
    std::uint32_t Readable(std::uint64_t w) const {
      const std::uint32_t claimed = std::min(Claimed(w), cap);
      const std::uint32_t committed = Committed(w);
      return committed == claimed ? committed : ReadableField(w);
    }
    static constexpr std::size_t Bytes(std::uint32_t cap) {
      return SlotsOffset() + std::size_t{cap} * sizeof(V);
    }
    // The segment's position in its key's chain (0 for the first), from its base: caps
    // double from kFirstSegmentCap to kMaxSegmentCap, then stay.
    std::uint64_t Seq() const {
      constexpr std::uint64_t kBigBase =
          kMaxSegmentCap - kFirstSegmentCap;  // sum of the smaller caps
      if (base < kBigBase) {
        return static_cast<std::uint64_t>(std::bit_width(base / kFirstSegmentCap + 1)) - 1;
      }
      return std::countr_zero(kMaxSegmentCap / kFirstSegmentCap) +
             (base - kBigBase) / kMaxSegmentCap;
    }
    std::uint32_t Gen() const { return static_cast<std::uint32_t>(Seq() & kGenMask); }
  };
  static Segment* TailSeg(std::uintptr_t t) { return reinterpret_cast<Segment*>(t & kTailPtrMask); }
  static constexpr std::size_t kSegmentAlign =
      std::max({alignof(Segment), alignof(V), std::size_t{16}});
  static_assert(kSegmentAlign <= 4096, "segments are carved from page-aligned chunks");
  // Segment capacities are kFirstSegmentCap << k, k < kSegmentClasses (one pool class each).
  static constexpr std::size_t kSegmentClasses = 8;
  static_assert((kFirstSegmentCap << (kSegmentClasses - 1)) == kMaxSegmentCap);
  static std::size_t ClassOf(std::uint32_t cap) {
    std::size_t k = 0;
    while ((kFirstSegmentCap << k) < cap) ++k;
    return k;
  }
  // Pool block size of a segment of capacity cap (Segment::Bytes rounded to the alignment).
  static constexpr std::size_t BlockBytes(std::uint32_t cap) {
    return (Segment::Bytes(cap) + kSegmentAlign - 1) / kSegmentAlign * kSegmentAlign;
  }
  // Slices and Inner nodes come from the pool too (pre-faulted memory: a new key takes no
  // page fault either), in classes of kSmallStep-byte steps after the segment classes
  // (the pool's index classes: chunks of their own); larger ones (keys over ~200 bytes)
  // from operator new.
  static constexpr std::size_t kSmallStep = 32;
  static constexpr std::size_t kSmallClasses = 8;  // 32 ... 256 bytes
  static constexpr std::size_t kPoolClasses = kSegmentClasses + kSmallClasses;
  static constexpr std::size_t kNoClass = ~std::size_t{0};
  static constexpr std::size_t SmallClassOf(std::size_t bytes) {
    return bytes <= kSmallStep * kSmallClasses
               ? kSegmentClasses + (bytes + kSmallStep - 1) / kSmallStep - 1
               : kNoClass;
  }
  using Pool = segmented_detail::SegmentPool<kPoolClasses, kStripes>;
  struct PoolClasses {
    std::size_t bytes[kPoolClasses];
    constexpr PoolClasses() : bytes() {
      for (std::size_t k = 0; k < kSegmentClasses; ++k) {
        bytes[k] = BlockBytes(kFirstSegmentCap << k);
      }
      for (std::size_t j = 0; j < kSmallClasses; ++j) {
        bytes[kSegmentClasses + j] =
            ((j + 1) * kSmallStep + kSegmentAlign - 1) / kSegmentAlign * kSegmentAlign;
      }
    }
  };

  struct Slice {
    Slice(std::uint64_t h, std::uint32_t len, Segment* first)
        : hash(h), key_len(len), tail(TagTail(first, 0)), head_seg(first) {}
    const std::uint64_t hash;
    const std::uint32_t key_len;
    // Set once the key is closed (by the eraser, or by an appender that found it closed).
    std::atomic<bool> dead{false};
    std::atomic<std::uintptr_t> tail;  // tagged (TagTail); I4
    std::atomic<std::uint64_t> tw{0};  // the tail word; I1, I7
    std::atomic<Segment*> head_seg;    // I3; written only under the key's drop lock
    std::atomic<std::uint64_t> head{0};
    char* key_data() { return reinterpret_cast<char*>(this + 1); }
    std::string_view key() const {
      return std::string_view(reinterpret_cast<const char*>(this + 1), key_len);
    }
    static std::size_t Bytes(std::size_t len) { return sizeof(Slice) + len; }
  };

  using Index = segmented_detail::TrieIndex<Slice, SegmentedSliceMap>;
  friend Index;  // the index allocates and retires through the map (see index.h, Host)

  // What Find prefetches on its way down the index (TrieIndex::Find calls Arrive on
  // reaching a slice, HashMatched once its hash matches). With many keys each of these is
  // a cache miss, and they depend on each other: the slice's first line (hash, tail, tail
  // word), the rest of its key, the slot the append will claim. Asking for the key's second
  // line at once, and for that slot as soon as the hash matches, makes the misses overlap
  // instead of queueing. A prefetch never faults, and the pointers stay valid inside the
  // caller's EpochGuard (I6).
  struct ReadProbe {
    static void Arrive(const Slice* s) {
      __builtin_prefetch(reinterpret_cast<const char*>(s) + 64, 0, 3);
    }
    static void HashMatched(const Slice*) {}
  };
  // An append writes the first line (the claim), so it asks for it to be owned: where
  // another CPU appended to this key last, reading it first and then claiming would move
  // the line twice.
  struct AppendProbe {
    static void Arrive(const Slice* s) {
      segmented_detail::PrefetchForWrite(s);
      ReadProbe::Arrive(s);
    }
    static void HashMatched(const Slice* s) {
      // relaxed: only a prefetch address; Append loads both again with acquire.
      const std::uintptr_t t = s->tail.load(std::memory_order_relaxed);
      const std::uint64_t w = s->tw.load(std::memory_order_relaxed);
      const std::uint32_t next = Claimed(w);
      if (TailIsGen(t, Gen(w)) && next < CapOf(w)) {
        segmented_detail::PrefetchForWrite(TailSeg(t)->slots() + next);
      }
    }
  };

  struct alignas(64) Stripe {
    // Appends completed by the thread whose EpochRecord id is this stripe's index (written
    // with load+store by that thread only; see CountAppend).
    std::atomic<std::uint64_t> appended{0};
    std::atomic<std::int64_t> bytes{0};  // bytes allocated by threads mapped here
  };

  std::uint64_t Hash(std::string_view key) const {
    return hash_fn_ != nullptr ? hash_fn_(key) : segmented_detail::HashKey(key);
  }
  static std::int64_t Elapsed(Clock::time_point t0) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count();
  }
  static std::uint32_t GrowCap(std::uint32_t cap) { return std::min(cap * 2, kMaxSegmentCap); }

  Stripe& StripeOf(const EpochRecord* rec) const { return stripes_[rec->id % kStripes]; }
  void CountAppend(const EpochRecord* rec) const {
    if (rec->id < kStripes) {
      // relaxed load+store: this thread is the only writer of its stripe (ids are unique
      // among live threads and a reused record is handed over with release/acquire).
      // Commit (release) orders it before any drop of the value.
      std::atomic<std::uint64_t>& c = stripes_[rec->id].appended;
      c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    } else {
      shared_appended_.fetch_add(1, std::memory_order_relaxed);  // relaxed: as above
    }
  }
  void AddBytes(const EpochRecord* rec, std::int64_t n) const {
    StripeOf(rec).bytes.fetch_add(n, std::memory_order_relaxed);  // relaxed: statistics
  }
  void AddFreedBytes(std::int64_t n) {
    freed_bytes_.fetch_add(n, std::memory_order_relaxed);  // relaxed: statistics
  }

  Segment* NewSegment(std::uint64_t base, std::uint32_t cap, const EpochRecord* rec) {
    // From the map's pool (pre-faulted memory, see pool.h). Not zeroed: slots are
    // constructed one by one when claimed.
    void* mem = pool_.Allocate(ClassOf(cap), rec->id);
    // The tail pointer's tag needs the top 16 bits (see TagTail).
    if ((reinterpret_cast<std::uintptr_t>(mem) >> kTagShift) != 0) std::abort();
    AddBytes(rec, static_cast<std::int64_t>(Segment::Bytes(cap)));
    return ::new (mem) Segment(base, cap);
  }
  // Destroys the constructed, not yet destroyed values of seg and frees it. tw: the tail
  // word of seg's key if seg may still be the word's segment (nullptr: seg is frozen, or
  // was never published).
  void FreeSegment(Segment* seg, const std::uint64_t* tw = nullptr) {
    if constexpr (!std::is_trivially_destructible_v<V>) {
      const std::uint64_t w =
          tw != nullptr && seg->Gen() == Gen(*tw) ? *tw : seg->word.load(std::memory_order_relaxed);
      const std::uint32_t built = std::min(Committed(w), seg->cap);
      for (std::uint32_t i = seg->destroyed; i < built; ++i) seg->slots()[i].~V();
    }
    AddFreedBytes(static_cast<std::int64_t>(Segment::Bytes(seg->cap)));
    const std::uint32_t cap = seg->cap;
    seg->~Segment();
    pool_.Free(seg, ClassOf(cap));  // reused by later segments of this map
  }
  // A block of `bytes` for a Slice or an Inner node: from the pool if a class fits.
  void* AllocateSmall(std::size_t bytes, const EpochRecord* rec) {
    const std::size_t cls = SmallClassOf(bytes);
    return cls == kNoClass ? ::operator new(bytes) : pool_.Allocate(cls, rec->id);
  }
  void FreeSmall(void* p, std::size_t bytes) {
    const std::size_t cls = SmallClassOf(bytes);
    if (cls == kNoClass) {
      ::operator delete(p);
    } else {
      pool_.Free(p, cls);
    }
  }
  Slice* NewSlice(std::string_view key, std::uint64_t h, const EpochRecord* rec) {
    Segment* first = NewSegment(0, kFirstSegmentCap, rec);
    void* mem = AllocateSmall(Slice::Bytes(key.size()), rec);
    AddBytes(rec, static_cast<std::int64_t>(Slice::Bytes(key.size())));
    Slice* s = ::new (mem) Slice(h, static_cast<std::uint32_t>(key.size()), first);
    if (!key.empty()) std::memcpy(s->key_data(), key.data(), key.size());
    return s;
  }
  // Frees a slice and every segment still chained from head_seg.
  void FreeSliceAndSegments(Slice* s) {
    const std::uint64_t tw = s->tw.load(std::memory_order_relaxed);
    Segment* seg = s->head_seg.load(std::memory_order_relaxed);
    while (seg != nullptr) {
      Segment* next = seg->next.load(std::memory_order_relaxed);
      FreeSegment(seg, &tw);
      seg = next;
    }
    const std::size_t bytes = Slice::Bytes(s->key_len);
    AddFreedBytes(static_cast<std::int64_t>(bytes));
    s->~Slice();
    FreeSmall(s, bytes);
  }
  // Reclamation callbacks (run by EpochDomain once no reader can see the memory).
  static void ReclaimSegment(void* p, std::uint64_t map, std::uint64_t) {
    reinterpret_cast<SegmentedSliceMap*>(map)->FreeSegment(static_cast<Segment*>(p));
  }
  static void ReclaimSlice(void* p, std::uint64_t map, std::uint64_t) {
    reinterpret_cast<SegmentedSliceMap*>(map)->FreeSliceAndSegments(static_cast<Slice*>(p));
  }
  static void ReclaimValues(void* p, std::uint64_t from, std::uint64_t to) {
    V* slots = static_cast<Segment*>(p)->slots();
    for (std::uint64_t i = from; i < to; ++i) slots[i].~V();
  }
  void Retire(EpochDomain::Reclaim fn, void* p, std::uint64_t a, std::uint64_t b = 0) {
    domain_->Retire(this, fn, p, a, b);
  }
  std::uint64_t Self() const { return reinterpret_cast<std::uint64_t>(this); }

  // The live slice of key; for_append: prefetches for the append that follows (AppendProbe).
  Slice* Find(std::string_view key, std::uint64_t h, bool for_append = false) const {
    return for_append ? index_.Find(key, h, AppendProbe{}) : index_.Find(key, h, ReadProbe{});
  }
  // The segment of generation gen, walking forward from the tail value t; nullptr if t is
  // already past it.
  static Segment* SegmentOfGen(std::uintptr_t t, std::uint32_t gen);
  // seg's next segment, linking a new one if there is none yet.
  Segment* LinkNext(Segment* seg, const EpochRecord* rec);
  // The tail segment (generation Gen(w)) is full: freezes it and moves the tail word and
  // the tail pointer on (helping whoever started). Returns false if the key is closed.
  bool Advance(Slice* s, std::uint64_t w, const EpochRecord* rec);
  // Moves the tail pointer up to the tail word's segment (I4).
  static void HelpTail(Slice* s);
  // Commits slot of generation gen, in the tail word while gen is the tail's, else in the
  // segment's frozen word. guess: a recent value of the tail word.
  static void Commit(Slice* s, Segment* seg, std::uint32_t gen, std::uint64_t guess);
  static void CommitFrozen(Segment* seg);
  // Slots of seg a reader may read, given the key's tail word tw loaded before (acquire).
  static std::uint32_t ReadableOf(const Segment* seg, std::uint64_t tw);
  template <class Pred>
  std::size_t DropImpl(std::string_view key, std::size_t limit, Pred&& pred);

  EpochDomain* const domain_;
  std::uint64_t (*const hash_fn_)(std::string_view);
  Index index_;
  mutable Stripe stripes_[kStripes];
  // Values dropped, and bytes freed (by reclamation on any thread, or a block built and then
  // dropped after its CAS lost).
  std::atomic<std::uint64_t> dropped_{0};
  // Appends by threads whose EpochRecord id is >= kStripes.
  mutable std::atomic<std::uint64_t> shared_appended_{0};
  mutable std::atomic<std::int64_t> freed_bytes_{0};
  // Retention and erasure of one key are serialized by drop_mu_[hash % kDropLocks].
  std::mutex drop_mu_[kDropLocks];
  // Segment memory (pre-faulted chunks, per-thread free lists); see pool.h.
  Pool pool_;
};

// ---------------------------------------------------------------------------------------

template <class V>
SegmentedSliceMap<V>::SegmentedSliceMap(Options options)
    : domain_(&EpochDomain::Global()),
      hash_fn_(options.hash),
      index_(std::clamp(options.root_bits, 1u, 24u)),
      pool_(PoolClasses().bytes, kSegmentAlign, options.large_chunks, kSegmentClasses) {
  static_assert(BlockBytes(kMaxSegmentCap) <= Pool::kChunkBytes / 2,
                "a chunk must hold at least two of the largest segments");
}

template <class V>
SegmentedSliceMap<V>::~SegmentedSliceMap() {
  // No thread can reach this map anymore, so its pending reclamation may run at once (and
  // must: partial value destruction refers to segments still linked below).
  domain_->RunOwned(this);
  index_.FreeAll(*this);
}

template <class V>
typename SegmentedSliceMap<V>::Segment* SegmentedSliceMap<V>::SegmentOfGen(std::uintptr_t t,
                                                                           std::uint32_t gen) {
  // acquire on next: the segment headers were published by the release CAS that linked
  // them (the caller loaded t with acquire).
  Segment* seg = TailSeg(t);
  if (TailIsGen(t, gen)) return seg;
  while (seg != nullptr && seg->Gen() != gen) seg = seg->next.load(std::memory_order_acquire);
  return seg;
}

template <class V>
typename SegmentedSliceMap<V>::Segment* SegmentedSliceMap<V>::LinkNext(Segment* seg,
                                                                       const EpochRecord* rec) {
  // acquire: the next segment was built before the release CAS that linked it.
  Segment* next = seg->next.load(std::memory_order_acquire);
  if (next != nullptr) return next;
  Segment* fresh = NewSegment(seg->base + seg->cap, GrowCap(seg->cap), rec);
  // release on success: publishes the new segment's header. acquire on failure: we use
  // the winner's segment, which must be fully visible.
  if (seg->next.compare_exchange_strong(next, fresh, std::memory_order_release,
                                        std::memory_order_acquire)) {
    return fresh;
  }
  FreeSegment(fresh);  // never published, no value in it
  return next;
}

template <class V>
bool SegmentedSliceMap<V>::Advance(Slice* s, std::uint64_t w, const EpochRecord* rec) {
  const std::uint32_t gen = Gen(w);
  // acquire: see SegmentOfGen.
  Segment* seg = SegmentOfGen(s->tail.load(std::memory_order_acquire), gen);
  if (seg != nullptr) {
    LinkNext(seg, rec);  // I2: linked before the tail word moves to it
    // acquire: the commits in the tail word happen-before the frozen word we publish.
    std::uint64_t y = s->tw.load(std::memory_order_acquire);
    while (Gen(y) == gen && (y & kClosed) == 0) {
      // Freeze first (I7): the frozen word must hold every commit of this generation
      // before any reader or committer can see that the tail word moved on. Several
      // helpers may race here; the frozen word (0 until frozen: nothing claimed) only
      // ever takes a snapshot with more commits (the snapshots of one generation are
      // ordered by their commit count).
      const std::uint64_t f = FrozenWord(y);
      std::uint64_t cur = seg->word.load(std::memory_order_acquire);
      while ((Claimed(cur) == 0 || Committed(cur) < Committed(f)) &&
             !seg->word.compare_exchange_weak(cur, f, std::memory_order_release,
                                              std::memory_order_acquire)) {
      }
      // acq_rel: release publishes the frozen word and the link to whoever sees the new
      // generation; acquire on failure: we reread the commits before freezing again.
      if (s->tw.compare_exchange_weak(y, NextGenWord(y), std::memory_order_acq_rel,
                                      std::memory_order_acquire)) {
        break;
      }
    }
    if ((y & kClosed) != 0) return false;
  }
  HelpTail(s);
  return true;
}

template <class V>
void SegmentedSliceMap<V>::HelpTail(Slice* s) {
  for (;;) {
    // Tail first, then the word: the tail never passes the tail word's segment (I4), so
    // this tail is at or before the segment of the word loaded after it.
    std::uintptr_t t = s->tail.load(std::memory_order_acquire);     // acquire: see SegmentOfGen
    const std::uint64_t y = s->tw.load(std::memory_order_acquire);  // acquire: sees the link
    if (TailIsGen(t, Gen(y))) return;
    Segment* next = TailSeg(t)->next.load(std::memory_order_acquire);
    if (next == nullptr) return;  // unreachable: the word's segment lies ahead, linked
    // release: appenders that load the tail (acquire) see the segment's header. Failure:
    // someone else moved it; look again.
    const std::uintptr_t moved = TagTail(next, TailGen16(t) + 1);
    s->tail.compare_exchange_strong(t, moved, std::memory_order_release, std::memory_order_relaxed);
  }
}

template <class V>
void SegmentedSliceMap<V>::Commit(Slice* s, Segment* seg, std::uint32_t gen, std::uint64_t guess) {
  std::uint64_t w = guess;
  for (;;) {
    if (Gen(w) != gen) {
      // The tail word moved on: this generation's counts live in the segment's frozen
      // word now, published before the move, which our acquire below made visible.
      CommitFrozen(seg);
      return;
    }
    const std::uint64_t nw = WithCommit(w, CapOf(w));
    // release: the value constructed in the slot happens-before any reader that loads this
    // word (or a later one in its release sequence: every later change is an RMW) with
    // acquire, and before the frozen word a mover publishes. acquire on failure: if the
    // generation moved on, the frozen word is visible (see above).
    if (s->tw.compare_exchange_weak(w, nw, std::memory_order_release, std::memory_order_acquire)) {
      return;
    }
  }
}

template <class V>
void SegmentedSliceMap<V>::CommitFrozen(Segment* seg) {
  // relaxed: only a starting guess for the CAS.
  std::uint64_t w = seg->word.load(std::memory_order_relaxed);
  for (;;) {
    const std::uint64_t nw = WithCommit(w, seg->cap);
    // release: as in Commit. relaxed on failure: we only retry.
    if (seg->word.compare_exchange_weak(w, nw, std::memory_order_release,
                                        std::memory_order_relaxed)) {
      return;
    }
  }
}

template <class V>
std::uint32_t SegmentedSliceMap<V>::ReadableOf(const Segment* seg, std::uint64_t tw) {
  if (seg->Gen() == Gen(tw)) return seg->Readable(tw);
  // A segment before the tail word's: frozen (I7); after it: not started, word 0.
  // acquire: see CommitFrozen and Advance.
  return seg->Readable(seg->word.load(std::memory_order_acquire));
}

template <class V>
void SegmentedSliceMap<V>::Append(std::string_view key, V value, AppendStats* stats) {
  EpochGuard guard(*domain_);
  const EpochRecord* rec = guard.record();
  const std::uint64_t h = Hash(key);
  std::int64_t stall_ns = 0;
  Slice* s = Find(key, h, /*for_append=*/true);
  for (;;) {
    if (s == nullptr) {
      const auto t0 = Clock::now();
      s = index_.FindOrInsert(*this, key, h, rec);
      stall_ns += Elapsed(t0);
    }
    // Tail, then claim: the tail is at or before the claimed generation's segment (I4), so
    // when its tag names that generation it is that segment. acquire on the tail: the
    // segment's header (release CAS on next and tail).
    const std::uintptr_t t = s->tail.load(std::memory_order_acquire);
    // acquire: when the claim lands in a generation the tail has not reached yet, the walk
    // below must see that generation's link (published before the tail word moved).
    const std::uint64_t w = s->tw.fetch_add(kClaimOne, std::memory_order_acquire);
    if ((w & kClosed) != 0) {
      // The key was erased under us (I5): mark it (so FindOrInsert replaces it) and start
      // over with a fresh slice. release: pairs with the acquire in FindOrInsert.
      s->dead.store(true, std::memory_order_release);
      s = nullptr;
      continue;
    }
    const std::uint32_t gen = Gen(w);
    const std::uint32_t idx = Claimed(w);
    const std::uint32_t cap = CapOf(w);
    if (idx >= cap) {
      // Full (I2): move the tail on, then claim again.
      const auto t0 = Clock::now();
      if (!Advance(s, w, rec)) {
        s->dead.store(true, std::memory_order_release);  // closed meanwhile: see above
        s = nullptr;
      }
      stall_ns += Elapsed(t0);
      continue;
    }
    // The claimed slot is ours and must be committed (a reader waits for it).
    Segment* seg = TailSeg(t);
    if (!TailIsGen(t, gen)) {
      seg = SegmentOfGen(t, gen);  // the tail lagged behind the word: walk on from it
      HelpTail(s);
    }
    // The slot two ahead is where this key's appends will soon write: pre-faulted pool
    // memory was written long ago (zeroed by the kernel, or by a map destroyed since) and
    // is usually no longer cached, so fetch its line now (for writing) instead of stalling
    // on it in a later append. Consecutive slots are at most one line apart, so this
    // covers every line of the segment.
    if (idx + 2 < cap) segmented_detail::PrefetchForWrite(seg->slots() + idx + 2);
    ::new (static_cast<void*>(seg->slots() + idx)) V(std::move(value));
    CountAppend(rec);  // before Commit, so that Size never counts a drop before its append
    Commit(s, seg, gen, w + kClaimOne);
    if (stats != nullptr) stats->stall_ns = stall_ns;
    return;
  }
}

template <class V>
template <class F>
void SegmentedSliceMap<V>::ForEach(std::string_view key, F&& f) const {
  EpochGuard guard(*domain_);
  const Slice* s = Find(key, Hash(key));
  if (s == nullptr) return;
  // acquire on head_seg then head: the dropper stores head before head_seg (release), so a
  // reader that sees a new head_seg also sees a head inside it (I3).
  const Segment* seg = s->head_seg.load(std::memory_order_acquire);
  const std::uint64_t head = s->head.load(std::memory_order_acquire);
  // acquire: see Commit; and every segment before the word's generation is frozen (I7).
  const std::uint64_t tw = s->tw.load(std::memory_order_acquire);
  while (seg != nullptr) {
    const std::uint32_t n = ReadableOf(seg, tw);
    for (std::uint64_t i = head > seg->base ? head - seg->base : 0; i < n; ++i) {
      f(std::as_const(seg->slots()[i]));
    }
    if (n < seg->cap) return;                         // the visible prefix ends here
    seg = seg->next.load(std::memory_order_acquire);  // acquire: see LinkNext
  }
}

template <class V>
std::vector<V> SegmentedSliceMap<V>::Read(std::string_view key) const {
  std::vector<V> out;
  ForEach(key, [&out](const V& v) { out.push_back(v); });
  return out;
}

template <class V>
std::size_t SegmentedSliceMap<V>::Count(std::string_view key) const {
  EpochGuard guard(*domain_);
  const Slice* s = Find(key, Hash(key));
  if (s == nullptr) return 0;
  // head first: it only grows, and the end read afterwards is at least the end it was
  // bounded by (I3), so the difference cannot go negative. acquire: see ForEach.
  const std::uint64_t head = s->head.load(std::memory_order_acquire);
  // Tail, then word: the tail is at or before the word's segment (I4). acquire: see
  // HelpTail.
  const std::uintptr_t t = s->tail.load(std::memory_order_acquire);
  const std::uint64_t w = s->tw.load(std::memory_order_acquire);
  const Segment* seg = SegmentOfGen(t, Gen(w));
  if (seg == nullptr) return 0;  // unreachable (see above)
  const std::uint64_t end = seg->base + std::min(Committed(w), CapOf(w));
  return end > head ? static_cast<std::size_t>(end - head) : 0;
}

template <class V>
std::vector<std::string> SegmentedSliceMap<V>::Keys() const {
  std::vector<std::string> keys;
  EpochGuard guard(*domain_);
  auto visit = [&](const Slice* s) {
    if (s->dead.load(std::memory_order_relaxed)) return;  // relaxed: a dead key is empty
    if (Count(s->key()) > 0) keys.emplace_back(s->key());
  };
  index_.VisitSlices(visit);
  return keys;
}

template <class V>
std::size_t SegmentedSliceMap<V>::KeyCount() const {
  std::size_t count = 0;
  EpochGuard guard(*domain_);
  auto visit = [&](const Slice* s) {
    if (!s->dead.load(std::memory_order_relaxed) && Count(s->key()) > 0) ++count;
  };
  index_.VisitSlices(visit);
  return count;
}

template <class V>
std::size_t SegmentedSliceMap<V>::Size() const {
  // acquire: pairs with the release fetch_add in DropImpl. Every append whose value was
  // dropped was counted (CountAppend) before its Commit, which the dropper acquired, so the
  // stripe loads below see at least those appends and the result cannot go negative.
  const std::uint64_t dropped = dropped_.load(std::memory_order_acquire);
  std::uint64_t appended = shared_appended_.load(std::memory_order_relaxed);
  for (const Stripe& s : stripes_) appended += s.appended.load(std::memory_order_relaxed);
  return appended > dropped ? static_cast<std::size_t>(appended - dropped) : 0;
}

template <class V>
std::size_t SegmentedSliceMap<V>::MemoryBytes() const {
  std::int64_t bytes =
      static_cast<std::int64_t>(sizeof(*this)) + static_cast<std::int64_t>(index_.RootBytes());
  for (const Stripe& s : stripes_) bytes += s.bytes.load(std::memory_order_relaxed);
  bytes -= freed_bytes_.load(std::memory_order_relaxed);  // relaxed: statistics
  return bytes > 0 ? static_cast<std::size_t>(bytes) : 0;
}

template <class V>
std::size_t SegmentedSliceMap<V>::DropFront(std::string_view key, std::size_t n) {
  return DropImpl(key, n, [](const V&) { return true; });
}

template <class V>
template <class Pred>
std::size_t SegmentedSliceMap<V>::DropFrontWhile(std::string_view key, Pred&& pred) {
  return DropImpl(key, std::numeric_limits<std::size_t>::max(), std::forward<Pred>(pred));
}

template <class V>
template <class Pred>
std::size_t SegmentedSliceMap<V>::DropImpl(std::string_view key, std::size_t limit, Pred&& pred) {
  if (limit == 0) return 0;
  const std::uint64_t h = Hash(key);
  std::size_t dropped = 0;
  {
    std::lock_guard<std::mutex> lock(drop_mu_[h % kDropLocks]);
    EpochGuard guard(*domain_);
    Slice* s = Find(key, h);
    if (s == nullptr) return 0;
    // relaxed: head and head_seg are written only under this key's drop lock, which we hold.
    std::uint64_t head = s->head.load(std::memory_order_relaxed);
    Segment* first = s->head_seg.load(std::memory_order_relaxed);
    // acquire: see ForEach; pred reads the values.
    const std::uint64_t tw = s->tw.load(std::memory_order_acquire);
    // 1. Advance head over the visible values that qualify.
    for (Segment* seg = first; seg != nullptr;) {
      const std::uint32_t n = ReadableOf(seg, tw);
      std::uint64_t i = head - seg->base;
      while (i < n && dropped < limit && pred(std::as_const(seg->slots()[i]))) {
        ++i;
        ++dropped;
      }
      head = seg->base + i;
      if (i < seg->cap) break;
      seg = seg->next.load(std::memory_order_acquire);  // acquire: see LinkNext
    }
    if (dropped == 0 && !(first->next.load(std::memory_order_relaxed) != nullptr &&
                          head == first->base + first->cap)) {
      return 0;
    }
    // relaxed: ordered before the head_seg release store below, which readers acquire.
    s->head.store(head, std::memory_order_relaxed);
    // 2. Unlink the segments now completely dropped, except the last of the chain (I3), and
    //    only those the tail has moved past (I4; help it on first).
    HelpTail(s);
    // acquire: see SegmentOfGen.
    const Segment* tail = TailSeg(s->tail.load(std::memory_order_acquire));
    Segment* keep = first;
    std::vector<Segment*> unlinked;
    for (;;) {
      Segment* next = keep->next.load(std::memory_order_acquire);
      if (next == nullptr || keep == tail || head < keep->base + keep->cap) break;
      unlinked.push_back(keep);
      keep = next;
    }
    // release: readers that load the new head_seg (acquire) also see the new head.
    s->head_seg.store(keep, std::memory_order_release);
    // 3. Hand the memory over. Items run in retirement order, so the values of `keep`
    //    handed over now are destroyed before `keep` itself is freed later.
    for (Segment* seg : unlinked) Retire(&ReclaimSegment, seg, Self());
    if constexpr (!std::is_trivially_destructible_v<V>) {
      const std::uint64_t upto = head - keep->base;
      if (upto > keep->destroyed) {
        Retire(&ReclaimValues, keep, keep->destroyed, upto);
        keep->destroyed = static_cast<std::uint32_t>(upto);
      }
    }
    // release: see Size.
    dropped_.fetch_add(dropped, std::memory_order_release);
  }
  domain_->TryReclaim();
  return dropped;
}

template <class V>
bool SegmentedSliceMap<V>::EraseIfEmpty(std::string_view key) {
  const std::uint64_t h = Hash(key);
  {
    std::lock_guard<std::mutex> lock(drop_mu_[h % kDropLocks]);
    EpochGuard guard(*domain_);
    const EpochRecord* rec = guard.record();
    Slice* s = Find(key, h);
    if (s == nullptr) return false;
    // relaxed: written only under the drop lock we hold.
    const std::uint64_t head = s->head.load(std::memory_order_relaxed);
    for (;;) {
      // Tail, then word: see Count.
      const std::uintptr_t t = s->tail.load(std::memory_order_acquire);
      std::uint64_t w = s->tw.load(std::memory_order_acquire);
      const std::uint32_t claimed = Claimed(w);
      const std::uint32_t committed = Committed(w);
      // An appender found the tail segment full and is moving on: an append is coming.
      if (claimed > CapOf(w)) return false;
      if (committed != claimed) return false;  // append in flight
      const Segment* seg = SegmentOfGen(t, Gen(w));
      if (seg == nullptr || head != seg->base + committed) return false;  // values held
      // Close: from now on every claim fails (I5), so no append can be lost. acq_rel:
      // orders the checks above with appenders' claims on the same word; failure means
      // an append claimed a slot meanwhile, so look again.
      if (s->tw.compare_exchange_strong(w, w | kClosed, std::memory_order_acq_rel,
                                        std::memory_order_acquire)) {
        break;
      }
    }
    // release: pairs with FindOrInsert's acquire (it may replace the dead slice).
    s->dead.store(true, std::memory_order_release);
    index_.Unlink(*this, s, rec);
    Retire(&ReclaimSlice, s, Self());
  }
  domain_->TryReclaim();
  return true;
}

}  // namespace eventbuffer
