// EventRecord: one occurrence of a Kubernetes Event as the buffer keeps it.
//
// An occurrence is one revision of an Event object: the API server updates a repeated
// event in place (count++, new resourceVersion), and each revision is kept. Its identity
// is (uid, resourceVersion).
//
// Memory: millions of records live in the buffer, so a record is one heap block (the
// record object with its reference count, then its ids, offsets and text, see
// docs/storage.md "Records"), and it stores as little text as it can:
//   - a field stored as text is addressed by a 16-bit end offset (32-bit when the record's
//     text exceeds 64 KiB); empty fields take no offset at all (a bit mask says which
//     fields a record stores);
//   - short repeated strings (namespaces, kinds, reasons, hosts, components...) are kept
//     once in the process-wide InternTable and stored in a record as a 2-byte id, without
//     an offset;
//   - lastTimestamp and creationTimestamp equal to firstTimestamp (a new Event) are stored
//     as a flag, and the last-seen time is not stored when the timestamps give it;
//   - a record built against a previous one (Builder::Build(previous), found by the
//     decoder's RevisionCache) stores only the fields that differ from its *base* and holds
//     a reference to the base for the rest. A new revision of an Event (count++, a new
//     resourceVersion and lastTimestamp) takes the Event's first kept record as base; a new
//     Event about an object seen recently takes a full record about that object (sharing
//     the involvedObject, source and reporting fields). Bases are immutable and
//     reference-counted: evicting a base (or any record) never breaks another; a base is a
//     full record or a revision of one, so a read costs at most two hops.
//
// Thread safety: an EventRecord is immutable after construction (except its held count,
// which is atomic); any number of threads may read one at once. Both buffer backends share
// one record through an EventRef (a counted reference, 8 bytes), so dual writes do not copy
// it.

#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

namespace eventbuffer {

class EventRecord;

// How the buffer, its indexes and both backends hold a record: a counted reference to one
// immutable record, shared. The count lives in the record (8 bytes a reference, no control
// block); the last reference dropped frees the record. The subset of std::shared_ptr's
// interface the buffer uses. Copying and dropping references is safe from any threads; one
// EventRef object is not (as with shared_ptr).
class EventRef {
 public:
  EventRef() noexcept = default;
  EventRef(std::nullptr_t) noexcept {}  // NOLINT(google-explicit-constructor)
  EventRef(const EventRef& other) noexcept;
  EventRef(EventRef&& other) noexcept : p_(other.p_) { other.p_ = nullptr; }
  EventRef& operator=(const EventRef& other) noexcept {
    EventRef(other).swap(*this);
    return *this;
  }
  EventRef& operator=(EventRef&& other) noexcept {
    EventRef(std::move(other)).swap(*this);
    return *this;
  }
  ~EventRef();

  const EventRecord* get() const noexcept { return p_; }
  const EventRecord& operator*() const noexcept { return *p_; }
  const EventRecord* operator->() const noexcept { return p_; }
  explicit operator bool() const noexcept { return p_ != nullptr; }
  void reset() noexcept { EventRef().swap(*this); }
  void swap(EventRef& other) noexcept {
    const EventRecord* p = p_;
    p_ = other.p_;
    other.p_ = p;
  }
  // References to the record (0 for a null EventRef); a snapshot, for tests.
  long use_count() const noexcept;

  friend bool operator==(const EventRef& a, const EventRef& b) noexcept { return a.p_ == b.p_; }
  friend bool operator==(const EventRef& a, std::nullptr_t) noexcept { return a.p_ == nullptr; }

 private:
  friend class EventRecord;
  explicit EventRef(const EventRecord* adopted) noexcept : p_(adopted) {}  // takes a count
  const EventRecord* p_ = nullptr;
};

class EventRecord {
 public:
  // The text fields, in storage order. The names follow core/v1 Event's JSON paths.
  enum class Field : std::uint8_t {
    kUid,                     // metadata.uid
    kResourceVersion,         // metadata.resourceVersion
    kNamespace,               // metadata.namespace (of the Event object)
    kName,                    // metadata.name (of the Event object)
    kInvolvedKind,            // involvedObject.kind
    kInvolvedNamespace,       // involvedObject.namespace ("" for cluster-scoped objects)
    kInvolvedName,            // involvedObject.name
    kInvolvedUid,             // involvedObject.uid
    kInvolvedApiVersion,      // involvedObject.apiVersion
    kInvolvedFieldPath,       // involvedObject.fieldPath
    kReason,                  // reason
    kMessage,                 // message
    kType,                    // type (Normal, Warning)
    kFirstTimestamp,          // firstTimestamp (RFC 3339, as sent)
    kLastTimestamp,           // lastTimestamp (RFC 3339, as sent)
    kEventTime,               // eventTime (RFC 3339 with microseconds, as sent)
    kSourceComponent,         // source.component
    kSourceHost,              // source.host
    kReportingComponent,      // reportingComponent
    kReportingInstance,       // reportingInstance
    kAction,                  // action
    kCreationTimestamp,       // metadata.creationTimestamp (RFC 3339, as sent)
    kSeriesLastObservedTime,  // series.lastObservedTime (RFC 3339 with microseconds, as sent)
    kRelated,                 // related: the ObjectReference as compact JSON text ("" if none)
  };
  static constexpr std::size_t kFieldCount = static_cast<std::size_t>(Field::kRelated) + 1;

  // The numeric fields. Absent numbers are 0.
  struct Numbers {
    std::int32_t count = 0;         // count (deprecated in events.k8s.io, still set by kubelet)
    std::int32_t series_count = 0;  // series.count
    // The time the event last happened, in milliseconds since the Unix epoch (the decoder
    // sets LastSeenFromTimestamps, below); 0 when no timestamp parses. Used for event lag.
    std::int64_t last_seen_unix_ms = 0;
    // The local time this revision was received, in nanoseconds since the Unix epoch.
    std::int64_t receive_unix_ns = 0;
  };

  class Builder;

  std::string_view Get(Field field) const {
    std::uint32_t bit = 1u << static_cast<unsigned>(field);
    for (const EventRecord* r = this; r != nullptr;) {
      if ((r->present_ & bit) != 0) {
        if ((r->marks_ & bit) != 0) {
          return InternedView(r->Ids() + 2 * Count(r->present_ & r->marks_ & (bit - 1)));
        }
        return r->Stored(Count(r->present_ & ~r->marks_ & (bit - 1)));
      }
      if ((r->marks_ & bit) != 0) {  // equal to r's firstTimestamp: look that up from r
        bit = 1u << static_cast<unsigned>(Field::kFirstTimestamp);
        continue;
      }
      r = r->base_.get();
    }
    return std::string_view("", 0);  // empty, never a null pointer
  }
  // The numbers; last_seen_unix_ms as last_seen_unix_ms() gives it.
  Numbers numbers() const {
    return Numbers{count_, series_count_, last_seen_unix_ms(), receive_unix_ns_};
  }
  std::int32_t series_count() const { return series_count_; }
  std::int64_t receive_unix_ns() const { return receive_unix_ns_; }
  // Not stored when it is what the record's timestamps give (LastSeenFromTimestamps, as the
  // decoder computes it): then parsed from them on each call (tens of ns). Stored in the
  // record when it differs.
  std::int64_t last_seen_unix_ms() const;

  // Named accessors for the fields read most often.
  std::string_view uid() const { return Get(Field::kUid); }
  std::string_view resource_version() const { return Get(Field::kResourceVersion); }
  std::string_view involved_namespace() const { return Get(Field::kInvolvedNamespace); }
  std::string_view involved_kind() const { return Get(Field::kInvolvedKind); }
  std::string_view involved_name() const { return Get(Field::kInvolvedName); }
  std::string_view reason() const { return Get(Field::kReason); }
  std::string_view message() const { return Get(Field::kMessage); }
  std::string_view type() const { return Get(Field::kType); }
  std::int32_t count() const { return count_; }

  // The buffer key: "namespace/kind/name" of the involved object (namespace empty for
  // cluster-scoped objects, e.g. "/Node/worker-1").
  std::string Key() const;
  // Appends the key to *out (no allocation when *out has room).
  void AppendKey(std::string* out) const;

  // Bytes of this record's own heap block (control block, object, offsets and text), not
  // counting its base or the intern table.
  std::size_t MemoryBytes() const { return kBlockOverhead + sizeof(EventRecord) + StorageBytes(); }
  // Bytes of ids, offsets and text stored in this record itself.
  std::size_t StorageBytes() const {
    const unsigned texts = TextCount();
    return LeadBytes() + 2 * IdCount() + texts * OffsetBytes() +
           (texts == 0 ? 0 : End(Offsets(), texts - 1));
  }
  // The record this one shares its unchanged fields with; null for a full record.
  const EventRecord* base() const { return base_.get(); }
  const EventRef& shared_base() const { return base_; }
  // Fields stored in this record itself (bit i: Field i), the rest come from base().
  std::uint32_t stored_fields() const { return present_; }

  // Held accounting (the buffer's record_bytes): the buffer calls AcquireHeld when it
  // stores this record as an occurrence and ReleaseHeld when it drops it. A block's bytes
  // count from the first stored occurrence that uses it (the record itself, or a revision
  // sharing it as base) to the last: AcquireHeld returns the bytes that became held (this
  // block and/or its base's), ReleaseHeld the bytes no longer held.
  std::size_t AcquireHeld() const;
  std::size_t ReleaseHeld() const;

  // Every field's value at once (one pass over the stored offsets; cheaper than kFieldCount
  // calls of Get).
  void GetAll(std::array<std::string_view, kFieldCount>* out) const;

  // Field-by-field equality (all text and numbers), however each side stores it.
  bool operator==(const EventRecord& other) const;

  EventRecord(const EventRecord&) = delete;
  EventRecord& operator=(const EventRecord&) = delete;
  ~EventRecord() = default;

  // Implementation details follow.
  struct Token {  // only the Builder makes records
   private:
    friend class Builder;
    Token() = default;
  };
  EventRecord(Token, const Numbers& numbers, EventRef base) noexcept
      : count_(numbers.count),
        series_count_(numbers.series_count),
        receive_unix_ns_(numbers.receive_unix_ns),
        base_(std::move(base)) {}

  // malloc's chunk header: what the block costs beyond the object and its text.
  static constexpr std::size_t kBlockOverhead = 8;

 private:
  friend class Builder;
  friend class EventRef;
  static constexpr std::uint32_t kWide = 1u << 31;  // in marks_: 32-bit offsets
  // In marks_: last_seen_unix_ms is stored (8 bytes before the ids), not derived.
  static constexpr std::uint32_t kOwnLastSeen = 1u << 30;

  // The one heap block: the object, then ids, offsets and text (storage bytes).
  static EventRecord* Allocate(std::size_t storage);
  static void Free(const EventRecord* record) noexcept;

  const char* storage() const { return reinterpret_cast<const char*>(this + 1); }
  char* storage() { return reinterpret_cast<char*>(this + 1); }
  // Bits set in v (a portable popcount: without -mpopcnt std::popcount is a library call).
  static unsigned Count(std::uint32_t v) {
    v = v - ((v >> 1) & 0x55555555u);
    v = (v & 0x33333333u) + ((v >> 2) & 0x33333333u);
    return (((v + (v >> 4)) & 0x0f0f0f0fu) * 0x01010101u) >> 24;
  }
  // Bytes before the ids: the stored last_seen_unix_ms, if any.
  unsigned LeadBytes() const { return (marks_ & kOwnLastSeen) != 0 ? 8 : 0; }
  // Where the ids start.
  const char* Ids() const { return storage() + LeadBytes(); }
  // Stored fields kept as an InternTable id, and stored as text.
  unsigned IdCount() const { return Count(present_ & marks_); }
  unsigned TextCount() const { return Count(present_ & ~marks_); }
  // Bytes of one end offset.
  unsigned OffsetBytes() const { return (marks_ & kWide) != 0 ? 4 : 2; }
  // Where the end offsets start (after the ids). Readers take it once and pass it on.
  const char* Offsets() const { return Ids() + 2 * IdCount(); }
  // End offset of the k-th field stored as text; offsets is Offsets().
  std::uint32_t End(const char* offsets, unsigned k) const {
    if ((marks_ & kWide) != 0) {
      std::uint32_t e;
      std::memcpy(&e, offsets + 4 * k, 4);
      return e;
    }
    std::uint16_t e;
    std::memcpy(&e, offsets + 2 * k, 2);
    return e;
  }
  // Where the text starts (after the offsets); offsets is Offsets().
  const char* Text(const char* offsets) const { return offsets + TextCount() * OffsetBytes(); }
  // The k-th field stored as text.
  std::string_view Stored(unsigned k) const {
    const char* offsets = Offsets();
    const std::uint32_t begin = k == 0 ? 0 : End(offsets, k - 1);
    return std::string_view(Text(offsets) + begin, End(offsets, k) - begin);
  }
  // The text of an interned field from its stored 2-byte id.
  static std::string_view InternedView(const char* id_bytes);

  // The numbers but last_seen_unix_ms (derived, or stored after the object).
  std::int32_t count_ = 0, series_count_ = 0;
  std::int64_t receive_unix_ns_ = 0;
  EventRef base_;
  mutable std::atomic<std::uint32_t> refs_{1};  // EventRefs to this record
  mutable std::atomic<std::uint32_t> held_{0};
  std::uint32_t present_ = 0;  // fields stored here (bit per Field)
  // Bit per Field: for a stored field, kept as a 2-byte InternTable id; for a field not
  // stored (lastTimestamp, creationTimestamp), equal to firstTimestamp (an alias: this bit
  // alone). Bit 31: kWide; bit 30: kOwnLastSeen.
  std::uint32_t marks_ = 0;
  // Followed in the same heap block by: last_seen_unix_ms when kOwnLastSeen (8 bytes), the
  // 2-byte id of each interned field, an end offset per field stored as text (16-bit, or
  // 32-bit when kWide), then their text back to back, all in field order.
};

inline EventRef::EventRef(const EventRef& other) noexcept : p_(other.p_) {
  if (p_ != nullptr) p_->refs_.fetch_add(1, std::memory_order_relaxed);
}

inline EventRef::~EventRef() {
  // acq_rel: every use of the record through other references happens before its free.
  if (p_ != nullptr && p_->refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    EventRecord::Free(p_);
  }
}

inline long EventRef::use_count() const noexcept {
  return p_ == nullptr ? 0 : static_cast<long>(p_->refs_.load(std::memory_order_relaxed));
}

// Collects field values (views into caller-owned text) and builds one record.
class EventRecord::Builder {
 public:
  // A builder holding every field (views into record, which must outlive Build) and the
  // numbers of record: a copy with some fields changed.
  static Builder Of(const EventRecord& record);

  Builder& Set(Field field, std::string_view value) {
    values_[static_cast<std::size_t>(field)] = value;
    derived_known_ = false;
    return *this;
  }
  // Sets numbers().last_seen_unix_ms to what the timestamps set so far give
  // (LastSeenFromTimestamps), and remembers it so that Build need not parse them again.
  Builder& DeriveLastSeen();
  Builder& SetNumbers(const Numbers& numbers) {
    numbers_ = numbers;
    return *this;
  }
  Numbers& numbers() { return numbers_; }
  std::string_view Get(Field field) const { return values_[static_cast<std::size_t>(field)]; }
  // Copies every value into a new record. With previous (any record; the decoder passes
  // RevisionCache::Lookup's), the new record shares the fields equal to its base's and
  // stores the others. The base: for the same Event (same uid), previous's base when that
  // is of the same Event too, else previous; for another Event, previous when it is a full
  // record, else none. A record that would save less than 32 bytes by sharing is full.
  // REQUIRES: total text < 4 GiB.
  EventRef Build(const EventRef& previous = nullptr) const;

 private:
  std::int64_t DerivedLastSeen() const;

  std::array<std::string_view, kFieldCount> values_{};
  Numbers numbers_{};
  // What the timestamps give, when derived_known_ (DeriveLastSeen, no Set since).
  std::int64_t derived_last_seen_ = 0;
  bool derived_known_ = false;
};


// A new full record with the same fields and numbers as record (tests, and backends that
// copy).
EventRef CopyRecord(const EventRecord& record);

// When an event last happened, in milliseconds since the Unix epoch, from its timestamps:
// the latest of series.lastObservedTime, lastTimestamp and eventTime that parse (ignoring
// times before the epoch), else firstTimestamp, else 0. What the decoder sets as
// Numbers::last_seen_unix_ms.
std::int64_t LastSeenFromTimestamps(std::string_view series_last_observed,
                                    std::string_view last_timestamp, std::string_view event_time,
                                    std::string_view first_timestamp);

// Key of a record as the buffer computes it, from its parts.
std::string MakeKey(std::string_view ns, std::string_view kind, std::string_view name);

// Parses an RFC 3339 timestamp ("2024-05-01T10:00:00Z", "...T10:00:00.123456Z",
// "...+02:00") to milliseconds since the Unix epoch. Returns false when it does not parse.
bool ParseRfc3339Millis(std::string_view text, std::int64_t* unix_ms);

}  // namespace eventbuffer
