// EpochDomain: epoch-based memory reclamation (EBR) for SegmentedSliceMap.
//
// Readers and writers of a lock-free structure wrap every access in an EpochGuard. Memory
// that has been unlinked from the structure is handed to Retire(); it is released only
// after every thread that might still hold a pointer to it has left its critical section.
//
// The scheme (Fraser's epochs, three-epoch version):
//   - a global epoch E, only advanced under mu_;
//   - per thread a record holding (local_epoch << 1 | active);
//   - entering a critical section copies E into the record and marks it active;
//   - Retire(item) tags the item with the current E (the caller unlinked it before);
//   - E may advance from e to e + 1 only when every active record announces e;
//   - an item tagged t is freed once E >= t + 2: every thread that was inside a critical
//     section when the item was unlinked has left it since (it announced t or t - 1 and had
//     to announce t + 1 before E could move from t + 1 to t + 2).
//
// Thread safety: EpochGuard (Enter/Exit) is wait-free apart from a thread's first use
// (registration, lock-free) and may be nested. Retire, TryReclaim, RunOwned take mu_.
// Reclaim callbacks run under mu_ on whatever thread reclaims; they must not call back
// into the domain. One process-wide domain serves every SegmentedSliceMap.
//
// Invariants:
//   - an active record's epoch is E or E - 1 (E moves only when all active records are at E);
//   - retired_ is ordered by tag (tags are read under mu_ and E only grows), and items are
//     run in FIFO order, so an item retired after another on the same memory runs after it;
//   - thread records are never freed (a finished thread's record is reused by a new thread).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>

namespace eventbuffer {
namespace segmented_detail {

// Per-thread announcement. Cache-line sized so that threads do not false-share.
struct alignas(64) EpochRecord {
  // (epoch << 1) | 1 while the owner is inside a critical section, 0 otherwise.
  std::atomic<std::uint64_t> state{0};
  // Owned by a live thread. CAS false->true (acquire) claims a free record.
  std::atomic<bool> in_use{true};
  // Small dense id (0, 1, 2, ...): SegmentedSliceMap uses it to pick a counter stripe that
  // this thread alone writes. Immutable after the record is published.
  std::uint32_t id = 0;
  // Nesting depth of EpochGuards; only the owner thread touches it.
  std::uint32_t nesting = 0;
  // Next record in the domain's list; immutable after the record is published.
  EpochRecord* next = nullptr;
};

// The calling thread's record (constant-initialized, so reading it costs no TLS wrapper).
inline thread_local EpochRecord* tls_record_ = nullptr;

// Gives the record back when its thread exits.
struct EpochReleaser {
  EpochRecord* rec = nullptr;
  ~EpochReleaser() {
    if (rec == nullptr) return;
    rec->nesting = 0;
    // release: the state and every stripe write of this thread are visible to the next
    // owner (which claims with acquire) and to reclaimers.
    rec->state.store(0, std::memory_order_release);
    rec->in_use.store(false, std::memory_order_release);
    tls_record_ = nullptr;
  }
};
inline thread_local EpochReleaser tls_releaser_;

class EpochDomain {
 public:
  using Reclaim = void (*)(void* p, std::uint64_t a, std::uint64_t b);

  // The process-wide domain. Never destroyed (so static maps and exiting threads can use
  // it until the very end).
  static EpochDomain& Global() {
    static EpochDomain* const domain = new EpochDomain();
    return *domain;
  }

  // The calling thread's record, registering the thread on first use.
  EpochRecord* ThisThread() {
    EpochRecord* rec = tls_record_;
    if (rec != nullptr) return rec;
    return Register();
  }

  void Enter(EpochRecord* rec) {
    if (rec->nesting++ != 0) return;
    // relaxed: a stale value is harmless. E is at most one ahead of any value we can read
    // here, and announcing an older epoch only holds reclamation back.
    const std::uint64_t e = epoch_.load(std::memory_order_relaxed);
    // release store: a reclaimer that reads this announcement (acquire) also sees every
    // access of this thread's previous critical sections, as if it had read Exit's 0.
    // seq_cst fence: the announcement must be ordered before every load of a shared pointer
    // inside the critical section (a store-load ordering, which only a seq_cst fence
    // gives). It pairs with the seq_cst fence in TryAdvanceLocked: either the reclaimer
    // sees this announcement, or this thread sees every unlink that preceded the
    // reclaimer's fence and so can no longer reach the unlinked memory.
#if defined(__SANITIZE_THREAD__)
    // ThreadSanitizer does not model fences; a seq_cst exchange is a full barrier on the
    // hardware it runs on and gives TSan the same release.
    rec->state.exchange((e << 1) | 1, std::memory_order_seq_cst);
#else
    rec->state.store((e << 1) | 1, std::memory_order_release);
    std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
  }

  void Exit(EpochRecord* rec) {
    if (--rec->nesting != 0) return;
    // release: every access made inside the critical section happens-before a reclaimer
    // that reads this 0 (acquire) and then frees memory.
    rec->state.store(0, std::memory_order_release);
  }

  // Hands over memory that the caller has already unlinked (no new reader can reach it).
  // fn(p, a, b) runs once every thread that could still see it has left its critical
  // section. `owner` tags the item so that the owner's destructor can run its items early
  // (RunOwned). May be called inside or outside a critical section.
  void Retire(const void* owner, Reclaim fn, void* p, std::uint64_t a = 0, std::uint64_t b = 0) {
    std::lock_guard<std::mutex> lock(mu_);
    // relaxed: E is only written under mu_, which we hold.
    retired_.push_back(Item{epoch_.load(std::memory_order_relaxed), owner, fn, p, a, b});
  }

  // Tries to advance the epoch (up to `rounds` times) and runs every item that no reader
  // can see anymore. Returns the number of items run.
  std::size_t TryReclaim(int rounds = 1) {
    std::lock_guard<std::mutex> lock(mu_);
    for (int i = 0; i < rounds && !retired_.empty(); ++i) {
      if (!TryAdvanceLocked()) break;
    }
    const std::uint64_t e = epoch_.load(std::memory_order_relaxed);
    std::size_t n = 0;
    while (!retired_.empty() && retired_.front().epoch + 2 <= e) {
      const Item item = retired_.front();
      retired_.pop_front();
      item.fn(item.p, item.a, item.b);
      ++n;
    }
    return n;
  }

  // Runs at once, in retirement order, every pending item of `owner`.
  // REQUIRES: no thread can reach owner's memory anymore (its destructor is running).
  void RunOwned(const void* owner) {
    std::lock_guard<std::mutex> lock(mu_);
    std::deque<Item> keep;
    for (const Item& item : retired_) {
      if (item.owner == owner) {
        item.fn(item.p, item.a, item.b);
      } else {
        keep.push_back(item);
      }
    }
    retired_.swap(keep);
  }

  // Number of items waiting for a grace period (for tests and metrics).
  std::size_t PendingCount() {
    std::lock_guard<std::mutex> lock(mu_);
    return retired_.size();
  }

 private:
  struct Item {
    std::uint64_t epoch;
    const void* owner;
    Reclaim fn;
    void* p;
    std::uint64_t a, b;
  };

  EpochDomain() = default;

  // REQUIRES: mu_ held.
  bool TryAdvanceLocked() {
    // seq_cst fence: pairs with the fence in Enter (see there). Every unlink that
    // happened-before this point (the retiring thread released mu_ after unlinking) is
    // visible to a thread whose announcement we fail to see below.
#if defined(__SANITIZE_THREAD__)
    epoch_.fetch_add(0, std::memory_order_seq_cst);  // TSan: a full barrier, see Enter
#else
    std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
    const std::uint64_t e = epoch_.load(std::memory_order_relaxed);
    // acquire: the head and each record are published by release CAS in Register.
    for (EpochRecord* r = records_.load(std::memory_order_acquire); r != nullptr; r = r->next) {
      // acquire: pairs with the release in Exit, so that the thread's reads of memory we
      // may free below happen-before the free.
      const std::uint64_t s = r->state.load(std::memory_order_acquire);
      if ((s & 1) != 0 && (s >> 1) != e) return false;
    }
    // relaxed: readers of E tolerate staleness (see Enter); writers hold mu_.
    epoch_.store(e + 1, std::memory_order_relaxed);
    return true;
  }

  EpochRecord* Register() {
    EpochRecord* rec = nullptr;
    // Reuse a record left by a finished thread.
    for (EpochRecord* r = records_.load(std::memory_order_acquire); r != nullptr; r = r->next) {
      bool expected = false;
      // acquire: sees everything the previous owner did before releasing the record.
      if (!r->in_use.load(std::memory_order_relaxed) &&
          r->in_use.compare_exchange_strong(expected, true, std::memory_order_acquire,
                                            std::memory_order_relaxed)) {
        rec = r;
        break;
      }
    }
    if (rec == nullptr) {
      rec = new EpochRecord();  // never freed: records live as long as the process
      // relaxed: ids only need to be distinct, fetch_add gives that.
      rec->id = next_id_.fetch_add(1, std::memory_order_relaxed);
      EpochRecord* head = records_.load(std::memory_order_relaxed);
      do {
        rec->next = head;
        // release: a reclaimer that loads the new head (acquire) sees id and next.
      } while (!records_.compare_exchange_weak(head, rec, std::memory_order_release,
                                               std::memory_order_relaxed));
    }
    tls_record_ = rec;
    tls_releaser_.rec = rec;  // first use of the thread_local registers its destructor
    return rec;
  }

  // Written only under mu_; read relaxed by Enter.
  std::atomic<std::uint64_t> epoch_{2};
  std::atomic<EpochRecord*> records_{nullptr};
  std::atomic<std::uint32_t> next_id_{0};
  std::mutex mu_;
  std::deque<Item> retired_;  // guarded by mu_, ordered by epoch
};

// RAII critical section. Every pointer loaded from a SegmentedSliceMap is valid until the
// guard that was active when it was loaded ends.
class EpochGuard {
 public:
  explicit EpochGuard(EpochDomain& d) : domain_(d), rec_(d.ThisThread()) { domain_.Enter(rec_); }
  ~EpochGuard() { domain_.Exit(rec_); }
  EpochGuard(const EpochGuard&) = delete;
  EpochGuard& operator=(const EpochGuard&) = delete;
  EpochRecord* record() const { return rec_; }

 private:
  EpochDomain& domain_;
  EpochRecord* rec_;
};

}  // namespace segmented_detail
}  // namespace eventbuffer
