// HashKey (eventbuffer/segmented/key_hash.h): every byte and the length count, and
// numbered keys spread evenly over the bits the index uses.
#include "eventbuffer/segmented/key_hash.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

namespace eventbuffer {
namespace {

using segmented_detail::HashKey;

// The default key hash reads every byte of a key and its length: changing any one byte of
// keys of length 0 to 70 (every path: 1-3, 4-7, 8-16 bytes, and the 16-byte steps with an
// overlapping tail), or the length alone, changes the hash.
TEST(KeyHashTest, KeyHashDependsOnEveryByteAndTheLength) {
  std::set<std::uint64_t> by_length;
  for (std::size_t len = 0; len <= 70; ++len) {
    std::string key(len, '\0');
    for (std::size_t i = 0; i < len; ++i) key[i] = static_cast<char>('a' + (i * 7) % 26);
    const std::uint64_t h = HashKey(key);
    EXPECT_TRUE(by_length.insert(h).second) << "length " << len;
    for (std::size_t i = 0; i < len; ++i) {
      for (const unsigned char flip : {0x01, 0x80, 0xff}) {
        std::string other = key;
        other[i] = static_cast<char>(static_cast<unsigned char>(other[i]) ^ flip);
        EXPECT_NE(HashKey(other), h) << "length " << len << ", byte " << i;
      }
    }
  }
  // Zero bytes count too: "", "\0", "\0\0", ... all differ.
  std::set<std::uint64_t> zeros;
  for (std::size_t len = 0; len <= 40; ++len) {
    EXPECT_TRUE(zeros.insert(HashKey(std::string(len, '\0'))).second) << len;
  }
}

// Keys shaped like the controller's (namespace/kind/name, numbered) spread evenly over the
// low bits the root array is indexed by, and over the 4-bit groups above them that index
// the Inner nodes.
TEST(KeyHashTest, KeyHashSpreadsNumberedKeysEvenly) {
  constexpr std::size_t kKeys = 1 << 16;
  constexpr std::size_t kBuckets = 1 << 12;  // 16 keys per bucket expected
  for (const unsigned shift : {0u, 16u, 20u, 48u}) {
    std::vector<std::uint32_t> buckets(kBuckets);
    for (std::size_t i = 0; i < kKeys; ++i) {
      const std::string key = "team-" + std::to_string(i % 97) + "/Pod/web-" + std::to_string(i);
      ++buckets[(HashKey(key) >> shift) % kBuckets];
    }
    // Chi-square over 4095 degrees of freedom: about 4095 for a uniform hash, with a
    // standard deviation of about 90; 4800 is more than 7 of them away.
    double chi2 = 0;
    for (std::uint32_t b : buckets) chi2 += (b - 16.0) * (b - 16.0) / 16.0;
    EXPECT_LT(chi2, 4800) << "bits from " << shift;
    EXPECT_LT(*std::max_element(buckets.begin(), buckets.end()), 48u) << "bits from " << shift;
  }
}

}  // namespace
}  // namespace eventbuffer
