#include "controller/serving/api/continue_token.h"

#include <array>

namespace eventbuffer::controller {

namespace {

constexpr std::size_t kMaxTokenChars = 4096;
constexpr std::size_t kMaxPartBytes = 1024;  // uid and resourceVersion each
constexpr char kBase64Url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

// FNV-1a, 64-bit, continued from `hash`.
std::uint64_t Fnv1a(std::string_view bytes, std::uint64_t hash = 0xcbf29ce484222325ULL) {
  for (const char c : bytes) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 0x100000001b3ULL;
  }
  return hash;
}

// FNV-1a followed by a final mix (so that a one-byte change spreads over all 64 bits).
std::uint64_t CheckHash(std::string_view bytes) {
  std::uint64_t h = Fnv1a(bytes, 0x6b65622d636f6e74ULL);
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

void PutU64(std::string* out, std::uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out->push_back(static_cast<char>(v >> shift));
}

void PutU16(std::string* out, std::uint16_t v) {
  out->push_back(static_cast<char>(v >> 8));
  out->push_back(static_cast<char>(v));
}

// Reads big-endian integers and length-prefixed strings off the front of `in_`.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool U64(std::uint64_t* v) {
    if (in_.size() < 8) return false;
    *v = 0;
    for (int i = 0; i < 8; ++i) *v = (*v << 8) | static_cast<unsigned char>(in_[i]);
    in_.remove_prefix(8);
    return true;
  }
  bool Bytes(std::string* out) {
    if (in_.size() < 2) return false;
    const std::size_t n =
        (static_cast<unsigned char>(in_[0]) << 8) | static_cast<unsigned char>(in_[1]);
    if (n > kMaxPartBytes || in_.size() - 2 < n) return false;
    out->assign(in_.substr(2, n));
    in_.remove_prefix(2 + n);
    return true;
  }
  bool done() const { return in_.empty(); }

 private:
  std::string_view in_;
};

std::string Base64UrlEncode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() * 4 + 2) / 3);
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const std::uint32_t v = (static_cast<unsigned char>(bytes[i]) << 16) |
                            (static_cast<unsigned char>(bytes[i + 1]) << 8) |
                            static_cast<unsigned char>(bytes[i + 2]);
    out.push_back(kBase64Url[v >> 18]);
    out.push_back(kBase64Url[(v >> 12) & 63]);
    out.push_back(kBase64Url[(v >> 6) & 63]);
    out.push_back(kBase64Url[v & 63]);
  }
  if (const std::size_t rest = bytes.size() - i; rest > 0) {
    std::uint32_t v = static_cast<unsigned char>(bytes[i]) << 16;
    if (rest == 2) v |= static_cast<unsigned char>(bytes[i + 1]) << 8;
    out.push_back(kBase64Url[v >> 18]);
    out.push_back(kBase64Url[(v >> 12) & 63]);
    if (rest == 2) out.push_back(kBase64Url[(v >> 6) & 63]);
  }
  return out;
}

// Strict decoding: the URL-safe alphabet only, no padding, no stray bits in the last
// character (so each byte string has exactly one token).
std::optional<std::string> Base64UrlDecode(std::string_view text) {
  static const std::array<int, 256> kValue = [] {
    std::array<int, 256> v{};
    v.fill(-1);
    for (int i = 0; i < 64; ++i) v[static_cast<unsigned char>(kBase64Url[i])] = i;
    return v;
  }();
  if (text.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(text.size() * 3 / 4);
  std::uint32_t acc = 0;
  int bits = 0;
  for (const char c : text) {
    const int v = kValue[static_cast<unsigned char>(c)];
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>(acc >> bits));
      acc &= (1u << bits) - 1;
    }
  }
  if (acc != 0) return std::nullopt;  // non-zero leftover bits
  return out;
}

}  // namespace

std::uint64_t ListQueryHash(const std::optional<std::string>& ns, std::string_view field_selector) {
  // "*" cannot be a namespace name, "=" keeps "a" + "b=c" apart from "ab" + "=c".
  std::uint64_t h = Fnv1a(ns ? std::string_view("n=") : std::string_view("*"));
  if (ns) h = Fnv1a(*ns, h);
  h = Fnv1a(std::string_view("\0f=", 3), h);
  return Fnv1a(field_selector, h);
}

std::string EncodeContinueToken(const OccurrencePosition& last, std::uint64_t query_hash) {
  std::string raw;
  raw.push_back(static_cast<char>(kContinueTokenVersion));
  PutU64(&raw, query_hash);
  PutU64(&raw, static_cast<std::uint64_t>(last.time_ms));
  // uid and resourceVersion come from the API server (a UUID, a decimal number); the
  // limit only guards the 16-bit length field.
  const std::string_view uid = std::string_view(last.uid).substr(0, kMaxPartBytes);
  const std::string_view rv = std::string_view(last.resource_version).substr(0, kMaxPartBytes);
  PutU16(&raw, static_cast<std::uint16_t>(uid.size()));
  raw += uid;
  PutU16(&raw, static_cast<std::uint16_t>(rv.size()));
  raw += rv;
  PutU64(&raw, CheckHash(raw));
  return Base64UrlEncode(raw);
}

std::optional<OccurrencePosition> DecodeContinueToken(std::string_view token,
                                                      std::uint64_t query_hash,
                                                      std::string* error) {
  const auto fail = [error](std::string_view why) -> std::optional<OccurrencePosition> {
    *error = std::string(why);
    return std::nullopt;
  };
  if (token.size() > kMaxTokenChars) return fail("continue key is not valid: too long");
  const std::optional<std::string> raw = Base64UrlDecode(token);
  if (!raw) return fail("continue key is not valid: not base64url");
  if (raw->size() < 1 + 8 + 8 + 2 + 2 + 8) return fail("continue key is not valid: too short");
  if (static_cast<std::uint8_t>((*raw)[0]) != kContinueTokenVersion) {
    return fail("continue key is not valid: unknown version");
  }
  const std::string_view body = std::string_view(*raw).substr(0, raw->size() - 8);
  std::uint64_t check = 0;
  Reader tail(std::string_view(*raw).substr(raw->size() - 8));
  tail.U64(&check);
  if (check != CheckHash(body)) return fail("continue key is not valid: damaged");
  Reader reader(body.substr(1));
  std::uint64_t hash = 0, time = 0;
  OccurrencePosition pos;
  if (!reader.U64(&hash) || !reader.U64(&time) || !reader.Bytes(&pos.uid) ||
      !reader.Bytes(&pos.resource_version) || !reader.done()) {
    return fail("continue key is not valid: bad layout");
  }
  if (hash != query_hash) {
    return fail(
        "continue key is not valid: it belongs to a list with another namespace or "
        "fieldSelector");
  }
  pos.time_ms = static_cast<std::int64_t>(time);
  return pos;
}

}  // namespace eventbuffer::controller
