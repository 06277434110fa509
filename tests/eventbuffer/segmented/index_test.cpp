// TrieIndex (eventbuffer/segmented/index.h), through the map that owns it: keys with equal
// 64-bit hashes (collision lists) and a root small enough to force a deep trie.
#include "eventbuffer/segmented/index.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "eventbuffer/segmented/slice_map.h"

namespace eventbuffer {
namespace {

using Map = SegmentedSliceMap<int>;

// Every key with the same length has the same 64-bit hash.
std::uint64_t LengthHash(std::string_view k) { return k.size(); }

TEST(TrieIndexTest, KeysWithEqualHashesStayDistinct) {
  Map m(Map::Options{.root_bits = 4, .hash = &LengthHash});
  const std::vector<std::string> keys = {"aa", "bb", "cc", "dd", "abc", "xyz", "q"};
  for (int round = 0; round < 3; ++round) {
    for (std::size_t i = 0; i < keys.size(); ++i)
      m.Append(keys[i], static_cast<int>(i * 10 + round));
  }
  for (std::size_t i = 0; i < keys.size(); ++i) {
    const int b = static_cast<int>(i * 10);
    EXPECT_EQ(m.Read(keys[i]), (std::vector<int>{b, b + 1, b + 2})) << keys[i];
  }
  EXPECT_TRUE(m.Read("ee").empty());  // same hash, absent
  EXPECT_EQ(m.KeyCount(), keys.size());
  // Erase from the middle of a collision list, then re-add.
  EXPECT_EQ(m.DropFront("bb", 3), 3u);
  EXPECT_TRUE(m.EraseIfEmpty("bb"));
  EXPECT_EQ(m.Read("aa").size(), 3u);
  EXPECT_EQ(m.Read("cc").size(), 3u);
  EXPECT_TRUE(m.Read("bb").empty());
  m.Append("bb", 99);
  EXPECT_EQ(m.Read("bb"), std::vector<int>{99});
  // Drain a whole collision list down to one entry and to none.
  for (const char* k : {"aa", "bb", "cc"}) {
    m.DropFront(k, 10);
    EXPECT_TRUE(m.EraseIfEmpty(k)) << k;
  }
  EXPECT_EQ(m.Read("dd").size(), 3u);
  m.DropFront("dd", 10);
  EXPECT_TRUE(m.EraseIfEmpty("dd"));
  EXPECT_EQ(m.KeyCount(), 3u);
  std::vector<std::string> left = m.Keys();
  std::sort(left.begin(), left.end());
  EXPECT_EQ(left, (std::vector<std::string>{"abc", "q", "xyz"}));
}

TEST(TrieIndexTest, TinyRootGrowsIntoADeepTrie) {
  Map m(Map::Options{.root_bits = 1});
  constexpr int kKeys = 5000;
  for (int i = 0; i < kKeys; ++i) m.Append("key-" + std::to_string(i), i);
  for (int i = 0; i < kKeys; ++i)
    ASSERT_EQ(m.Read("key-" + std::to_string(i)), std::vector<int>{i});
  EXPECT_EQ(m.KeyCount(), static_cast<std::size_t>(kKeys));
  for (int i = 0; i < kKeys; i += 2) {
    m.DropFront("key-" + std::to_string(i), 1);
    ASSERT_TRUE(m.EraseIfEmpty("key-" + std::to_string(i)));
  }
  EXPECT_EQ(m.KeyCount(), static_cast<std::size_t>(kKeys / 2));
  for (int i = 1; i < kKeys; i += 2) ASSERT_EQ(m.Count("key-" + std::to_string(i)), 1u);
}

}  // namespace
}  // namespace eventbuffer
