#include "eventbuffer/gray_flag.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

namespace eventbuffer {
namespace {

TEST(GrayFlagTest, Fnv1a64MatchesPublishedTestVectors) {
  // From the FNV reference test suite (Fowler/Noll/Vo, 64-bit FNV-1a).
  EXPECT_EQ(Fnv1a64(""), 0xcbf29ce484222325ULL);
  EXPECT_EQ(Fnv1a64("a"), 0xaf63dc4c8601ec8cULL);
  EXPECT_EQ(Fnv1a64("foobar"), 0x85944171f73967e8ULL);
}

TEST(GrayFlagTest, KnownKeysMapToKnownBucketsForever) {
  // Pinned: if one of these changes, keys would silently move between backends in a
  // running rollout. Values computed independently (Python) from the documented formula.
  EXPECT_EQ(KeyBucket("default/Pod/nginx-7c5ddbdf54-x2x9z"), 225818u);
  EXPECT_EQ(KeyBucket("kube-system/Pod/coredns-5d78c9869d-abcde"), 760953u);
  EXPECT_EQ(KeyBucket("/Node/worker-1"), 993651u);
  EXPECT_EQ(KeyBucket("prod/Deployment/api"), 686149u);
  static_assert(KeyBucket("foobar") == 0x85944171f73967e8ULL % 1'000'000);
}

TEST(GrayFlagTest, ParsesExactlyTheFourModes) {
  GrayMode m = GrayMode::kLegacy;
  EXPECT_TRUE(ParseGrayMode("shadow", &m));
  EXPECT_EQ(m, GrayMode::kShadow);
  EXPECT_TRUE(ParseGrayMode("canary", &m));
  EXPECT_EQ(m, GrayMode::kCanary);
  EXPECT_TRUE(ParseGrayMode("atomic", &m));
  EXPECT_EQ(m, GrayMode::kAtomic);
  EXPECT_TRUE(ParseGrayMode("legacy", &m));
  EXPECT_EQ(m, GrayMode::kLegacy);
  for (const char* bad : {"", "Shadow", "canary ", "atomics", "off", "1"}) {
    GrayMode before = GrayMode::kCanary;
    EXPECT_FALSE(ParseGrayMode(bad, &before)) << bad;
    EXPECT_EQ(before, GrayMode::kCanary) << "unchanged on failure";
  }
}

TEST(GrayFlagTest, RolloutThresholdHasOneMillionthSteps) {
  EXPECT_EQ(RolloutThreshold(0), 0u);
  EXPECT_EQ(RolloutThreshold(0.5), 5'000u);
  EXPECT_EQ(RolloutThreshold(0.0001), 1u);
  EXPECT_EQ(RolloutThreshold(10), 100'000u);
  EXPECT_EQ(RolloutThreshold(100), 1'000'000u);
  EXPECT_EQ(RolloutThreshold(250), 1'000'000u);
  EXPECT_EQ(RolloutThreshold(-3), 0u);
  EXPECT_EQ(RolloutThreshold(std::numeric_limits<double>::quiet_NaN()), 0u);
}

TEST(GrayFlagTest, EachModeWritesAndReadsTheDocumentedBackends) {
  const std::string key = "default/Pod/nginx-7c5ddbdf54-x2x9z";  // bucket 225818
  GrayFlag legacy(GrayMode::kLegacy, 100);
  EXPECT_TRUE(legacy.writes_legacy());
  EXPECT_FALSE(legacy.writes_atomic());
  EXPECT_EQ(legacy.ReadBackend(key), Backend::kLegacy);
  GrayFlag shadow(GrayMode::kShadow, 100);
  EXPECT_TRUE(shadow.dual_write());
  EXPECT_EQ(shadow.ReadBackend(key), Backend::kLegacy);
  EXPECT_EQ(GrayFlag(GrayMode::kCanary, 22.5818).ReadBackend(key), Backend::kLegacy);
  EXPECT_EQ(GrayFlag(GrayMode::kCanary, 22.5819).ReadBackend(key), Backend::kAtomic);
  GrayFlag atomic(GrayMode::kAtomic, 0);
  EXPECT_FALSE(atomic.writes_legacy());
  EXPECT_EQ(atomic.ReadBackend(key), Backend::kAtomic);
}

TEST(GrayFlagTest, RaisingThePercentageOnlyAddsKeys) {
  std::vector<std::string> keys;
  for (int i = 0; i < 20'000; ++i)
    keys.push_back("ns-" + std::to_string(i % 37) + "/Pod/p-" + std::to_string(i));
  std::vector<bool> was_atomic(keys.size(), false);
  std::size_t previous = 0;
  for (double p : {0.0, 0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 99.9, 100.0}) {
    GrayFlag flag(GrayMode::kCanary, p);
    std::size_t n = 0;
    for (std::size_t i = 0; i < keys.size(); ++i) {
      const bool atomic = flag.ReadBackend(keys[i]) == Backend::kAtomic;
      if (was_atomic[i]) {
        EXPECT_TRUE(atomic) << keys[i] << " left the canary at " << p << "%";
      }
      was_atomic[i] = atomic;
      n += atomic;
    }
    EXPECT_GE(n, previous);
    previous = n;
    // The hash spreads keys evenly: the share is near p (wide bounds, deterministic data).
    EXPECT_NEAR(100.0 * static_cast<double>(n) / static_cast<double>(keys.size()), p, 1.5) << p;
  }
  EXPECT_EQ(previous, keys.size());
}

}  // namespace
}  // namespace eventbuffer
