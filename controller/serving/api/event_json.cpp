#include "controller/serving/api/event_json.h"

#include <simdjson.h>

#include <cctype>

#include "controller/json_text.h"

namespace eventbuffer::controller {

namespace {

using Field = EventRecord::Field;

// Writes `"key":"value"` (with a leading ',' unless first) when value is not empty.
class ObjectWriter {
 public:
  explicit ObjectWriter(std::string* out) : out_(out) { out_->push_back('{'); }
  void String(std::string_view key, std::string_view value) {
    Key(key);
    AppendJsonString(out_, value);
  }
  void StringIfSet(std::string_view key, std::string_view value) {
    if (!value.empty()) String(key, value);
  }
  // A metav1.Time/MicroTime: the text as sent, null when unset.
  void Time(std::string_view key, std::string_view value) {
    Key(key);
    if (value.empty()) {
      out_->append("null");
    } else {
      AppendJsonString(out_, value);
    }
  }
  void IntIfSet(std::string_view key, std::int64_t value) {
    if (value == 0) return;
    Key(key);
    out_->append(std::to_string(value));
  }
  // Starts a member whose value the caller appends.
  std::string* Member(std::string_view key) {
    Key(key);
    return out_;
  }
  void Close() { out_->push_back('}'); }

 private:
  void Key(std::string_view key) {
    if (!first_) out_->push_back(',');
    first_ = false;
    AppendJsonKey(out_, key);
  }
  std::string* out_;
  bool first_ = true;
};

// Whether `text` is one JSON object (related is stored as compact JSON text; anything else
// would break the document it is spliced into, so it is left out).
bool IsJsonObject(std::string_view text) {
  if (text.size() < 2 || text.front() != '{') return false;
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element element;
  if (parser.parse(text.data(), text.size()).get(element) != simdjson::SUCCESS) return false;
  return element.is_object();
}

std::string Age(std::string_view timestamp, std::int64_t now_unix_ms) {
  std::int64_t at = 0;
  if (timestamp.empty() || !ParseRfc3339Millis(timestamp, &at)) return "<unknown>";
  return HumanDuration(now_unix_ms - at);
}

void AppendColumn(std::string* out, bool first, std::string_view name, int priority,
                  std::string_view format, std::string_view description) {
  if (!first) out->push_back(',');
  out->append("{\"name\":");
  AppendJsonString(out, name);
  out->append(",\"type\":\"string\",\"format\":");
  AppendJsonString(out, format);
  out->append(",\"description\":");
  AppendJsonString(out, description);
  out->append(",\"priority\":");
  out->append(std::to_string(priority));
  out->push_back('}');
}

std::string_view TrimSpace(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

}  // namespace

std::string OccurrenceName(const EventRecord& record) {
  std::string name(record.Get(Field::kName));
  name.push_back('.');
  name.append(record.resource_version());
  return name;
}

void AppendEventMetadataJson(std::string* out, const EventRecord& r) {
  ObjectWriter md(out);
  md.String("name", OccurrenceName(r));
  md.StringIfSet("namespace", r.Get(Field::kNamespace));
  md.StringIfSet("uid", r.uid());
  md.StringIfSet("resourceVersion", r.resource_version());
  md.Time("creationTimestamp", r.Get(Field::kCreationTimestamp));
  md.Close();
}

void AppendEventJson(std::string* out, const EventRecord& r) {
  ObjectWriter ev(out);
  ev.String("kind", "Event");
  ev.String("apiVersion", kGroupVersion);
  AppendEventMetadataJson(ev.Member("metadata"), r);
  {
    ObjectWriter obj(ev.Member("involvedObject"));
    obj.StringIfSet("kind", r.Get(Field::kInvolvedKind));
    obj.StringIfSet("namespace", r.Get(Field::kInvolvedNamespace));
    obj.StringIfSet("name", r.Get(Field::kInvolvedName));
    obj.StringIfSet("uid", r.Get(Field::kInvolvedUid));
    obj.StringIfSet("apiVersion", r.Get(Field::kInvolvedApiVersion));
    obj.StringIfSet("fieldPath", r.Get(Field::kInvolvedFieldPath));
    obj.Close();
  }
  ev.StringIfSet("reason", r.reason());
  ev.StringIfSet("message", r.message());
  {
    ObjectWriter source(ev.Member("source"));
    source.StringIfSet("component", r.Get(Field::kSourceComponent));
    source.StringIfSet("host", r.Get(Field::kSourceHost));
    source.Close();
  }
  ev.Time("firstTimestamp", r.Get(Field::kFirstTimestamp));
  ev.Time("lastTimestamp", r.Get(Field::kLastTimestamp));
  ev.IntIfSet("count", r.count());
  ev.StringIfSet("type", r.type());
  ev.Time("eventTime", r.Get(Field::kEventTime));
  const std::string_view observed = r.Get(Field::kSeriesLastObservedTime);
  if (r.series_count() != 0 || !observed.empty()) {
    ObjectWriter series(ev.Member("series"));
    series.IntIfSet("count", r.series_count());
    series.Time("lastObservedTime", observed);
    series.Close();
  }
  ev.StringIfSet("action", r.Get(Field::kAction));
  if (const std::string_view related = r.Get(Field::kRelated); IsJsonObject(related)) {
    ev.Member("related")->append(related);
  }
  ev.String("reportingComponent", r.Get(Field::kReportingComponent));
  ev.String("reportingInstance", r.Get(Field::kReportingInstance));
  ev.Close();
}

void AppendEventTableColumnsJson(std::string* out) {
  out->push_back('[');
  AppendColumn(out, true, "Last Seen", 0, "", "How long ago the event last happened.");
  AppendColumn(out, false, "Type", 0, "", "Normal or Warning.");
  AppendColumn(out, false, "Reason", 0, "", "Why the event happened, in one word.");
  AppendColumn(out, false, "Object", 0, "", "The object the event is about: kind/name.");
  AppendColumn(out, false, "Subobject", 1, "", "The part of the object (fieldPath).");
  AppendColumn(out, false, "Source", 1, "", "Who reported the event (component, host).");
  AppendColumn(out, false, "Message", 0, "", "What happened, for humans.");
  AppendColumn(out, false, "First Seen", 1, "", "How long ago the event first happened.");
  AppendColumn(out, false, "Count", 1, "", "How often the event has happened.");
  AppendColumn(out, false, "Name", 1, "name", "The name of this occurrence.");
  out->push_back(']');
}

void AppendEventTableRowJson(std::string* out, const EventRecord& r, IncludeObject include,
                             std::int64_t now_unix_ms, std::string_view table_group_version) {
  // The cells of kubectl's event printer (server-side, every column).
  std::string first_seen = Age(r.Get(Field::kFirstTimestamp), now_unix_ms);
  if (r.Get(Field::kFirstTimestamp).empty()) {
    first_seen = Age(r.Get(Field::kEventTime), now_unix_ms);
  }
  std::string last_seen = r.Get(Field::kLastTimestamp).empty()
                              ? first_seen
                              : Age(r.Get(Field::kLastTimestamp), now_unix_ms);
  std::int64_t count = r.count();
  const std::string_view observed = r.Get(Field::kSeriesLastObservedTime);
  if (r.series_count() != 0 || !observed.empty()) {
    last_seen = Age(observed, now_unix_ms);
    count = r.series_count();
  } else if (count == 0) {
    count = 1;  // a singleton event of the events.k8s.io API has no count
  }
  std::string object;
  for (const char c : r.involved_kind()) {
    object.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  if (!r.involved_name().empty()) {
    object.push_back('/');
    object.append(r.involved_name());
  }
  const std::string_view component = r.Get(Field::kSourceComponent).empty()
                                         ? r.Get(Field::kReportingComponent)
                                         : r.Get(Field::kSourceComponent);
  const std::string_view instance = r.Get(Field::kSourceHost).empty()
                                        ? r.Get(Field::kReportingInstance)
                                        : r.Get(Field::kSourceHost);
  std::string source(component);
  if (!instance.empty()) {
    source += ", ";
    source += instance;
  }

  out->append("{\"cells\":[");
  AppendJsonString(out, last_seen);
  out->push_back(',');
  AppendJsonString(out, r.type());
  out->push_back(',');
  AppendJsonString(out, r.reason());
  out->push_back(',');
  AppendJsonString(out, object);
  out->push_back(',');
  AppendJsonString(out, r.Get(Field::kInvolvedFieldPath));
  out->push_back(',');
  AppendJsonString(out, source);
  out->push_back(',');
  AppendJsonString(out, TrimSpace(r.message()));
  out->push_back(',');
  AppendJsonString(out, first_seen);
  out->push_back(',');
  out->append(std::to_string(count));
  out->push_back(',');
  AppendJsonString(out, OccurrenceName(r));
  out->push_back(']');
  switch (include) {
    case IncludeObject::kNone:
      break;
    case IncludeObject::kMetadata:
      out->append(",\"object\":{\"kind\":\"PartialObjectMetadata\",\"apiVersion\":");
      AppendJsonString(out, table_group_version);
      out->append(",\"metadata\":");
      AppendEventMetadataJson(out, r);
      out->push_back('}');
      break;
    case IncludeObject::kObject:
      out->append(",\"object\":");
      AppendEventJson(out, r);
      break;
  }
  out->push_back('}');
}

std::string HumanDuration(std::int64_t millis) {
  const std::int64_t seconds = millis / 1000;  // truncated toward zero, as Go's int()
  if (seconds < -1) return "<invalid>";
  if (seconds < 0) return "0s";
  if (seconds < 120) return std::to_string(seconds) + "s";
  const std::int64_t minutes = seconds / 60;
  if (minutes < 10) {
    const std::int64_t s = seconds % 60;
    return std::to_string(minutes) + "m" + (s == 0 ? "" : std::to_string(s) + "s");
  }
  if (minutes < 180) return std::to_string(minutes) + "m";
  const std::int64_t hours = minutes / 60;
  if (hours < 8) {
    const std::int64_t m = minutes % 60;
    return std::to_string(hours) + "h" + (m == 0 ? "" : std::to_string(m) + "m");
  }
  if (hours < 48) return std::to_string(hours) + "h";
  const std::int64_t days = hours / 24;
  if (hours < 24 * 8) {
    const std::int64_t h = hours % 24;
    return std::to_string(days) + "d" + (h == 0 ? "" : std::to_string(h) + "h");
  }
  if (hours < 24 * 365 * 2) return std::to_string(days) + "d";
  const std::int64_t years = days / 365;
  if (hours < 24 * 365 * 8) {
    const std::int64_t d = days % 365;
    return std::to_string(years) + "y" + (d == 0 ? "" : std::to_string(d) + "d");
  }
  return std::to_string(years) + "y";
}

}  // namespace eventbuffer::controller
