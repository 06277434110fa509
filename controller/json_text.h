// Small helpers to write JSON text by hand (the read API and the JSON log lines), so the
// hot paths need no DOM. Strings are escaped per RFC 8259: quote, backslash and control
// characters; valid UTF-8 passes through byte for byte.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace eventbuffer::controller {

// Appends `text` as a JSON string literal (with quotes) to *out.
void AppendJsonString(std::string* out, std::string_view text);
// Appends "key": to *out (key is escaped).
void AppendJsonKey(std::string* out, std::string_view key);

}  // namespace eventbuffer::controller
