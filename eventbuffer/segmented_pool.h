// SegmentPool: the memory of SegmentedSliceMap's segments, taken from pre-faulted chunks.
//
// Why: a fresh map writes tens of MB of never-touched memory, and with plain operator new
// the append that first writes into a new 4 KiB page takes the page fault (~2 us, about
// 1 % of appends in a fresh fill). The pool takes that cost off the append path: it carves
// segments out of chunks of kChunkBytes whose pages are faulted in ahead of use, kFaultStep
// bytes at a time (madvise(MADV_POPULATE_WRITE), or one write per page where that is not
// available): an allocation that would hand out bytes past the faulted part first faults
// in the next step. A step (32 pages) costs ~30-100 us on this VM and happens once per
// kFaultStep of segments, so no append touches a page for the first time.
//
// Layout: one size class per segment capacity (the map asks for class k and knows its
// byte size). Each thread that owns a counter stripe of the map (EpochRecord id < kLocals)
// has a Local: per-class free lists and a bump range in its current chunk, touched by that
// thread only, so the common allocation takes no lock and no atomic RMW. Threads with
// larger ids share one Local under mu_.
//
// Freeing: a segment freed by retention (reclamation runs on any thread) is pushed onto
// the map's shared per-class list under mu_; an allocating thread whose own list of that
// class is empty takes the whole shared list at once. So memory freed by retention is
// really reused by later segments of the same map (of the same capacity class), and all
// chunks go back to the allocator when the map is destroyed. The pool's reserve (free
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
#include <vector>

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
  // Chunks are this large (64 pages), faulted in kFaultStep at a time.
  static constexpr std::size_t kChunkBytes = std::size_t{256} << 10;
  static constexpr std::size_t kFaultStep = std::size_t{128} << 10;
  static_assert(kChunkBytes % kFaultStep == 0);
  static constexpr std::align_val_t kChunkAlign{4096};

  // class_bytes[k]: byte size of class k (a multiple of `align`, at most kFaultStep);
  // align: alignment of every block handed out (a power of two, at most 4096).
  SegmentPool(const std::size_t (&class_bytes)[kClasses], std::size_t align) : align_(align) {
    for (std::size_t k = 0; k < kClasses; ++k) bytes_[k] = class_bytes[k];
  }
  // REQUIRES: no other thread uses the pool. Blocks still handed out become invalid.
  ~SegmentPool() {
    for (void* c : chunks_) ::operator delete(c, kChunkBytes, kChunkAlign);
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
    ::operator delete (p, bytes_[cls], std::align_val_t{align_});
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
    return chunk_count_.load(std::memory_order_relaxed) * kChunkBytes;  // relaxed: statistic
  }

 private:
  struct alignas(64) Local {
    void* free[kClasses] = {};  // singly linked through each block's first word
    char* bump = nullptr;
    char* bump_end = nullptr;
    char* faulted = nullptr;  // [chunk start, faulted) of the current chunk is faulted in
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
    if (static_cast<std::size_t>(l.bump_end - l.bump) < n) {
      // The rest of the old chunk (smaller than this block) stays unused.
      char* c = NewChunk(locked);
      l.bump = c;
      l.bump_end = c + kChunkBytes;
      l.faulted = c;
    }
    void* p = l.bump;
    l.bump += n;
    // n <= kFaultStep, so this is at most one step.
    while (l.faulted < l.bump) {
      Prefault(l.faulted);
      l.faulted += kFaultStep;
    }
    return p;
  }

  char* NewChunk(bool locked) {
    void* c = ::operator new(kChunkBytes, kChunkAlign);
    std::unique_lock<std::mutex> lock(mu_, std::defer_lock);
    if (!locked) lock.lock();
    chunks_.push_back(c);
    chunk_count_.store(chunks_.size(), std::memory_order_relaxed);  // relaxed: statistic
    return static_cast<char*>(c);
  }

  // Faults in every page of [c, c + kFaultStep) now (c is page aligned), so that no append
  // takes a first-touch fault there.
  static void Prefault(char* c) {
#ifdef MADV_POPULATE_WRITE
    if (::madvise(c, kFaultStep, MADV_POPULATE_WRITE) == 0) return;
#endif
    // Older kernels: one write per page (the chunk's content is not used yet).
    static const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    for (std::size_t off = 0; off < kFaultStep; off += page) {
      *static_cast<volatile char*>(c + off) = 0;
    }
  }

  std::size_t bytes_[kClasses];
  const std::size_t align_;
  Local locals_[kLocals];
  std::mutex mu_;
  Local shared_local_;             // guarded by mu_ (threads with id >= kLocals)
  void* returned_[kClasses] = {};  // guarded by mu_
  std::atomic<bool> has_returned_[kClasses] = {};
  std::vector<void*> chunks_;  // guarded by mu_
  std::atomic<std::size_t> chunk_count_{0};
};

}  // namespace segmented_detail
}  // namespace eventbuffer
