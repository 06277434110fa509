#include "eventbuffer/verifier.h"

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

#include "eventbuffer/event_buffer.h"
#include "eventbuffer/mutex_slice_map.h"
#include "tests/eventbuffer/buffer_test_util.h"
#include "tests/eventbuffer/faulty_slice_map.h"

namespace eventbuffer {
namespace {

using testing::Fault;
using testing::FaultySliceBackend;
using testing::MakeEvent;
using testing::PodEvent;

std::vector<const EventRecord*> Ptrs(const std::vector<EventRef>& v) {
  std::vector<const EventRecord*> out;
  for (const auto& r : v) out.push_back(r.get());
  return out;
}

std::vector<EventRef> Pods(int n) {
  std::vector<EventRef> v;
  for (int i = 0; i < n; ++i) v.push_back(PodEvent("web", i));
  return v;
}

TEST(VerifierTest, SameRecordsMatch) {
  const auto v = Pods(5);
  EXPECT_TRUE(CompareOccurrences(Ptrs(v), Ptrs(v)).match);
  EXPECT_TRUE(CompareOccurrences({}, {}).match);
  // Equal content in distinct objects (a backend that copies) is a match too.
  std::vector<EventRef> copies;
  for (const auto& r : v) copies.push_back(CopyRecord(*r));
  EXPECT_TRUE(CompareOccurrences(Ptrs(v), Ptrs(copies)).match);
}

TEST(VerifierTest, ClassifiesEachKindOfDifference) {
  const auto v = Pods(4);
  auto only = [](const Comparison& c) {
    EXPECT_FALSE(c.match);
    EXPECT_EQ(c.findings.size(), 1u);
    return c.findings.empty() ? MismatchKind::kOrder : c.findings[0].kind;
  };
  auto lp = Ptrs(v);
  auto missing = lp;
  missing.erase(missing.begin() + 2);
  Comparison c = CompareOccurrences(lp, missing);
  EXPECT_EQ(only(c), MismatchKind::kMissing);
  EXPECT_NE(c.findings[0].first_difference.find("resourceVersion=2"), std::string::npos)
      << c.findings[0].first_difference;
  EXPECT_EQ(only(CompareOccurrences(missing, lp)), MismatchKind::kExtra);
  auto dup = lp;
  dup.push_back(lp[1]);
  EXPECT_EQ(only(CompareOccurrences(lp, dup)), MismatchKind::kDuplicate);
  auto reordered = lp;
  std::swap(reordered[1], reordered[2]);
  c = CompareOccurrences(lp, reordered);
  EXPECT_EQ(only(c), MismatchKind::kOrder);
  EXPECT_NE(c.findings[0].first_difference.find("position 1"), std::string::npos);
  const auto bad =
      MakeEvent("default", "Pod", "web", "uid-web", "3", 1'700'000'000'003, "tampered");
  auto corrupt = lp;
  corrupt[3] = bad.get();
  c = CompareOccurrences(lp, corrupt);
  EXPECT_EQ(only(c), MismatchKind::kCorrupt);
  EXPECT_NE(c.findings[0].first_difference.find("message"), std::string::npos)
      << c.findings[0].first_difference;
}

// A shadow-mode buffer whose atomic backend injects one kind of fault.
struct FaultyBuffer {
  explicit FaultyBuffer(double sample_rate = 0) {
    auto faulty_backend = std::make_unique<FaultySliceBackend>();
    faulty = faulty_backend.get();
    BufferConfig cfg;
    cfg.mode = GrayMode::kShadow;
    cfg.verify.sample_rate = sample_rate;
    buffer = std::make_unique<EventBuffer>(cfg, MakeLegacyBackend(), std::move(faulty_backend));
    buffer->SetMismatchSink([this](const MismatchReport& r) {
      std::lock_guard<std::mutex> lock(mu);
      reports.push_back(r);
    });
  }
  FaultySliceBackend* faulty;
  std::unique_ptr<EventBuffer> buffer;
  std::mutex mu;
  std::vector<MismatchReport> reports;
};

class InjectedFaultTest : public ::testing::TestWithParam<std::pair<Fault, MismatchKind>> {};

TEST_P(InjectedFaultTest, IsDetectedAndCountedByKind) {
  const auto [fault, kind] = GetParam();
  FaultyBuffer fb;
  for (int i = 0; i < 10; ++i) fb.buffer->Append(PodEvent("a", i));
  for (int i = 0; i < 5; ++i) fb.buffer->Append(PodEvent("b", i));
  fb.faulty->Arm(fault);  // hits b's 6th occurrence
  for (int i = 5; i < 10; ++i) fb.buffer->Append(PodEvent("b", i));
  for (int i = 0; i < 10; ++i) fb.buffer->Append(PodEvent("c", i));
  EXPECT_EQ(fb.faulty->faults_injected(), 1u);
  EXPECT_EQ(fb.buffer->VerifySweep(100), 3u);
  const BufferStats st = fb.buffer->Stats();
  for (std::size_t k = 0; k < kMismatchKindCount; ++k) {
    EXPECT_EQ(st.mismatches[k], k == static_cast<std::size_t>(kind) ? 1u : 0u)
        << MismatchKindName(static_cast<MismatchKind>(k));
  }
  EXPECT_EQ(st.verifications[static_cast<int>(VerifyResult::kMatch)], 2u);
  EXPECT_EQ(st.verifications[static_cast<int>(VerifyResult::kMismatch)], 1u);
  ASSERT_EQ(fb.reports.size(), 1u);
  const MismatchReport& r = fb.reports[0];
  EXPECT_EQ(r.key, "default/Pod/b");
  EXPECT_EQ(r.kind, kind);
  EXPECT_EQ(r.mode, GrayMode::kShadow);
  EXPECT_EQ(r.legacy_count, 10u);
  EXPECT_EQ(r.atomic_count, fault == Fault::kDrop ? 9u : fault == Fault::kDuplicate ? 11u : 10u);
  EXPECT_FALSE(r.first_difference.empty());
}

INSTANTIATE_TEST_SUITE_P(AllFaults, InjectedFaultTest,
                         ::testing::Values(std::pair{Fault::kDrop, MismatchKind::kMissing},
                                           std::pair{Fault::kDuplicate, MismatchKind::kDuplicate},
                                           std::pair{Fault::kReorder, MismatchKind::kOrder},
                                           std::pair{Fault::kCorrupt, MismatchKind::kCorrupt}),
                         [](const auto& info) {
                           return std::string(MismatchKindName(info.param.second));
                         });

TEST(VerifierTest, SampledWritesAndReadsVerify) {
  FaultyBuffer fb(/*sample_rate=*/1.0);
  fb.faulty->Arm(Fault::kDrop);
  fb.buffer->Append(PodEvent("a", 0));  // dropped by atomic, verified at once
  EXPECT_EQ(fb.buffer->Stats().mismatches[static_cast<int>(MismatchKind::kMissing)], 1u);
  fb.buffer->Read("default/Pod/a");  // the read is verified too
  EXPECT_EQ(fb.buffer->Stats().mismatches[static_cast<int>(MismatchKind::kMissing)], 2u);
  EXPECT_EQ(fb.buffer->Stats().verifications[static_cast<int>(VerifyResult::kMismatch)], 2u);
}

TEST(VerifierTest, SingleWriteModesSkipVerification) {
  BufferConfig cfg;
  cfg.mode = GrayMode::kLegacy;
  EventBuffer buffer(cfg);
  buffer.Append(PodEvent("a", 0));
  EXPECT_EQ(buffer.VerifyKey("default/Pod/a"), VerifyResult::kSkipped);
  EXPECT_EQ(buffer.VerifySweep(10), 0u);
  EXPECT_EQ(buffer.Stats().verifications[static_cast<int>(VerifyResult::kSkipped)], 2u);
}

TEST(VerifierTest, FaultEveryNthAppendIsCaughtUnderConcurrentWriters) {
  FaultyBuffer fb(0.05);
  fb.faulty->ArmEvery(Fault::kDrop, 97);
  std::vector<std::thread> writers;
  for (int t = 0; t < 4; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i)
        fb.buffer->Append(PodEvent("p" + std::to_string(i % 16), t * 100000 + i));
    });
  }
  for (auto& w : writers) w.join();
  fb.buffer->VerifySweep(100);
  EXPECT_GT(fb.buffer->Stats().mismatches[static_cast<int>(MismatchKind::kMissing)], 0u);
}

// The A/A run: two correct backends, concurrent writers on shared keys, sampled write and
// read verification, a background sweep and retention all at once: not one mismatch.
TEST(VerifierTest, TwoCorrectBackendsUnderConcurrencyNeverMismatch) {
  BufferConfig cfg;
  cfg.mode = GrayMode::kShadow;
  cfg.verify.sample_rate = 0.2;
  cfg.retention.max_events_per_object = 50;
  cfg.retention.max_events = 600;
  cfg.retention.max_age = std::chrono::hours(1);
  EventBuffer buffer(cfg, std::make_unique<SliceMapBackend<MutexSliceMap<EventRef>>>(),
                     MakeAtomicBackend());
  std::atomic<std::uint64_t> reported{0};
  buffer.SetMismatchSink([&](const MismatchReport&) { reported.fetch_add(1); });
  std::atomic<bool> stop{false};
  const std::int64_t base = 1'700'000'000'000;
  std::thread sweeper([&] {
    while (!stop.load()) buffer.VerifySweep(8);
  });
  std::thread retention([&] {
    std::int64_t now = base;
    while (!stop.load()) {
      buffer.EnforceRetention(now);
      now += 1;
      std::this_thread::yield();
    }
  });
  std::vector<std::thread> writers;
  for (int t = 0; t < 4; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; i < 5000; ++i) {
        buffer.Append(MakeEvent("ns", "Pod", "p" + std::to_string(i % 24),
                                "u" + std::to_string(t) + "-" + std::to_string(i), "1",
                                base + 3600'000 + i));
        if (i % 7 == 0) buffer.Read("ns/Pod/p" + std::to_string(i % 24));
      }
    });
  }
  for (auto& w : writers) w.join();
  stop.store(true);
  sweeper.join();
  retention.join();
  EXPECT_GT(buffer.VerifySweep(1000), 0u);  // a final full round over the settled state
  const BufferStats st = buffer.Stats();
  for (std::size_t k = 0; k < kMismatchKindCount; ++k) {
    EXPECT_EQ(st.mismatches[k], 0u) << MismatchKindName(static_cast<MismatchKind>(k));
  }
  EXPECT_EQ(reported.load(), 0u);
  EXPECT_GT(st.verifications[static_cast<int>(VerifyResult::kMatch)], 100u);
  EXPECT_EQ(st.backend[0].events, st.backend[1].events);
  EXPECT_EQ(st.appended, 20000u);
}

}  // namespace
}  // namespace eventbuffer
