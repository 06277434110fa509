#include "controller/durable/record_codec.h"

#include <array>
#include <cstdint>

namespace eventbuffer::controller {
namespace {

constexpr unsigned char kVersion = 1;
constexpr std::size_t kNumbersBytes = 4 + 4 + 8 + 8;

void PutFixed(std::uint64_t v, int bytes, std::string* out) {
  for (int i = 0; i < bytes; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

std::uint64_t GetFixed(const unsigned char* p, int bytes) {
  std::uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= static_cast<std::uint64_t>(p[i]) << (8 * i);
  return v;
}

void PutVarint(std::uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

// Reads a varint of at most 5 bytes (lengths are < 4 GiB). Returns false on a short or
// overlong input.
bool GetVarint(std::string_view in, std::size_t* pos, std::uint64_t* v) {
  *v = 0;
  for (int shift = 0; shift < 35; shift += 7) {
    if (*pos >= in.size()) return false;
    const auto byte = static_cast<unsigned char>(in[(*pos)++]);
    *v |= static_cast<std::uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) return true;
  }
  return false;
}

}  // namespace

void EncodeRecord(const EventRecord& record, std::string* out) {
  using F = EventRecord::Field;
  std::size_t text = 0;
  for (std::size_t i = 0; i < EventRecord::kFieldCount; ++i) text += record.Get(F(i)).size();
  out->reserve(out->size() + 1 + kNumbersBytes + EventRecord::kFieldCount * 2 + text);
  out->push_back(static_cast<char>(kVersion));
  const EventRecord::Numbers& n = record.numbers();
  PutFixed(static_cast<std::uint32_t>(n.count), 4, out);
  PutFixed(static_cast<std::uint32_t>(n.series_count), 4, out);
  PutFixed(static_cast<std::uint64_t>(n.last_seen_unix_ms), 8, out);
  PutFixed(static_cast<std::uint64_t>(n.receive_unix_ns), 8, out);
  for (std::size_t i = 0; i < EventRecord::kFieldCount; ++i) {
    PutVarint(record.Get(F(i)).size(), out);
  }
  for (std::size_t i = 0; i < EventRecord::kFieldCount; ++i) out->append(record.Get(F(i)));
}

bool DecodeRecord(std::string_view bytes, EventRef* record, RevisionCache* revisions) {
  using F = EventRecord::Field;
  if (bytes.size() < 1 + kNumbersBytes || static_cast<unsigned char>(bytes[0]) != kVersion) {
    return false;
  }
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data()) + 1;
  EventRecord::Numbers n;
  n.count = static_cast<std::int32_t>(static_cast<std::uint32_t>(GetFixed(p, 4)));
  n.series_count = static_cast<std::int32_t>(static_cast<std::uint32_t>(GetFixed(p + 4, 4)));
  n.last_seen_unix_ms = static_cast<std::int64_t>(GetFixed(p + 8, 8));
  n.receive_unix_ns = static_cast<std::int64_t>(GetFixed(p + 16, 8));
  std::size_t pos = 1 + kNumbersBytes;
  std::array<std::uint64_t, EventRecord::kFieldCount> lengths{};
  std::uint64_t total = 0;
  for (std::size_t i = 0; i < EventRecord::kFieldCount; ++i) {
    if (!GetVarint(bytes, &pos, &lengths[i])) return false;
    total += lengths[i];
  }
  if (total != bytes.size() - pos) return false;
  EventRecord::Builder b;
  for (std::size_t i = 0; i < EventRecord::kFieldCount; ++i) {
    b.Set(F(i), bytes.substr(pos, lengths[i]));
    pos += lengths[i];
  }
  b.SetNumbers(n);
  if (revisions == nullptr) {
    *record = b.Build();
  } else {
    *record = b.Build(revisions->Lookup(b.Get(F::kUid), b.Get(F::kInvolvedUid)));
    revisions->Remember(*record);
  }
  return true;
}

}  // namespace eventbuffer::controller
