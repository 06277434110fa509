// HashKey: SegmentedSliceMap's default key hash, 64 bits.
//
// The index lookup cannot start before it has the hash (the root slot is its low bits), so
// the hash is short: 16 key bytes per step, the two 8-byte words mixed by one
// 64x64->128-bit multiply whose halves are folded by xor; keys of up to 16 bytes are read
// as two overlapping words. Every byte and the length change the hash, and numbered keys
// spread evenly over its low bits (tests/eventbuffer/segmented/key_hash_test.cpp). Not a
// defence against keys chosen to collide (nor is libstdc++'s std::hash): equal 64-bit
// hashes only put the keys in one of the index's collision lists (index.h).
//
// Thread safety: a pure function.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace eventbuffer {
namespace segmented_detail {

inline std::uint64_t HashKey(std::string_view key) {
  constexpr std::uint64_t k0 = 0x9e3779b97f4a7c15ULL, k1 = 0xbf58476d1ce4e5b9ULL,
                          k2 = 0x94d049bb133111ebULL, k3 = 0xd6e8feb86659fd93ULL;
  auto load64 = [](const char* p) {
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
  };
  auto load32 = [](const char* p) {
    std::uint32_t v;
    std::memcpy(&v, p, 4);
    return std::uint64_t{v};
  };
  auto fold = [](std::uint64_t a, std::uint64_t b) {
    const unsigned __int128 r = static_cast<unsigned __int128>(a) * b;
    return static_cast<std::uint64_t>(r) ^ static_cast<std::uint64_t>(r >> 64);
  };
  const char* p = key.data();
  std::size_t n = key.size();
  std::uint64_t h = k0 ^ n;
  std::uint64_t a = 0, b = 0;
  if (n > 16) {
    for (; n > 16; p += 16, n -= 16) h = fold(load64(p) ^ k1, load64(p + 8) ^ h);
    a = load64(p + n - 16);
    b = load64(p + n - 8);
  } else if (n >= 8) {
    a = load64(p);
    b = load64(p + n - 8);
  } else if (n >= 4) {
    a = load32(p);
    b = load32(p + n - 4);
  } else if (n > 0) {
    const auto byte = [p](std::size_t i) {
      return std::uint64_t{static_cast<unsigned char>(p[i])};
    };
    a = (byte(0) << 16) | (byte(n >> 1) << 8) | byte(n - 1);
  }
  return fold(fold(a ^ k2, b ^ h) ^ k3, h ^ k1);
}

}  // namespace segmented_detail
}  // namespace eventbuffer
