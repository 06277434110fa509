#include "controller/config/memory_limit.h"

#include <charconv>
#include <fstream>
#include <string_view>

namespace eventbuffer::controller {

namespace {

// Reads the first word of path. False when the file cannot be read.
bool ReadWord(const std::string& path, std::string* out) {
  std::ifstream in(path);
  if (!in) return false;
  return static_cast<bool>(in >> *out);
}

// 0 for "max", for anything that is not a number, and for v1's "no limit" values (the
// largest page-aligned 63-bit number, or anything at least 2^60).
std::uint64_t ParseLimit(std::string_view s) {
  std::uint64_t v = 0;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size()) return 0;
  return v >= (std::uint64_t{1} << 60) ? 0 : v;
}

}  // namespace

std::uint64_t ContainerMemoryLimit(const std::string& root) {
  std::string word;
  if (ReadWord(root + "/memory.max", &word)) return ParseLimit(word);  // cgroup v2
  for (const char* v1 : {"/memory/memory.limit_in_bytes", "/memory.limit_in_bytes"}) {
    if (ReadWord(root + v1, &word)) return ParseLimit(word);
  }
  return 0;
}

std::size_t DefaultMaxBytes(std::uint64_t memory_limit) {
  if (memory_limit == 0) return kUnlimitedMaxBytes;
  const std::uint64_t half = memory_limit / 2;
  return half == 0 ? 1 : static_cast<std::size_t>(half);
}

}  // namespace eventbuffer::controller
