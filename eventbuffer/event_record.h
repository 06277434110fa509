// EventRecord: one occurrence of a Kubernetes Event as the buffer keeps it.
//
// An occurrence is one revision of an Event object: the API server updates a repeated
// event in place (count++, new resourceVersion), and each revision is kept. Its identity
// is (uid, resourceVersion).
//
// Memory: millions of records live in the buffer, so a record is one object with all its
// text in a single heap block. The 24 text fields are stored back to back in `text_` and
// addressed by 32-bit end offsets; the numbers sit inline. A typical core/v1 Event (about
// 850 bytes of JSON) takes roughly 150 bytes of header plus 350-450 bytes of text.
//
// Thread safety: an EventRecord is immutable after construction; any number of threads
// may read one at once. Both buffer backends share one record through a
// `std::shared_ptr<const EventRecord>` (EventRef), so dual writes do not copy it.

#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace eventbuffer {

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
    // The time the event last happened, in milliseconds since the Unix epoch: lastTimestamp,
    // else eventTime, else firstTimestamp; 0 when none parses. Used for retention by age
    // and event lag.
    std::int64_t last_seen_unix_ms = 0;
    // The local time this revision was received, in nanoseconds since the Unix epoch.
    std::int64_t receive_unix_ns = 0;
  };

  // Collects field values (views into caller-owned text) and builds one record.
  class Builder {
   public:
    Builder& Set(Field field, std::string_view value) {
      values_[static_cast<std::size_t>(field)] = value;
      return *this;
    }
    Builder& SetNumbers(const Numbers& numbers) {
      numbers_ = numbers;
      return *this;
    }
    Numbers& numbers() { return numbers_; }
    std::string_view Get(Field field) const { return values_[static_cast<std::size_t>(field)]; }
    // Copies every value into a new record. REQUIRES: total text < 4 GiB.
    EventRecord Build() const;

   private:
    std::array<std::string_view, kFieldCount> values_{};
    Numbers numbers_{};
  };

  EventRecord() = default;

  std::string_view Get(Field field) const {
    const auto i = static_cast<std::size_t>(field);
    const std::uint32_t begin = i == 0 ? 0 : ends_[i - 1];
    return std::string_view(text_.get() + begin, ends_[i] - begin);
  }
  const Numbers& numbers() const { return numbers_; }

  // Named accessors for the fields read most often.
  std::string_view uid() const { return Get(Field::kUid); }
  std::string_view resource_version() const { return Get(Field::kResourceVersion); }
  std::string_view involved_namespace() const { return Get(Field::kInvolvedNamespace); }
  std::string_view involved_kind() const { return Get(Field::kInvolvedKind); }
  std::string_view involved_name() const { return Get(Field::kInvolvedName); }
  std::string_view reason() const { return Get(Field::kReason); }
  std::string_view message() const { return Get(Field::kMessage); }
  std::string_view type() const { return Get(Field::kType); }
  std::int32_t count() const { return numbers_.count; }

  // The buffer key: "namespace/kind/name" of the involved object (namespace empty for
  // cluster-scoped objects, e.g. "/Node/worker-1").
  std::string Key() const;
  // Appends the key to *out (no allocation when *out has room).
  void AppendKey(std::string* out) const;

  // Bytes this record owns (object plus text block), for buffer size accounting.
  std::size_t MemoryBytes() const { return sizeof(EventRecord) + TextSize(); }
  std::size_t TextSize() const { return ends_[kFieldCount - 1]; }

  // Field-by-field equality (all text and numbers).
  bool operator==(const EventRecord& other) const;

  EventRecord(EventRecord&&) noexcept = default;
  EventRecord& operator=(EventRecord&&) noexcept = default;
  // Deep copy (rare: records are shared through EventRef).
  EventRecord(const EventRecord& other);
  EventRecord& operator=(const EventRecord& other);

 private:
  std::unique_ptr<char[]> text_;
  std::array<std::uint32_t, kFieldCount> ends_{};
  Numbers numbers_{};
};

// How the buffer and both backends hold a record: one immutable record, shared.
using EventRef = std::shared_ptr<const EventRecord>;

// Key of a record as the buffer computes it, from its parts.
std::string MakeKey(std::string_view ns, std::string_view kind, std::string_view name);

// Parses an RFC 3339 timestamp ("2024-05-01T10:00:00Z", "...T10:00:00.123456Z",
// "...+02:00") to milliseconds since the Unix epoch. Returns false when it does not parse.
bool ParseRfc3339Millis(std::string_view text, std::int64_t* unix_ms);

}  // namespace eventbuffer
