// Message limit: how the EventBuffer keeps an Event whose message is longer than
// RetentionConfig::max_message_bytes.
//
// A core/v1 Event's message is not length-checked by the API server (it may be up to the
// object size limit, about 1.5 MiB). The buffer keeps such an occurrence with its message cut
// at a UTF-8 character boundary and followed by a visible marker that states the original
// length: "<prefix>… [truncated N of M bytes]" (N bytes removed from an M-byte message). The
// whole stored message, marker included, is at most max_message_bytes long. Every other
// field and number is kept unchanged.
//
// Thread safety: pure functions.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "eventbuffer/event_record.h"

namespace eventbuffer {

// The smallest max_message_bytes the configuration accepts: room for the marker and some
// text.
inline constexpr std::size_t kMinMessageBytes = 128;

// The length of the longest prefix of text that is at most max_bytes long and does not end
// inside a UTF-8 sequence (it never splits a multi-byte character whose lead byte is kept).
std::size_t Utf8PrefixLength(std::string_view text, std::size_t max_bytes);

// message itself when it is at most max_bytes long, else its truncated form (see above).
// REQUIRES: max_bytes >= kMinMessageBytes.
std::string LimitMessage(std::string_view message, std::size_t max_bytes);

// record itself when its message is at most max_bytes long, else a new record equal to it
// except for the truncated message. REQUIRES: record != nullptr, max_bytes >= kMinMessageBytes.
EventRef WithMessageLimit(const EventRef& record, std::size_t max_bytes);

}  // namespace eventbuffer
