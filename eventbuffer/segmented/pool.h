// SegmentPool: the memory of SegmentedSliceMap's segments (and of its slices and index
// nodes), taken from pre-faulted chunks.
//
// Why: a fresh map writes tens of MB of never-touched memory, and with plain operator new
// the append that first writes into a new 4 KiB page takes the page fault (~2 us, about
// 1 % of appends in a fresh fill). The pool takes that cost off the append path: it carves
// segments out of chunks of kChunkBytes whose pages are faulted in ahead of use, a step at
// a time (madvise(MADV_POPULATE_WRITE), or one write per page where that is not
// available): an allocation that would hand out bytes past the faulted part first faults
// in the steps it needs, so no append touches a page for the first time. The step size
// trades the worst append against the P99.9: a thread's first kSmallChunks chunks (a new
// or slowly growing map, where the single worst append matters) use kFirstStep (8 pages,
// ~10-25 us on this VM; the largest segments span two), and so does a small chunk taken
// right after a large one (the reserve below had none ready for a moment); small chunks
// that follow each other (the reserve keeps missing: every CPU is busy appending) use
// kFaultStep (32 pages, ~30-100 us, but 4x fewer appends pay one: 0.05 % of a fill of
// 48-byte values, below the P99.9).
//
// Large chunks: once a thread's Local has used kSmallChunks small chunks (the map is
// growing fast), its next chunks come from the process-wide ChunkReserve
// (chunks.h): 2 MiB chunks, huge-page backed where the kernel allows it, already
// faulted in by a background thread. They take the remaining fault cost off the appending
// threads (and most TLB misses off their writes). When the reserve has none ready, the
// Local takes a small chunk as before, so an allocation never waits for the filler.
//
// Layout: one size class per segment capacity (the map asks for class k and knows its
// byte size). Each thread that owns a counter stripe of the map (EpochRecord id < kLocals)
// has a Local: per-class free lists and a bump range in its current chunk, touched by that
// thread only, so the common allocation takes no lock and no atomic RMW. Threads with
// larger ids share one Local under mu_. Index blocks (the classes from first_index_class
// on: the map's Slices and Inner nodes) have a bump range and chunks of their own in each
// Local, and take large chunks only after kIndexSmallChunks small ones (an index of a few
// thousand keys then wastes at most one small chunk's tail).
//
// Freeing: a segment freed by retention (reclamation runs on any thread) is pushed onto
// the map's shared per-class list under mu_; an allocating thread whose own list of that
// class is empty takes the whole shared list at once. So memory freed by retention is
// really reused by later segments of the same map (of the same capacity class), and all
// chunks go back when the map is destroyed: small ones to the allocator, large ones to the
// ChunkReserve, which keeps them ready for the next map for a while. The pool's reserve (free
// segments and the unused tail of chunks) is bounded by the map's peak segment memory
// per class; it is not counted by SegmentedSliceMap::MemoryBytes, which counts segments
// in use.
//
// AddressSanitizer: a pool would hide use-after-free of segments from ASan, so under ASan
// every segment is a plain operator new/delete (the pool is a pass-through).
//
// Thread safety: Allocate(cls, id) may be called concurrently by threads with distinct ids
// (ids are unique among live threads; a reused id is handed over with release/acquire by
// the epoch domain). Free may be called from any thread at any time. The destructor
// requires that no other thread uses the pool.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <new>
#include <utility>
#include <vector>

#include "eventbuffer/segmented/chunks.h"

#if defined(__SANITIZE_ADDRESS__)
#define KEB_SEGMENT_POOL_PASSTHROUGH 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KEB_SEGMENT_POOL_PASSTHROUGH 1
#endif
#endif

namespace eventbuffer {
namespace segmented_detail {

template <std::size_t kClasses, std::size_t kLocals>
class SegmentPool {
 public:
  // Small chunks are this large (64 pages), faulted in a step at a time (see above).
  static constexpr std::size_t kChunkBytes = std::size_t{256} << 10;
  static constexpr std::size_t kFirstStep = std::size_t{32} << 10;
  static constexpr std::size_t kFaultStep = std::size_t{128} << 10;
  static_assert(kChunkBytes % kFaultStep == 0 && kFaultStep % kFirstStep == 0);
  static constexpr std::align_val_t kChunkAlign{4096};
  // A Local takes this many small chunks before it asks the reserve for large ones; for
  // index blocks (see first_index_class) kIndexSmallChunks (2 MiB of index, ~20,000 keys).
  static constexpr std::uint32_t kSmallChunks = 2;
  static constexpr std::uint32_t kIndexSmallChunks = 8;

  // class_bytes[k]: byte size of class k (a multiple of `align`, at most kChunkBytes / 2);
  // align: alignment of every block handed out (a power of two, at most 4096);
  // large_chunks: whether fast-growing Locals take large chunks from the ChunkReserve;
  // classes from first_index_class on are index blocks (the map's Slices and Inner nodes),
  // carved from chunks of their own (see Arena).
  SegmentPool(const std::size_t (&class_bytes)[kClasses], std::size_t align,
              bool large_chunks = true, std::size_t first_index_class = kClasses)
      : align_(align), large_chunks_(large_chunks), first_index_class_(first_index_class) {
    for (std::size_t k = 0; k < kClasses; ++k) bytes_[k] = class_bytes[k];
#ifndef KEB_SEGMENT_POOL_PASSTHROUGH
    // Start the filler (once per process) now rather than on the append that first needs
    // it: starting a thread takes ~0.1 ms.
    if (large_chunks_) ChunkReserve::Global().Prime();
#endif
  }
  // REQUIRES: no other thread uses the pool. Blocks still handed out become invalid.
  ~SegmentPool() {
    for (const auto& [c, large] : chunks_) {
      if (large) {
        ChunkReserve::Global().Free(c);  // kept ready for the next map (or unmapped)
      } else {
        ::operator delete(c, kChunkAlign);
      }
    }
  }
  SegmentPool(const SegmentPool&) = delete;
  SegmentPool& operator=(const SegmentPool&) = delete;

  // A block of class cls for the thread whose EpochRecord id is `id`. Never blocks on
  // another thread except for the rare lock of mu_ (taking freed blocks, a new chunk).
  void* Allocate(std::size_t cls, std::uint32_t id) {
#ifdef KEB_SEGMENT_POOL_PASSTHROUGH
    (void)id;
    return ::operator new (bytes_[cls], std::align_val_t{align_});
#else
    if (id < kLocals) return AllocateFrom(locals_[id], cls, /*locked=*/false);
    std::lock_guard<std::mutex> lock(mu_);
    return AllocateFrom(shared_local_, cls, /*locked=*/true);
#endif
  }

  // Gives back a block of class cls (from any thread). It is reused by later Allocates.
  void Free(void* p, std::size_t cls) {
#ifdef KEB_SEGMENT_POOL_PASSTHROUGH
    (void)cls;  // unsized delete: clang before 19 has no sized deallocation by default
    ::operator delete(p, std::align_val_t{align_});
#else
    std::lock_guard<std::mutex> lock(mu_);
    *static_cast<void**>(p) = returned_[cls];
    returned_[cls] = p;
    // relaxed: only a hint that lets Allocate skip mu_; the list itself is read under mu_.
    has_returned_[cls].store(true, std::memory_order_relaxed);
#endif
  }

  // Bytes of chunks obtained (0 under ASan).
  std::size_t ReservedBytes() const {
    return reserved_bytes_.load(std::memory_order_relaxed);  // relaxed: statistic
  }
  // Large chunks obtained from the ChunkReserve (0 under ASan).
  std::size_t LargeChunks() const {
    return large_chunk_count_.load(std::memory_order_relaxed);  // relaxed: statistic
  }

 private:
  // A bump range in the current chunk of one kind of block. Index blocks get chunks of
  // their own: carved between segments, the 10,000 Slices of a 10,000-key map lie one per
  // ~550 bytes over 5.5 MB (each key's first segment next to it); apart, they fill ~1 MB
  // that stays in the caches while the segments' values stream through, and every append
  // starts with a lookup through them.
  struct Arena {
    char* bump = nullptr;
    char* bump_end = nullptr;
    char* faulted = nullptr;         // [chunk start, faulted) of the current chunk is faulted in
    std::size_t step = 0;            // fault-in step of the current chunk
    bool last_large = false;         // the current chunk is a large one
    std::uint32_t small_chunks = 0;  // small chunks taken so far
  };
  struct alignas(64) Local {
    void* free[kClasses] = {};  // singly linked through each block's first word
    Arena arena[2];             // [0]: segments, [1]: index blocks
  };

  // Takes a block from l's list, then from the shared list, then from l's chunk.
  void* AllocateFrom(Local& l, std::size_t cls, bool locked) {
    if (l.free[cls] == nullptr && has_returned_[cls].load(std::memory_order_relaxed)) {
      std::unique_lock<std::mutex> lock(mu_, std::defer_lock);
      if (!locked) lock.lock();
      l.free[cls] = returned_[cls];
      returned_[cls] = nullptr;
      has_returned_[cls].store(false, std::memory_order_relaxed);  // relaxed: see Free
    }
    if (void* p = l.free[cls]) {
      l.free[cls] = *static_cast<void**>(p);
      return p;
    }
    const std::size_t n = bytes_[cls];
    const bool index = cls >= first_index_class_;
    Arena& a = l.arena[index ? 1 : 0];
    if (static_cast<std::size_t>(a.bump_end - a.bump) < n) {
      // The rest of the old chunk (smaller than this block) stays unused.
      NewChunk(a, index ? kIndexSmallChunks : kSmallChunks, locked);
    }
    void* p = a.bump;
    a.bump += n;
    // A block of the largest classes may need two steps.
    while (a.faulted < a.bump) {
      Prefault(a.faulted, a.step);
      a.faulted += a.step;
    }
    return p;
  }

  // Makes a fresh chunk a's bump range: a large one from the reserve if a has used its
  // first small_chunks small chunks and one is ready, else a small one (faulted in step by
  // step later).
  void NewChunk(Arena& a, std::uint32_t small_chunks, bool locked) {
    void* c = nullptr;
    std::size_t size = kChunkBytes;
    bool large = false;
    if (large_chunks_ && a.small_chunks >= small_chunks) {
      c = ChunkReserve::Global().TryTake();
      if (c != nullptr) {
        size = ChunkReserve::kBytes;
        large = true;
      }
    }
    if (c == nullptr) {
      c = ::operator new(kChunkBytes, kChunkAlign);
      // Small steps for a thread's first chunks and for a miss right after a large chunk
      // (the filler fell behind for a moment); big ones once misses follow each other
      // (every CPU is busy appending, the filler gets none, and steps are many).
      a.step = a.small_chunks < small_chunks || a.last_large ? kFirstStep : kFaultStep;
      ++a.small_chunks;
    }
    a.last_large = large;
    {
      std::unique_lock<std::mutex> lock(mu_, std::defer_lock);
      if (!locked) lock.lock();
      chunks_.emplace_back(c, large);
    }
    // relaxed: statistics.
    reserved_bytes_.fetch_add(size, std::memory_order_relaxed);
    if (large) large_chunk_count_.fetch_add(1, std::memory_order_relaxed);
    a.bump = static_cast<char*>(c);
    a.bump_end = a.bump + size;
    a.faulted = large ? a.bump_end : a.bump;  // a large chunk is faulted in already
  }

  // Faults in every page of [c, c + step) now (c is page aligned), so that no append
  // takes a first-touch fault there.
  static void Prefault(char* c, std::size_t step) {
#ifdef MADV_POPULATE_WRITE
    if (::madvise(c, step, MADV_POPULATE_WRITE) == 0) return;
#endif
    // Older kernels: one write per page (the chunk's content is not used yet).
    static const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    for (std::size_t off = 0; off < step; off += page) {
      *static_cast<volatile char*>(c + off) = 0;
    }
  }

  std::size_t bytes_[kClasses];
  const std::size_t align_;
  const bool large_chunks_;
  const std::size_t first_index_class_;
  Local locals_[kLocals];
  std::mutex mu_;
  Local shared_local_;             // guarded by mu_ (threads with id >= kLocals)
  void* returned_[kClasses] = {};  // guarded by mu_
  std::atomic<bool> has_returned_[kClasses] = {};
  std::vector<std::pair<void*, bool>> chunks_;  // (chunk, large); guarded by mu_
  std::atomic<std::size_t> reserved_bytes_{0};
  std::atomic<std::size_t> large_chunk_count_{0};
};

}  // namespace segmented_detail
}  // namespace eventbuffer
