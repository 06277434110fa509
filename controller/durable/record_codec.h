// RecordCodec: an EventRecord as a compact byte string, for the durable store.
//
// Format (version 1): one version byte (1); the four numbers as fixed-width little-endian
// integers (count i32, series_count i32, last_seen_unix_ms i64, receive_unix_ns i64); then,
// for each of the kFieldCount text fields in Field order, its length as a LEB128 varint;
// then the texts back to back. An empty field costs one byte. A typical Event encodes to
// its text plus about 50 bytes.
//
// Decoding checks every length against the input and refuses unknown versions and
// trailing bytes: a damaged row is reported, never read past its end.
//
// Thread safety: free functions without shared state.
#pragma once

#include <string>
#include <string_view>

#include "eventbuffer/event_record.h"
#include "eventbuffer/revision_cache.h"

namespace eventbuffer::controller {

// Appends the encoding of record to *out.
void EncodeRecord(const EventRecord& record, std::string* out);

// Decodes bytes into *record. Returns false (and leaves *record unchanged) when bytes is
// not one well-formed encoding. With revisions, a revision of an Event decoded recently is
// built to share its base's text (as the watch decoder does), and remembered.
bool DecodeRecord(std::string_view bytes, EventRef* record, RevisionCache* revisions = nullptr);

}  // namespace eventbuffer::controller
