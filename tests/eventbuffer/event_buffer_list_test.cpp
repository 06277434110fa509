// EventBuffer::List and Find: the buffer's query index follows every store and eviction.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "eventbuffer/event_buffer.h"
#include "tests/eventbuffer/buffer_test_util.h"

namespace eventbuffer {
namespace {

using testing::MakeEvent;
using F = EventRecord::Field;

constexpr std::int64_t kBase = 1'700'000'000'000;

BufferConfig Config(GrayMode mode) {
  BufferConfig cfg;
  cfg.mode = mode;
  cfg.verify.sample_rate = 0;
  return cfg;
}

EventQuery All(std::optional<std::string> ns = std::nullopt, std::size_t limit = 0) {
  EventQuery q;
  q.ns = std::move(ns);
  q.limit = limit;
  return q;
}

std::vector<std::string> Rvs(const EventPage& page) {
  std::vector<std::string> out;
  for (const auto& r : page.items) out.emplace_back(r->resource_version());
  return out;
}

TEST(EventBufferListTest, ListsStoredOccurrencesInTimeOrderAcrossObjects) {
  EventBuffer buffer(Config(GrayMode::kShadow));
  buffer.Append(MakeEvent("default", "Pod", "web", "u1", "5", kBase + 30));
  buffer.Append(MakeEvent("default", "Pod", "db", "u2", "6", kBase + 10));
  buffer.Append(MakeEvent("other", "Pod", "x", "u3", "7", kBase + 20));
  buffer.Append(MakeEvent("default", "Pod", "web", "u1", "8", kBase + 40));
  // A duplicate delivery is not stored, so not listed twice.
  EXPECT_EQ(buffer.Append(MakeEvent("default", "Pod", "web", "u1", "5", kBase + 30)),
            EventBuffer::AppendResult::kDuplicate);
  EXPECT_EQ(Rvs(buffer.List(All("default"))), (std::vector<std::string>{"6", "5", "8"}));
  EXPECT_EQ(Rvs(buffer.List(All())), (std::vector<std::string>{"6", "7", "5", "8"}));
  const EventPage first = buffer.List(All(std::nullopt, 2));
  EXPECT_TRUE(first.more);
  EventQuery next = All(std::nullopt, 2);
  next.after = PositionOf(*first.items.back());
  EXPECT_EQ(Rvs(buffer.List(next)), (std::vector<std::string>{"5", "8"}));
  EXPECT_FALSE(buffer.List(next).more);
  // MakeEvent names the Event "<object>.17a3f".
  EXPECT_EQ(buffer.Find("default", "web.17a3f", "8")->resource_version(), "8");
  EXPECT_EQ(buffer.Find("default", "web.17a3f", "7"), nullptr);
}

TEST(EventBufferListTest, RetentionEvictionsLeaveTheIndex) {
  BufferConfig cfg = Config(GrayMode::kShadow);
  cfg.retention.max_age = std::chrono::minutes(5);
  cfg.retention.max_events_per_object = 3;
  cfg.retention.max_events = 5;
  EventBuffer buffer(cfg);
  // web: 6 occurrences, two of them older than the age limit; db: 3 recent ones.
  for (int i = 0; i < 6; ++i) {
    buffer.Append(MakeEvent("default", "Pod", "web", "w", std::to_string(i),
                            kBase + (i < 2 ? -10 * 60'000 : i)));
  }
  for (int i = 0; i < 3; ++i) {
    buffer.Append(MakeEvent("default", "Pod", "db", "d", std::to_string(100 + i), kBase + 10 + i));
  }
  EXPECT_EQ(buffer.List(All()).items.size(), 9u);
  EXPECT_NE(buffer.Find("default", "web.17a3f", "0"), nullptr);
  // Age: w/0, w/1; per object: w/2; overall (5): w/3.
  EXPECT_EQ(buffer.EnforceRetention(kBase), 4u);
  EXPECT_EQ(Rvs(buffer.List(All("default"))),
            (std::vector<std::string>{"4", "5", "100", "101", "102"}));
  for (const char* rv : {"0", "1", "2", "3"}) {
    EXPECT_EQ(buffer.Find("default", "web.17a3f", rv), nullptr) << rv;
  }
  EXPECT_NE(buffer.Find("default", "db.17a3f", "100"), nullptr);
  // The list and the backends agree on what is stored.
  std::size_t stored = 0;
  for (const auto& o : buffer.Objects()) stored += o.events;
  EXPECT_EQ(stored, buffer.List(All()).items.size());
}

TEST(EventBufferListTest, ModeTransitionsDoNotChangeTheList) {
  EventBuffer buffer(Config(GrayMode::kLegacy));
  for (int i = 0; i < 50; ++i) {
    buffer.Append(MakeEvent("ns", "Pod", "p" + std::to_string(i % 7), "u" + std::to_string(i % 7),
                            std::to_string(i), kBase + i));
  }
  const auto before = Rvs(buffer.List(All()));
  ASSERT_EQ(before.size(), 50u);
  for (GrayMode m : {GrayMode::kShadow, GrayMode::kCanary, GrayMode::kAtomic, GrayMode::kLegacy}) {
    buffer.Reconfigure(Config(m));
    EXPECT_EQ(Rvs(buffer.List(All())), before);
  }
  // And evictions in atomic-only mode leave the index too.
  buffer.Reconfigure(Config(GrayMode::kAtomic));
  BufferConfig cfg = Config(GrayMode::kAtomic);
  cfg.retention.max_events_per_object = 1;
  buffer.Reconfigure(cfg);
  EXPECT_EQ(buffer.EnforceRetention(kBase + 100), 43u);
  EXPECT_EQ(buffer.List(All()).items.size(), 7u);
}

// Appends from two threads and retention from a third while readers page through: at the
// end the index holds exactly the stored occurrences, and no page ever lists an
// occurrence twice or out of order.
TEST(EventBufferListTest, ConcurrentAppendsRetentionAndListsAgree) {
  BufferConfig cfg = Config(GrayMode::kShadow);
  cfg.retention.max_events_per_object = 20;
  cfg.retention.max_events = 400;
  cfg.retention.max_age = std::chrono::hours(1);
  EventBuffer buffer(cfg);
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int w = 0; w < 2; ++w) {
    threads.emplace_back([&, w] {
      for (int i = 0; i < 3000; ++i) {
        const std::string obj = "p" + std::to_string(i % 31);
        buffer.Append(MakeEvent(w == 0 ? "a" : "b", "Pod", obj, "u" + std::to_string(w) + obj,
                                std::to_string(i), kBase + i));
      }
    });
  }
  std::thread retention([&] {
    while (!stop.load()) buffer.EnforceRetention(kBase);
  });
  std::thread reader([&] {
    while (!stop.load()) {
      EventQuery q = All(std::nullopt, 50);
      // By identity: a record address may be reused once an evicted record is freed.
      std::set<std::string> seen;
      for (;;) {
        const EventPage page = buffer.List(q);
        for (std::size_t i = 0; i < page.items.size(); ++i) {
          const EventRecord& r = *page.items[i];
          EXPECT_TRUE(
              seen.insert(std::string(r.uid()) + "/" + std::string(r.resource_version())).second);
          if (i > 0) {
            EXPECT_TRUE(PositionLess(PositionOf(*page.items[i - 1]), PositionOf(*page.items[i])));
          }
        }
        if (!page.more) break;
        q.after = PositionOf(*page.items.back());
      }
    }
  });
  threads[0].join();
  threads[1].join();
  stop.store(true);
  retention.join();
  reader.join();
  buffer.EnforceRetention(kBase);
  std::size_t stored = 0;
  for (const auto& o : buffer.Objects()) stored += o.events;
  const EventPage all = buffer.List(All());
  EXPECT_EQ(all.items.size(), stored);
  for (const auto& r : all.items) {
    EXPECT_EQ(buffer.Find(r->Get(F::kNamespace), r->Get(F::kName), r->resource_version()), r);
  }
}

}  // namespace
}  // namespace eventbuffer
