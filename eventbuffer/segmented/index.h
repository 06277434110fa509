// TrieIndex: the key index of SegmentedSliceMap. A lock-free hash trie from a key (and its
// 64-bit hash) to the map's Slice for that key.
//
// Structure
//   A fixed root array of 2^root_bits atomic slots, indexed by the hash's low bits; a slot
//   holds nothing, one key (Slice*), an Inner node (16 more slots, indexed by the next 4
//   hash bits) or, only when two keys have the same 64-bit hash, an immutable Collision
//   list. Pointers are tagged in their low 2 bits (every node is at least 8-byte aligned).
//   A new key is installed with one CAS; when its slot is taken by another key, one Inner
//   node is pushed down (one CAS) and the insert descends into it. Nothing is ever rehashed
//   or moved, so growth costs O(1) per insert. Inner nodes are carved from the map's pool
//   (its index classes: pre-faulted chunks of their own, so that the index stays packed),
//   Collision lists come from operator new.
//
// Thread safety
//   Find, FindOrInsert, Unlink and VisitSlices may run concurrently on any threads, each
//   inside an EpochGuard of the map's domain (epoch.h); a Slice* they return or visit stays
//   valid until that guard ends. None takes a lock. FreeAll requires that no other thread
//   uses the index.
//
// Invariants
//   - Inner nodes are never removed while the index lives, so a walk never loses its way.
//   - A Collision list is immutable once published: it is replaced (copy-on-write) by one
//     CAS, and the old list is retired through the epoch domain.
//   - A slot's Slice is replaced only when it is dead (its key was erased; the map's I5),
//     or removed by Unlink; Slices and Collision lists are freed only through the epoch
//     domain, so no CAS on a slot can suffer ABA.
//
// Memory orders
//   - slot loads: acquire (the node or slice behind the pointer was fully built before the
//     release CAS that published it);
//   - CAS that installs a slice, an Inner node or a Collision list: release (publishes it);
//     relaxed on failure (the loop reloads with acquire);
//   - Unlink's CAS to null: relaxed (storing null publishes nothing);
//   - `dead`: acquire where a slot may be replaced (pairs with the map's release store),
//     relaxed in Find (a stale "alive" is harmless, see there).
//
// Host: the map. The index asks it for every allocation and retirement, so that memory
// accounting (MemoryBytes) and reclamation stay in one place:
//   Slice* NewSlice(std::string_view key, std::uint64_t h, const EpochRecord* rec);
//   void FreeSliceAndSegments(Slice* s);                  // unpublished or unreachable
//   void* AllocateSmall(std::size_t bytes, const EpochRecord* rec);  // pooled
//   void FreeSmall(void* p, std::size_t bytes);
//   void AddBytes(const EpochRecord* rec, std::int64_t n);  // allocated, for MemoryBytes
//   void AddFreedBytes(std::int64_t n);                     // freed, for MemoryBytes
//   void Retire(EpochDomain::Reclaim fn, void* p, std::uint64_t a, std::uint64_t b = 0);
// Slice must have `const std::uint64_t hash`, `std::string_view key() const` and
// `std::atomic<bool> dead`.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <string_view>
#include <vector>

#include "eventbuffer/segmented/epoch.h"

namespace eventbuffer {
namespace segmented_detail {

template <class Slice, class Host>
class TrieIndex {
 public:
  // root_bits: 1 to 24 (the caller clamps).
  explicit TrieIndex(unsigned root_bits)
      : root_bits_(root_bits),
        root_(new std::atomic<std::uintptr_t>[std::size_t{1} << root_bits]()) {}
  // REQUIRES: FreeAll has run (or the index never held a key).
  ~TrieIndex() { delete[] root_; }
  TrieIndex(const TrieIndex&) = delete;
  TrieIndex& operator=(const TrieIndex&) = delete;

  // The live Slice of key (hash h), or nullptr. probe.Arrive(s) runs when the walk reaches
  // a slice, before any of its fields is read, and probe.HashMatched(s) once its hash is h:
  // both may prefetch what the caller will need next.
  template <class Probe>
  Slice* Find(std::string_view key, std::uint64_t h, const Probe& probe) const;
  // The live Slice of key, installing a new one (host.NewSlice) if there is none.
  Slice* FindOrInsert(Host& host, std::string_view key, std::uint64_t h, const EpochRecord* rec);
  // Removes target (dead: its key was erased) from the index, if it is still there.
  void Unlink(Host& host, Slice* target, const EpochRecord* rec);
  // Calls visit(Slice*) for every slice in the index, dead ones included.
  template <class Visit>
  void VisitSlices(Visit& visit) const;
  // Frees every node and slice. REQUIRES: no other thread uses the index.
  void FreeAll(Host& host);

  // Bytes of the root array.
  std::size_t RootBytes() const { return (std::size_t{1} << root_bits_) * sizeof(void*); }

  // ---------------------------------------------------------------------------------------
  // Implementation details follow.
 private:
  static constexpr unsigned kInnerBits = 4;
  static constexpr unsigned kInnerFanout = 1u << kInnerBits;

  struct Inner {
    std::atomic<std::uintptr_t> slots[kInnerFanout] = {};
  };

  struct Collision {  // immutable once published; n Slice* follow the header
    std::uint64_t n;
    Slice** items() { return reinterpret_cast<Slice**>(this + 1); }
    Slice* const* items() const { return reinterpret_cast<Slice* const*>(this + 1); }
    static std::size_t Bytes(std::uint64_t n) { return sizeof(Collision) + n * sizeof(Slice*); }
  };

  // Tagged index pointers (all nodes are at least 8-byte aligned).
  static constexpr std::uintptr_t kTagMask = 3, kTagSlice = 0, kTagInner = 1, kTagCollision = 2;
  static std::uintptr_t Tag(const void* p, std::uintptr_t tag) {
    return reinterpret_cast<std::uintptr_t>(p) | tag;
  }
  template <class T>
  static T* Untag(std::uintptr_t v) {
    return reinterpret_cast<T*>(v & ~kTagMask);
  }

  // The slot of the Inner node v (tagged) that hash h takes at depth `shift` (the hash bits
  // below it index the levels above); moves shift on to the next level.
  static std::atomic<std::uintptr_t>* Descend(std::uintptr_t v, std::uint64_t h, unsigned& shift) {
    std::atomic<std::uintptr_t>* slot = &Untag<Inner>(v)->slots[(h >> shift) & (kInnerFanout - 1)];
    shift += kInnerBits;
    return slot;
  }
  std::atomic<std::uintptr_t>& RootSlot(std::uint64_t h) const {
    return root_[h & ((std::uint64_t{1} << root_bits_) - 1)];
  }
  static bool Matches(const Slice* s, std::uint64_t h, std::string_view key) {
    return s->hash == h && s->key() == key;
  }

  static Inner* NewInner(Host& host, const EpochRecord* rec) {
    host.AddBytes(rec, static_cast<std::int64_t>(sizeof(Inner)));
    return ::new (host.AllocateSmall(sizeof(Inner), rec)) Inner();
  }
  static void FreeInner(Host& host, Inner* in) {
    host.AddFreedBytes(static_cast<std::int64_t>(sizeof(Inner)));
    in->~Inner();
    host.FreeSmall(in, sizeof(Inner));
  }
  static Collision* NewCollision(Host& host, std::uint64_t n, const EpochRecord* rec) {
    void* mem = ::operator new(Collision::Bytes(n));
    host.AddBytes(rec, static_cast<std::int64_t>(Collision::Bytes(n)));
    Collision* c = static_cast<Collision*>(mem);
    c->n = n;
    return c;
  }
  static void FreeCollision(Host& host, Collision* c) {
    host.AddFreedBytes(static_cast<std::int64_t>(Collision::Bytes(c->n)));
    ::operator delete(static_cast<void*>(c));
  }
  // Reclamation callback (run by the epoch domain once no reader can see the list).
  static void ReclaimCollision(void* p, std::uint64_t host, std::uint64_t) {
    FreeCollision(*reinterpret_cast<Host*>(host), static_cast<Collision*>(p));
  }
  static void RetireCollision(Host& host, Collision* c) {
    host.Retire(&ReclaimCollision, c, reinterpret_cast<std::uint64_t>(&host));
  }

  template <class Visit>
  static void VisitTree(std::uintptr_t v, Visit& visit);
  static void FreeTree(Host& host, std::uintptr_t v);

  const unsigned root_bits_;
  std::atomic<std::uintptr_t>* const root_;
};

// ---------------------------------------------------------------------------------------

template <class Slice, class Host>
template <class Probe>
Slice* TrieIndex<Slice, Host>::Find(std::string_view key, std::uint64_t h,
                                    const Probe& probe) const {
  const std::atomic<std::uintptr_t>* slot = &RootSlot(h);
  unsigned shift = root_bits_;
  for (;;) {
    // acquire: the node behind the pointer was fully built before the release CAS that
    // published it.
    const std::uintptr_t v = slot->load(std::memory_order_acquire);
    if (v == 0) return nullptr;
    switch (v & kTagMask) {
      case kTagSlice: {
        Slice* s = Untag<Slice>(v);
        probe.Arrive(s);
        if (s->hash != h) return nullptr;
        probe.HashMatched(s);
        // relaxed on dead: a stale "alive" only lets Append find the closed tail word and
        // retry; readers see an empty key either way (slice_map.h, I5).
        return s->key() == key && !s->dead.load(std::memory_order_relaxed) ? s : nullptr;
      }
      case kTagInner:
        slot = Descend(v, h, shift);
        break;
      default: {
        const Collision* c = Untag<Collision>(v);
        for (std::uint32_t i = 0; i < c->n; ++i) {
          Slice* s = c->items()[i];
          if (Matches(s, h, key) && !s->dead.load(std::memory_order_relaxed)) return s;
        }
        return nullptr;
      }
    }
  }
}

template <class Slice, class Host>
Slice* TrieIndex<Slice, Host>::FindOrInsert(Host& host, std::string_view key, std::uint64_t h,
                                            const EpochRecord* rec) {
  Slice* fresh = nullptr;  // built once, on first need; freed if never published
  auto fresh_slice = [&] {
    if (fresh == nullptr) fresh = host.NewSlice(key, h, rec);
    return fresh;
  };
  auto discard_fresh = [&] {
    if (fresh != nullptr) {
      host.FreeSliceAndSegments(fresh);  // never published: no reader can have seen it
      fresh = nullptr;
    }
  };
  std::atomic<std::uintptr_t>* slot = &RootSlot(h);
  unsigned shift = root_bits_;
  for (;;) {
    // acquire: see Find.
    std::uintptr_t v = slot->load(std::memory_order_acquire);
    if (v == 0) {
      // release on success: publishes the fully built slice and its first segment.
      // acquire on failure is not needed: the loop reloads with acquire.
      if (slot->compare_exchange_strong(v, Tag(fresh_slice(), kTagSlice), std::memory_order_release,
                                        std::memory_order_relaxed)) {
        return fresh;
      }
      continue;
    }
    switch (v & kTagMask) {
      case kTagSlice: {
        Slice* s = Untag<Slice>(v);
        // acquire on dead: pairs with the release store in EraseIfEmpty/Append; not strictly
        // needed (we only decide whether to replace the pointer) but keeps reasoning local.
        const bool dead = s->dead.load(std::memory_order_acquire);
        if (!dead && Matches(s, h, key)) {
          discard_fresh();
          return s;
        }
        if (dead) {
          // An erased key (same or other): take its slot. Its eraser finds it gone.
          // release: publishes the fresh slice (see above).
          if (slot->compare_exchange_strong(v, Tag(fresh_slice(), kTagSlice),
                                            std::memory_order_release, std::memory_order_relaxed)) {
            return fresh;
          }
          continue;
        }
        if (s->hash == h) {
          // Same 64-bit hash, different key: an immutable collision list holds both.
          Collision* c = NewCollision(host, 2, rec);
          c->items()[0] = s;
          c->items()[1] = fresh_slice();
          // release: publishes the list and the fresh slice.
          if (slot->compare_exchange_strong(v, Tag(c, kTagCollision), std::memory_order_release,
                                            std::memory_order_relaxed)) {
            return fresh;
          }
          FreeCollision(host, c);  // never published
          continue;
        }
        // Another key holds the slot: push it one level down. Its position in the new node
        // comes from its own hash; the loop then descends and retries there.
        if (shift >= 64) std::abort();  // unreachable: different hashes differ in some bit
        Inner* in = NewInner(host, rec);
        in->slots[(s->hash >> shift) & (kInnerFanout - 1)].store(v, std::memory_order_relaxed);
        // release: publishes the node with its one entry.
        if (!slot->compare_exchange_strong(v, Tag(in, kTagInner), std::memory_order_release,
                                           std::memory_order_relaxed)) {
          FreeInner(host, in);  // never published
        }
        continue;
      }
      case kTagInner:
        slot = Descend(v, h, shift);
        continue;
      default: {
        Collision* c = Untag<Collision>(v);
        // The live entries, decided once: a key may die while we copy, and the new list's
        // size must match what we allocate (a dead entry left in the list is harmless).
        std::vector<Slice*> live;
        live.reserve(c->n);
        for (std::uint32_t i = 0; i < c->n; ++i) {
          Slice* s = c->items()[i];
          if (s->dead.load(std::memory_order_acquire)) continue;
          if (Matches(s, h, key)) {
            discard_fresh();
            return s;
          }
          live.push_back(s);
        }
        // Copy-on-write: the live entries plus the fresh slice (dead ones drop out).
        Collision* nc = NewCollision(host, live.size() + 1, rec);
        std::copy(live.begin(), live.end(), nc->items());
        nc->items()[live.size()] = fresh_slice();
        // release: publishes the new list.
        if (slot->compare_exchange_strong(v, Tag(nc, kTagCollision), std::memory_order_release,
                                          std::memory_order_relaxed)) {
          RetireCollision(host, c);
          return fresh;
        }
        FreeCollision(host, nc);  // never published
        continue;
      }
    }
  }
}

template <class Slice, class Host>
void TrieIndex<Slice, Host>::Unlink(Host& host, Slice* target, const EpochRecord* rec) {
  const std::uint64_t h = target->hash;
  std::atomic<std::uintptr_t>* slot = &RootSlot(h);
  unsigned shift = root_bits_;
  for (;;) {
    std::uintptr_t v = slot->load(std::memory_order_acquire);  // acquire: see Find
    if (v == 0) return;
    switch (v & kTagMask) {
      case kTagSlice:
        if (Untag<Slice>(v) != target) return;  // replaced by an appender already
        // relaxed: storing null publishes nothing.
        if (slot->compare_exchange_strong(v, 0, std::memory_order_relaxed)) return;
        continue;  // pushed down or replaced meanwhile: look again
      case kTagInner:
        slot = Descend(v, h, shift);
        continue;
      default: {
        Collision* c = Untag<Collision>(v);
        std::uint32_t at = c->n;
        for (std::uint32_t i = 0; i < c->n; ++i) {
          if (c->items()[i] == target) at = i;
        }
        if (at == c->n) return;
        std::uintptr_t replacement = 0;
        Collision* nc = nullptr;
        if (c->n == 2) {
          replacement = Tag(c->items()[1 - at], kTagSlice);
        } else {
          nc = NewCollision(host, c->n - 1, rec);
          std::uint32_t j = 0;
          for (std::uint32_t i = 0; i < c->n; ++i) {
            if (i != at) nc->items()[j++] = c->items()[i];
          }
          replacement = Tag(nc, kTagCollision);
        }
        // release: publishes the new list (if any).
        if (slot->compare_exchange_strong(v, replacement, std::memory_order_release,
                                          std::memory_order_relaxed)) {
          RetireCollision(host, c);
          return;
        }
        if (nc != nullptr) FreeCollision(host, nc);  // never published
        continue;
      }
    }
  }
}

template <class Slice, class Host>
template <class Visit>
void TrieIndex<Slice, Host>::VisitSlices(Visit& visit) const {
  const std::size_t n = std::size_t{1} << root_bits_;
  for (std::size_t i = 0; i < n; ++i) VisitTree(root_[i].load(std::memory_order_acquire), visit);
}

template <class Slice, class Host>
template <class Visit>
void TrieIndex<Slice, Host>::VisitTree(std::uintptr_t v, Visit& visit) {
  if (v == 0) return;
  switch (v & kTagMask) {
    case kTagSlice:
      visit(Untag<Slice>(v));
      break;
    case kTagInner:
      for (const auto& slot : Untag<Inner>(v)->slots) {
        VisitTree(slot.load(std::memory_order_acquire), visit);  // acquire: see Find
      }
      break;
    default: {
      const Collision* c = Untag<Collision>(v);
      for (std::uint32_t i = 0; i < c->n; ++i) visit(c->items()[i]);
    }
  }
}

template <class Slice, class Host>
void TrieIndex<Slice, Host>::FreeAll(Host& host) {
  const std::size_t n = std::size_t{1} << root_bits_;
  for (std::size_t i = 0; i < n; ++i) FreeTree(host, root_[i].load(std::memory_order_relaxed));
}

template <class Slice, class Host>
void TrieIndex<Slice, Host>::FreeTree(Host& host, std::uintptr_t v) {
  if (v == 0) return;
  switch (v & kTagMask) {
    case kTagSlice:
      host.FreeSliceAndSegments(Untag<Slice>(v));
      break;
    case kTagInner: {
      Inner* in = Untag<Inner>(v);
      for (auto& slot : in->slots) FreeTree(host, slot.load(std::memory_order_relaxed));
      FreeInner(host, in);
      break;
    }
    case kTagCollision: {
      Collision* c = Untag<Collision>(v);
      for (std::uint32_t i = 0; i < c->n; ++i) host.FreeSliceAndSegments(c->items()[i]);
      FreeCollision(host, c);
      break;
    }
  }
}

}  // namespace segmented_detail
}  // namespace eventbuffer
