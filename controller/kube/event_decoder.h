// EventDecoder: core/v1 Event JSON from the API server -> typed results.
//
// Three inputs, as the wire carries them:
//   * one watch line:   {"type":"ADDED|MODIFIED|DELETED|BOOKMARK|ERROR","object":{...}}
//   * one list item:    a core/v1 Event object (an element of EventList.items)
//   * one list page:    an EventList (items, metadata.resourceVersion, metadata.continue)
//
// Unknown fields are ignored and optional fields may be missing. A malformed document or a
// field of the wrong type gives a DecodeError that names the field (e.g.
// "object.count: expected an integer, got a string"); the decoder never throws on input
// and never crashes. String values are unescaped to UTF-8 and otherwise kept byte-exact.
// `related` (an ObjectReference) is kept whole as compact JSON text, re-serialized by the
// parser (no white space, keys in input order, strings re-escaped only where JSON must).
//
// Thread safety: an EventDecoder holds a reusable parser and scratch buffers: use one per
// thread. Results own their data and may be handed to other threads.

#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "eventbuffer/event_record.h"
#include "eventbuffer/revision_cache.h"

namespace eventbuffer::controller {

enum class WatchEventType { kAdded, kModified, kDeleted, kBookmark, kError };
std::string_view WatchEventTypeName(WatchEventType type);

// The Status object of an ERROR watch event or of an error response body.
struct ApiStatus {
  int code = 0;          // HTTP-like code, e.g. 410
  std::string reason;    // e.g. "Expired", "Gone", "TooManyRequests"
  std::string message;
};

struct DecodeError {
  std::string field;    // JSON path of the offending field, e.g. "object.metadata.uid"; "" for syntax
  std::string message;  // what is wrong, for logs
  std::string ToString() const;
};

// One decoded watch line.
struct WatchEvent {
  WatchEventType type = WatchEventType::kAdded;
  // ADDED / MODIFIED / DELETED: the occurrence. Null for BOOKMARK and ERROR.
  EventRef record;
  // ADDED / MODIFIED / DELETED: record->last_seen_unix_ms(), as the decoder worked it out.
  std::int64_t last_seen_unix_ms = 0;
  // ADDED / MODIFIED / DELETED / BOOKMARK: object.metadata.resourceVersion.
  std::string resource_version;
  // ERROR: the Status object.
  ApiStatus status;
};

// A list item that did not decode and was left out of its page. The identity fields are
// read best-effort from the item's metadata: each is "" when it could not be read.
struct SkippedListItem {
  int index = 0;                 // position in the page's items
  std::string uid;               // metadata.uid
  std::string name;              // metadata "namespace/name" (the name alone if no namespace)
  std::string resource_version;  // metadata.resourceVersion
  DecodeError error;             // names "items[index].field"
};

// One decoded EventList page.
struct EventListPage {
  std::string resource_version;  // metadata.resourceVersion
  std::string continue_token;    // metadata.continue ("" on the last page)
  std::int64_t remaining_item_count = -1;  // metadata.remainingItemCount, -1 when absent
  std::vector<EventRef> items;             // the items that decoded, in page order
  std::vector<SkippedListItem> skipped;    // the items that did not, in page order
};

template <typename T>
struct DecodeResult {
  bool ok() const { return error.message.empty(); }
  T value{};
  DecodeError error;
};

class EventDecoder {
 public:
  // revision_cache: the size of the RevisionCache the decoder builds records against
  // (RevisionCache::SizeFor the buffer's retention).
  explicit EventDecoder(RevisionCache::Size revision_cache = {});
  ~EventDecoder();
  EventDecoder(const EventDecoder&) = delete;
  EventDecoder& operator=(const EventDecoder&) = delete;

  // Decodes one watch line (without or with its trailing newline). receive_unix_ns is
  // stored in the record as its local receive time.
  DecodeResult<WatchEvent> DecodeWatchLine(std::string_view line, std::int64_t receive_unix_ns);

  // Decodes one Event object (a list item, or a watch event's "object").
  DecodeResult<EventRef> DecodeEvent(std::string_view json, std::int64_t receive_unix_ns);

  // Decodes one EventList page. An item that fails to decode is left out of items and
  // reported in skipped (its error names "items[i].field"); the other items still decode.
  // Only a page-level problem fails the result: malformed JSON, not an object, items not
  // an array, metadata of the wrong type, no metadata.resourceVersion, or a Status body.
  DecodeResult<EventListPage> DecodeList(std::string_view json, std::int64_t receive_unix_ns);

  // Decodes a Status body (an API error response). Returns false when it is not one.
  bool DecodeStatus(std::string_view json, ApiStatus* status);

  // Bytes of the reusable parse buffers held between calls. A large document (a list page,
  // up to the client's page cap) grows them to ~15 bytes per input byte; they are given
  // back at the next document under 1 MiB, so they stay small in steady state.
  std::size_t scratch_capacity() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace eventbuffer::controller
