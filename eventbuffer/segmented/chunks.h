// ChunkReserve: large segment chunks, faulted in ahead of use by one background thread.
//
// Why: a map that grows fast writes tens of MB of fresh memory. Faulting it in 4 KiB at a
// time (pool.h's small chunks) costs ~1-3 us per page on a VM, which is a fifth
// of the cost of an append on hot keys, and it stays on the appending thread. A chunk of
// 2 MiB aligned to 2 MiB and marked MADV_HUGEPAGE is faulted in as one transparent huge
// page where the kernel allows it (one fault instead of 512, and one TLB entry instead of
// 512), but that single fault takes 100-300 us: far too long for an append. So a filler
// thread faults such chunks in ahead of use and keeps a few of them ready; the pool
// takes a ready one when its thread needs a new chunk, and never waits for the filler:
// when none is ready it falls back to a small chunk faulted in on the spot.
//
// Where the kernel has transparent huge pages disabled ("never"), the chunk is faulted in
// as 512 small pages, still by the filler, so appends still take no fault. Where a huge
// page is only had by compacting memory (slower than small pages), the filler notices and
// makes the next chunks of small pages before it tries again.
//
// How many: one at first. A TryTake that finds none ready doubles the target (up to
// kMaxTarget, 16: 32 MiB), since the appenders then consume faster than the filler keeps
// up with; every kTakesToLower (32) takes without a miss lower it by one again, and once the
// process has neither taken nor freed a chunk for keep_freed (below) the ready chunks beyond
// one are unmapped and the target is one again. So a slowly growing process holds one chunk
// ahead, a fast-growing one up to kMaxTarget, and an idle one one. Why so many: the filler
// is not steady. On a VM a 2 MiB huge page is ~0.2 ms when the host has it at hand and
// 4-5 ms when it has not (then the filler makes small-page chunks, ~0.8-1.7 ms each, for a
// while), and the filler's CPU is taken from it now and then; one thread growing a map
// to 1M keys takes a chunk every ~1.5 ms. Every miss is a small chunk faulted in by the
// appender (up to ~430 us for one append on that VM), so the target must absorb such
// stretches: doubled on a miss and lowered slowly, it keeps a fill to 1M keys after the
// process's first at 0-4 misses.
//
// Cost: one thread per process (SCHED_IDLE: it only uses CPU nobody else wants), started by
// the first Prime() (the first SegmentedSliceMap with large chunks primes it when it is
// constructed), asleep while the process is not growing; 1 to
// kMaxTarget chunks (2 MiB each) held by the process ahead of use, shared by every map (one
// once it has been idle for keep_freed), and up to kMaxKept freed ones for keep_freed after
// maps are destroyed (see below).
//
// Memory: each chunk is its own anonymous mapping (mmap, trimmed to 2 MiB alignment). Not
// operator new: with glibc a freed 2 MiB block goes back to the heap, where later small
// allocations (a new key's Slice) would reuse an address range still marked MADV_HUGEPAGE,
// and the first touch of it would fault in a whole huge page on that appender (0.1-5 ms
// here). Heap accounting therefore does not see chunks; MappedBytes() counts them (held by
// maps, ready or kept).
//
// Freed chunks: a map that is destroyed gives its chunks back with Free. They are still
// faulted in, so Free keeps them (up to kMaxKept, the rest are unmapped at once) and
// TryTake hands them out before the filler's: a map created after another one was dropped
// (a restarted gray release, each repetition of a benchmark) then takes no page faults for
// the memory the old one used, as it would from a heap allocator that keeps freed memory.
// Kept chunks are a list of their own: taking one never lowers the filler's target, and
// one taken less than kActiveWindow (100 ms) after the previous take doubles it as a miss
// would (up to kMaxTarget), and every take wakes the filler, so that the filler's own chunks
// are ready when the kept ones run out (a map growing on kept chunks takes them as fast as
// it would take the filler's). The filler's timed wait before unmapping kept chunks counts
// as asleep, so a take wakes it from there too: otherwise a process growing again after a
// pause would grow on small chunks faulted in by its appenders. Once the process has
// neither taken nor freed a chunk for keep_freed (5 s by default), the filler unmaps the
// kept chunks and the ready ones beyond one, so an idle process holds one chunk it does
// not use.
//
// Thread safety: every function may be called from any thread at any time. The reserve is
// never destroyed (the filler may run until the process exits).
#pragma once

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <new>
#include <thread>
#include <vector>

namespace eventbuffer {
namespace segmented_detail {

class ChunkReserve {
 public:
  static constexpr std::size_t kBytes = std::size_t{2} << 20;  // one x86-64 huge page
  // Chunks kept ready ahead of use (process-wide): between 1 and kMaxTarget (see above).
  static constexpr std::size_t kMaxTarget = 16;
  static constexpr std::size_t kTakesToLower = 32;
  // Freed chunks kept at most (128 MiB: two fresh maps of 1M 48-byte values).
  static constexpr std::size_t kMaxKept = 64;

  // The process-wide reserve. Never destroyed.
  static ChunkReserve& Global() {
    static ChunkReserve* const reserve = new ChunkReserve();
    return *reserve;
  }

  // Asks for chunks to be kept ready from now on; starts the filler on the first call.
  // Cheap after the first call (one relaxed load).
  void Prime() {
    // relaxed: only skips the lock; the state itself is read and written under mu_.
    if (primed_.load(std::memory_order_relaxed)) return;
    std::lock_guard<std::mutex> lock(mu_);
    if (primed_.load(std::memory_order_relaxed)) return;
    StartFillerLocked();
    primed_.store(true, std::memory_order_relaxed);
  }

  // A chunk (kBytes, aligned to kBytes, every page faulted in; its content unspecified: a
  // kept one holds what its last owner wrote) that the caller now owns, or nullptr when
  // none is ready this instant. Never waits for the filler.
  void* TryTake() {
    void* chunk = nullptr;
    bool wake = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      const auto now = std::chrono::steady_clock::now();
      if (!kept_.empty()) {
        // A freed chunk, the one freed last (see "Freed chunks"). The filler is woken all
        // the same, and kept chunks taken in quick succession double the target as a miss
        // would: the process is growing fast, and when the kept chunks run out the filler
        // must have its own ready.
        chunk = kept_.back();
        kept_.pop_back();
        ++reused_;
        if (now - last_take_ < kActiveWindow) RaiseTargetLocked();
      } else if (ready_.empty()) {
        ++misses_;
        takes_since_miss_ = 0;
        RaiseTargetLocked();
      } else {
        chunk = ready_.back();
        ready_.pop_back();
        ++taken_;
        if (++takes_since_miss_ >= kTakesToLower && target_ > 1) {
          --target_;
          takes_since_miss_ = 0;
        }
      }
      last_take_ = now;
      wake = filler_asleep_;
    }
    // Only a sleeping filler is woken (see Fill): a busy one looks again on its own.
    if (wake) cv_.notify_one();
    return chunk;
  }

  // Gives back a chunk obtained from TryTake: kept for a later TryTake (its content is
  // left as it is) while fewer than kMaxKept are kept, else unmapped.
  void Free(void* chunk) {
    bool keep = false;
    bool wake = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (kept_.size() < kMaxKept) {
        kept_.push_back(chunk);
        keep = true;
        last_free_ = std::chrono::steady_clock::now();
        // A filler asleep without a timer (nothing was kept) must arm one to unmap kept
        // chunks later (see Fill); one in the timed wait looks again when it ends.
        wake = filler_asleep_ && kept_.size() == 1;
      }
    }
    if (wake) cv_.notify_one();
    if (!keep) Unmap(chunk);
  }
  // Bytes of chunks mapped and not unmapped yet, process-wide: held by maps, ready or kept.
  static std::size_t MappedBytes() {
    return mapped_bytes_.load(std::memory_order_relaxed);  // relaxed: statistic
  }

  // How long freed chunks stay kept once the process has stopped taking and freeing
  // chunks (at most an hour). For tests.
  void set_keep_freed(std::chrono::milliseconds keep) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      keep_freed_ = std::clamp(keep, std::chrono::milliseconds(0),
                               std::chrono::milliseconds(std::chrono::hours(1)));
    }
    cv_.notify_one();
  }
  struct Stats {
    std::size_t ready = 0;         // chunks the filler made, ready now
    std::size_t target = 0;        // chunks the filler keeps ready now
    std::size_t taken = 0;         // chunks handed out by TryTake
    std::size_t misses = 0;        // TryTake calls that found none ready
    std::size_t filled = 0;        // chunks the filler has faulted in
    std::size_t huge_tries = 0;    // chunks made asking for a huge page
    std::size_t kept = 0;          // freed chunks kept now (handed out before the ready ones)
    std::size_t reused = 0;        // kept chunks handed out by TryTake
    std::size_t trimmed = 0;       // kept and surplus ready chunks unmapped by the filler
    std::size_t mapped_bytes = 0;  // MappedBytes(), read with the above (see TrimLocked)
    bool filler_running = false;
    bool filler_asleep = false;  // idle: the next take (or a first kept free) wakes it
  };
  Stats GetStats() {
    std::lock_guard<std::mutex> lock(mu_);
    // relaxed: written under mu_, which we hold.
    return Stats{ready_.size(),
                 target_,
                 taken_,
                 misses_,
                 filled_,
                 huge_tries_,
                 kept_.size(),
                 reused_,
                 trimmed_,
                 MappedBytes(),
                 primed_.load(std::memory_order_relaxed),
                 filler_asleep_};
  }

  // Blocks until the target number of chunks is ready or `timeout` has passed; returns
  // whether it is. For tests and benchmarks (to start from a known state). REQUIRES: Prime().
  template <class Rep, class Period>
  bool WaitUntilFull(std::chrono::duration<Rep, Period> timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return full_cv_.wait_for(lock, timeout, [this] { return ready_.size() >= target_; });
  }

  // ---------------------------------------------------------------------------------------
  // Implementation details follow.
 private:
  ChunkReserve() = default;

  // REQUIRES: mu_ held, not primed yet (Prime calls it once).
  void StartFillerLocked() {
    // The filler must never take a signal meant for the process (the controller waits for
    // its signals with sigwait in one thread): start it with every signal blocked.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    std::thread([this] { Fill(); }).detach();
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
  }

  // How the filler waits. An appender that wakes the filler (a futex wake) makes the kernel
  // run it on the appender's own CPU, where it then competes with that appender for the
  // ~1 ms a chunk takes while the other CPU may sit idle: measured as 0.1-0.7 ms stalls of
  // single appends right after a take. So while chunks are being taken (a take in the last
  // kActiveWindow) the filler wakes itself every kPoll to look, and takes never wake it;
  // only once the process has stopped growing does it sleep until a take wakes it (with a
  // timer to unmap kept chunks while there are any). So a take wakes it once per pause in
  // growth at most.
  static constexpr std::chrono::microseconds kPoll{200};
  static constexpr std::chrono::milliseconds kActiveWindow{100};

  void Fill() {
    // SCHED_IDLE: the filler only runs on a CPU that has nothing else to do, so it never
    // takes CPU time from appenders (or anything else); when every CPU is busy it falls
    // behind and the pools take small chunks, as they would without it. Measured (2 vCPU,
    // 2 appending threads, 10,000 keys): with the filler at normal priority the appenders
    // lost its ~1 ms per chunk and the map's throughput fell by a quarter; idle, the
    // two-thread numbers are those without a filler and one thread still gains the spare
    // CPU. Best effort: an unprivileged thread may always lower itself to SCHED_IDLE.
    sched_param param{};
    param.sched_priority = 0;
    pthread_setschedparam(pthread_self(), SCHED_IDLE, &param);
    // Chunks left to make with small pages only (see MakeChunk).
    std::uint32_t small_only = 0;
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      // The filler starts under mu_ in Prime and takes mu_ only after Prime has set primed_.
      while (ready_.size() >= target_) {
        const auto now = std::chrono::steady_clock::now();
        if (now - last_take_ < kActiveWindow) {
          cv_.wait_for(lock, kPoll);
        } else if (!kept_.empty() || target_ > 1 || ready_.size() > 1) {
          // Unmap the kept chunks, and the ready ones beyond one, once the process has been
          // quiet for keep_freed_.
          const auto quiet = now - std::max(last_take_, last_free_);
          if (quiet < keep_freed_) {
            // Asleep as far as takes are concerned: a take must wake the filler now, not
            // when this wait ends (else the process grows on small chunks meanwhile).
            filler_asleep_ = true;
            cv_.wait_for(lock, keep_freed_ - quiet);
            filler_asleep_ = false;
          } else {
            TrimLocked(lock);
          }
        } else {
          filler_asleep_ = true;
          cv_.wait(lock);
          filler_asleep_ = false;
        }
      }
      lock.unlock();
      const bool huge = small_only == 0;
      const auto t0 = std::chrono::steady_clock::now();
      void* chunk = MakeChunk(huge);
      const auto took = std::chrono::steady_clock::now() - t0;
      if (chunk == nullptr) {
        // Out of address space or memory: the pools fall back to small chunks (whose
        // operator new reports the failure); give the kept chunks and the surplus ready
        // ones back now rather than after keep_freed, aim for one again, and try later.
        lock.lock();
        TrimLocked(lock);
        cv_.wait_for(lock, std::chrono::milliseconds(100));
        continue;
      }
      if (!huge) {
        --small_only;
      } else if (took > kSlowHugeChunk) {
        // No free huge page at hand: the kernel compacted memory to make one (5-25x the
        // cost of small pages on a busy host). Use small pages for a while, then try again.
        small_only = kSmallOnlyChunks;
      }
      lock.lock();
      ready_.push_back(chunk);
      ++filled_;
      if (huge) ++huge_tries_;
      if (ready_.size() >= target_) full_cv_.notify_all();
    }
  }

  // The appenders consume faster than the filler keeps up with: double the target, up to
  // kMaxTarget. REQUIRES: mu_ held.
  void RaiseTargetLocked() { target_ = std::min(target_ * 2, kMaxTarget); }

  // Unmaps every kept chunk and every ready one but one, and sets the target back to one
  // (the process is idle, or memory is short). REQUIRES: lock holds mu_; releases it while
  // unmapping.
  void TrimLocked(std::unique_lock<std::mutex>& lock) {
    std::vector<void*> drop;
    drop.swap(kept_);
    if (ready_.size() > 1) {
      drop.insert(drop.end(), ready_.begin() + 1, ready_.end());
      ready_.resize(1);
    }
    target_ = 1;
    takes_since_miss_ = 0;
    trimmed_ += drop.size();
    // Counted as unmapped from here on (before munmap returns), so that a caller who sees
    // them gone from the lists also sees them gone from MappedBytes.
    mapped_bytes_.fetch_sub(drop.size() * kBytes, std::memory_order_relaxed);  // relaxed: statistic
    lock.unlock();
    for (void* c : drop) ::munmap(c, kBytes);
    lock.lock();
  }

  static void Unmap(void* chunk) {
    mapped_bytes_.fetch_sub(kBytes, std::memory_order_relaxed);  // relaxed: statistic
    ::munmap(chunk, kBytes);
  }

  // A huge chunk slower than this was compacted for; small pages take ~1 ms per chunk.
  static constexpr std::chrono::microseconds kSlowHugeChunk{1000};
  static constexpr std::uint32_t kSmallOnlyChunks = 32;

  // A kBytes chunk aligned to kBytes with every page faulted in, or nullptr if mmap fails;
  // huge: ask for a transparent huge page.
  static void* MakeChunk(bool huge) {
    // Map twice the size and unmap what lies outside the aligned middle.
    void* raw =
        ::mmap(nullptr, 2 * kBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) return nullptr;
    const auto base = reinterpret_cast<std::uintptr_t>(raw);
    const std::uintptr_t aligned = (base + kBytes - 1) & ~(std::uintptr_t{kBytes} - 1);
    if (aligned > base) ::munmap(raw, aligned - base);
    if (aligned + kBytes < base + 2 * kBytes) {
      ::munmap(reinterpret_cast<void*>(aligned + kBytes), base + 2 * kBytes - aligned - kBytes);
    }
    void* chunk = reinterpret_cast<void*>(aligned);
    mapped_bytes_.fetch_add(kBytes, std::memory_order_relaxed);  // relaxed: statistic
#ifdef MADV_HUGEPAGE
    // Best effort: fails harmlessly where THP is not compiled in or is switched off.
    if (huge) ::madvise(chunk, kBytes, MADV_HUGEPAGE);
#else
    (void)huge;
#endif
    // One write per page: a page fault, which recent kernels serve under the VMA's own lock,
    // where MADV_POPULATE_WRITE would hold the process's mmap lock for the whole chunk and
    // stall any thread that maps memory meanwhile. The content is not used yet.
    static const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    for (std::size_t off = 0; off < kBytes; off += page) {
      *(static_cast<volatile char*>(chunk) + off) = 0;
    }
    return chunk;
  }

  static inline std::atomic<std::size_t> mapped_bytes_{0};

  std::mutex mu_;
  std::condition_variable cv_;       // filler waits: a take, a free, the trim timer
  std::condition_variable full_cv_;  // WaitUntilFull waits: target_ ready
  std::atomic<bool> primed_{false};  // written under mu_; the filler runs once it is true
  std::vector<void*> ready_;         // guarded by mu_
  std::size_t target_ = 1;           // guarded by mu_
  bool filler_asleep_ = false;       // guarded by mu_: idle, a take must wake it
  std::chrono::steady_clock::time_point last_take_{};  // guarded by mu_ (takes and misses)
  std::vector<void*> kept_;                            // guarded by mu_: freed, kept
  std::chrono::steady_clock::time_point last_free_{};  // guarded by mu_ (kept chunks)
  std::chrono::milliseconds keep_freed_{5000};         // guarded by mu_
  std::size_t reused_ = 0, trimmed_ = 0;               // guarded by mu_
  std::size_t takes_since_miss_ = 0;                   // guarded by mu_
  std::size_t taken_ = 0, misses_ = 0, filled_ = 0, huge_tries_ = 0;  // guarded by mu_
};

}  // namespace segmented_detail
}  // namespace eventbuffer
