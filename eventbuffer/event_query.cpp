#include "eventbuffer/event_query.h"

#include <atomic>

namespace eventbuffer {

namespace {

int CompareBytes(std::string_view a, std::string_view b) {
  const int c = a.compare(b);
  return c < 0 ? -1 : (c > 0 ? 1 : 0);
}

// Decimal resourceVersions compare as numbers when they compare by length first.
int CompareRevisions(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return a.size() < b.size() ? -1 : 1;
  return CompareBytes(a, b);
}

// floor(ns / 1e6), also for times before the epoch.
std::int64_t FloorMillis(std::int64_t ns) {
  std::int64_t ms = ns / 1'000'000;
  if (ns % 1'000'000 < 0) --ms;
  return ms;
}

std::atomic<std::int64_t> max_clock_skew_ms{kDefaultMaxClockSkewMs};

}  // namespace

void SetMaxClockSkewMs(std::int64_t skew_ms) {
  max_clock_skew_ms.store(skew_ms, std::memory_order_relaxed);
}

std::int64_t MaxClockSkewMs() { return max_clock_skew_ms.load(std::memory_order_relaxed); }

int ComparePositions(std::int64_t a_time_ms, std::string_view a_uid, std::string_view a_rv,
                     std::int64_t b_time_ms, std::string_view b_uid, std::string_view b_rv) {
  if (a_time_ms != b_time_ms) return a_time_ms < b_time_ms ? -1 : 1;
  if (const int c = CompareBytes(a_uid, b_uid); c != 0) return c;
  return CompareRevisions(a_rv, b_rv);
}

bool PositionLess(const OccurrencePosition& a, const OccurrencePosition& b) {
  return ComparePositions(a.time_ms, a.uid, a.resource_version, b.time_ms, b.uid,
                          b.resource_version) < 0;
}

std::int64_t OccurrenceTimeMs(const EventRecord& record) {
  using F = EventRecord::Field;
  static constexpr F kOrder[] = {F::kSeriesLastObservedTime, F::kLastTimestamp, F::kEventTime,
                                 F::kFirstTimestamp};
  const std::int64_t receive_ns = record.receive_unix_ns();
  const std::int64_t received_ms = FloorMillis(receive_ns);
  const auto clamped = [&](std::int64_t ms) {
    if (receive_ns == 0) return ms;
    const std::int64_t skew = max_clock_skew_ms.load(std::memory_order_relaxed);
    const std::int64_t bound = received_ms > INT64_MAX - skew ? INT64_MAX : received_ms + skew;
    return ms < bound ? ms : bound;
  };
  for (const F field : kOrder) {
    const std::string_view text = record.Get(field);
    std::int64_t ms;
    if (!text.empty() && ParseRfc3339Millis(text, &ms)) return clamped(ms);
  }
  // No timestamp text: a record built without it (e.g. by a test or an older store) may
  // still carry the decoder's parsed time.
  if (const std::int64_t ms = record.last_seen_unix_ms(); ms != 0) return clamped(ms);
  return received_ms;
}

OccurrencePosition PositionOf(const EventRecord& record) {
  return OccurrencePosition{OccurrenceTimeMs(record), std::string(record.uid()),
                            std::string(record.resource_version())};
}

}  // namespace eventbuffer
