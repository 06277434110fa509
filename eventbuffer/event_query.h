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
// resourceVersions the API server issues).
bool PositionLess(const OccurrencePosition& a, const OccurrencePosition& b);

// The time an occurrence is listed at, in milliseconds since the Unix epoch:
// series.lastObservedTime, else lastTimestamp, else eventTime, else firstTimestamp, else
// the time it was received.
std::int64_t OccurrenceTimeMs(const EventRecord& record);

// The list position of an occurrence.
OccurrencePosition PositionOf(const EventRecord& record);

struct EventQuery {
  // metadata.namespace of the Event; nullopt lists all namespaces.
  std::optional<std::string> ns;
  // Start strictly after this position; nullopt starts at the oldest.
  std::optional<OccurrencePosition> after;
  // A further filter (field selectors); empty matches everything.
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
