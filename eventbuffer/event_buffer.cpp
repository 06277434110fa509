#include "eventbuffer/event_buffer.h"

#include <algorithm>
#include <stdexcept>
#include <thread>
#include <utility>

#include "eventbuffer/intern_table.h"
#include "eventbuffer/message_limit.h"

namespace eventbuffer {

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t Index(Backend b) { return static_cast<std::size_t>(b); }
constexpr Backend Other(Backend b) {
  return b == Backend::kLegacy ? Backend::kAtomic : Backend::kLegacy;
}
constexpr Backend kBackends[kBackendCount] = {Backend::kLegacy, Backend::kAtomic};

// Per-thread xorshift64* generator for verification sampling: no shared state, no locks.
std::uint64_t NextRandom() {
  thread_local std::uint64_t state =
      0x9e3779b97f4a7c15ULL ^ std::hash<std::thread::id>{}(std::this_thread::get_id());
  state ^= state >> 12;
  state ^= state << 25;
  state ^= state >> 27;
  return state * 0x2545f4914f6cdd1dULL;
}

// Observer sampling: 1 in kAppendSample appends per backend and thread is timed.
constexpr std::uint32_t kAppendSampleMask = 15;

void SplitKey(const std::string& key, ObjectSummary* out) {
  const auto a = key.find('/');
  const auto b = a == std::string::npos ? std::string::npos : key.find('/', a + 1);
  if (b == std::string::npos) {
    out->name = key;
    return;
  }
  out->ns = key.substr(0, a);
  out->kind = key.substr(a + 1, b - a - 1);
  out->name = key.substr(b + 1);
}

}  // namespace

EventBuffer::EventBuffer(BufferConfig config, BufferObserver* observer)
    : EventBuffer(std::move(config), MakeLegacyBackend(), MakeAtomicBackend(), observer) {}

EventBuffer::EventBuffer(BufferConfig config, std::unique_ptr<SliceBackend> legacy,
                         std::unique_ptr<SliceBackend> atomic, BufferObserver* observer)
    : observer_(observer), stripes_(std::make_unique<Stripe[]>(kStripes)) {
  if (const std::string err = ValidateBufferConfig(config); !err.empty()) {
    throw std::invalid_argument(err);
  }
  if (!legacy || !atomic) throw std::invalid_argument("EventBuffer: null backend");
  backends_[Index(Backend::kLegacy)] = std::move(legacy);
  backends_[Index(Backend::kAtomic)] = std::move(atomic);
  const GrayFlag flag(config.mode, config.rollout_percent);
  for (std::size_t i = 0; i < kStripes; ++i) stripes_[i].flag = flag;
  const double rate = config.verify.sample_rate;
  verify_all_.store(rate >= 1, std::memory_order_relaxed);
  verify_threshold_.store(rate >= 1 ? ~0ULL : static_cast<std::uint64_t>(rate * 0x1p64),
                          std::memory_order_relaxed);
  max_message_bytes_.store(config.retention.max_message_bytes, std::memory_order_relaxed);
  max_bytes_.store(config.retention.max_bytes, std::memory_order_relaxed);
  SetMaxClockSkewMs(config.retention.max_clock_skew.count());
  config_ = std::move(config);
  if (observer_ != nullptr) observer_->OnModeChange(config_.mode, config_.rollout_percent);
}

EventBuffer::~EventBuffer() = default;

bool EventBuffer::SampleVerify() const {
  if (verify_all_.load(std::memory_order_relaxed)) return true;
  const std::uint64_t threshold = verify_threshold_.load(std::memory_order_relaxed);
  return threshold != 0 && NextRandom() < threshold;
}

void EventBuffer::AppendTo(Backend b, std::string_view key, const EventRef& record) {
  SliceBackend& be = backend(b);
  if (observer_ == nullptr) {
    be.Append(key, record, nullptr);
    return;
  }
  thread_local std::uint32_t counters[kBackendCount] = {};
  AppendStats stats;
  if ((++counters[Index(b)] & kAppendSampleMask) == 0) {
    const auto t0 = Clock::now();
    be.Append(key, record, &stats);
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0);
    observer_->OnAppend(b, ns.count(), stats.stall_ns);
  } else {
    be.Append(key, record, &stats);
    if (stats.stall_ns > 0) observer_->OnStall(b, stats.stall_ns);
  }
}

EventBuffer::AppendResult EventBuffer::Append(const EventRef& original) {
  return Append(original, nullptr);
}

EventBuffer::AppendResult EventBuffer::Append(const EventRef& original, EventRef* stored) {
  // Truncation happens here rather than in the decoder: every producer of records is
  // covered, the limit follows Reconfigure, and the common case costs one comparison. An
  // oversized message (rare) costs one extra copy of the record at its limited size.
  const std::size_t max_message = max_message_bytes_.load(std::memory_order_relaxed);
  const bool truncate = original->message().size() > max_message;
  EventRef limited;
  if (truncate) limited = WithMessageLimit(original, max_message);
  const EventRef& record = truncate ? limited : original;
  thread_local std::string key;
  key.clear();
  record->AppendKey(&key);
  const std::int64_t time_ms = RecordTimeMs(*record);
  if (time_ms < age_cutoff_ms_.load(std::memory_order_relaxed)) {
    expired_.fetch_add(1, std::memory_order_relaxed);
    return AppendResult::kExpired;
  }
  const OccurrenceId id = IdOf(*record);
  Stripe& s = stripes_[StripeOfHash(Fnv1a64(key))];
  Verification verification;
  bool verified = false;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    // A duplicate is an identity stored now (found in the QueryIndex, whose Add refuses it)
    // or evicted lately (a tombstone in the stripe's DedupIndex). Both checks run under the
    // stripe lock, and a re-delivered occurrence names the same involved object, hence the
    // same key and stripe: two deliveries of it at once cannot both pass.
    // Indexed under the same stripe lock as the store: evicting this occurrence needs the
    // lock too (DropLocked), so its Remove cannot come before this Add and leave it listed.
    if (s.dedup.Contains(id) || !index_.Add(record)) {
      dedup_hits_.fetch_add(1, std::memory_order_relaxed);
      if (observer_ != nullptr) observer_->OnDedupHit();
      return AppendResult::kDuplicate;
    }
    try {
      if (s.collect_keys) s.new_keys.emplace(key);
      for (const Backend b : kBackends) {
        if (s.flag.Writes(b)) AppendTo(b, key, record);
      }
    } catch (...) {
      index_.Remove(*record);  // not stored (or only partly: the verifier will say so)
      throw;
    }
    // Counted under the lock too, so that an eviction of it (which needs the lock) always
    // comes after: record_bytes never dips below what is held. A revision adds its own
    // block, and its base's when no other held occurrence holds that yet.
    record_bytes_.fetch_add(record->AcquireHeld(), std::memory_order_relaxed);
    if (s.flag.dual_write() && SampleVerify()) {
      verification = VerifyLocked(s, key);
      verified = true;
    }
  }
  appended_.fetch_add(1, std::memory_order_relaxed);
  if (truncate) {
    truncated_.fetch_add(1, std::memory_order_relaxed);
    if (observer_ != nullptr) observer_->OnMessageTruncated();
  }
  // The byte budget, enforced now rather than at the next retention pass. Over it, evict
  // down to 63/64 of it: the next ~1.5 % of the budget appends without evicting, so the
  // cost is a batch now and then, amortised to about one eviction per append.
  if (const std::size_t max_bytes = max_bytes_.load(std::memory_order_relaxed);
      record_bytes_.load(std::memory_order_relaxed) > max_bytes) {
    std::size_t by_reason[kEvictionReasonCount] = {};
    std::vector<EventRef> gone;
    {
      std::lock_guard<std::mutex> budget(budget_mu_);
      EvictOverBudgetLocked(max_bytes - max_bytes / 64, SIZE_MAX, by_reason,
                            HasEvictionSink() ? &gone : nullptr);
    }
    HandOverEvicted(std::move(gone));
    PublishEvictions(by_reason);
  }
  if (verified) Publish(std::move(verification));
  if (stored != nullptr) *stored = record;
  return AppendResult::kStored;
}

std::vector<EventRef> EventBuffer::Read(std::string_view key) const {
  const std::uint64_t h = Fnv1a64(key);
  Stripe& s = stripes_[StripeOfHash(h)];
  std::vector<EventRef> out;
  Verification verification;
  bool verified = false;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    out = backend(s.flag.ReadBackendForBucket(BucketOfHash(h))).Read(key);
    if (s.flag.dual_write() && SampleVerify()) {
      verification = VerifyLocked(s, key);
      verified = true;
    }
  }
  if (verified) Publish(std::move(verification));
  return out;
}

EventPage EventBuffer::List(const EventQuery& query) const { return index_.List(query); }

EventRef EventBuffer::Find(std::string_view ns, std::string_view event_name,
                           std::string_view resource_version) const {
  return index_.Find(ns, event_name, resource_version);
}

std::vector<std::string> EventBuffer::AllKeys() const {
  std::vector<std::string> keys = backend(Backend::kLegacy).Keys();
  std::vector<std::string> more = backend(Backend::kAtomic).Keys();
  if (keys.empty()) return more;
  if (!more.empty()) {
    std::unordered_set<std::string_view> seen(keys.begin(), keys.end());
    std::vector<std::string> extra;
    for (auto& k : more) {
      if (!seen.count(k)) extra.push_back(std::move(k));
    }
    for (auto& k : extra) keys.push_back(std::move(k));
  }
  return keys;
}

std::vector<ObjectSummary> EventBuffer::Objects() const {
  std::vector<ObjectSummary> out;
  for (const std::string& key : AllKeys()) {
    const std::uint64_t h = Fnv1a64(key);
    Stripe& s = stripes_[StripeOfHash(h)];
    std::size_t n;
    {
      std::lock_guard<std::mutex> lock(s.mu);
      n = backend(s.flag.ReadBackendForBucket(BucketOfHash(h))).Count(key);
    }
    if (n == 0) continue;
    ObjectSummary summary;
    SplitKey(key, &summary);
    summary.events = n;
    out.push_back(std::move(summary));
  }
  return out;
}

BufferStats EventBuffer::Stats() const {
  BufferStats st;
  for (std::size_t b = 0; b < kBackendCount; ++b) {
    st.backend[b].objects = backends_[b]->KeyCount();
    st.backend[b].events = backends_[b]->Size();
    st.backend[b].bytes = backends_[b]->MemoryBytes();
  }
  st.dedup_hits = dedup_hits_.load(std::memory_order_relaxed);
  st.evictions = evictions_.load(std::memory_order_relaxed);
  st.appended = appended_.load(std::memory_order_relaxed);
  st.expired = expired_.load(std::memory_order_relaxed);
  for (std::size_t r = 0; r < kEvictionReasonCount; ++r) {
    st.evictions_by_reason[r] = evictions_by_reason_[r].load(std::memory_order_relaxed);
  }
  st.truncated_messages = truncated_.load(std::memory_order_relaxed);
  for (std::size_t k = 0; k < kMismatchKindCount; ++k) {
    st.mismatches[k] = mismatches_[k].load(std::memory_order_relaxed);
  }
  for (std::size_t r = 0; r < kVerifyResultCount; ++r) {
    st.verifications[r] = verifications_[r].load(std::memory_order_relaxed);
  }
  st.record_bytes = record_bytes_.load(std::memory_order_relaxed);
  const InternTable::Stats interned = InternTable::Global().stats();
  st.intern_bytes = interned.bytes;
  st.intern_entries = interned.entries;
  st.intern_fallbacks = interned.fallbacks;
  for (std::size_t i = 0; i < kStripes; ++i) {
    std::lock_guard<std::mutex> lock(stripes_[i].mu);
    st.dedup_entries += stripes_[i].dedup.size();
    st.dedup_bytes += stripes_[i].dedup.MemoryBytes();
  }
  st.query_index_bytes = index_.MemoryBytes();
  return st;
}

BufferConfig EventBuffer::config() const {
  std::lock_guard<std::mutex> lock(config_mu_);
  return config_;
}

void EventBuffer::Reconfigure(const BufferConfig& config) {
  if (const std::string err = ValidateBufferConfig(config); !err.empty()) {
    throw std::invalid_argument(err);
  }
  std::lock_guard<std::mutex> serial(reconfigure_mu_);
  const BufferConfig old = this->config();
  if (config.retention.max_clock_skew != old.retention.max_clock_skew) {
    // Held occurrences' positions and ages were computed with the old skew: changing it
    // would move them in the query index. Applied at the next start instead.
    throw std::invalid_argument(
        "eventBuffer.retention.maxClockSkew: cannot change while running (restart to apply)");
  }
  const double rate = config.verify.sample_rate;
  verify_all_.store(rate >= 1, std::memory_order_relaxed);
  verify_threshold_.store(rate >= 1 ? ~0ULL : static_cast<std::uint64_t>(rate * 0x1p64),
                          std::memory_order_relaxed);
  max_message_bytes_.store(config.retention.max_message_bytes, std::memory_order_relaxed);
  max_bytes_.store(config.retention.max_bytes, std::memory_order_relaxed);
  const GrayFlag flag(config.mode, config.rollout_percent);
  if (old.mode != config.mode) {
    Transition(old.mode, flag);
  } else if (old.rollout_percent != config.rollout_percent) {
    SetFlags(flag);
  }
  {
    std::lock_guard<std::mutex> lock(config_mu_);
    config_ = config;
  }
  if (observer_ != nullptr &&
      (old.mode != config.mode || old.rollout_percent != config.rollout_percent)) {
    observer_->OnModeChange(config.mode, config.rollout_percent);
  }
}

void EventBuffer::ClearBackend(Backend b) {
  SliceBackend& be = backend(b);
  for (const std::string& key : be.Keys()) {
    be.DropFront(key, SIZE_MAX);
    be.EraseIfEmpty(key);
  }
}

// The switch. Every stripe moves from `from` to `to` in one critical section of its own.
// When `to` writes a backend that `from` did not (the stale one), that backend missed every
// write so far; it is backfilled from the other (the source, which `from` writes), key by
// key, in the same critical section that switches the key's stripe:
//   1. clear the stale backend (nobody reads or writes it in `from`);
//   2. mark every stripe as collecting keys, under its lock: from then on, an append to a
//      stripe records its key, so a key created after step 3's listing is not missed;
//   3. list the source's keys (every key created before its stripe was marked is there);
//   4. per stripe, under its lock: copy each listed or collected key from the source to the
//      stale backend, in order, then set the stripe's mode to `to`. Appends to the stripe
//      wait for the lock, then write with the new mode: none falls between copy and switch.
// Finally a backend that `to` no longer writes is cleared: no stripe writes it or routes
// reads or verification to it any more, and keeping it would go stale.
void EventBuffer::SetFlags(const GrayFlag& flag) {
  for (std::size_t i = 0; i < kStripes; ++i) {
    std::lock_guard<std::mutex> lock(stripes_[i].mu);
    stripes_[i].flag = flag;
  }
}

void EventBuffer::Transition(GrayMode from, const GrayFlag& to) {
  const GrayFlag before(from, 0);
  bool gained[kBackendCount] = {}, lost[kBackendCount] = {};
  for (const Backend b : kBackends) {
    gained[Index(b)] = !before.Writes(b) && to.Writes(b);
    lost[Index(b)] = before.Writes(b) && !to.Writes(b);
  }
  const bool backfill = gained[0] || gained[1];
  if (backfill) {
    const Backend stale = gained[Index(Backend::kLegacy)] ? Backend::kLegacy : Backend::kAtomic;
    SliceBackend& source = backend(Other(stale));
    SliceBackend& target = backend(stale);
    ClearBackend(stale);
    for (std::size_t i = 0; i < kStripes; ++i) {
      std::lock_guard<std::mutex> lock(stripes_[i].mu);
      stripes_[i].collect_keys = true;
      stripes_[i].new_keys.clear();
    }
    std::vector<std::vector<std::string>> listed(kStripes);
    for (std::string& key : source.Keys())
      listed[StripeOfHash(Fnv1a64(key))].push_back(std::move(key));
    if (transition_hook_) transition_hook_();
    for (std::size_t i = 0; i < kStripes; ++i) {
      Stripe& s = stripes_[i];
      std::lock_guard<std::mutex> lock(s.mu);
      for (std::string& key : listed[i]) s.new_keys.insert(std::move(key));
      for (const std::string& key : s.new_keys) {
        source.ForEach(key, [&](const EventRef& r) { target.Append(key, r, nullptr); });
      }
      s.flag = to;
      s.collect_keys = false;
      s.new_keys = {};
    }
  } else {
    SetFlags(to);
  }
  for (std::size_t b = 0; b < kBackendCount; ++b) {
    if (lost[b]) ClearBackend(Backend(b));
  }
}

std::size_t EventBuffer::DropLocked(Stripe& s, std::string_view key,
                                    FunctionRef<bool(const EventRef&)> pred,
                                    std::vector<EventRef>* dropped_out,
                                    std::size_t* bytes_out) {
  const Backend primary = s.flag.Primary();
  thread_local std::vector<EventRef> dropped;
  dropped.clear();
  std::size_t bytes = 0;
  const std::size_t n = backend(primary).DropFrontWhile(key, [&](const EventRef& r) {
    if (!pred(r)) return false;
    dropped.push_back(r);
    bytes += r->ReleaseHeld();
    return true;
  });
  if (n == 0) return 0;
  // Same key, same critical section as every write to it: the other backend holds the same
  // sequence, so dropping the same count drops the same occurrences.
  if (s.flag.dual_write()) {
    backend(Other(primary)).DropFront(key, n);
    backend(Other(primary)).EraseIfEmpty(key);
  }
  backend(primary).EraseIfEmpty(key);
  for (const EventRef& r : dropped) {
    s.dedup.AddTombstone(IdOf(*r), RecordTimeMs(*r));
    index_.Remove(*r);
  }
  if (dropped_out != nullptr) {
    dropped_out->insert(dropped_out->end(), std::make_move_iterator(dropped.begin()),
                        std::make_move_iterator(dropped.end()));
  }
  dropped.clear();
  record_bytes_.fetch_sub(bytes, std::memory_order_relaxed);
  if (bytes_out != nullptr) *bytes_out += bytes;
  return n;
}

void EventBuffer::SetEvictionSink(std::function<void(std::vector<EventRef>&&)> sink) {
  std::lock_guard<std::mutex> lock(eviction_sink_mu_);
  has_eviction_sink_.store(static_cast<bool>(sink), std::memory_order_release);
  eviction_sink_ = std::move(sink);
}

void EventBuffer::HandOverEvicted(std::vector<EventRef>&& gone) {
  if (gone.empty()) return;
  std::lock_guard<std::mutex> lock(eviction_sink_mu_);
  if (eviction_sink_) eviction_sink_(std::move(gone));
}

void EventBuffer::EvictOverBudgetLocked(std::size_t max_bytes, std::size_t max_events,
                                        std::size_t (&by_reason)[kEvictionReasonCount],
                                        std::vector<EventRef>* gone) {
  // Each round looks at the namespaces once (O(namespaces)), then evicts one occurrence at
  // a time (the front of the key of the oldest occurrence) until the round's goal is met.
  constexpr std::size_t kMaxRound = 4096;
  std::string key;
  int idle = 0;  // consecutive attempts that evicted nothing (a racing eviction won)
  while (idle < 8) {
    const bool over_bytes = record_bytes_.load(std::memory_order_relaxed) > max_bytes;
    const bool over_events = index_.size() > max_events;
    if (!over_bytes && !over_events) return;
    const std::vector<QueryIndex::NamespaceUsage> usage = index_.Usage();
    if (usage.empty()) return;
    const auto measure = [&](const QueryIndex::NamespaceUsage& u) {
      return over_bytes ? u.bytes : u.events;
    };
    std::size_t top = 0, second = 0;
    for (std::size_t i = 1; i < usage.size(); ++i) {
      if (measure(usage[i]) > measure(usage[top])) top = i;
    }
    for (std::size_t i = 0; i < usage.size(); ++i) {
      if (i != top) second = std::max(second, measure(usage[i]));
    }
    const std::size_t fair = (over_bytes ? max_bytes : max_events) / usage.size();
    // One namespace alone has no one to be fair to: its oldest go by the plain budget.
    const bool share = usage.size() > 1 && measure(usage[top]) > fair;
    // namespace_share: take the top namespace down to max(fair share, next largest), at
    // least one unit; budget: the oldest overall until under the budget.
    const std::size_t floor = std::max(fair, second);
    std::size_t room = share ? measure(usage[top]) - std::min(floor, measure(usage[top]) - 1)
                             : SIZE_MAX;
    const EvictionReason reason = share ? EvictionReason::kNamespaceShare : EvictionReason::kBudget;
    for (std::size_t step = 0; step < kMaxRound && room > 0; ++step) {
      if (record_bytes_.load(std::memory_order_relaxed) <= max_bytes &&
          index_.size() <= max_events) {
        return;
      }
      const EventRef victim = share ? index_.Oldest(usage[top].ns) : index_.Oldest();
      if (victim == nullptr) break;
      key.clear();
      victim->AppendKey(&key);
      Stripe& s = StripeOf(key);
      std::size_t bytes = 0, n;
      {
        std::lock_guard<std::mutex> lock(s.mu);
        bool first = true;
        n = DropLocked(
            s, key,
            [&](const EventRef&) {
              const bool take = first;
              first = false;
              return take;
            },
            gone, &bytes);
      }
      if (n == 0) {
        ++idle;
        break;
      }
      idle = 0;
      by_reason[static_cast<std::size_t>(reason)] += n;
      const std::size_t used = over_bytes ? bytes : n;
      room = used >= room ? 0 : room - used;
    }
  }
}

void EventBuffer::PublishEvictions(const std::size_t (&by_reason)[kEvictionReasonCount]) {
  std::size_t total = 0;
  for (std::size_t r = 0; r < kEvictionReasonCount; ++r) {
    if (by_reason[r] == 0) continue;
    total += by_reason[r];
    evictions_by_reason_[r].fetch_add(by_reason[r], std::memory_order_relaxed);
    if (observer_ != nullptr) observer_->OnEvictionsByReason(EvictionReason(r), by_reason[r]);
  }
  if (total > 0) evictions_.fetch_add(total, std::memory_order_relaxed);
}

std::size_t EventBuffer::EnforceRetention(std::int64_t now_unix_ms) {
  std::lock_guard<std::mutex> serial(retention_mu_);
  const RetentionConfig r = config().retention;
  const std::int64_t cutoff = now_unix_ms - static_cast<std::int64_t>(r.max_age.count());
  age_cutoff_ms_.store(cutoff, std::memory_order_relaxed);

  std::size_t by_reason[kEvictionReasonCount] = {};
  // The evicted occurrences for the eviction sink, handed over in batches outside stripe locks.
  std::vector<EventRef> gone;
  std::vector<EventRef>* const gone_out = HasEvictionSink() ? &gone : nullptr;
  constexpr std::size_t kSinkBatch = 4096;
  const auto hand_over = [&](std::size_t at_least) {
    if (gone.size() >= at_least) {
      HandOverEvicted(std::move(gone));
      gone.clear();
    }
  };
  const std::vector<std::string> keys = AllKeys();
  for (const std::string& key : keys) {
    Stripe& s = StripeOf(key);
    {
      std::lock_guard<std::mutex> lock(s.mu);
      by_reason[static_cast<std::size_t>(EvictionReason::kAge)] += DropLocked(
          s, key, [&](const EventRef& e) { return RecordTimeMs(*e) < cutoff; }, gone_out);
      const std::size_t count = backend(s.flag.Primary()).Count(key);
      if (count > r.max_events_per_object) {
        std::size_t budget = count - r.max_events_per_object;
        by_reason[static_cast<std::size_t>(EvictionReason::kPerObject)] += DropLocked(
            s, key, [&](const EventRef&) { return budget > 0 && budget-- > 0; }, gone_out);
      }
    }
    hand_over(kSinkBatch);
  }
  {
    std::lock_guard<std::mutex> budget(budget_mu_);
    EvictOverBudgetLocked(r.max_bytes, r.max_events, by_reason, gone_out);
  }
  hand_over(1);

  // Dedup tombstones: forget those past the age cutoff and those beyond the per-stripe cap
  // (the global event limit spread over the stripes).
  const std::size_t cap = std::max<std::size_t>(64, r.max_events / kStripes);
  for (std::size_t i = 0; i < kStripes; ++i) {
    std::lock_guard<std::mutex> lock(stripes_[i].mu);
    stripes_[i].dedup.PruneTombstones(cutoff, cap);
  }

  std::size_t evicted = 0;
  for (const std::size_t n : by_reason) evicted += n;
  PublishEvictions(by_reason);
  return evicted;
}

EventBuffer::Verification EventBuffer::VerifyLocked(const Stripe& s, std::string_view key) const {
  Verification v;
  if (!s.flag.dual_write()) return v;  // kSkipped: only one backend is written
  thread_local std::vector<const EventRecord*> legacy, atomic;
  legacy.clear();
  atomic.clear();
  backend(Backend::kLegacy).ForEach(key, [&](const EventRef& r) { legacy.push_back(r.get()); });
  backend(Backend::kAtomic).ForEach(key, [&](const EventRef& r) { atomic.push_back(r.get()); });
  Comparison c = CompareOccurrences(legacy, atomic);
  v.result = c.match ? VerifyResult::kMatch : VerifyResult::kMismatch;
  for (MismatchFinding& f : c.findings) {
    MismatchReport report;
    report.key = std::string(key);
    report.mode = s.flag.mode();
    report.legacy_count = legacy.size();
    report.atomic_count = atomic.size();
    report.kind = f.kind;
    report.first_difference = std::move(f.first_difference);
    v.reports.push_back(std::move(report));
  }
  return v;
}

void EventBuffer::Publish(Verification&& v) const {
  verifications_[static_cast<std::size_t>(v.result)].fetch_add(1, std::memory_order_relaxed);
  if (observer_ != nullptr) observer_->OnVerification(v.result);
  if (v.reports.empty()) return;
  for (const MismatchReport& r : v.reports) {
    mismatches_[static_cast<std::size_t>(r.kind)].fetch_add(1, std::memory_order_relaxed);
    if (observer_ != nullptr) observer_->OnMismatch(r.kind);
  }
  std::lock_guard<std::mutex> lock(sink_mu_);
  if (sink_) {
    for (const MismatchReport& r : v.reports) sink_(r);
  }
}

VerifyResult EventBuffer::VerifyKey(std::string_view key) {
  Stripe& s = StripeOf(key);
  Verification v;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    v = VerifyLocked(s, key);
  }
  const VerifyResult result = v.result;
  Publish(std::move(v));
  return result;
}

std::size_t EventBuffer::VerifySweep(std::size_t max_keys) {
  std::lock_guard<std::mutex> lock(sweep_mu_);
  std::size_t compared = 0;
  bool refreshed = false;
  for (std::size_t done = 0; done < max_keys; ++done) {
    if (sweep_next_ >= sweep_keys_.size()) {
      if (refreshed) break;  // every key of this round is done
      sweep_keys_ = AllKeys();
      sweep_next_ = 0;
      refreshed = true;
      if (sweep_keys_.empty()) break;
    }
    if (VerifyKey(sweep_keys_[sweep_next_++]) != VerifyResult::kSkipped) ++compared;
  }
  return compared;
}

void EventBuffer::SetMismatchSink(std::function<void(const MismatchReport&)> sink) {
  std::lock_guard<std::mutex> lock(sink_mu_);
  sink_ = std::move(sink);
}

}  // namespace eventbuffer
