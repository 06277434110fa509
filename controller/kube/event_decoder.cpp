#include "controller/kube/event_decoder.h"

#include <simdjson.h>

#include <algorithm>
#include <limits>
#include <string>

#include "eventbuffer/revision_cache.h"

namespace eventbuffer::controller {

namespace {

using simdjson::dom::element;
using simdjson::dom::element_type;
using simdjson::dom::object;
using Field = EventRecord::Field;

std::string_view TypeName(element_type t) {
  switch (t) {
    case element_type::ARRAY: return "an array";
    case element_type::OBJECT: return "an object";
    case element_type::INT64:
    case element_type::UINT64: return "an integer";
    case element_type::DOUBLE: return "a number";
    case element_type::STRING: return "a string";
    case element_type::BOOL: return "a boolean";
    case element_type::NULL_VALUE: return "null";
  }
  return "an unknown value";
}

// Builds "path.key" error paths only when an error is reported (never on the fast path).
struct Path {
  const Path* parent;
  std::string_view name;
  int index = -1;  // >= 0: an array element "name[index]"

  std::string ToString() const {
    std::string out = parent ? parent->ToString() : std::string();
    if (!name.empty()) {
      if (!out.empty()) out.push_back('.');
      out.append(name);
    }
    if (index >= 0) out.append("[").append(std::to_string(index)).append("]");
    return out;
  }
};

// Decoding state for one document. The first error wins; later calls are no-ops.
class Reader {
 public:
  explicit Reader(DecodeError* error) : error_(error) {}

  bool failed() const { return !error_->message.empty(); }

  void Fail(const Path& at, std::string message) {
    if (failed()) return;
    error_->field = at.ToString();
    error_->message = std::move(message);
  }
  void WrongType(const Path& at, std::string_view expected, element value) {
    Fail(at, std::string("expected ") + std::string(expected) + ", got " +
                 std::string(TypeName(value.type())));
  }

  // A string field; null counts as absent. Returns false (and records the error) on a
  // wrong type.
  bool String(const Path& at, element value, std::string_view* out) {
    switch (value.type()) {
      case element_type::STRING:
        *out = value.get_string().value_unsafe();
        return true;
      case element_type::NULL_VALUE:
        *out = {};
        return true;
      default:
        WrongType(at, "a string", value);
        return false;
    }
  }

  // A 32-bit integer field; null counts as 0.
  bool Int32(const Path& at, element value, std::int32_t* out) {
    switch (value.type()) {
      case element_type::INT64: {
        const std::int64_t v = value.get_int64().value_unsafe();
        if (v < std::numeric_limits<std::int32_t>::min() ||
            v > std::numeric_limits<std::int32_t>::max()) {
          Fail(at, "integer " + std::to_string(v) + " out of the 32-bit range");
          return false;
        }
        *out = static_cast<std::int32_t>(v);
        return true;
      }
      case element_type::UINT64:
        Fail(at, "integer out of the 32-bit range");
        return false;
      case element_type::NULL_VALUE:
        *out = 0;
        return true;
      default:
        WrongType(at, "an integer", value);
        return false;
    }
  }

  // An object field; null counts as absent (returns true with *present = false).
  bool Object(const Path& at, element value, object* out, bool* present) {
    if (value.type() == element_type::OBJECT) {
      *out = value.get_object().value_unsafe();
      *present = true;
      return true;
    }
    *present = false;
    if (value.type() == element_type::NULL_VALUE) return true;
    WrongType(at, "an object", value);
    return false;
  }

 private:
  DecodeError* error_;
};

bool DecodeStringFields(Reader& r, const Path& at, object obj,
                        std::initializer_list<std::pair<std::string_view, Field>> fields,
                        EventRecord::Builder* b) {
  for (auto [key, value] : obj) {
    for (const auto& [name, field] : fields) {
      if (key == name) {
        std::string_view s;
        if (!r.String(Path{&at, name}, value, &s)) return false;
        b->Set(field, s);
        break;
      }
    }
  }
  return true;
}

// Decodes a core/v1 Event object into a record. `at` names the object in errors. Sets
// *last_seen_unix_ms, when given, to the record's last_seen_unix_ms() (worked out here
// anyway, so that the caller need not parse the timestamps again).
bool DecodeEventObject(Reader& r, const Path& at, element value, std::int64_t receive_unix_ns,
                       RevisionCache* revisions, EventRef* out,
                       std::int64_t* last_seen_unix_ms = nullptr) {
  object event;
  bool present;
  if (!r.Object(at, value, &event, &present)) return false;
  if (!present) {
    r.Fail(at, "expected an Event object, got null");
    return false;
  }
  EventRecord::Builder b;
  std::string related;  // owns the compact text of `related` until Build copies it
  bool have_metadata = false;

  for (auto [key, v] : event) {
    if (key == "metadata") {
      const Path p{&at, "metadata"};
      object md;
      if (!r.Object(p, v, &md, &have_metadata)) return false;
      if (have_metadata &&
          !DecodeStringFields(r, p, md,
                              {{"uid", Field::kUid},
                               {"resourceVersion", Field::kResourceVersion},
                               {"namespace", Field::kNamespace},
                               {"name", Field::kName},
                               {"creationTimestamp", Field::kCreationTimestamp}},
                              &b)) {
        return false;
      }
    } else if (key == "involvedObject") {
      const Path p{&at, "involvedObject"};
      object io;
      bool io_present;
      if (!r.Object(p, v, &io, &io_present)) return false;
      if (io_present &&
          !DecodeStringFields(r, p, io,
                              {{"kind", Field::kInvolvedKind},
                               {"namespace", Field::kInvolvedNamespace},
                               {"name", Field::kInvolvedName},
                               {"uid", Field::kInvolvedUid},
                               {"apiVersion", Field::kInvolvedApiVersion},
                               {"fieldPath", Field::kInvolvedFieldPath}},
                              &b)) {
        return false;
      }
    } else if (key == "source") {
      const Path p{&at, "source"};
      object src;
      bool src_present;
      if (!r.Object(p, v, &src, &src_present)) return false;
      if (src_present &&
          !DecodeStringFields(r, p, src,
                              {{"component", Field::kSourceComponent}, {"host", Field::kSourceHost}},
                              &b)) {
        return false;
      }
    } else if (key == "series") {
      const Path p{&at, "series"};
      object series;
      bool series_present;
      if (!r.Object(p, v, &series, &series_present)) return false;
      if (series_present) {
        for (auto [sk, sv] : series) {
          if (sk == "count") {
            if (!r.Int32(Path{&p, "count"}, sv, &b.numbers().series_count)) return false;
          } else if (sk == "lastObservedTime") {
            std::string_view t;
            if (!r.String(Path{&p, "lastObservedTime"}, sv, &t)) return false;
            b.Set(Field::kSeriesLastObservedTime, t);
          }
        }
      }
    } else if (key == "related") {
      // An ObjectReference kept whole, as compact JSON: simdjson re-serializes the parsed
      // object without white space (keys in input order, strings re-escaped minimally).
      // Rare on the wire, so its allocation is off the common path.
      object rel;
      bool rel_present;
      if (!r.Object(Path{&at, "related"}, v, &rel, &rel_present)) return false;
      if (rel_present) {
        related = simdjson::minify(rel);
        b.Set(Field::kRelated, related);
      }
    } else if (key == "count") {
      if (!r.Int32(Path{&at, "count"}, v, &b.numbers().count)) return false;
    } else {
      // The remaining string fields of core/v1 Event.
      static constexpr std::pair<std::string_view, Field> kTop[] = {
          {"reason", Field::kReason},
          {"message", Field::kMessage},
          {"type", Field::kType},
          {"firstTimestamp", Field::kFirstTimestamp},
          {"lastTimestamp", Field::kLastTimestamp},
          {"eventTime", Field::kEventTime},
          {"reportingComponent", Field::kReportingComponent},
          {"reportingInstance", Field::kReportingInstance},
          {"action", Field::kAction},
      };
      for (const auto& [name, field] : kTop) {
        if (key == name) {
          std::string_view s;
          if (!r.String(Path{&at, name}, v, &s)) return false;
          b.Set(field, s);
          break;
        }
      }
      // Anything else (kind, apiVersion, managedFields, ...) is ignored.
    }
  }

  if (!have_metadata) {
    r.Fail(Path{&at, "metadata"}, "missing");
    return false;
  }
  // (uid, resourceVersion) is the identity of an occurrence: both are required.
  const Path md_path{&at, "metadata"};
  if (b.Get(Field::kUid).empty()) {
    r.Fail(Path{&md_path, "uid"}, "missing or empty");
    return false;
  }
  if (b.Get(Field::kResourceVersion).empty()) {
    r.Fail(Path{&md_path, "resourceVersion"}, "missing or empty");
    return false;
  }
  b.DeriveLastSeen();
  if (last_seen_unix_ms != nullptr) *last_seen_unix_ms = b.numbers().last_seen_unix_ms;
  b.numbers().receive_unix_ns = receive_unix_ns;
  // A revision of an Event seen recently stores only what changed from its base.
  *out = b.Build(revisions->Lookup(b.Get(Field::kUid), b.Get(Field::kInvolvedUid)));
  revisions->Remember(*out);
  return true;
}

bool DecodeStatusObject(Reader& r, const Path& at, object obj, ApiStatus* status) {
  for (auto [key, v] : obj) {
    if (key == "code") {
      std::int32_t code;
      if (!r.Int32(Path{&at, "code"}, v, &code)) return false;
      status->code = code;
    } else if (key == "reason" || key == "message") {
      std::string_view s;
      if (!r.String(Path{&at, key}, v, &s)) return false;
      (key == "reason" ? status->reason : status->message) = std::string(s);
    }
  }
  return true;
}

// Describes a list item that did not decode, with whatever identity its metadata gives.
SkippedListItem SkippedItem(int index, element item, DecodeError error) {
  SkippedListItem out;
  out.index = index;
  out.error = std::move(error);
  object obj, md;
  if (item.get(obj) != simdjson::SUCCESS || obj["metadata"].get(md) != simdjson::SUCCESS) {
    return out;
  }
  const auto read = [&md](std::string_view key) {
    std::string_view s;
    return md[key].get(s) == simdjson::SUCCESS ? std::string(s) : std::string();
  };
  out.uid = read("uid");
  out.resource_version = read("resourceVersion");
  out.name = read("name");
  const std::string ns = read("namespace");
  if (!ns.empty() && !out.name.empty()) out.name = ns + "/" + out.name;
  return out;
}

}  // namespace

std::string_view WatchEventTypeName(WatchEventType type) {
  switch (type) {
    case WatchEventType::kAdded: return "ADDED";
    case WatchEventType::kModified: return "MODIFIED";
    case WatchEventType::kDeleted: return "DELETED";
    case WatchEventType::kBookmark: return "BOOKMARK";
    case WatchEventType::kError: return "ERROR";
  }
  return "UNKNOWN";
}

std::string DecodeError::ToString() const {
  if (field.empty()) return message;
  return field + ": " + message;
}

struct EventDecoder::Impl {
  explicit Impl(RevisionCache::Size size) : revisions(size) {}

  simdjson::dom::parser parser;
  std::string padded;  // the input copied with SIMDJSON_PADDING bytes after it
  RevisionCache revisions;  // recent Events' base records, for revisions that share them

  // Parses `json`; on a syntax error fills *error and returns false.
  bool Parse(std::string_view json, element* root, DecodeError* error) {
    // The parser keeps its buffers (~14 bytes per byte of the largest document so far:
    // tape, strings, structural indexes): after a large list page, a fresh parser for the
    // next small document gives them back rather than pinning them for good.
    if (parser.capacity() > (8u << 20) && json.size() < (1u << 20)) {
      parser = simdjson::dom::parser();
    }
    // A watch line may carry its newline (and a CR); JSON allows trailing white space anyway.
    if (json.size() + simdjson::SIMDJSON_PADDING > padded.size()) {
      padded.resize(json.size() + simdjson::SIMDJSON_PADDING);
    }
    std::copy(json.begin(), json.end(), padded.begin());
    auto result = parser.parse(padded.data(), json.size(), false);
    if (result.error() != simdjson::SUCCESS) {
      error->field.clear();
      error->message = std::string("malformed JSON: ") + simdjson::error_message(result.error());
      return false;
    }
    *root = result.value_unsafe();
    // Keep the scratch buffer from pinning a huge page forever.
    if (padded.size() > (8u << 20) && json.size() < (1u << 20)) {
      padded.clear();
      padded.shrink_to_fit();
    }
    return true;
  }
};

EventDecoder::EventDecoder(RevisionCache::Size revision_cache)
    : impl_(std::make_unique<Impl>(revision_cache)) {}
EventDecoder::~EventDecoder() = default;

DecodeResult<WatchEvent> EventDecoder::DecodeWatchLine(std::string_view line,
                                                       std::int64_t receive_unix_ns) {
  DecodeResult<WatchEvent> result;
  element root;
  if (!impl_->Parse(line, &root, &result.error)) return result;
  Reader r(&result.error);
  const Path top{nullptr, ""};
  if (root.type() != element_type::OBJECT) {
    r.WrongType(top, "a watch event object", root);
    return result;
  }
  std::string_view type;
  element object_value;
  bool have_type = false, have_object = false;
  const object root_object = root.get_object().value_unsafe();
  for (auto [key, v] : root_object) {
    if (key == "type") {
      if (v.type() != element_type::STRING) {
        r.WrongType(Path{&top, "type"}, "a string", v);
        return result;
      }
      type = v.get_string().value_unsafe();
      have_type = true;
    } else if (key == "object") {
      object_value = v;
      have_object = true;
    }
  }
  if (!have_type) {
    r.Fail(Path{&top, "type"}, "missing");
    return result;
  }
  if (!have_object) {
    r.Fail(Path{&top, "object"}, "missing");
    return result;
  }
  WatchEvent& ev = result.value;
  const Path at{&top, "object"};
  if (type == "ADDED" || type == "MODIFIED" || type == "DELETED") {
    ev.type = type == "ADDED"      ? WatchEventType::kAdded
              : type == "MODIFIED" ? WatchEventType::kModified
                                   : WatchEventType::kDeleted;
    if (!DecodeEventObject(r, at, object_value, receive_unix_ns, &impl_->revisions, &ev.record,
                           &ev.last_seen_unix_ms)) {
      return result;
    }
    ev.resource_version = std::string(ev.record->resource_version());
  } else if (type == "BOOKMARK") {
    ev.type = WatchEventType::kBookmark;
    object obj, md;
    bool present;
    if (!r.Object(at, object_value, &obj, &present)) return result;
    const Path mp{&at, "metadata"};
    element md_value;
    if (!present || obj["metadata"].get(md_value) != simdjson::SUCCESS) {
      r.Fail(mp, "missing");
      return result;
    }
    if (!r.Object(mp, md_value, &md, &present)) return result;
    element rv;
    std::string_view rv_text;
    if (!present || md["resourceVersion"].get(rv) != simdjson::SUCCESS ||
        !r.String(Path{&mp, "resourceVersion"}, rv, &rv_text) || rv_text.empty()) {
      r.Fail(Path{&mp, "resourceVersion"}, "missing or empty");
      return result;
    }
    ev.resource_version = std::string(rv_text);
  } else if (type == "ERROR") {
    ev.type = WatchEventType::kError;
    object obj;
    bool present;
    if (!r.Object(at, object_value, &obj, &present)) return result;
    if (!present) {
      r.Fail(at, "expected a Status object, got null");
      return result;
    }
    if (!DecodeStatusObject(r, at, obj, &ev.status)) return result;
  } else {
    r.Fail(Path{&top, "type"}, "unknown watch event type \"" + std::string(type) + "\"");
  }
  return result;
}

DecodeResult<EventRef> EventDecoder::DecodeEvent(std::string_view json,
                                                 std::int64_t receive_unix_ns) {
  DecodeResult<EventRef> result;
  element root;
  if (!impl_->Parse(json, &root, &result.error)) return result;
  Reader r(&result.error);
  DecodeEventObject(r, Path{nullptr, ""}, root, receive_unix_ns, &impl_->revisions, &result.value);
  return result;
}

DecodeResult<EventListPage> EventDecoder::DecodeList(std::string_view json,
                                                     std::int64_t receive_unix_ns) {
  DecodeResult<EventListPage> result;
  element root;
  if (!impl_->Parse(json, &root, &result.error)) return result;
  Reader r(&result.error);
  const Path top{nullptr, ""};
  if (root.type() != element_type::OBJECT) {
    r.WrongType(top, "an EventList object", root);
    return result;
  }
  EventListPage& page = result.value;
  const object root_object = root.get_object().value_unsafe();
  for (auto [key, v] : root_object) {
    if (key == "metadata") {
      const Path p{&top, "metadata"};
      object md;
      bool present;
      if (!r.Object(p, v, &md, &present)) return result;
      if (!present) continue;
      for (auto [mk, mv] : md) {
        std::string_view s;
        if (mk == "resourceVersion") {
          if (!r.String(Path{&p, "resourceVersion"}, mv, &s)) return result;
          page.resource_version = std::string(s);
        } else if (mk == "continue") {
          if (!r.String(Path{&p, "continue"}, mv, &s)) return result;
          page.continue_token = std::string(s);
        } else if (mk == "remainingItemCount") {
          if (mv.type() == element_type::INT64) {
            page.remaining_item_count = mv.get_int64().value_unsafe();
          } else if (mv.type() != element_type::NULL_VALUE) {
            r.WrongType(Path{&p, "remainingItemCount"}, "an integer", mv);
            return result;
          }
        }
      }
    } else if (key == "items") {
      const Path p{&top, "items"};
      if (v.type() == element_type::NULL_VALUE) continue;
      if (v.type() != element_type::ARRAY) {
        r.WrongType(p, "an array", v);
        return result;
      }
      auto items = v.get_array().value_unsafe();
      page.items.reserve(items.size());
      int index = 0;
      for (element item : items) {
        // One item that does not decode costs only that item: failing the page would make
        // the whole list unusable for as long as the item stays the Event's latest revision.
        DecodeError item_error;
        Reader item_reader(&item_error);
        EventRef record;
        if (DecodeEventObject(item_reader, Path{&top, "items", index}, item, receive_unix_ns,
                              &impl_->revisions, &record)) {
          page.items.push_back(std::move(record));
        } else {
          page.skipped.push_back(SkippedItem(index, item, std::move(item_error)));
        }
        ++index;
      }
    } else if (key == "kind") {
      // A Status body where a list was expected: report it as such.
      if (v.type() == element_type::STRING && v.get_string().value_unsafe() == "Status") {
        ApiStatus status;
        DecodeStatusObject(r, top, root_object, &status);
        r.Fail(top, "expected an EventList, got a Status (code " + std::to_string(status.code) +
                        ", reason " + status.reason + ")");
        return result;
      }
    }
  }
  if (page.resource_version.empty()) {
    const Path md_path{&top, "metadata"};
    r.Fail(Path{&md_path, "resourceVersion"}, "missing or empty");
  }
  return result;
}

std::size_t EventDecoder::scratch_capacity() const {
  return impl_->parser.capacity() + impl_->padded.capacity();
}

bool EventDecoder::DecodeStatus(std::string_view json, ApiStatus* status) {
  DecodeError error;
  element root;
  if (!impl_->Parse(json, &root, &error)) return false;
  if (root.type() != element_type::OBJECT) return false;
  object obj = root.get_object().value_unsafe();
  std::string_view kind;
  if (obj["kind"].get(kind) != simdjson::SUCCESS || kind != "Status") return false;
  Reader r(&error);
  *status = ApiStatus{};
  return DecodeStatusObject(r, Path{nullptr, ""}, obj, status);
}

}  // namespace eventbuffer::controller
