#include "eventbuffer/intern_table.h"

#include <cstring>

#include "eventbuffer/segmented/key_hash.h"

namespace eventbuffer {

InternTable* InternTable::MakeGlobal() {
  return new InternTable();  // never destroyed: records may outlive exit
}

InternTable::InternTable(std::size_t max_bytes)
    : max_bytes_(max_bytes),
      slots_(new std::atomic<std::uint32_t>[kSlots]),
      entries_(new std::atomic<const char*>[kMaxEntries]) {
  for (std::size_t i = 0; i < kSlots; ++i) slots_[i].store(0, std::memory_order_relaxed);
  for (std::size_t i = 0; i < kMaxEntries; ++i) entries_[i].store(nullptr, std::memory_order_relaxed);
}

InternTable::~InternTable() = default;

std::uint64_t InternTable::Hash(std::string_view s) { return segmented_detail::HashKey(s); }

std::size_t InternTable::Probe(std::string_view value, std::uint64_t h, int* id) const {
  const std::uint32_t tag = static_cast<std::uint32_t>(h >> 48);
  std::size_t i = h & (kSlots - 1);
  for (;;) {
    const std::uint32_t slot = slots_[i].load(std::memory_order_acquire);
    if (slot == 0) {
      *id = kNotInterned;
      return i;
    }
    if ((slot >> 16) == tag) {
      const auto candidate = static_cast<std::uint16_t>((slot & 0xffff) - 1);
      if (View(candidate) == value) {
        *id = candidate;
        return i;
      }
    }
    i = (i + 1) & (kSlots - 1);
  }
}

int InternTable::Find(std::string_view value) const {
  if (value.size() > kMaxValueBytes) return kNotInterned;
  int id;
  Probe(value, Hash(value), &id);
  return id;
}

int InternTable::Intern(std::string_view value) {
  if (value.size() > kMaxValueBytes) return kNotInterned;
  const std::uint64_t h = Hash(value);
  int id;
  Probe(value, h, &id);
  if (id != kNotInterned) return id;

  std::lock_guard<std::mutex> lock(insert_mu_);
  const std::size_t slot = Probe(value, h, &id);  // another thread may have added it
  if (id != kNotInterned) return id;
  const std::size_t count = count_.load(std::memory_order_relaxed);
  const std::size_t need = value.size() + 1;
  if (count >= kMaxEntries || bytes_.load(std::memory_order_relaxed) + need > max_bytes_) {
    fallbacks_.fetch_add(1, std::memory_order_relaxed);
    return kNotInterned;
  }
  if (chunk_used_ + need > kChunkBytes) {
    chunks_.push_back(std::make_unique_for_overwrite<char[]>(kChunkBytes));
    chunk_used_ = 0;
  }
  char* e = chunks_.back().get() + chunk_used_;
  chunk_used_ += need;
  e[0] = static_cast<char>(value.size());
  if (!value.empty()) std::memcpy(e + 1, value.data(), value.size());
  entries_[count].store(e, std::memory_order_release);
  slots_[slot].store((static_cast<std::uint32_t>(h >> 48) << 16) | static_cast<std::uint32_t>(count + 1),
                     std::memory_order_release);
  count_.store(count + 1, std::memory_order_relaxed);
  bytes_.fetch_add(need, std::memory_order_relaxed);
  return static_cast<int>(count);
}

InternTable::Stats InternTable::stats() const {
  Stats s;
  s.entries = count_.load(std::memory_order_relaxed);
  s.bytes = bytes_.load(std::memory_order_relaxed) + kSlots * sizeof(slots_[0]) +
            kMaxEntries * sizeof(entries_[0]);
  s.fallbacks = fallbacks_.load(std::memory_order_relaxed);
  return s;
}

}  // namespace eventbuffer
