#include "eventbuffer/message_limit.h"

#include <memory>

namespace eventbuffer {

namespace {

bool IsContinuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

}  // namespace

std::size_t Utf8PrefixLength(std::string_view text, std::size_t max_bytes) {
  if (text.size() <= max_bytes) return text.size();
  // The byte at max_bytes starts the first character left out. While it is a continuation
  // byte, the character it belongs to straddles the cut: leave that character out whole.
  // A valid sequence has at most 3 continuation bytes; stop there for invalid input.
  std::size_t n = max_bytes;
  for (int i = 0; i < 3 && n > 0 && IsContinuation(text[n]); ++i) --n;
  return n;
}

std::string LimitMessage(std::string_view message, std::size_t max_bytes) {
  if (message.size() <= max_bytes) return std::string(message);
  // The marker's length depends on the number removed, which depends on the prefix kept:
  // size the marker for the largest possible count (the whole message), then cut.
  const std::string widest =
      "\u2026 [truncated " + std::to_string(message.size()) + " of " +
      std::to_string(message.size()) + " bytes]";
  const std::size_t room = max_bytes > widest.size() ? max_bytes - widest.size() : 0;
  const std::size_t kept = Utf8PrefixLength(message, room);
  std::string out;
  out.reserve(max_bytes);
  out.append(message.substr(0, kept));
  out.append("\u2026 [truncated ");
  out.append(std::to_string(message.size() - kept));
  out.append(" of ");
  out.append(std::to_string(message.size()));
  out.append(" bytes]");
  return out;
}

EventRef WithMessageLimit(const EventRef& record, std::size_t max_bytes) {
  if (record->message().size() <= max_bytes) return record;
  const std::string message = LimitMessage(record->message(), max_bytes);
  // A full record: sharing with record's base could keep a long text alive through it.
  return EventRecord::Builder::Of(*record).Set(EventRecord::Field::kMessage, message).Build();
}

}  // namespace eventbuffer
