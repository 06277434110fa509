// EventBuffer::SetEvictionSink: retention hands every evicted occurrence to the sink, once,
// outside the stripe locks.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <thread>

#include "eventbuffer/event_buffer.h"
#include "tests/eventbuffer/buffer_test_util.h"

namespace eventbuffer {
namespace {

using testing::PodEvent;

constexpr std::int64_t kBase = 1'700'000'000'000;

BufferConfig Config(GrayMode mode) {
  BufferConfig c;
  c.mode = mode;
  c.retention.max_age = std::chrono::hours(24);
  return c;
}

std::set<std::string> Ids(const std::vector<EventRef>& refs) {
  std::set<std::string> out;
  for (const auto& r : refs)
    out.insert(std::string(r->uid()) + "@" + std::string(r->resource_version()));
  return out;
}

TEST(EvictionSinkTest, ReceivesEveryEvictedOccurrenceOnce) {
  for (GrayMode mode : {GrayMode::kLegacy, GrayMode::kShadow, GrayMode::kAtomic}) {
    BufferConfig cfg = Config(mode);
    cfg.retention.max_age = std::chrono::minutes(5);
    cfg.retention.max_events_per_object = 30;
    cfg.retention.max_events = 50;
    EventBuffer buffer(cfg);
    std::vector<EventRef> got;
    int calls = 0;
    buffer.SetEvictionSink([&](std::vector<EventRef>&& evicted) {
      ++calls;
      EXPECT_FALSE(evicted.empty());
      // No stripe lock is held: the buffer can be read from the sink.
      for (const auto& r : evicted) EXPECT_TRUE(buffer.Read(r->Key()).size() < 1000);
      got.insert(got.end(), evicted.begin(), evicted.end());
    });
    // a: 40 at t=0..39 (per-object cap drops 10); b: 30 at t=100..129 (overall cap);
    // c: 3 aged out.
    for (int i = 0; i < 40; ++i) buffer.Append(PodEvent("a", i, kBase + 10 * 60'000));
    for (int i = 0; i < 30; ++i) buffer.Append(PodEvent("b", 100 + i, kBase + 10 * 60'000));
    for (int i = 0; i < 3; ++i) buffer.Append(PodEvent("c", i, kBase));
    const std::size_t evicted = buffer.EnforceRetention(kBase + 10 * 60'000 + 1000);
    EXPECT_EQ(evicted, got.size()) << GrayModeName(mode);
    EXPECT_EQ(Ids(got).size(), got.size()) << "each once";
    EXPECT_GE(calls, 1);
    // What the sink got is exactly what the buffer no longer holds.
    std::set<std::string> held;
    for (const char* key : {"default/Pod/a", "default/Pod/b", "default/Pod/c"}) {
      for (const auto& r : buffer.Read(key))
        held.insert(std::string(r->uid()) + "@" + std::string(r->resource_version()));
    }
    EXPECT_EQ(held.size() + got.size(), 73u);
    for (const auto& id : Ids(got)) EXPECT_EQ(held.count(id), 0u) << id;
    EXPECT_EQ(Ids(got).count("uid-c@0"), 1u);
    EXPECT_EQ(Ids(got).count("uid-a@0"), 1u);
  }
}

TEST(EvictionSinkTest, NoSinkAndRemovedSinkAreFine) {
  EventBuffer buffer(Config(GrayMode::kShadow));
  int calls = 0;
  buffer.SetEvictionSink([&](std::vector<EventRef>&&) { ++calls; });
  buffer.SetEvictionSink({});
  for (int i = 0; i < 3; ++i) buffer.Append(PodEvent("a", i, kBase));
  EXPECT_EQ(buffer.EnforceRetention(kBase + 48LL * 3600 * 1000), 3u);
  EXPECT_EQ(calls, 0);
}

TEST(EvictionSinkTest, LargeEvictionsArriveInSeveralBatches) {
  BufferConfig cfg = Config(GrayMode::kShadow);
  cfg.retention.max_age = std::chrono::minutes(1);
  EventBuffer buffer(cfg);
  std::size_t total = 0, calls = 0;
  buffer.SetEvictionSink([&](std::vector<EventRef>&& e) {
    ++calls;
    total += e.size();
  });
  for (int k = 0; k < 20; ++k) {
    for (int i = 0; i < 500; ++i) buffer.Append(PodEvent("p" + std::to_string(k), i, kBase));
  }
  EXPECT_EQ(buffer.EnforceRetention(kBase + 3600 * 1000), 10'000u);
  EXPECT_EQ(total, 10'000u);
  EXPECT_GE(calls, 2u);
}

TEST(EvictionSinkTest, ConcurrentAppendsAndRetentionAccountForEveryOccurrence) {
  BufferConfig cfg = Config(GrayMode::kShadow);
  cfg.retention.max_events_per_object = 20;
  cfg.retention.max_events = 300;
  EventBuffer buffer(cfg);
  std::atomic<std::size_t> sunk{0};
  buffer.SetEvictionSink([&](std::vector<EventRef>&& e) { sunk.fetch_add(e.size()); });
  std::atomic<bool> stop{false};
  std::thread retention([&] {
    while (!stop.load()) buffer.EnforceRetention(kBase);
  });
  std::vector<std::thread> writers;
  for (int t = 0; t < 3; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; i < 3000; ++i) {
        buffer.Append(PodEvent("w" + std::to_string(t) + "-" + std::to_string(i % 40), i, kBase));
      }
    });
  }
  for (auto& w : writers) w.join();
  stop.store(true);
  retention.join();
  const BufferStats s = buffer.Stats();
  EXPECT_EQ(sunk.load(), s.evictions);
  EXPECT_EQ(s.appended - s.evictions, s.backend[0].events);
}

}  // namespace
}  // namespace eventbuffer
