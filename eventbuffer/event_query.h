// EventQuery, EventPage, OccurrencePosition: how the buffer's held occurrences are listed in
// time order, a page at a time, for the eventbuffer.dev API (controller/serving/api/).
//
// List order. Occurrences are ordered by OccurrencePosition: the occurrence's time
// (OccurrenceTimeMs), then the Event's uid, then its resourceVersion. Positions are total
// and stable: an occurrence's position never changes while it is held, so a page that ends
// at position P continues with the first occurrence after P, whatever was appended or
// evicted meanwhile (a continue token is a position, not a cursor: any replica holding the
// same data continues it the same way).
//
// Thread safety: plain values.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "eventbuffer/event_record.h"

namespace eventbuffer {

struct OccurrencePosition {
  std::int64_t time_ms = 0;      // OccurrenceTimeMs of the occurrence
  std::string uid;               // the Event's metadata.uid
  std::string resource_version;  // the revision's metadata.resourceVersion
};

// Strict weak order of list positions: by time_ms, then uid (bytewise), then
// resource_version compared by length and then bytewise (numeric order for the decimal
// resourceVersions the API server issues). Two positions are equivalent only when all
// three parts are equal, so over held occurrences (distinct identities) the order is total.
bool PositionLess(const OccurrencePosition& a, const OccurrencePosition& b);

// The same order on the parts, without copies: < 0, 0 or > 0 as position a is before, at
// or after position b.
int ComparePositions(std::int64_t a_time_ms, std::string_view a_uid, std::string_view a_rv,
                     std::int64_t b_time_ms, std::string_view b_uid, std::string_view b_rv);

// The time an occurrence is listed at and aged by, in milliseconds since the Unix epoch:
// the first of series.lastObservedTime, lastTimestamp, eventTime, firstTimestamp that is
// set and parses (ParseRfc3339Millis; sub-millisecond digits are dropped), else
// numbers().last_seen_unix_ms when not 0, else the time it was received
// (numbers().receive_unix_ns / 1e6, rounded down). A time later than receive
// time + MaxClockSkewMs() is clamped to that bound (a reporter's clock can be wrong, a
// year-9999 timestamp must not keep an occurrence forever nor list it last forever); a
// record with no receive time (0) is not clamped. The record's own timestamps are not
// changed: the API shows them as sent. Retention (RecordTimeMs), the dedup tombstones and
// the query index all use this one time.
// A pure function of the record while MaxClockSkewMs() stays the same: the same record
// always gets the same time, so a position never changes while it is held.
// Cost: usually one timestamp parse (tens of ns); the QueryIndex computes it once per
// occurrence at Add and keeps it in its entry.
std::int64_t OccurrenceTimeMs(const EventRecord& record);

// The clock skew allowed by OccurrenceTimeMs, process-wide (RetentionConfig::max_clock_skew).
// The EventBuffer sets it when it is built; it must not change while occurrences are held
// (their positions would move), so EventBuffer::Reconfigure refuses to change it.
// Default kDefaultMaxClockSkewMs. Thread-safe (a relaxed atomic).
inline constexpr std::int64_t kDefaultMaxClockSkewMs = 5 * 60 * 1000;
void SetMaxClockSkewMs(std::int64_t skew_ms);
std::int64_t MaxClockSkewMs();

// The list position of an occurrence.
OccurrencePosition PositionOf(const EventRecord& record);

struct EventQuery {
  // metadata.namespace of the Event; nullopt lists all namespaces.
  std::optional<std::string> ns;
  // Start strictly after this position; nullopt starts at the oldest.
  std::optional<OccurrencePosition> after;
  // A further filter (field selectors); empty matches everything. Called on the listing
  // thread under a lock of the query index: keep it quick, and no calls into the buffer.
  std::function<bool(const EventRecord&)> match;
  // At most this many items; 0 means no limit.
  std::size_t limit = 0;
};

struct EventPage {
  std::vector<EventRef> items;  // in list order
  // Whether at least one more matching occurrence follows the last item (only possible
  // when limit was reached): the caller then hands out a continue position.
  bool more = false;
};

}  // namespace eventbuffer
