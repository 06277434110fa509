// InternTable: the short strings that repeat across Events (namespaces, kinds, apiVersions,
// reasons, types, components, hosts, field paths), kept once for the whole process.
//
// A record stores an interned field as a 2-byte id instead of its text. The table only
// grows (an id stays valid for the life of the process, so a record never outlives its
// text) and is bounded: at most max_bytes of entries (text plus a length byte each) and
// kMaxEntries ids. A value the table has no room for, or one longer than kMaxValueBytes,
// is not interned: the record stores it inline, and a value refused for lack of room is
// counted (fallbacks), so a flood of unique values costs inline bytes, never table growth.
//
// Thread safety: every method may be called from any number of threads at once. Lookups
// (Find, View, the hit path of Intern) take no lock: slots and entries are published with
// release stores after the entry's text is written. Inserts serialise on one mutex.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string_view>
#include <vector>

namespace eventbuffer {

class InternTable {
 public:
  static constexpr std::size_t kMaxEntries = 32768;    // ids 0..32767
  static constexpr std::size_t kMaxValueBytes = 128;   // longer values stay inline
  static constexpr std::size_t kDefaultMaxBytes = 1 << 20;
  static constexpr int kNotInterned = -1;

  // The table records use.
  static InternTable& Global() {
    static InternTable* const table = MakeGlobal();
    return *table;
  }

  explicit InternTable(std::size_t max_bytes = kDefaultMaxBytes);
  ~InternTable();
  InternTable(const InternTable&) = delete;
  InternTable& operator=(const InternTable&) = delete;

  // The id of value, adding it when it is new and there is room; kNotInterned when it is
  // too long (not counted) or the table is full (counted in fallbacks).
  int Intern(std::string_view value);
  // The id of value if it is in the table, else kNotInterned. Never adds.
  int Find(std::string_view value) const;
  // The text of id. REQUIRES: id was returned by Intern or Find of this table.
  std::string_view View(std::uint16_t id) const {
    const char* e = entries_[id].load(std::memory_order_acquire);
    return std::string_view(e + 1, static_cast<unsigned char>(e[0]));
  }

  struct Stats {
    std::size_t entries = 0;
    std::size_t bytes = 0;           // entries (text and length byte) plus the slot and id arrays
    std::uint64_t fallbacks = 0;     // values stored inline because the table was full
  };
  Stats stats() const;
  std::size_t max_bytes() const { return max_bytes_; }

 private:
  static constexpr std::size_t kSlots = 2 * kMaxEntries;  // power of two, at most half full
  static constexpr std::size_t kChunkBytes = 64 * 1024;
  static InternTable* MakeGlobal();
  static std::uint64_t Hash(std::string_view s);
  // The slot index holding value, or the empty slot where it would go.
  std::size_t Probe(std::string_view value, std::uint64_t h, int* id) const;

  const std::size_t max_bytes_;
  // Slot: 0 empty, else (hash tag << 16) | (id + 1).
  std::unique_ptr<std::atomic<std::uint32_t>[]> slots_;
  std::unique_ptr<std::atomic<const char*>[]> entries_;  // id -> [length byte][text]
  std::mutex insert_mu_;                                 // guards the fields below
  std::vector<std::unique_ptr<char[]>> chunks_;
  std::size_t chunk_used_ = kChunkBytes;
  std::atomic<std::size_t> count_{0};
  std::atomic<std::size_t> bytes_{0};
  std::atomic<std::uint64_t> fallbacks_{0};
};

}  // namespace eventbuffer
