// Occurrence times clamped to receive time + retention.maxClockSkew: retention, dedup and
// list order all use the clamped time; the record keeps its timestamps as sent.
#include <gtest/gtest.h>

#include <memory>
#include <stdexcept>
#include <string>

#include "eventbuffer/dedup_index.h"
#include "eventbuffer/event_buffer.h"
#include "eventbuffer/event_query.h"

namespace eventbuffer {
namespace {

constexpr std::int64_t kBase = 1'700'000'000'000;  // 2023-11-14T22:13:20Z
constexpr std::int64_t kSkew = 5 * 60 * 1000;

// An occurrence in namespace ns whose lastTimestamp is `last` (RFC 3339), received at
// receive_ms.
EventRef Stamped(const std::string& ns, const std::string& uid, const std::string& last,
                 std::int64_t receive_ms) {
  EventRecord::Builder b;
  using F = EventRecord::Field;
  const std::string name = "obj-" + uid;  // the builder holds views: keep values alive
  const std::string event_name = name + ".e";
  b.Set(F::kUid, uid)
      .Set(F::kResourceVersion, "1")
      .Set(F::kNamespace, ns)
      .Set(F::kName, event_name)
      .Set(F::kInvolvedKind, "Pod")
      .Set(F::kInvolvedNamespace, ns)
      .Set(F::kInvolvedName, name)
      .Set(F::kLastTimestamp, last)
      .Set(F::kMessage, "m");
  b.numbers().receive_unix_ns = receive_ms * 1'000'000;
  return b.Build();
}

class ClockSkewTest : public ::testing::Test {
 protected:
  void TearDown() override { SetMaxClockSkewMs(kDefaultMaxClockSkewMs); }
};

TEST_F(ClockSkewTest, FutureTimesAreClampedToReceivePlusSkew) {
  SetMaxClockSkewMs(kSkew);
  const EventRef far = Stamped("ns", "a", "9999-12-31T23:59:59Z", kBase);
  EXPECT_EQ(OccurrenceTimeMs(*far), kBase + kSkew);
  EXPECT_EQ(RecordTimeMs(*far), kBase + kSkew);
  // Within the skew: kept as sent. In the past: kept as sent.
  const EventRef near = Stamped("ns", "b", "2023-11-14T22:15:20Z", kBase);  // +2 min
  EXPECT_EQ(OccurrenceTimeMs(*near), kBase + 120'000);
  const EventRef past = Stamped("ns", "c", "2023-11-14T21:13:20Z", kBase);
  EXPECT_EQ(OccurrenceTimeMs(*past), kBase - 3'600'000);
  // No receive time: nothing to clamp against.
  const EventRef unknown = Stamped("ns", "d", "9999-12-31T23:59:59Z", 0);
  EXPECT_GT(OccurrenceTimeMs(*unknown), kBase * 100);
  // A smaller skew clamps harder.
  SetMaxClockSkewMs(1000);
  EXPECT_EQ(OccurrenceTimeMs(*near), kBase + 1000);
}

TEST_F(ClockSkewTest, FarFutureOccurrencesAgeOutOnTime) {
  BufferConfig cfg;
  cfg.verify.sample_rate = 1;
  cfg.retention.max_age = std::chrono::hours(1);
  cfg.retention.max_clock_skew = std::chrono::minutes(5);
  EventBuffer buffer(cfg);
  ASSERT_EQ(buffer.Append(Stamped("ns", "future", "9999-12-31T23:59:59Z", kBase)),
            EventBuffer::AppendResult::kStored);
  ASSERT_EQ(buffer.Append(Stamped("ns", "later", "2023-11-14T22:33:20Z", kBase + 1'200'000)),
            EventBuffer::AppendResult::kStored);  // +20 min, received at +20 min too
  // Aged by receive + 5 min: still held 1 h after that, minus a millisecond...
  EXPECT_EQ(buffer.EnforceRetention(kBase + kSkew + 3'600'000 - 1), 0u);
  EXPECT_EQ(buffer.List({}).items.size(), 2u);
  // ...and gone right after, while the other occurrence stays.
  EXPECT_EQ(buffer.EnforceRetention(kBase + kSkew + 3'600'000 + 1), 1u);
  const EventPage page = buffer.List({});
  ASSERT_EQ(page.items.size(), 1u);
  EXPECT_EQ(page.items[0]->uid(), "later");
  // Appending it again later is refused: its tombstone or the age cutoff says so.
  EXPECT_NE(buffer.Append(Stamped("ns", "future", "9999-12-31T23:59:59Z", kBase)),
            EventBuffer::AppendResult::kStored);
  EXPECT_EQ(buffer.Stats().mismatches[0], 0u);
}

TEST_F(ClockSkewTest, ListOrderUsesTheClampedTimeAndShowsTheTimestampAsSent) {
  BufferConfig cfg;
  cfg.verify.sample_rate = 0;
  EventBuffer buffer(cfg);
  buffer.Append(Stamped("ns", "future", "9999-12-31T23:59:59Z", kBase));
  buffer.Append(Stamped("ns", "ten", "2023-11-14T22:23:20Z", kBase + 600'000));  // +10 min
  const EventPage page = buffer.List({});
  ASSERT_EQ(page.items.size(), 2u);
  EXPECT_EQ(page.items[0]->uid(), "future");  // at +5 min, before +10 min
  EXPECT_EQ(page.items[0]->Get(EventRecord::Field::kLastTimestamp), "9999-12-31T23:59:59Z");
  EXPECT_EQ(PositionOf(*page.items[0]).time_ms, kBase + kSkew);
  // Continuing after the first item's position gives the second one.
  EventQuery q;
  q.after = PositionOf(*page.items[0]);
  const EventPage rest = buffer.List(q);
  ASSERT_EQ(rest.items.size(), 1u);
  EXPECT_EQ(rest.items[0]->uid(), "ten");
  EXPECT_EQ(buffer.Find("ns", "obj-future.e", "1"), page.items[0]);
}

TEST_F(ClockSkewTest, ReconfigureRefusesToChangeTheSkew) {
  BufferConfig cfg;
  EventBuffer buffer(cfg);
  BufferConfig next = cfg;
  next.retention.max_clock_skew = std::chrono::minutes(1);
  EXPECT_THROW(buffer.Reconfigure(next), std::invalid_argument);
  EXPECT_EQ(buffer.config().retention.max_clock_skew, std::chrono::minutes(5));
  next = cfg;
  next.retention.max_age = std::chrono::minutes(30);
  EXPECT_NO_THROW(buffer.Reconfigure(next));
  BufferConfig negative;
  negative.retention.max_clock_skew = std::chrono::milliseconds(-1);
  EXPECT_NE(ValidateBufferConfig(negative).find("maxClockSkew"), std::string::npos);
}

}  // namespace
}  // namespace eventbuffer
