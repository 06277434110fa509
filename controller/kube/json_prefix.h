// What can be read from the kept prefix of a JSON document that was cut at a size cap: a
// watch line or a list page too large to decode (line_splitter.h, ApiClient's page cap).
//
// The scan is tolerant: it walks the prefix token by token and stops, without error, at
// its end, at a string cut in the middle or at a syntax error; a field is reported only
// when its whole string value lies inside the prefix. It relies on the order in which the
// API server serializes (Go structs, fields in declaration order): a watch event has
// "type" before "object", an object has "metadata" first, and an EventList has its
// ListMeta ("metadata": resourceVersion, continue) before "items". Fields in another order
// are still found while they lie within the prefix.
//
// Thread safety: pure functions.
#pragma once

#include <string>
#include <string_view>

namespace eventbuffer::controller {

// The identity of an Event that was too large to decode; each field "" when not found.
struct OversizedEventIdentity {
  std::string type;  // the watch event type ("ADDED", ...); "" for a list item
  std::string namespace_name;
  std::string name;
  std::string uid;
  std::string resource_version;

  // "type namespace/name uid U resourceVersion RV" with "?" for what is missing.
  std::string ToString() const;
};

// From the prefix of a watch line {"type":...,"object":{"metadata":{...},...}}.
OversizedEventIdentity IdentityFromWatchLinePrefix(std::string_view prefix);

// The list metadata and the first item's identity from the prefix of an EventList page.
struct ListPagePrefix {
  // True when the prefix holds the whole of the list's "metadata" object, so that a
  // missing continue means the page was the last one.
  bool metadata_complete = false;
  std::string resource_version;       // metadata.resourceVersion
  std::string continue_token;         // metadata.continue
  OversizedEventIdentity first_item;  // items[0].metadata
  // True when items[0] ends within the prefix: the page is over the cap for more than its
  // first item (at limit=1, a server that ignores the limit).
  bool first_item_complete = false;
};
ListPagePrefix ListPageFromPrefix(std::string_view prefix);

}  // namespace eventbuffer::controller
