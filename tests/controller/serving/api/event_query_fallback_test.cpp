// Fallback definitions of PositionLess, OccurrenceTimeMs and PositionOf (declared in
// eventbuffer/event_query.h) for the controller tests, plus tests of them.
//
// The storage library gets its own definitions in eventbuffer/event_query.cpp. These are
// weak symbols, so once that file is linked the library's definitions win (and then these
// tests check the library's) without a duplicate-symbol error; until then the tests of the
// eventbuffer.dev API run against these, which follow the documented contract.
#include <gtest/gtest.h>

#include <memory>

#include "eventbuffer/event_query.h"
#include "tests/controller/serving/api/fake_event_store.h"

namespace eventbuffer {

[[gnu::weak]] bool PositionLess(const OccurrencePosition& a, const OccurrencePosition& b) {
  if (a.time_ms != b.time_ms) return a.time_ms < b.time_ms;
  if (a.uid != b.uid) return a.uid < b.uid;
  if (a.resource_version.size() != b.resource_version.size()) {
    return a.resource_version.size() < b.resource_version.size();
  }
  return a.resource_version < b.resource_version;
}

[[gnu::weak]] std::int64_t OccurrenceTimeMs(const EventRecord& record) {
  using F = EventRecord::Field;
  for (const F field :
       {F::kSeriesLastObservedTime, F::kLastTimestamp, F::kEventTime, F::kFirstTimestamp}) {
    std::int64_t ms = 0;
    const std::string_view text = record.Get(field);
    if (!text.empty() && ParseRfc3339Millis(text, &ms)) return ms;
  }
  return record.numbers().receive_unix_ns / 1'000'000;
}

[[gnu::weak]] OccurrencePosition PositionOf(const EventRecord& record) {
  return OccurrencePosition{OccurrenceTimeMs(record), std::string(record.uid()),
                            std::string(record.resource_version())};
}

namespace {

using F = EventRecord::Field;

TEST(OccurrencePositionTest, OrdersByTimeThenUidThenNumericResourceVersion) {
  const OccurrencePosition a{1000, "b", "9"};
  const OccurrencePosition b{1000, "b", "10"};  // longer rv is the larger number
  const OccurrencePosition c{1000, "c", "1"};
  const OccurrencePosition d{1001, "a", "1"};
  EXPECT_TRUE(PositionLess(a, b));
  EXPECT_FALSE(PositionLess(b, a));
  EXPECT_TRUE(PositionLess(b, c));
  EXPECT_TRUE(PositionLess(c, d));
  EXPECT_FALSE(PositionLess(a, a));
}

TEST(OccurrencePositionTest, TimeIsSeriesThenLastThenEventTimeThenFirstThenReceived) {
  controller::testing::EventSpec spec;
  spec.first_timestamp = "2024-05-01T10:00:00Z";
  spec.event_time = "2024-05-01T10:00:01.000000Z";
  spec.last_timestamp = "2024-05-01T10:00:02Z";
  spec.series_last_observed = "2024-05-01T10:00:03.000000Z";
  const std::int64_t base = 1714557600000;  // 2024-05-01T10:00:00Z
  // Received after the timestamps: none is clamped to receive time + maxClockSkew.
  spec.receive_unix_ns = (base + 10'000) * 1'000'000 + 5;
  EXPECT_EQ(OccurrenceTimeMs(*spec.Build()), base + 3000);
  spec.series_last_observed = "";
  EXPECT_EQ(OccurrenceTimeMs(*spec.Build()), base + 2000);
  spec.last_timestamp = "";
  EXPECT_EQ(OccurrenceTimeMs(*spec.Build()), base + 1000);
  spec.event_time = "";
  EXPECT_EQ(OccurrenceTimeMs(*spec.Build()), base);
  spec.first_timestamp = "";
  EXPECT_EQ(OccurrenceTimeMs(*spec.Build()), base + 10'000);
  const OccurrencePosition pos = PositionOf(*spec.Build());
  EXPECT_EQ(pos.uid, spec.uid);
  EXPECT_EQ(pos.resource_version, spec.rv);
}

}  // namespace
}  // namespace eventbuffer
