// The shared contract of both slice-map backends, run as typed tests against MutexSliceMap
// and SegmentedSliceMap (single-threaded behaviour; concurrency is in
// slice_map_concurrency_test.cpp).
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "eventbuffer/event_record.h"
#include "eventbuffer/mutex_slice_map.h"
#include "eventbuffer/segmented/slice_map.h"

namespace eventbuffer {
namespace {

template <class Map>
class SliceMapContractTest : public ::testing::Test {};

template <template <class> class M>
struct Backend {
  template <class V>
  using Map = M<V>;
};
using Backends = ::testing::Types<Backend<MutexSliceMap>, Backend<SegmentedSliceMap>>;
struct BackendNames {
  template <class T>
  static std::string GetName(int) {
    if (std::is_same_v<T, Backend<MutexSliceMap>>) return "Mutex";
    return "Segmented";
  }
};
TYPED_TEST_SUITE(SliceMapContractTest, Backends, BackendNames);

// Frees whatever retention handed over, when the backend defers it.
template <class Map>
void Collect(Map& m) {
  if constexpr (requires { m.CollectGarbage(); }) m.CollectGarbage();
}

TYPED_TEST(SliceMapContractTest, EmptyMapHoldsNothing) {
  typename TypeParam::template Map<int> m;
  EXPECT_EQ(m.Size(), 0u);
  EXPECT_EQ(m.KeyCount(), 0u);
  EXPECT_TRUE(m.Keys().empty());
  EXPECT_TRUE(m.Read("a").empty());
  EXPECT_EQ(m.Count("a"), 0u);
  EXPECT_EQ(m.DropFront("a", 3), 0u);
  EXPECT_EQ(m.DropFrontWhile("a", [](const int&) { return true; }), 0u);
  EXPECT_FALSE(m.EraseIfEmpty("a"));
}

TYPED_TEST(SliceMapContractTest, ValuesKeepAppendOrderAcrossManySegments) {
  typename TypeParam::template Map<std::uint64_t> m;
  constexpr std::uint64_t kN = 5000;  // spans segments of every size
  for (std::uint64_t i = 0; i < kN; ++i) m.Append(i % 3 == 0 ? "a" : "b", i);
  std::vector<std::uint64_t> a = m.Read("a");
  ASSERT_EQ(a.size(), (kN + 2) / 3);
  for (std::size_t i = 0; i < a.size(); ++i) ASSERT_EQ(a[i], 3 * i);
  std::vector<std::uint64_t> b;
  m.ForEach("b", [&](const std::uint64_t& v) { b.push_back(v); });
  ASSERT_EQ(b.size(), kN - a.size());
  for (std::size_t i = 1; i < b.size(); ++i) ASSERT_LT(b[i - 1], b[i]);
  EXPECT_EQ(m.Count("a"), a.size());
  EXPECT_EQ(m.Count("b"), b.size());
  EXPECT_EQ(m.Size(), kN);
  EXPECT_EQ(m.KeyCount(), 2u);
  std::vector<std::string> keys = m.Keys();
  std::sort(keys.begin(), keys.end());
  EXPECT_EQ(keys, (std::vector<std::string>{"a", "b"}));
}

TYPED_TEST(SliceMapContractTest, ManyKeysAreAllFound) {
  typename TypeParam::template Map<int> m;
  constexpr int kKeys = 20000;
  for (int i = 0; i < kKeys; ++i) m.Append("ns/Pod/p-" + std::to_string(i), i);
  for (int i = 0; i < kKeys; ++i) m.Append("ns/Pod/p-" + std::to_string(i), -i);
  EXPECT_EQ(m.KeyCount(), static_cast<std::size_t>(kKeys));
  EXPECT_EQ(m.Size(), static_cast<std::size_t>(2 * kKeys));
  for (int i = 0; i < kKeys; ++i) {
    ASSERT_EQ(m.Read("ns/Pod/p-" + std::to_string(i)), (std::vector<int>{i, -i})) << i;
  }
  EXPECT_TRUE(m.Read("ns/Pod/p-x").empty());
  EXPECT_EQ(m.Keys().size(), static_cast<std::size_t>(kKeys));
}

TYPED_TEST(SliceMapContractTest, EmptyKeyIsAKeyLikeAnyOther) {
  typename TypeParam::template Map<int> m;
  m.Append("", 1);
  m.Append("", 2);
  EXPECT_EQ(m.Read(""), (std::vector<int>{1, 2}));
  EXPECT_EQ(m.Keys(), std::vector<std::string>{""});
}

TYPED_TEST(SliceMapContractTest, DropFrontDropsTheOldestValues) {
  typename TypeParam::template Map<int> m;
  for (int i = 0; i < 1000; ++i) m.Append("k", i);
  EXPECT_EQ(m.DropFront("k", 0), 0u);
  EXPECT_EQ(m.DropFront("k", 7), 7u);
  EXPECT_EQ(m.Read("k").front(), 7);
  EXPECT_EQ(m.DropFront("k", 500), 500u);  // crosses several segment boundaries
  std::vector<int> rest = m.Read("k");
  ASSERT_EQ(rest.size(), 493u);
  for (int i = 0; i < 493; ++i) ASSERT_EQ(rest[i], 507 + i);
  EXPECT_EQ(m.Count("k"), 493u);
  EXPECT_EQ(m.Size(), 493u);
  EXPECT_EQ(m.DropFront("k", 10000), 493u);
  EXPECT_EQ(m.Count("k"), 0u);
  EXPECT_TRUE(m.Read("k").empty());
  EXPECT_EQ(m.KeyCount(), 0u);
  EXPECT_TRUE(m.Keys().empty());
  m.Append("k", 5000);  // a drained key keeps working
  EXPECT_EQ(m.Read("k"), std::vector<int>{5000});
}

TYPED_TEST(SliceMapContractTest, DropFrontWhileStopsAtFirstFalse) {
  typename TypeParam::template Map<int> m;
  for (int i = 0; i < 300; ++i) m.Append("k", i < 100 ? i : 1000 - i);
  EXPECT_EQ(m.DropFrontWhile("k", [](const int& v) { return v < 150; }), 100u);
  EXPECT_EQ(m.Read("k").front(), 900);
  EXPECT_EQ(m.DropFrontWhile("k", [](const int& v) { return v < 0; }), 0u);
  EXPECT_EQ(m.Count("k"), 200u);
}

TYPED_TEST(SliceMapContractTest, EraseIfEmptyRemovesOnlyEmptyKeys) {
  typename TypeParam::template Map<int> m;
  for (int n : {1, 8, 24, 56, 1000}) {  // includes exactly-full segment chains
    const std::string key = "k" + std::to_string(n);
    for (int i = 0; i < n; ++i) m.Append(key, i);
    EXPECT_FALSE(m.EraseIfEmpty(key));
    EXPECT_EQ(m.DropFront(key, n), static_cast<std::size_t>(n));
    EXPECT_TRUE(m.EraseIfEmpty(key)) << n;
    EXPECT_FALSE(m.EraseIfEmpty(key));
    EXPECT_EQ(m.Count(key), 0u);
    m.Append(key, 42);  // recreated afresh
    EXPECT_EQ(m.Read(key), std::vector<int>{42});
  }
  EXPECT_EQ(m.KeyCount(), 5u);
  EXPECT_EQ(m.Size(), 5u);
}

TYPED_TEST(SliceMapContractTest, DroppedSharedValuesAreReleased) {
  typename TypeParam::template Map<EventRef> m;
  std::vector<EventRef> kept;  // a record only kept here (use_count 1) was released by m
  for (int i = 0; i < 100; ++i) {
    auto r = EventRecord::Builder().Build();
    kept.push_back(r);
    m.Append(i % 2 ? "odd" : "even", std::move(r));
  }
  EXPECT_EQ(m.DropFront("odd", 20), 20u);
  Collect(m);
  for (int i = 0; i < 100; ++i) {
    const bool dropped = i % 2 == 1 && i < 40;
    EXPECT_EQ(kept[i].use_count() == 1, dropped) << i;
  }
  EXPECT_EQ(m.DropFront("odd", 1000), 30u);
  EXPECT_TRUE(m.EraseIfEmpty("odd"));
  Collect(m);
  for (int i = 1; i < 100; i += 2) EXPECT_EQ(kept[i].use_count(), 1) << i;
  EXPECT_EQ(m.Read("even").size(), 50u);
}

TYPED_TEST(SliceMapContractTest, SharedValuesAreReleasedWithTheMap) {
  EventRef kept;
  {
    typename TypeParam::template Map<EventRef> m;
    auto r = EventRecord::Builder().Build();
    kept = r;
    m.Append("k", r);
    m.Append("k", r);
    m.Append("j", std::move(r));
    EXPECT_EQ(m.DropFront("k", 1), 1u);
    EXPECT_GE(kept.use_count(), 3);  // here, and at least twice in m
  }
  EXPECT_EQ(kept.use_count(), 1);
}

struct Payload48 {
  std::array<std::uint64_t, 6> w;
};
static_assert(sizeof(Payload48) == 48);

TYPED_TEST(SliceMapContractTest, RetentionReturnsMemory) {
  typename TypeParam::template Map<Payload48> m;
  const std::size_t empty = m.MemoryBytes();
  for (std::uint64_t i = 0; i < 100000; ++i) m.Append("k" + std::to_string(i % 10), Payload48{{i}});
  const std::size_t full = m.MemoryBytes();
  EXPECT_GT(full, empty + 100000 * sizeof(Payload48));
  for (int k = 0; k < 10; ++k) m.DropFront("k" + std::to_string(k), 9990);
  Collect(m);
  // Up to one partly used segment per key stays (1024 slots for the segmented map).
  EXPECT_LT(m.MemoryBytes() - empty, (full - empty) / 5);
  for (int k = 0; k < 10; ++k) {
    m.DropFront("k" + std::to_string(k), 100);
    EXPECT_TRUE(m.EraseIfEmpty("k" + std::to_string(k)));
  }
  Collect(m);
  EXPECT_LT(m.MemoryBytes() - empty, 2048u);
}

}  // namespace
}  // namespace eventbuffer
