// EventBuffer: the in-memory store of Kubernetes Event occurrences, grouped by involved
// object, and the gray-release experiment that moves it from the legacy MutexSliceMap to the
// atomic SegmentedSliceMap.
//
// The experiment's pieces (github/scientist's pattern), each a named part:
//   switch      GrayFlag (gray_flag.h) — per mode and key: which backends are written, which
//               one serves a read;
//   control     the legacy backend, candidate: the atomic backend (SliceBackend);
//   comparator  CompareOccurrences (verifier.h), run for sampled appends and reads and by
//               the background VerifySweep;
//   publisher   counters in Stats(), the BufferObserver, and the mismatch sink.
//
// Keys. An occurrence is stored under record->Key() = "namespace/kind/name" of the involved
// object; its identity is (uid, resourceVersion) and each identity is stored at most once
// (found in the QueryIndex while stored, in the stripe's DedupIndex of tombstones once
// evicted), whatever relists or reconnects deliver it again.
//
// Thread safety: every public method may be called from any number of threads at once.
// Keys are spread over kStripes lock stripes by their FNV-1a hash; each stripe has a mutex
// that guards its dedup index and its GrayFlag (the stripe's mode and rollout). Every append, read,
// verification and retention step on a key holds that key's stripe mutex, and calls the backends
// for the key only under it. Reconfigure is serialised with itself.
//
// Invariants (for each stripe, under its mutex):
//   - every backend that stripe.flag Writes holds, for each key of the
//     stripe, exactly the stored occurrences of that key, in the same order. Appends to
//     both backends of a key happen under one critical section, so concurrent writers
//     cannot interleave differently in the two, and retention drops the same prefix from
//     both. Hence two correct backends never differ (the A/A run reports zero
//     mismatches) and any difference the verifier sees is a backend fault;
//   - a backend not written by stripe.flag holds nothing for the stripe's keys once a
//     transition has finished (it is cleared; it is backfilled before it is written again);
//   - the QueryIndex holds each stored occurrence once; the stripe's dedup index holds
//     tombstones only (occurrences of its keys evicted and not yet forgotten).
//
// Mode transitions (Reconfigure) lose nothing: a backend that becomes written is first
// cleared, then filled from the other backend key by key, and the key's stripe switches
// mode in the same critical section as its backfill, so no append can fall between the
// copy and the switch. See docs/gray-release.md.
//
// Cost: an append takes one (usually uncontended) stripe mutex, one tombstone lookup, one
// QueryIndex insert (which finds a duplicate) and one or two backend appends. The
// backends' own latency is what the observer measures.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "eventbuffer/buffer_config.h"
#include "eventbuffer/buffer_observer.h"
#include "eventbuffer/dedup_index.h"
#include "eventbuffer/event_query.h"
#include "eventbuffer/event_record.h"
#include "eventbuffer/gray_flag.h"
#include "eventbuffer/query_index.h"
#include "eventbuffer/slice_backend.h"
#include "eventbuffer/verifier.h"

namespace eventbuffer {

struct ObjectSummary {
  std::string ns, kind, name;
  std::size_t events = 0;
};

struct BackendStats {
  std::size_t objects = 0;  // keys held
  std::size_t events = 0;   // occurrences held
  std::size_t bytes = 0;    // the backend's own structures (records are shared, see below)
};

struct BufferStats {
  BackendStats backend[kBackendCount];                // indexed by Backend
  std::uint64_t dedup_hits = 0;                       // appends refused as duplicates
  std::uint64_t evictions = 0;                        // occurrences evicted by retention
  std::uint64_t evictions_by_reason[kEvictionReasonCount] = {};  // indexed by EvictionReason
  std::uint64_t appended = 0;                         // occurrences stored
  std::uint64_t expired = 0;                          // appends refused as older than the age limit
  std::uint64_t mismatches[kMismatchKindCount] = {};  // indexed by MismatchKind
  std::uint64_t verifications[kVerifyResultCount] = {};  // indexed by VerifyResult
  // Heap blocks of the stored occurrences' records (EventRecord::MemoryBytes), each counted
  // once however many backends hold it, and each revision's base counted once while any
  // stored occurrence shares it (EventRecord::AcquireHeld).
  std::size_t record_bytes = 0;
  // The process-wide InternTable the records refer to (intern_table.h).
  std::size_t intern_bytes = 0, intern_entries = 0;
  std::uint64_t intern_fallbacks = 0;
  std::size_t dedup_entries = 0;  // tombstones (evicted occurrences still refused)
  // The buffer's own indexes, shared by both backends: the dedup index (all stripes) and
  // the list index (QueryIndex::MemoryBytes, without the records).
  std::size_t dedup_bytes = 0, query_index_bytes = 0;
  std::uint64_t truncated_messages = 0;  // occurrences stored with a truncated message
};

struct MismatchReport {
  std::string key;
  GrayMode mode = GrayMode::kShadow;
  std::size_t legacy_count = 0, atomic_count = 0;
  MismatchKind kind = MismatchKind::kMissing;
  std::string first_difference;
};

class EventBuffer {
 public:
  static constexpr std::size_t kStripes = 512;  // power of two

  enum class AppendResult {
    kStored,     // a new occurrence, now stored
    kDuplicate,  // this (uid, resourceVersion) is held or was recently evicted
    kExpired,    // older than the age limit at the last EnforceRetention: not stored
  };

  // Builds a buffer over the production backends (MutexSliceMap, SegmentedSliceMap).
  // Sets the process-wide clock skew (SetMaxClockSkewMs) to config.retention.max_clock_skew:
  // one buffer per process, or all with the same skew.
  // observer may be null; otherwise it must outlive the buffer.
  // REQUIRES: ValidateBufferConfig(config) is "" (throws std::invalid_argument otherwise).
  explicit EventBuffer(BufferConfig config, BufferObserver* observer = nullptr);
  // Builds a buffer over the given backends (tests plug in fault-injecting ones).
  EventBuffer(BufferConfig config, std::unique_ptr<SliceBackend> legacy,
              std::unique_ptr<SliceBackend> atomic, BufferObserver* observer = nullptr);
  ~EventBuffer();
  EventBuffer(const EventBuffer&) = delete;
  EventBuffer& operator=(const EventBuffer&) = delete;

  // Stores record under record->Key() in the backends the key's mode writes, unless its
  // identity is already known (kDuplicate) or it is older than the age cutoff of the last
  // EnforceRetention (kExpired). A message longer than retention.max_message_bytes is
  // stored truncated (message_limit.h): what is stored is then a copy of record with the
  // shorter message. REQUIRES: record != nullptr.
  AppendResult Append(const EventRef& record);
  // The same; when kStored and stored is not null, sets *stored to the record as stored
  // (record itself, or its copy with the message truncated): what a durable copy should
  // keep.
  AppendResult Append(const EventRef& record, EventRef* stored);

  // The occurrences of key, in the order they were stored, from the backend the flag routes
  // the key to. Empty when the key is unknown.
  std::vector<EventRef> Read(std::string_view key) const;

  // Every object with at least one occurrence, with its count, routed like Read. No order.
  std::vector<ObjectSummary> Objects() const;

  // A page of the stored occurrences in list order (event_query.h), from the query index.
  EventPage List(const EventQuery& query) const;

  // The stored occurrence of Event event_name at resource_version in namespace ns, or null.
  EventRef Find(std::string_view ns, std::string_view event_name,
                std::string_view resource_version) const;

  // Counters and per-backend sizes. Walks the backends: O(keys).
  BufferStats Stats() const;

  // Applies a new configuration: mode and rollout switch (with backfill where the new mode
  // writes a backend the old one did not), sampling rate and retention limits. Appends
  // and reads may run concurrently and none is lost. Retention limits apply from the next
  // EnforceRetention. REQUIRES: ValidateBufferConfig(config) is "" and
  // config.retention.max_clock_skew is the one in force (else throws std::invalid_argument
  // and nothing changes).
  void Reconfigure(const BufferConfig& config);

  // The configuration in force.
  BufferConfig config() const;

  // Evicts, identically from every written backend: occurrences older than
  // now - max_age (from the front of each key while the front is older), the oldest
  // beyond max_events_per_object per key, then, while over max_events or max_bytes, by the
  // budget rule below. Also forgets dedup tombstones past the age limit. Returns
  // occurrences evicted.
  //
  // Budget rule (here and in Append, which enforces max_bytes as soon as an append goes
  // over it, evicting down to 63/64 of it): the namespace (of the Event) holding the most
  // — bytes when over max_bytes, else occurrences — loses its oldest occurrences (list
  // order) while it holds more than its fair share (the budget over the namespaces held)
  // and more than the next largest (reason namespace_share); when no namespace is beyond
  // its fair share, the oldest occurrences overall go (reason budget). So a namespace
  // flooding the buffer evicts its own occurrences, not those of a namespace within its
  // share. An eviction takes the front of the oldest occurrence's key (DropLocked), so
  // both backends stay identical.
  std::size_t EnforceRetention(std::int64_t now_unix_ms);

  // One step of the background verification: verifies up to max_keys keys, continuing
  // where the previous call stopped and starting a new round over all keys when the last
  // round is done. Returns the number of keys compared (skipped keys, in a single-write
  // mode, are not counted).
  std::size_t VerifySweep(std::size_t max_keys);

  // Verifies one key now and publishes the result like any verification.
  VerifyResult VerifyKey(std::string_view key);

  // Receives one report per mismatch kind found (called without buffer locks held, from
  // the verifying thread, serialised). Replaces the previous sink; an empty function
  // removes it.
  void SetMismatchSink(std::function<void(const MismatchReport&)> sink);

  // Receives every occurrence the buffer evicts, by retention or by the byte budget (e.g. to
  // delete them from a durable copy), in batches, on the thread that evicted them
  // (EnforceRetention's, or an appending one), with no stripe lock held; calls are
  // serialised. Replaces the previous sink; an empty function removes it.
  void SetEvictionSink(std::function<void(std::vector<EventRef>&&)> sink);

  // Tests only: called during a backfilling transition after the source's keys are listed
  // and before any stripe switches (appends from the hook race the switch deterministically).
  void SetTransitionHookForTesting(std::function<void()> hook) {
    transition_hook_ = std::move(hook);
  }

  // Implementation details follow.
 private:
  struct alignas(64) Stripe {
    mutable std::mutex mu;
    GrayFlag flag;  // routes this stripe's writes, reads and retention
    DedupIndex dedup;
    // While a transition lists this stripe's keys: keys appended to since listing began.
    bool collect_keys = false;
    std::unordered_set<std::string> new_keys;
  };
  struct Verification {
    VerifyResult result = VerifyResult::kSkipped;
    std::vector<MismatchReport> reports;
  };

  static std::size_t StripeOfHash(std::uint64_t h) { return (h >> 32) & (kStripes - 1); }
  Stripe& StripeOf(std::string_view key) const { return stripes_[StripeOfHash(Fnv1a64(key))]; }
  SliceBackend& backend(Backend b) const { return *backends_[static_cast<std::size_t>(b)]; }
  void AppendTo(Backend b, std::string_view key, const EventRef& record);
  bool SampleVerify() const;
  // REQUIRES: s.mu held by the caller.
  Verification VerifyLocked(const Stripe& s, std::string_view key) const;
  void Publish(Verification&& v) const;
  void Transition(GrayMode from, const GrayFlag& to);
  // Sets every stripe's flag (no backend changes: same mode, new rollout).
  void SetFlags(const GrayFlag& flag);
  void ClearBackend(Backend b);
  std::vector<std::string> AllKeys() const;
  // Drops from the written backends of key; pred sees the primary's front. Appends what it
  // drops to *dropped_out and adds the dropped records' bytes to *bytes_out, each unless
  // null. REQUIRES: s.mu.
  std::size_t DropLocked(Stripe& s, std::string_view key, FunctionRef<bool(const EventRef&)> pred,
                         std::vector<EventRef>* dropped_out, std::size_t* bytes_out = nullptr);
  // Evicts by the budget rule until record bytes <= max_bytes and occurrences <= max_events
  // (or nothing is left). Adds counts to by_reason; appends the evicted to *gone unless null.
  // REQUIRES: budget_mu_ held, no stripe lock.
  void EvictOverBudgetLocked(std::size_t max_bytes, std::size_t max_events,
                             std::size_t (&by_reason)[kEvictionReasonCount],
                             std::vector<EventRef>* gone);
  void PublishEvictions(const std::size_t (&by_reason)[kEvictionReasonCount]);
  // Hands evicted occurrences to the eviction sink, if any (no stripe lock held).
  void HandOverEvicted(std::vector<EventRef>&& gone);
  bool HasEvictionSink() const { return has_eviction_sink_.load(std::memory_order_acquire); }

  std::unique_ptr<SliceBackend> backends_[kBackendCount];
  // Every stored occurrence, whichever backends hold it: added in Append's critical
  // section, removed in DropLocked's (see Append for why that order is safe).
  QueryIndex index_;
  BufferObserver* const observer_;
  mutable std::unique_ptr<Stripe[]> stripes_;

  mutable std::mutex config_mu_;  // guards config_
  BufferConfig config_;
  std::mutex reconfigure_mu_;  // serialises Reconfigure
  // Copies of config_ fields read on hot paths; relaxed: each is a self-contained value and
  // a reader acting on the previous value for a moment is harmless.
  std::atomic<std::uint64_t> verify_threshold_{0};  // verify iff random64 < this
  std::atomic<bool> verify_all_{false};             // sample_rate == 1
  std::atomic<std::int64_t> age_cutoff_ms_{INT64_MIN};
  std::atomic<std::size_t> max_message_bytes_{SIZE_MAX};
  std::atomic<std::size_t> max_bytes_{SIZE_MAX};

  mutable std::mutex sink_mu_;  // guards sink_ and serialises its calls
  std::function<void(const MismatchReport&)> sink_;

  std::mutex sweep_mu_;  // guards the sweep cursor
  std::vector<std::string> sweep_keys_;
  std::size_t sweep_next_ = 0;

  std::mutex retention_mu_;                // serialises EnforceRetention
  std::mutex budget_mu_;                   // serialises budget evictions (after retention_mu_)
  std::mutex eviction_sink_mu_;            // guards eviction_sink_ (innermost)
  std::function<void(std::vector<EventRef>&&)> eviction_sink_;
  std::atomic<bool> has_eviction_sink_{false};
  std::function<void()> transition_hook_;  // tests only

  mutable std::atomic<std::uint64_t> appended_{0}, dedup_hits_{0}, evictions_{0}, expired_{0};
  mutable std::atomic<std::uint64_t> truncated_{0};
  mutable std::atomic<std::uint64_t> evictions_by_reason_[kEvictionReasonCount] = {};
  mutable std::atomic<std::size_t> record_bytes_{0};
  mutable std::atomic<std::uint64_t> mismatches_[kMismatchKindCount] = {};
  mutable std::atomic<std::uint64_t> verifications_[kVerifyResultCount] = {};
};

}  // namespace eventbuffer
