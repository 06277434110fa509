// The byte budget (retention.maxBytes, enforced at append), the fair eviction over
// namespaces, and the eviction reasons.
#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "eventbuffer/event_buffer.h"
#include "tests/eventbuffer/buffer_test_util.h"

namespace eventbuffer {
namespace {

using testing::CountingObserver;
using testing::MakeEvent;

constexpr std::int64_t kBase = 1'700'000'000'000;

std::size_t Reason(const BufferStats& st, EvictionReason r) {
  return st.evictions_by_reason[static_cast<std::size_t>(r)];
}

std::size_t HeldIn(const EventBuffer& buffer, const std::string& ns) {
  EventQuery q;
  q.ns = ns;
  return buffer.List(q).items.size();
}

BufferConfig Budget(std::size_t max_bytes) {
  BufferConfig cfg;
  cfg.mode = GrayMode::kShadow;  // both backends written: evictions must keep them equal
  cfg.verify.sample_rate = 0;
  cfg.retention.max_age = std::chrono::hours(24 * 365 * 100);
  cfg.retention.max_bytes = max_bytes;
  return cfg;
}

void ExpectBackendsAgree(EventBuffer& buffer) {
  buffer.VerifySweep(SIZE_MAX);  // one round over every key
  const BufferStats st = buffer.Stats();
  for (std::size_t k = 0; k < kMismatchKindCount; ++k) EXPECT_EQ(st.mismatches[k], 0u) << k;
  EXPECT_EQ(st.backend[0].events, st.backend[1].events);
  EXPECT_EQ(st.backend[0].events, buffer.List({}).items.size());
}

TEST(BoundedBufferTest, HugeMessagesStayUnderTheByteBudget) {
  BufferConfig cfg = Budget(8u << 20);
  cfg.retention.max_message_bytes = 2u << 20;  // keep the 1 MiB messages whole
  EventBuffer buffer(cfg);
  const std::string message(1u << 20, 'x');
  std::size_t stored = 0;
  for (int i = 0; i < 1000; ++i) {
    const auto r = buffer.Append(
        MakeEvent("ns", "Pod", "p" + std::to_string(i % 7), "u" + std::to_string(i), "1",
                  kBase + i, message));
    if (r == EventBuffer::AppendResult::kStored) ++stored;
    ASSERT_LE(buffer.Stats().record_bytes, cfg.retention.max_bytes) << "after append " << i;
  }
  EXPECT_EQ(stored, 1000u);
  const BufferStats st = buffer.Stats();
  EXPECT_GT(st.backend[0].events, 4u);  // batches: evicts down to 63/64, not to nothing
  EXPECT_EQ(Reason(st, EvictionReason::kBudget), 1000u - st.backend[0].events);
  EXPECT_EQ(st.evictions, 1000u - st.backend[0].events);
  // The newest are the ones held.
  const EventPage page = buffer.List({});
  ASSERT_FALSE(page.items.empty());
  EXPECT_EQ(page.items.back()->uid(), "u999");
  ExpectBackendsAgree(buffer);
}

TEST(BoundedBufferTest, TruncatedHugeMessagesStayUnderTheByteBudget) {
  EventBuffer buffer(Budget(1u << 20));  // default maxMessageBytes: 16 KiB
  const std::string message(1u << 20, 'y');
  for (int i = 0; i < 1000; ++i) {
    buffer.Append(MakeEvent("ns", "Pod", "p", "u" + std::to_string(i), "1", kBase + i, message));
    ASSERT_LE(buffer.Stats().record_bytes, std::size_t{1} << 20);
  }
  const BufferStats st = buffer.Stats();
  EXPECT_EQ(st.truncated_messages, 1000u);
  EXPECT_GT(st.backend[0].events, 50u);  // ~16 KiB each in 1 MiB
}

TEST(BoundedBufferTest, AFloodingNamespaceEvictsItselfNotTheOthers) {
  CountingObserver observer;
  const std::size_t budget = 4u << 20;
  EventBuffer buffer(Budget(budget), &observer);
  // A quiet namespace first (the oldest occurrences of all): 200 occurrences.
  for (int i = 0; i < 200; ++i) {
    buffer.Append(MakeEvent("quiet", "Pod", "q" + std::to_string(i % 20), "q" + std::to_string(i),
                            "1", kBase + i));
  }
  const std::size_t quiet_bytes = buffer.Stats().record_bytes;
  ASSERT_LT(quiet_bytes, budget / 2);
  // Then 100k objects in one namespace, newer.
  for (int i = 0; i < 100'000; ++i) {
    buffer.Append(MakeEvent("flood", "Pod", "f" + std::to_string(i), "f" + std::to_string(i), "1",
                            kBase + 1000 + i));
    if (i % 1000 == 0) {
      ASSERT_LE(buffer.Stats().record_bytes, budget);
    }
  }
  EXPECT_EQ(HeldIn(buffer, "quiet"), 200u);
  const std::size_t flood_held = HeldIn(buffer, "flood");
  EXPECT_GT(flood_held, 1000u);
  const BufferStats st = buffer.Stats();
  EXPECT_LE(st.record_bytes, budget);
  // Every eviction was one of the flood's own occurrences.
  EXPECT_EQ(Reason(st, EvictionReason::kNamespaceShare), 100'000u - flood_held);
  EXPECT_EQ(Reason(st, EvictionReason::kBudget), 0u);
  EXPECT_EQ(observer.evictions.load(), st.evictions);
  // The count budget follows the same rule at the retention pass.
  BufferConfig cfg = buffer.config();
  cfg.retention.max_events = 1000;
  buffer.Reconfigure(cfg);
  buffer.EnforceRetention(kBase + 200'000);
  EXPECT_EQ(HeldIn(buffer, "quiet"), 200u);
  EXPECT_EQ(HeldIn(buffer, "flood"), 800u);
  ExpectBackendsAgree(buffer);
}

TEST(BoundedBufferTest, ANamespaceOverItsShareLosesItsOldestFirst) {
  // Two namespaces, both over the count budget: the larger one goes down to the other's
  // size first, then both share the budget.
  BufferConfig cfg = Budget(SIZE_MAX / 2);
  cfg.retention.max_events = 100;
  EventBuffer buffer(cfg);
  for (int i = 0; i < 60; ++i) buffer.Append(MakeEvent("a", "Pod", "x", "a" + std::to_string(i), "1", kBase + i));
  for (int i = 0; i < 200; ++i) buffer.Append(MakeEvent("b", "Pod", "y", "b" + std::to_string(i), "1", kBase + 100 + i));
  buffer.EnforceRetention(kBase + 1000);
  EXPECT_EQ(HeldIn(buffer, "a"), 50u);
  EXPECT_EQ(HeldIn(buffer, "b"), 50u);
  EventQuery q;
  q.ns = "b";
  EXPECT_EQ(buffer.List(q).items.front()->uid(), "b150");  // b's oldest went
  ExpectBackendsAgree(buffer);
}

TEST(BoundedBufferTest, EvictionsAreCountedByReason) {
  CountingObserver observer;
  BufferConfig cfg = Budget(SIZE_MAX / 2);
  cfg.retention.max_age = std::chrono::hours(1);
  cfg.retention.max_events_per_object = 5;
  cfg.retention.max_events = 20;
  EventBuffer buffer(cfg, &observer);
  // age: 3 occurrences two hours old.
  for (int i = 0; i < 3; ++i) buffer.Append(MakeEvent("n1", "Pod", "old", "o" + std::to_string(i), "1", kBase + i));
  // per_object: 8 on one object, 3 over.
  const std::int64_t now = kBase + 2 * 3'600'000;
  for (int i = 0; i < 8; ++i) buffer.Append(MakeEvent("n1", "Pod", "busy", "b" + std::to_string(i), "1", now - 1000 + i));
  // budget (count): 20 more objects in n1, one each: 5 + 20 = 25 > 20 after the rest.
  for (int i = 0; i < 20; ++i) buffer.Append(MakeEvent("n1", "Pod", "p" + std::to_string(i), "p" + std::to_string(i), "1", now - 500 + i));
  EXPECT_EQ(buffer.EnforceRetention(now), 3u + 3u + 5u);
  BufferStats st = buffer.Stats();
  EXPECT_EQ(Reason(st, EvictionReason::kAge), 3u);
  EXPECT_EQ(Reason(st, EvictionReason::kPerObject), 3u);
  EXPECT_EQ(Reason(st, EvictionReason::kBudget), 5u);
  EXPECT_EQ(Reason(st, EvictionReason::kNamespaceShare), 0u);
  EXPECT_EQ(st.evictions, 11u);
  EXPECT_EQ(observer.evictions.load(), 11u);
  // namespace_share: a second namespace within its share, n1 over it.
  for (int i = 0; i < 4; ++i) buffer.Append(MakeEvent("n2", "Pod", "z", "z" + std::to_string(i), "1", now + i));
  EXPECT_EQ(buffer.EnforceRetention(now), 4u);
  st = buffer.Stats();
  EXPECT_EQ(Reason(st, EvictionReason::kNamespaceShare), 4u);
  EXPECT_EQ(HeldIn(buffer, "n2"), 4u);
}

// Writers in several namespaces, a retention thread, readers and a verifier at once, under
// a small byte budget: the budget holds once writers stop, and the backends agree.
TEST(BoundedBufferTest, ConcurrentAppendsRetentionAndReadsStayBoundedAndConsistent) {
  const std::size_t budget = 256u << 10;
  EventBuffer buffer(Budget(budget));
  std::atomic<bool> stop{false};
  std::vector<std::thread> writers;
  for (int w = 0; w < 3; ++w) {
    writers.emplace_back([&, w] {
      const std::string ns = "ns" + std::to_string(w);
      for (int i = 0; i < 4000; ++i) {
        buffer.Append(MakeEvent(ns, "Pod", "p" + std::to_string(i % 50),
                                ns + "-" + std::to_string(i), "1", kBase + i,
                                std::string(static_cast<std::size_t>(100 + (i % 7) * 300), 'm')));
      }
    });
  }
  std::thread maintenance([&] {
    while (!stop.load()) {
      buffer.EnforceRetention(kBase);
      buffer.VerifySweep(64);
      (void)buffer.List({});
    }
  });
  for (auto& t : writers) t.join();
  stop = true;
  maintenance.join();
  const BufferStats st = buffer.Stats();
  EXPECT_LE(st.record_bytes, budget);
  EXPECT_GT(st.evictions, 0u);
  ExpectBackendsAgree(buffer);
}

}  // namespace
}  // namespace eventbuffer
