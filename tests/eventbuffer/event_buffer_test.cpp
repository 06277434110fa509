#include "eventbuffer/event_buffer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/eventbuffer/buffer_test_util.h"
#include "tests/eventbuffer/faulty_slice_map.h"

namespace eventbuffer {
namespace {

using testing::CountingObserver;
using testing::Fault;
using testing::FaultySliceBackend;
using testing::MakeEvent;
using testing::PodEvent;

constexpr std::int64_t kBase = 1'700'000'000'000;

BufferConfig Config(GrayMode mode, double percent = 0) {
  BufferConfig cfg;
  cfg.mode = mode;
  cfg.rollout_percent = percent;
  cfg.verify.sample_rate = 0;
  return cfg;
}

TEST(EventBufferTest, ReadsReturnOccurrencesInOrderUnderTheInvolvedObject) {
  EventBuffer buffer(Config(GrayMode::kShadow));
  buffer.Append(MakeEvent("default", "Pod", "web", "u1", "5", kBase));
  buffer.Append(MakeEvent("default", "Pod", "web", "u1", "6", kBase + 1));
  buffer.Append(MakeEvent("", "Node", "worker-1", "u2", "7", kBase + 2));
  const auto web = buffer.Read("default/Pod/web");
  ASSERT_EQ(web.size(), 2u);
  EXPECT_EQ(web[0]->resource_version(), "5");
  EXPECT_EQ(web[1]->resource_version(), "6");
  EXPECT_EQ(buffer.Read("/Node/worker-1").size(), 1u);
  EXPECT_TRUE(buffer.Read("default/Pod/absent").empty());

  auto objects = buffer.Objects();
  std::sort(objects.begin(), objects.end(),
            [](const ObjectSummary& a, const ObjectSummary& b) { return a.name < b.name; });
  ASSERT_EQ(objects.size(), 2u);
  EXPECT_EQ(objects[0].ns, "default");
  EXPECT_EQ(objects[0].kind, "Pod");
  EXPECT_EQ(objects[0].name, "web");
  EXPECT_EQ(objects[0].events, 2u);
  EXPECT_EQ(objects[1].ns, "");
  EXPECT_EQ(objects[1].kind, "Node");
  EXPECT_EQ(objects[1].events, 1u);

  const BufferStats st = buffer.Stats();
  for (int b = 0; b < 2; ++b) {
    EXPECT_EQ(st.backend[b].objects, 2u);
    EXPECT_EQ(st.backend[b].events, 3u);
    EXPECT_GT(st.backend[b].bytes, 0u);
  }
  EXPECT_EQ(st.appended, 3u);
  EXPECT_GT(st.record_bytes, 3 * sizeof(EventRecord));
}

TEST(EventBufferTest, SingleWriteModesLeaveTheOtherBackendEmpty) {
  EventBuffer legacy(Config(GrayMode::kLegacy));
  legacy.Append(PodEvent("a", 1));
  EXPECT_EQ(legacy.Stats().backend[0].events, 1u);
  EXPECT_EQ(legacy.Stats().backend[1].events, 0u);
  EventBuffer atomic(Config(GrayMode::kAtomic));
  atomic.Append(PodEvent("a", 1));
  EXPECT_EQ(atomic.Stats().backend[0].events, 0u);
  EXPECT_EQ(atomic.Stats().backend[1].events, 1u);
  EXPECT_EQ(atomic.Read("default/Pod/a").size(), 1u);
}

TEST(EventBufferTest, CanaryRoutesReadsOfTheRolloutBucketsToAtomic) {
  // The atomic backend drops every append, so a read shows which backend served it.
  auto faulty = std::make_unique<FaultySliceBackend>();
  faulty->ArmEvery(Fault::kDrop, 1);
  EventBuffer buffer(Config(GrayMode::kCanary, 50), MakeLegacyBackend(), std::move(faulty));
  std::size_t atomic_keys = 0;
  for (int i = 0; i < 400; ++i) {
    const std::string name = "p" + std::to_string(i);
    buffer.Append(PodEvent(name, 0));
    const std::string key = "default/Pod/" + name;
    const bool canary = KeyBucket(key) < RolloutThreshold(50);
    EXPECT_EQ(buffer.Read(key).empty(), canary) << key;
    atomic_keys += canary;
  }
  EXPECT_GT(atomic_keys, 150u);
  EXPECT_LT(atomic_keys, 250u);
  EXPECT_EQ(buffer.Objects().size(), 400u - atomic_keys);
}

TEST(EventBufferTest, RejectsInvalidConfiguration) {
  BufferConfig bad;
  bad.rollout_percent = 101;
  EXPECT_THROW(EventBuffer{bad}, std::invalid_argument);
  EventBuffer buffer(Config(GrayMode::kShadow));
  bad = Config(GrayMode::kAtomic);
  bad.verify.sample_rate = 2;
  EXPECT_THROW(buffer.Reconfigure(bad), std::invalid_argument);
  EXPECT_EQ(buffer.config().mode, GrayMode::kShadow) << "nothing changed";
}

TEST(EventBufferTest, RetentionByAgeDropsTheSameOccurrencesFromBothBackends) {
  BufferConfig cfg = Config(GrayMode::kShadow);
  cfg.retention.max_age = std::chrono::minutes(5);
  CountingObserver observer;
  EventBuffer buffer(cfg, &observer);
  for (int i = 0; i < 10; ++i) buffer.Append(PodEvent("a", i * 60'000, kBase));  // one a minute
  // At kBase + 10 min, occurrences older than kBase + 5 min go: minutes 0..4.
  EXPECT_EQ(buffer.EnforceRetention(kBase + 10 * 60'000), 5u);
  const auto left = buffer.Read("default/Pod/a");
  ASSERT_EQ(left.size(), 5u);
  EXPECT_EQ(left.front()->resource_version(), std::to_string(5 * 60'000));
  EXPECT_EQ(buffer.VerifyKey("default/Pod/a"), VerifyResult::kMatch);
  EXPECT_EQ(buffer.Stats().backend[1].events, 5u);
  EXPECT_EQ(buffer.Stats().evictions, 5u);
  EXPECT_EQ(observer.evictions.load(), 5u);
  // Everything expires; the key disappears from both backends.
  EXPECT_EQ(buffer.EnforceRetention(kBase + 60 * 60'000), 5u);
  EXPECT_TRUE(buffer.Objects().empty());
  EXPECT_EQ(buffer.Stats().backend[0].objects, 0u);
  EXPECT_EQ(buffer.Stats().backend[1].objects, 0u);
}

TEST(EventBufferTest, RetentionByCountPerObjectAndOverall) {
  BufferConfig cfg = Config(GrayMode::kShadow);
  cfg.retention.max_age = std::chrono::hours(24);
  cfg.retention.max_events_per_object = 30;
  cfg.retention.max_events = 50;
  EventBuffer buffer(cfg);
  // Object a: 40 occurrences at t = 0..39; object b: 20 at t = 100..119.
  for (int i = 0; i < 40; ++i) buffer.Append(PodEvent("a", i, kBase));
  for (int i = 0; i < 20; ++i) buffer.Append(PodEvent("b", 100 + i, kBase));
  // Per object: a keeps 30 (10..39). Overall 50 of 50: b untouched, then nothing more.
  EXPECT_EQ(buffer.EnforceRetention(kBase + 1000), 10u);
  EXPECT_EQ(buffer.Read("default/Pod/a").size(), 30u);
  // 10 more for b push the total to 60: the 10 oldest overall (a's 10..19) go.
  for (int i = 0; i < 10; ++i) buffer.Append(PodEvent("b", 200 + i, kBase));
  EXPECT_EQ(buffer.EnforceRetention(kBase + 1000), 10u);
  const auto a = buffer.Read("default/Pod/a");
  ASSERT_EQ(a.size(), 20u);
  EXPECT_EQ(a.front()->resource_version(), "20");
  EXPECT_EQ(buffer.Read("default/Pod/b").size(), 30u);
  const BufferStats st = buffer.Stats();
  EXPECT_EQ(st.backend[0].events, 50u);
  EXPECT_EQ(st.backend[1].events, 50u);
  EXPECT_EQ(buffer.VerifySweep(10), 2u);
  EXPECT_EQ(buffer.Stats().verifications[static_cast<int>(VerifyResult::kMatch)], 2u);
}

TEST(EventBufferTest, ObserverSeesSampledAppendsAndModeChanges) {
  CountingObserver observer;
  EventBuffer buffer(Config(GrayMode::kShadow), &observer);
  EXPECT_EQ(observer.mode_changes.load(), 1u);
  for (int i = 0; i < 1600; ++i) buffer.Append(PodEvent("a", i));
  // 1 in 16 appends per backend (per thread) is timed.
  EXPECT_EQ(observer.appends[0].load(), 100u);
  EXPECT_EQ(observer.appends[1].load(), 100u);
  EXPECT_EQ(observer.negative_durations.load(), 0u);
  buffer.Reconfigure(Config(GrayMode::kCanary, 12.5));
  EXPECT_EQ(observer.mode_changes.load(), 2u);
  EXPECT_EQ(observer.last_mode.load(), static_cast<int>(GrayMode::kCanary));
  EXPECT_EQ(observer.last_percent.load(), 12.5);
  buffer.Reconfigure(Config(GrayMode::kCanary, 12.5));
  EXPECT_EQ(observer.mode_changes.load(), 2u) << "no change, no call";
}

// Every ordered pair of distinct modes, with writers racing the switch: no occurrence is
// lost, the new mode reads everything, both backends agree where both are written, and a
// backend the new mode does not write is emptied.
class TransitionTest : public ::testing::TestWithParam<std::pair<GrayMode, GrayMode>> {};

TEST_P(TransitionTest, LosesNoEventWithWritersRacingTheSwitch) {
  const auto [from, to] = GetParam();
  EventBuffer buffer(Config(from, 50));
  constexpr int kKeys = 64, kBefore = 2000, kWriters = 3, kDuring = 3000;
  for (int i = 0; i < kBefore; ++i) buffer.Append(PodEvent("p" + std::to_string(i % kKeys), i));
  std::atomic<bool> go{false};
  std::vector<std::thread> writers;
  for (int t = 0; t < kWriters; ++t) {
    writers.emplace_back([&, t] {
      while (!go.load()) std::this_thread::yield();
      for (int i = 0; i < kDuring; ++i) {
        const int n = kBefore + t * kDuring + i;
        buffer.Append(PodEvent("p" + std::to_string((n * 7 + t) % (kKeys + 16)), n));
      }
    });
  }
  go.store(true);
  buffer.Reconfigure(Config(to, 50));
  for (auto& w : writers) w.join();

  // Everything appended is readable through the new mode's routing, each once, in order.
  std::size_t total = 0;
  for (int k = 0; k < kKeys + 16; ++k) {
    const auto events = buffer.Read("default/Pod/p" + std::to_string(k));
    std::set<std::string> seen;
    for (const auto& e : events)
      EXPECT_TRUE(seen.insert(std::string(e->resource_version())).second);
    total += events.size();
  }
  EXPECT_EQ(total, static_cast<std::size_t>(kBefore + kWriters * kDuring));
  const BufferStats st = buffer.Stats();
  EXPECT_EQ(st.backend[0].events, WritesLegacy(to) ? total : 0u);
  EXPECT_EQ(st.backend[1].events, WritesAtomic(to) ? total : 0u);
  if (IsDualWrite(to)) {
    EXPECT_EQ(buffer.VerifySweep(1000), static_cast<std::size_t>(kKeys + 16));
    for (std::size_t k = 0; k < kMismatchKindCount; ++k)
      EXPECT_EQ(buffer.Stats().mismatches[k], 0u);
  }
  // And back again: the reverse switch loses nothing either.
  buffer.Reconfigure(Config(from, 50));
  std::size_t back = 0;
  for (int k = 0; k < kKeys + 16; ++k)
    back += buffer.Read("default/Pod/p" + std::to_string(k)).size();
  EXPECT_EQ(back, total);
  if (IsDualWrite(from)) {
    buffer.VerifySweep(1000);
    for (std::size_t k = 0; k < kMismatchKindCount; ++k)
      EXPECT_EQ(buffer.Stats().mismatches[k], 0u);
  }
}

std::vector<std::pair<GrayMode, GrayMode>> AllPairs() {
  std::vector<std::pair<GrayMode, GrayMode>> pairs;
  for (std::size_t a = 0; a < kGrayModeCount; ++a) {
    for (std::size_t b = 0; b < kGrayModeCount; ++b) {
      if (a != b) pairs.emplace_back(static_cast<GrayMode>(a), static_cast<GrayMode>(b));
    }
  }
  return pairs;
}

INSTANTIATE_TEST_SUITE_P(AllOrderedPairs, TransitionTest, ::testing::ValuesIn(AllPairs()),
                         [](const auto& info) {
                           return std::string(GrayModeName(info.param.first)) + "_to_" +
                                  std::string(GrayModeName(info.param.second));
                         });

// The narrow window of a backfill: keys created after the source's keys were listed but
// before their stripe switched must still be copied (the stripes collect them).
TEST(EventBufferTest, KeysCreatedWhileTheBackfillRunsAreCopiedToo) {
  for (const auto& [from, to] : {std::pair{GrayMode::kLegacy, GrayMode::kShadow},
                                 std::pair{GrayMode::kLegacy, GrayMode::kAtomic},
                                 std::pair{GrayMode::kAtomic, GrayMode::kCanary}}) {
    EventBuffer buffer(Config(from, 100));
    for (int i = 0; i < 10; ++i) buffer.Append(PodEvent("old" + std::to_string(i), i));
    buffer.SetTransitionHookForTesting([&] {
      for (int i = 0; i < 200; ++i) buffer.Append(PodEvent("new" + std::to_string(i), 1000 + i));
      for (int i = 0; i < 10; ++i) buffer.Append(PodEvent("old" + std::to_string(i), 2000 + i));
    });
    buffer.Reconfigure(Config(to, 100));
    for (int i = 0; i < 200; ++i) {
      EXPECT_EQ(buffer.Read("default/Pod/new" + std::to_string(i)).size(), 1u)
          << GrayModeName(from) << "->" << GrayModeName(to) << " new" << i;
    }
    for (int i = 0; i < 10; ++i) {
      EXPECT_EQ(buffer.Read("default/Pod/old" + std::to_string(i)).size(), 2u);
    }
    if (IsDualWrite(to)) {
      EXPECT_EQ(buffer.VerifySweep(1000), 210u);
      EXPECT_EQ(buffer.Stats().verifications[static_cast<int>(VerifyResult::kMatch)], 210u);
    }
  }
}

TEST(EventBufferTest, FullRolloutAndRollbackChainKeepsEveryEvent) {
  EventBuffer buffer(Config(GrayMode::kLegacy));
  int n = 0;
  const std::vector<BufferConfig> steps = {
      Config(GrayMode::kShadow), Config(GrayMode::kCanary, 1),  Config(GrayMode::kCanary, 50),
      Config(GrayMode::kAtomic), Config(GrayMode::kCanary, 10), Config(GrayMode::kLegacy),
      Config(GrayMode::kAtomic), Config(GrayMode::kShadow),     Config(GrayMode::kLegacy)};
  for (const BufferConfig& step : steps) {
    for (int i = 0; i < 100; ++i, ++n) buffer.Append(PodEvent("p" + std::to_string(n % 10), n));
    buffer.Reconfigure(step);
    std::size_t total = 0;
    for (const auto& o : buffer.Objects()) total += o.events;
    EXPECT_EQ(total, static_cast<std::size_t>(n)) << GrayModeName(step.mode);
  }
}

// Mode switches back and forth while writers, a reader, the verification sweep and
// retention all run: nothing is lost or invented (held = appended - evicted), and the
// backends agree wherever both are written.
TEST(EventBufferTest, ReconfigureRacingRetentionSweepAndReadsStaysConsistent) {
  BufferConfig base = Config(GrayMode::kLegacy, 30);
  base.verify.sample_rate = 0.05;
  base.retention.max_events_per_object = 40;
  base.retention.max_events = 1500;
  base.retention.max_age = std::chrono::hours(1);
  EventBuffer buffer(base);
  std::atomic<std::uint64_t> reported{0};
  buffer.SetMismatchSink([&](const MismatchReport&) { reported.fetch_add(1); });
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; !stop.load(); ++i) {
        buffer.Append(MakeEvent("ns", "Pod", "p" + std::to_string(i % 50), "w" + std::to_string(t),
                                std::to_string(i), kBase + i));
      }
    });
  }
  threads.emplace_back([&] {
    while (!stop.load()) buffer.VerifySweep(16);
  });
  threads.emplace_back([&] {
    while (!stop.load()) buffer.EnforceRetention(kBase);
  });
  threads.emplace_back([&] {
    for (int i = 0; !stop.load(); ++i) buffer.Read("ns/Pod/p" + std::to_string(i % 50));
  });
  const GrayMode cycle[] = {GrayMode::kShadow, GrayMode::kCanary, GrayMode::kAtomic,
                            GrayMode::kShadow, GrayMode::kLegacy, GrayMode::kAtomic,
                            GrayMode::kCanary, GrayMode::kLegacy};
  for (int round = 0; round < 3; ++round) {
    for (GrayMode m : cycle) {
      BufferConfig next = base;
      next.mode = m;
      next.rollout_percent = 10.0 * (round + 1);
      buffer.Reconfigure(next);
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }
  BufferConfig final_config = base;
  final_config.mode = GrayMode::kShadow;
  buffer.Reconfigure(final_config);
  stop.store(true);
  for (auto& t : threads) t.join();

  const BufferStats st = buffer.Stats();
  EXPECT_EQ(st.backend[0].events, st.appended - st.evictions);
  EXPECT_EQ(st.backend[1].events, st.appended - st.evictions);
  EXPECT_GT(st.appended, 0u);
  buffer.VerifySweep(1000);
  for (std::size_t k = 0; k < kMismatchKindCount; ++k) {
    EXPECT_EQ(buffer.Stats().mismatches[k], 0u) << MismatchKindName(static_cast<MismatchKind>(k));
  }
  EXPECT_EQ(reported.load(), 0u);
}

TEST(EventBufferTest, ConcurrentWritersAndReadersKeepPerKeyOrderOfEachWriter) {
  EventBuffer buffer(Config(GrayMode::kCanary, 50));
  constexpr int kWriters = 4, kPerWriter = 5000;
  std::atomic<bool> done{false};
  std::thread reader([&] {
    while (!done.load()) {
      for (const auto& o : buffer.Objects()) buffer.Read(o.ns + "/" + o.kind + "/" + o.name);
    }
  });
  std::vector<std::thread> writers;
  for (int t = 0; t < kWriters; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; i < kPerWriter; ++i) {
        buffer.Append(MakeEvent("ns", "Pod", "p" + std::to_string(i % 8), "w" + std::to_string(t),
                                std::to_string(i), kBase + i));
      }
    });
  }
  for (auto& w : writers) w.join();
  done.store(true);
  reader.join();
  std::size_t total = 0;
  for (int k = 0; k < 8; ++k) {
    std::map<std::string, int> last;  // writer uid -> last resourceVersion seen
    for (const auto& e : buffer.Read("ns/Pod/p" + std::to_string(k))) {
      const int rv = std::stoi(std::string(e->resource_version()));
      auto [it, fresh] = last.try_emplace(std::string(e->uid()), rv);
      if (!fresh) {
        EXPECT_GT(rv, it->second);
        it->second = rv;
      }
      ++total;
    }
  }
  EXPECT_EQ(total, static_cast<std::size_t>(kWriters * kPerWriter));
}

}  // namespace
}  // namespace eventbuffer
