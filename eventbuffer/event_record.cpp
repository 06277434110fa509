#include "eventbuffer/event_record.h"

#include <algorithm>
#include <cstring>
#include <initializer_list>
#include <stdexcept>

#include "eventbuffer/intern_table.h"

namespace eventbuffer {

namespace {

using Field = EventRecord::Field;

int InternCached(std::string_view v);  // below

constexpr std::uint32_t Bit(Field f) { return 1u << static_cast<unsigned>(f); }

// The fields kept in the InternTable: short values from small sets.
constexpr std::uint32_t kInternable =
    Bit(Field::kNamespace) | Bit(Field::kInvolvedKind) | Bit(Field::kInvolvedNamespace) |
    Bit(Field::kInvolvedApiVersion) | Bit(Field::kInvolvedFieldPath) | Bit(Field::kReason) |
    Bit(Field::kType) | Bit(Field::kSourceComponent) | Bit(Field::kSourceHost) |
    Bit(Field::kReportingComponent) | Bit(Field::kReportingInstance) | Bit(Field::kAction);
// The fields stored as an alias when equal to firstTimestamp.
constexpr std::uint32_t kAliasable = Bit(Field::kLastTimestamp) | Bit(Field::kCreationTimestamp);
// EventRecord::marks_ means "interned" for a stored field and "alias" for one not stored.
static_assert((kInternable & kAliasable) == 0);

// A per-thread front for the InternTable: the values a decoding thread interns repeat, and
// this finds their id without hashing the value or touching the table's colder memory.
int InternCached(std::string_view v) {
  struct Entry {
    std::uint8_t len = 0xff;  // no cached value is this long (kMaxCached)
    char text[63];
    std::int32_t id;
  };
  constexpr std::size_t kEntries = 256, kMaxCached = 63;
  thread_local std::array<Entry, kEntries> cache{};
  if (v.size() > kMaxCached) return InternTable::Global().Intern(v);
  const std::size_t n = v.size();
  const std::size_t slot =
      n == 0 ? 0
             : (n * 131 + static_cast<unsigned char>(v[0]) * 31 +
                static_cast<unsigned char>(v[n - 1]) * 7 + static_cast<unsigned char>(v[n / 2])) &
                   (kEntries - 1);
  Entry& e = cache[slot];
  if (e.len == n && std::memcmp(e.text, v.data(), n) == 0) return e.id;
  const int id = InternTable::Global().Intern(v);
  if (id != InternTable::kNotInterned) {
    e.len = static_cast<std::uint8_t>(n);
    if (n > 0) std::memcpy(e.text, v.data(), n);
    e.id = id;
  }
  return id;
}

}  // namespace

void EventRecord::GetAll(std::array<std::string_view, kFieldCount>* out) const {
  if (base_) {
    base_->GetAll(out);
  } else {
    out->fill(std::string_view("", 0));  // empty, never a null pointer
  }
  const char* ids = Ids();
  for (std::uint32_t left = present_ & marks_; left != 0; left &= left - 1, ids += 2) {
    (*out)[static_cast<unsigned>(__builtin_ctz(left))] = InternedView(ids);
  }
  const char* offsets = Offsets();
  const char* text = Text(offsets);
  std::uint32_t begin = 0;
  unsigned k = 0;
  for (std::uint32_t left = present_ & ~marks_; left != 0; left &= left - 1) {
    const std::uint32_t end = End(offsets, k++);
    (*out)[static_cast<unsigned>(__builtin_ctz(left))] = std::string_view(text + begin, end - begin);
    begin = end;
  }
  for (std::uint32_t left = marks_ & ~present_ & kAliasable; left != 0; left &= left - 1) {
    (*out)[static_cast<unsigned>(__builtin_ctz(left))] =
        (*out)[static_cast<std::size_t>(Field::kFirstTimestamp)];
  }
}

EventRecord* EventRecord::Allocate(std::size_t storage) {
  return static_cast<EventRecord*>(::operator new(sizeof(EventRecord) + storage));
}

void EventRecord::Free(const EventRecord* record) noexcept {
  record->~EventRecord();  // drops the base's reference
  ::operator delete(const_cast<EventRecord*>(record));
}

std::string_view EventRecord::InternedView(const char* id_bytes) {
  std::uint16_t id;
  std::memcpy(&id, id_bytes, 2);
  return InternTable::Global().View(id);
}

EventRef EventRecord::Builder::Build(const EventRef& previous) const {
  // The base to share text with: for a new revision of an Event, the Event's first kept
  // record (previous, or previous's base when that is of the same Event); otherwise (a
  // different Event, typically about the same object) previous itself when it is full.
  // So a base is a full record, or a record whose own base is full: at most two hops.
  const EventRef* base_ref = nullptr;
  if (previous != nullptr) {
    const std::string_view uid = values_[static_cast<std::size_t>(Field::kUid)];
    if (previous->uid() == uid) {
      base_ref = previous->base_ && previous->base_->uid() == uid ? &previous->base_ : &previous;
    } else if (previous->base_ == nullptr) {
      base_ref = &previous;
    }
  }
  const EventRecord* base = base_ref != nullptr ? base_ref->get() : nullptr;
  std::array<std::string_view, kFieldCount> base_values;
  if (base != nullptr) base->GetAll(&base_values);
  std::uint32_t present = 0, interned = 0, aliases = 0;
  std::array<std::uint16_t, kFieldCount> ids{};
  // text: bytes of text this record stores (not its ids); alone: what a full record would
  // store, offsets and ids included (for the choice below).
  std::size_t text = 0, alone = 0;
  const std::string_view first = values_[static_cast<std::size_t>(Field::kFirstTimestamp)];
  for (std::size_t i = 0; i < kFieldCount; ++i) {
    const std::string_view v = values_[i];
    const std::uint32_t bit = 1u << i;
    if (!v.empty()) alone += (bit & kInternable) != 0 && v.size() <= 64 ? 2 : 2 + v.size();
    if (base != nullptr && base_values[i] == v) continue;  // shared with the base
    if (v.empty()) {
      if (base != nullptr) present |= bit;  // differs from a non-empty base value
      continue;
    }
    if ((bit & kAliasable) != 0 && v == first) {
      aliases |= bit;
      continue;
    }
    present |= bit;
    if ((bit & kInternable) != 0) {
      const int id = InternCached(v);
      if (id != InternTable::kNotInterned) {
        interned |= bit;
        ids[i] = static_cast<std::uint16_t>(id);
        continue;
      }
    }
    text += v.size();
  }
  // Sharing must pay for the base it keeps alive: unless it saves more than kMinSaving bytes
  // (a revision with a new message, say), the record is full and later revisions share it.
  constexpr std::size_t kMinSaving = 32;
  // Each stored field costs 2 bytes: an id, or an end offset before its text.
  const std::size_t stored = Count(present), id_count = Count(present & interned);
  const std::size_t text_count = stored - id_count;
  if (base != nullptr && text + 2 * stored + kMinSaving >= alone) return Build(nullptr);
  if (text > UINT32_MAX) throw std::length_error("EventRecord text exceeds 4 GiB");

  const bool wide = text > UINT16_MAX;
  const std::size_t offset_bytes = wide ? 4 : 2;
  // The last-seen time is kept only when the timestamps do not give it (the decoder's is
  // what they give; a test's or an old store's may not be).
  const std::int64_t derived = derived_known_ ? derived_last_seen_ : DerivedLastSeen();
  const bool own_last_seen = numbers_.last_seen_unix_ms != derived;
  const std::size_t lead = own_last_seen ? 8 : 0;
  const std::size_t storage = lead + 2 * id_count + text_count * offset_bytes + text;
  EventRecord* mem = Allocate(storage);
  EventRef record(new (mem) EventRecord(Token(), numbers_, base_ref != nullptr ? *base_ref : nullptr));
  EventRecord& r = *mem;
  r.present_ = present;
  r.marks_ = interned | aliases | (wide ? kWide : 0) | (own_last_seen ? kOwnLastSeen : 0);
  if (own_last_seen) std::memcpy(r.storage(), &numbers_.last_seen_unix_ms, 8);
  char* id_out = r.storage() + lead;
  char* offsets = id_out + 2 * id_count;
  char* out = offsets + text_count * offset_bytes;
  std::uint32_t end = 0;
  std::size_t k = 0;
  for (std::size_t i = 0; i < kFieldCount; ++i) {
    const std::uint32_t bit = 1u << i;
    if ((present & bit) == 0) continue;
    if ((interned & bit) != 0) {
      std::memcpy(id_out, &ids[i], 2);
      id_out += 2;
      continue;
    }
    if (!values_[i].empty()) {
      std::memcpy(out + end, values_[i].data(), values_[i].size());
      end += static_cast<std::uint32_t>(values_[i].size());
    }
    if (wide) {
      std::memcpy(offsets + 4 * k, &end, 4);
    } else {
      const auto e16 = static_cast<std::uint16_t>(end);
      std::memcpy(offsets + 2 * k, &e16, 2);
    }
    ++k;
  }
  return record;
}

std::size_t EventRecord::AcquireHeld() const {
  std::size_t bytes = 0;
  if (held_.fetch_add(1, std::memory_order_relaxed) == 0) {
    bytes += MemoryBytes();
    if (base_) bytes += base_->AcquireHeld();
  }
  return bytes;
}

std::size_t EventRecord::ReleaseHeld() const {
  std::size_t bytes = 0;
  if (held_.fetch_sub(1, std::memory_order_relaxed) == 1) {
    bytes += MemoryBytes();
    if (base_) bytes += base_->ReleaseHeld();
  }
  return bytes;
}

std::int64_t EventRecord::Builder::DerivedLastSeen() const {
  const auto value = [&](Field f) { return values_[static_cast<std::size_t>(f)]; };
  return LastSeenFromTimestamps(value(Field::kSeriesLastObservedTime), value(Field::kLastTimestamp),
                                value(Field::kEventTime), value(Field::kFirstTimestamp));
}

EventRecord::Builder& EventRecord::Builder::DeriveLastSeen() {
  derived_last_seen_ = DerivedLastSeen();
  derived_known_ = true;
  numbers_.last_seen_unix_ms = derived_last_seen_;
  return *this;
}

std::int64_t EventRecord::last_seen_unix_ms() const {
  if ((marks_ & kOwnLastSeen) != 0) {
    std::int64_t ms;
    std::memcpy(&ms, storage(), 8);
    return ms;
  }
  return LastSeenFromTimestamps(Get(Field::kSeriesLastObservedTime), Get(Field::kLastTimestamp),
                                Get(Field::kEventTime), Get(Field::kFirstTimestamp));
}

std::int64_t LastSeenFromTimestamps(std::string_view series_last_observed,
                                    std::string_view last_timestamp, std::string_view event_time,
                                    std::string_view first_timestamp) {
  std::int64_t best = 0, ms;
  for (const std::string_view text : {series_last_observed, last_timestamp, event_time}) {
    if (!text.empty() && ParseRfc3339Millis(text, &ms)) best = std::max(best, ms);
  }
  if (best == 0 && !first_timestamp.empty() && ParseRfc3339Millis(first_timestamp, &ms)) {
    best = std::max(best, ms);
  }
  return best;
}

bool EventRecord::operator==(const EventRecord& other) const {
  if (count_ != other.count_ || series_count_ != other.series_count_ ||
      receive_unix_ns_ != other.receive_unix_ns_ ||
      last_seen_unix_ms() != other.last_seen_unix_ms()) {
    return false;
  }
  for (std::size_t i = 0; i < kFieldCount; ++i) {
    if (Get(static_cast<Field>(i)) != other.Get(static_cast<Field>(i))) return false;
  }
  return true;
}

EventRecord::Builder EventRecord::Builder::Of(const EventRecord& record) {
  Builder b;
  record.GetAll(&b.values_);
  b.numbers_ = record.numbers();
  return b;
}

EventRef CopyRecord(const EventRecord& record) { return EventRecord::Builder::Of(record).Build(); }

void EventRecord::AppendKey(std::string* out) const {
  const auto ns = involved_namespace();
  const auto kind = involved_kind();
  const auto name = involved_name();
  out->reserve(out->size() + ns.size() + kind.size() + name.size() + 2);
  out->append(ns).push_back('/');
  out->append(kind).push_back('/');
  out->append(name);
}

std::string EventRecord::Key() const {
  std::string key;
  AppendKey(&key);
  return key;
}

std::string MakeKey(std::string_view ns, std::string_view kind, std::string_view name) {
  std::string key;
  key.reserve(ns.size() + kind.size() + name.size() + 2);
  key.append(ns).push_back('/');
  key.append(kind).push_back('/');
  key.append(name);
  return key;
}

namespace {

bool Digits(std::string_view s, std::size_t pos, std::size_t n, int* out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (std::size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
std::int64_t DaysFromCivil(int y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

}  // namespace

bool ParseRfc3339Millis(std::string_view s, std::int64_t* unix_ms) {
  // YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)
  int year, month, day, hour, minute, second;
  if (!Digits(s, 0, 4, &year) || s.size() < 19 || s[4] != '-' || !Digits(s, 5, 2, &month) ||
      s[7] != '-' || !Digits(s, 8, 2, &day) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
      !Digits(s, 11, 2, &hour) || s[13] != ':' || !Digits(s, 14, 2, &minute) || s[16] != ':' ||
      !Digits(s, 17, 2, &second)) {
    return false;
  }
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) {
    return false;
  }
  std::size_t pos = 19;
  int millis = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    int digits = 0;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      if (digits < 3) millis = millis * 10 + (s[pos] - '0');
      ++digits;
      ++pos;
    }
    if (digits == 0) return false;
    for (int i = digits; i < 3; ++i) millis *= 10;
  }
  std::int64_t offset_minutes = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    ++pos;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    int oh, om;
    if (!Digits(s, pos + 1, 2, &oh) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
        !Digits(s, pos + 4, 2, &om)) {
      return false;
    }
    offset_minutes = (s[pos] == '+' ? 1 : -1) * (oh * 60 + om);
    pos += 6;
  } else {
    return false;
  }
  if (pos != s.size()) return false;
  const std::int64_t days = DaysFromCivil(year, static_cast<unsigned>(month),
                                          static_cast<unsigned>(day));
  const std::int64_t seconds = days * 86400 + hour * 3600 + minute * 60 + second -
                               offset_minutes * 60;
  *unix_ms = seconds * 1000 + millis;
  return true;
}

}  // namespace eventbuffer
