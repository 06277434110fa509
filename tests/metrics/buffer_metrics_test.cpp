#include "metrics/buffer_metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include "tests/metrics/exposition_test_util.h"

namespace eventbuffer::metrics {
namespace {

using testing_util::Sample;

// Exposition text of the registry families plus the scrape-time ones.
std::string Render(prometheus::Registry& registry, const BufferMetrics& m) {
  auto families = registry.Collect();
  for (auto& f : m.Collect()) families.push_back(std::move(f));
  return testing_util::RenderFamilies(families);
}

class BufferMetricsTest : public ::testing::Test {
 protected:
  prometheus::Registry registry_;
  BufferMetrics m_{registry_};
};

TEST_F(BufferMetricsTest, EveryKnownLabelCombinationStartsAtZero) {
  const std::string t = Render(registry_, m_);
  for (const char* backend : {"legacy", "atomic"}) {
    const std::string b = std::string("{backend=\"") + backend + "\"";
    EXPECT_EQ(Sample(t, "eventbuffer_append_duration_seconds_count" + b + "}"), 0) << t;
    EXPECT_EQ(Sample(t, "eventbuffer_write_pause_seconds_count" + b + "}"), 0);
    EXPECT_EQ(Sample(t, "eventbuffer_write_pause_max_seconds" + b + "}"), 0);
    EXPECT_EQ(Sample(t, "eventbuffer_append_recent_duration_seconds_count" + b + "}"), 0);
    EXPECT_EQ(Sample(t, "eventbuffer_objects" + b + "}"), 0);
    EXPECT_EQ(Sample(t, "eventbuffer_events" + b + "}"), 0);
    EXPECT_EQ(Sample(t, "eventbuffer_memory_bytes" + b + "}"), 0);
  }
  for (const char* kind : {"missing", "extra", "duplicate", "corrupt", "order"}) {
    EXPECT_EQ(Sample(t, std::string("eventbuffer_mismatches_total{kind=\"") + kind + "\"}"), 0);
  }
  for (const char* r : {"match", "mismatch", "skipped"}) {
    EXPECT_EQ(Sample(t, std::string("eventbuffer_verifications_total{result=\"") + r + "\"}"), 0);
  }
  for (const char* r : {"success", "failure"}) {
    EXPECT_EQ(Sample(t, std::string("eventbuffer_config_reloads_total{result=\"") + r + "\"}"), 0);
  }
  EXPECT_EQ(Sample(t, "eventbuffer_gray_mode{mode=\"legacy\"}"), 1);
  for (const char* mode : {"shadow", "canary", "atomic"}) {
    EXPECT_EQ(Sample(t, std::string("eventbuffer_gray_mode{mode=\"") + mode + "\"}"), 0);
  }
  EXPECT_EQ(Sample(t, "eventbuffer_rollout_percent"), 0);
  for (const char* r : {"age", "per_object", "budget", "namespace_share"}) {
    EXPECT_EQ(Sample(t, std::string("eventbuffer_evictions_total{reason=\"") + r + "\"}"), 0);
  }
  EXPECT_EQ(Sample(t, "eventbuffer_dedup_hits_total"), 0);
  EXPECT_EQ(Sample(t, "eventbuffer_truncated_messages_total"), 0);
  EXPECT_EQ(Sample(t, "eventbuffer_record_memory_bytes"), 0);
  EXPECT_EQ(Sample(t, "eventbuffer_config_last_reload_successful"), 1);
}

TEST_F(BufferMetricsTest, AppendsLandInTheirBackendAndBucket) {
  m_.OnAppend(Backend::kAtomic, 150, 0);     // bucket le=2e-07
  m_.OnAppend(Backend::kAtomic, 3'000, 0);   // le=3.2e-06
  m_.OnAppend(Backend::kLegacy, 50'000, 0);  // le=5.12e-05
  EXPECT_EQ(m_.AppendCount(Backend::kAtomic), 2u);
  EXPECT_EQ(m_.AppendCount(Backend::kLegacy), 1u);
  const std::string t = Render(registry_, m_);
  EXPECT_EQ(
      Sample(t, "eventbuffer_append_duration_seconds_bucket{backend=\"atomic\",le=\"1e-07\"}"), 0);
  EXPECT_EQ(
      Sample(t, "eventbuffer_append_duration_seconds_bucket{backend=\"atomic\",le=\"2e-07\"}"), 1);
  EXPECT_EQ(
      Sample(t, "eventbuffer_append_duration_seconds_bucket{backend=\"atomic\",le=\"3.2e-06\"}"),
      2);
  EXPECT_EQ(
      Sample(t, "eventbuffer_append_duration_seconds_bucket{backend=\"legacy\",le=\"2.56e-05\"}"),
      0);
  EXPECT_EQ(
      Sample(t, "eventbuffer_append_duration_seconds_bucket{backend=\"legacy\",le=\"5.12e-05\"}"),
      1);
  EXPECT_NEAR(Sample(t, "eventbuffer_append_duration_seconds_sum{backend=\"atomic\"}"), 3150e-9,
              1e-15);
  EXPECT_EQ(Sample(t, "eventbuffer_append_recent_duration_seconds_count{backend=\"atomic\"}"), 2);
  // The windowed quantiles are within 1/16 of the observed value (WindowQuantiles).
  const double p95 =
      Sample(t, "eventbuffer_append_recent_duration_seconds{backend=\"legacy\",quantile=\"0.95\"}");
  EXPECT_NEAR(p95, 50e-6, 50e-6 / 16);
  // No stall was reported: the pause histogram stays empty.
  EXPECT_EQ(Sample(t, "eventbuffer_write_pause_seconds_count{backend=\"atomic\"}"), 0);
}

TEST_F(BufferMetricsTest, StallsFeedPauseHistogramAndWindowMax) {
  m_.OnAppend(Backend::kLegacy, 900'000, 800'000);
  m_.OnStall(Backend::kLegacy, 2'000'000);
  m_.OnStall(Backend::kLegacy, 0);  // not a stall
  m_.OnStall(Backend::kAtomic, 10'000);
  const std::string t = Render(registry_, m_);
  EXPECT_EQ(Sample(t, "eventbuffer_write_pause_seconds_count{backend=\"legacy\"}"), 2);
  EXPECT_EQ(Sample(t, "eventbuffer_write_pause_seconds_count{backend=\"atomic\"}"), 1);
  EXPECT_DOUBLE_EQ(Sample(t, "eventbuffer_write_pause_max_seconds{backend=\"legacy\"}"), 0.002);
  EXPECT_DOUBLE_EQ(Sample(t, "eventbuffer_write_pause_max_seconds{backend=\"atomic\"}"), 1e-5);
  // The stalled append still counts as one append.
  EXPECT_EQ(Sample(t, "eventbuffer_append_duration_seconds_count{backend=\"legacy\"}"), 1);
}

TEST_F(BufferMetricsTest, CountersFollowTheObserverCalls) {
  m_.OnVerification(VerifyResult::kMatch);
  m_.OnVerification(VerifyResult::kMatch);
  m_.OnVerification(VerifyResult::kMismatch);
  m_.OnMismatch(MismatchKind::kCorrupt);
  m_.OnEvictions(7);
  m_.OnEvictionsByReason(EvictionReason::kAge, 3);
  m_.OnEvictionsByReason(EvictionReason::kNamespaceShare, 4);
  m_.OnDedupHit();
  m_.OnMessageTruncated();
  m_.OnMessageTruncated();
  const std::string t = Render(registry_, m_);
  EXPECT_EQ(Sample(t, "eventbuffer_verifications_total{result=\"match\"}"), 2);
  EXPECT_EQ(Sample(t, "eventbuffer_verifications_total{result=\"mismatch\"}"), 1);
  EXPECT_EQ(Sample(t, "eventbuffer_verifications_total{result=\"skipped\"}"), 0);
  EXPECT_EQ(Sample(t, "eventbuffer_mismatches_total{kind=\"corrupt\"}"), 1);
  EXPECT_EQ(Sample(t, "eventbuffer_mismatches_total{kind=\"missing\"}"), 0);
  EXPECT_EQ(Sample(t, "eventbuffer_evictions_total{reason=\"budget\"}"), 7);
  EXPECT_EQ(Sample(t, "eventbuffer_evictions_total{reason=\"age\"}"), 3);
  EXPECT_EQ(Sample(t, "eventbuffer_evictions_total{reason=\"namespace_share\"}"), 4);
  EXPECT_EQ(Sample(t, "eventbuffer_evictions_total{reason=\"per_object\"}"), 0);
  EXPECT_EQ(Sample(t, "eventbuffer_dedup_hits_total"), 1);
  EXPECT_EQ(Sample(t, "eventbuffer_truncated_messages_total"), 2);
}

TEST_F(BufferMetricsTest, ModeChangeMarksExactlyOneModeActive) {
  m_.OnModeChange(GrayMode::kCanary, 25);
  std::string t = Render(registry_, m_);
  EXPECT_EQ(Sample(t, "eventbuffer_gray_mode{mode=\"canary\"}"), 1);
  EXPECT_EQ(Sample(t, "eventbuffer_gray_mode{mode=\"legacy\"}"), 0);
  EXPECT_EQ(Sample(t, "eventbuffer_rollout_percent"), 25);
  m_.OnModeChange(GrayMode::kShadow, 0);
  t = Render(registry_, m_);
  EXPECT_EQ(Sample(t, "eventbuffer_gray_mode{mode=\"canary\"}"), 0);
  EXPECT_EQ(Sample(t, "eventbuffer_gray_mode{mode=\"shadow\"}"), 1);
  EXPECT_EQ(Sample(t, "eventbuffer_rollout_percent"), 0);
}

TEST_F(BufferMetricsTest, ConfigReloadsCountedByResult) {
  m_.OnConfigReload(true);
  m_.OnConfigReload(false);
  std::string t = Render(registry_, m_);
  EXPECT_EQ(Sample(t, "eventbuffer_config_reloads_total{result=\"success\"}"), 1);
  EXPECT_EQ(Sample(t, "eventbuffer_config_reloads_total{result=\"failure\"}"), 1);
  EXPECT_EQ(Sample(t, "eventbuffer_config_last_reload_successful"), 0);
  m_.OnConfigReload(true);
  t = Render(registry_, m_);
  EXPECT_EQ(Sample(t, "eventbuffer_config_last_reload_successful"), 1);
}

TEST_F(BufferMetricsTest, SizesComeFromTheSourceAtScrape) {
  int calls = 0;
  m_.SetSizeSource([&calls] {
    ++calls;
    BufferSizes s;
    s.backend[static_cast<std::size_t>(Backend::kLegacy)] = {3, 40, 5000};
    s.backend[static_cast<std::size_t>(Backend::kAtomic)] = {2, 39, 4900};
    s.record_bytes = 24000;
    s.dedup_bytes = 1600;
    s.query_index_bytes = 2400;
    s.intern_bytes = 530000;
    s.intern_entries = 41;
    s.intern_fallbacks = 7;
    return s;
  });
  const std::string t = Render(registry_, m_);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(Sample(t, "eventbuffer_objects{backend=\"legacy\"}"), 3);
  EXPECT_EQ(Sample(t, "eventbuffer_events{backend=\"atomic\"}"), 39);
  EXPECT_EQ(Sample(t, "eventbuffer_memory_bytes{backend=\"legacy\"}"), 5000);
  EXPECT_EQ(Sample(t, "eventbuffer_record_memory_bytes"), 24000);
  EXPECT_EQ(Sample(t, "eventbuffer_index_memory_bytes{index=\"dedup\"}"), 1600);
  EXPECT_EQ(Sample(t, "eventbuffer_index_memory_bytes{index=\"list\"}"), 2400);
  EXPECT_EQ(Sample(t, "eventbuffer_intern_table_bytes"), 530000);
  EXPECT_EQ(Sample(t, "eventbuffer_intern_table_entries"), 41);
  EXPECT_EQ(Sample(t, "eventbuffer_intern_fallbacks_total"), 7);
}

TEST_F(BufferMetricsTest, ConcurrentObserversAndScrapesCountEverything) {
  constexpr int kPerThread = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([this, t] {
      const Backend b = t == 0 ? Backend::kLegacy : Backend::kAtomic;
      for (int i = 0; i < kPerThread; ++i) {
        m_.OnAppend(b, 100 + i, i % 100 == 0 ? 5000 : 0);
        if (i % 10 == 0) m_.OnVerification(VerifyResult::kMatch);
        if (i % 1000 == 0) m_.OnModeChange(GrayMode::kShadow, 0);
      }
    });
  }
  for (int i = 0; i < 20; ++i) (void)Render(registry_, m_);
  for (auto& t : threads) t.join();
  const std::string t = Render(registry_, m_);
  EXPECT_EQ(Sample(t, "eventbuffer_append_duration_seconds_count{backend=\"legacy\"}"), kPerThread);
  EXPECT_EQ(Sample(t, "eventbuffer_append_duration_seconds_count{backend=\"atomic\"}"), kPerThread);
  EXPECT_EQ(Sample(t, "eventbuffer_write_pause_seconds_count{backend=\"atomic\"}"),
            kPerThread / 100);
  EXPECT_EQ(Sample(t, "eventbuffer_verifications_total{result=\"match\"}"), 2 * kPerThread / 10);
}

}  // namespace
}  // namespace eventbuffer::metrics
