// Continue tokens of paged lists of events.eventbuffer.dev: the list position of the last
// item a page returned, plus the identity of the query it belongs to, opaque to clients.
//
// A token holds no server state: it is a position (eventbuffer/event_query.h), so any
// replica holding the same occurrences continues it the same way, and a token never
// expires (items evicted meanwhile are simply no longer listed).
//
// Wire form: base64url (no padding) of
//   version (1 byte, kTokenVersion) | query hash (8) | time_ms (8) |
//   uid length (2) | uid | resourceVersion length (2) | resourceVersion | check (8)
// all integers big-endian; `check` is a 64-bit hash of everything before it. The check
// catches a token damaged in transit or edited by hand; it is not a secret signature (a
// forged token can only start a list somewhere the client may list anyway).
//
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "eventbuffer/event_query.h"

namespace eventbuffer::controller {

inline constexpr std::uint8_t kContinueTokenVersion = 1;

// The identity of a list query: its namespace (nullopt for all namespaces) and its
// fieldSelector as sent (percent-decoded). A token only continues the query it came from.
std::uint64_t ListQueryHash(const std::optional<std::string>& ns, std::string_view field_selector);

// The token for a page that ended at `last`.
std::string EncodeContinueToken(const OccurrencePosition& last, std::uint64_t query_hash);

// Decodes `token` for the query `query_hash`. Returns nullopt (and *error says why) when
// the token is malformed, of another version, damaged, or from another query.
std::optional<OccurrencePosition> DecodeContinueToken(std::string_view token,
                                                      std::uint64_t query_hash, std::string* error);

}  // namespace eventbuffer::controller
