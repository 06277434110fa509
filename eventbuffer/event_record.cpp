#include "eventbuffer/event_record.h"

#include <cstring>
#include <stdexcept>

namespace eventbuffer {

EventRecord EventRecord::Builder::Build() const {
  std::size_t total = 0;
  for (const auto& v : values_) total += v.size();
  if (total > UINT32_MAX) throw std::length_error("EventRecord text exceeds 4 GiB");

  EventRecord record;
  record.numbers_ = numbers_;
  if (total > 0) {
    record.text_ = std::make_unique_for_overwrite<char[]>(total);
  }
  std::uint32_t end = 0;
  for (std::size_t i = 0; i < kFieldCount; ++i) {
    if (!values_[i].empty()) {
      std::memcpy(record.text_.get() + end, values_[i].data(), values_[i].size());
    }
    end += static_cast<std::uint32_t>(values_[i].size());
    record.ends_[i] = end;
  }
  return record;
}

EventRecord::EventRecord(const EventRecord& other) : ends_(other.ends_), numbers_(other.numbers_) {
  const std::size_t n = other.TextSize();
  if (n > 0) {
    text_ = std::make_unique_for_overwrite<char[]>(n);
    std::memcpy(text_.get(), other.text_.get(), n);
  }
}

EventRecord& EventRecord::operator=(const EventRecord& other) {
  if (this != &other) {
    EventRecord copy(other);
    *this = std::move(copy);
  }
  return *this;
}

bool EventRecord::operator==(const EventRecord& other) const {
  if (ends_ != other.ends_) return false;
  if (numbers_.count != other.numbers_.count ||
      numbers_.series_count != other.numbers_.series_count ||
      numbers_.last_seen_unix_ms != other.numbers_.last_seen_unix_ms ||
      numbers_.receive_unix_ns != other.numbers_.receive_unix_ns) {
    return false;
  }
  const std::size_t n = TextSize();
  return n == 0 || std::memcmp(text_.get(), other.text_.get(), n) == 0;
}

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
