#include "controller/serving/api/events_api.h"

#include <algorithm>
#include <chrono>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "controller/json_text.h"
#include "controller/serving/api/continue_token.h"
#include "controller/serving/api/event_json.h"
#include "controller/serving/api/field_selector.h"
#include "controller/serving/api/openapi.h"
#include "controller/serving/api/query_params.h"
#include "controller/serving/auth/request_info.h"
#include "controller/serving/status.h"

namespace eventbuffer::controller {

namespace {

constexpr std::string_view kJson = "application/json";
constexpr std::string_view kResource = "events";

// ---- Responses -----------------------------------------------------------------------

void SendStatus(ResponseWriter& w, int code, std::string_view message,
                const StatusDetails* details = nullptr) {
  w.Send(code, kJson, StatusJson(code, message, {}, details));
}

void SendNotFound(ResponseWriter& w) {
  SendStatus(w, 404, "the server could not find the requested resource");
}

// The API server's checks of a list's resourceVersion parameters (ListOptions
// validation, and its storage's refusal of a resourceVersion with a continue token).
// Returns false after sending the error.
bool CheckResourceVersionParams(const QueryParams& params, ResponseWriter& w) {
  const std::string_view rv = params.Get("resourceVersion").value_or("");
  const std::string_view match = params.Get("resourceVersionMatch").value_or("");
  const std::string_view cont = params.Get("continue").value_or("");
  std::vector<std::string> errors;
  if (!match.empty()) {
    if (rv.empty()) {
      errors.emplace_back(
          "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless "
          "resourceVersion is provided");
    }
    if (!cont.empty()) {
      errors.emplace_back(
          "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden when continue is "
          "provided");
    }
    if (match != "Exact" && match != "NotOlderThan") {
      std::string quoted;
      AppendJsonString(&quoted, match);
      errors.push_back("resourceVersionMatch: Unsupported value: " + quoted +
                       ": supported values: \"Exact\", \"NotOlderThan\", \"\"");
    }
    if (match == "Exact" && rv == "0") {
      errors.emplace_back(
          "resourceVersionMatch: Forbidden: resourceVersionMatch \"exact\" is forbidden for "
          "resourceVersion \"0\"");
    }
  }
  if (!errors.empty()) {
    std::string message = "ListOptions.meta.k8s.io \"\" is invalid: ";
    if (errors.size() == 1) {
      message += errors.front();
    } else {
      message += "[";
      for (std::size_t i = 0; i < errors.size(); ++i) {
        if (i > 0) message += ", ";
        message += errors[i];
      }
      message += "]";
    }
    SendStatus(w, 422, message);
    return false;
  }
  if (!cont.empty() && !rv.empty() && rv != "0") {
    SendStatus(w, 400, "specifying resource version is not allowed when using continue");
    return false;
  }
  if (match == "Exact") {
    // The buffer keeps no snapshots: a list is always of what it holds now. The API server
    // answers a list at a resourceVersion it no longer has with 410, and clients then list
    // without one.
    SendStatus(w, 410,
               "resourceVersionMatch=Exact cannot be served: events.eventbuffer.dev lists only "
               "what the buffer holds now; list without resourceVersion");
    return false;
  }
  return true;
}

void SendWatchNotSupported(ResponseWriter& w) {
  SendStatus(w, 405, "watch is not supported on events.eventbuffer.dev: list or get instead");
}

// ---- Discovery -------------------------------------------------------------------------

void AppendGroupVersionJson(std::string* out) {
  out->append("{\"groupVersion\":");
  AppendJsonString(out, kGroupVersion);
  out->append(",\"version\":");
  AppendJsonString(out, kApiVersion);
  out->push_back('}');
}

// The APIGroup object, without kind and apiVersion when `in_list`.
std::string GroupJson(bool in_list) {
  std::string out = in_list ? "{" : "{\"kind\":\"APIGroup\",\"apiVersion\":\"v1\",";
  out += "\"name\":";
  AppendJsonString(&out, kApiGroup);
  out += ",\"versions\":[";
  AppendGroupVersionJson(&out);
  out += "],\"preferredVersion\":";
  AppendGroupVersionJson(&out);
  out += "}";
  return out;
}

const std::string& GroupListJson() {
  static const std::string json =
      "{\"kind\":\"APIGroupList\",\"apiVersion\":\"v1\",\"groups\":[" + GroupJson(true) + "]}";
  return json;
}

const std::string& ResourceListJson() {
  static const std::string json = [] {
    std::string out = "{\"kind\":\"APIResourceList\",\"apiVersion\":\"v1\",\"groupVersion\":";
    AppendJsonString(&out, kGroupVersion);
    out +=
        ",\"resources\":[{\"name\":\"events\",\"singularName\":\"event\",\"namespaced\":true,"
        "\"kind\":\"Event\",\"verbs\":[\"get\",\"list\"]}]}";
    return out;
  }();
  return json;
}

// ---- Content negotiation -------------------------------------------------------------

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const auto lower = [](char c) { return (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

// Takes the next media range off an Accept header's `rest` (up to the next ',').
std::string_view NextMediaRange(std::string_view* rest) {
  const std::size_t comma = rest->find(',');
  const std::string_view range = rest->substr(0, comma);
  *rest = comma == std::string_view::npos ? std::string_view() : rest->substr(comma + 1);
  return range;
}

// Whether a media range's type (without parameters) is one JSON answers.
bool IsJsonType(std::string_view type) {
  return EqualsIgnoreCase(type, "application/json") || EqualsIgnoreCase(type, "application/*") ||
         type == "*/*";
}

// Whether an Accept header admits JSON: absent, or a media range of application/json,
// application/* or */* (parameters aside).
bool AcceptsJson(std::string_view accept) {
  if (Trim(accept).empty()) return true;
  while (!accept.empty()) {
    const std::string_view range = NextMediaRange(&accept);
    if (IsJsonType(Trim(range.substr(0, range.find(';'))))) return true;
  }
  return false;
}

// /openapi/v2, /openapi/v3 and /openapi/v3/apis/eventbuffer.dev/v1alpha1 (openapi.h).
void ServeOpenApi(const HttpRequest& request, const std::vector<std::string>& s,
                  ResponseWriter& w) {
  const std::string* doc = nullptr;
  if (s.size() == 2 && s[1] == "v2") {
    doc = &OpenApiV2Json();
  } else if (s.size() == 2 && s[1] == "v3") {
    doc = &OpenApiV3RootJson();
  } else if (s.size() == 5 && s[1] == "v3" && s[2] == "apis" && s[3] == kApiGroup &&
             s[4] == kApiVersion) {
    doc = &OpenApiV3GroupVersionJson();
  }
  if (doc == nullptr) return SendNotFound(w);
  if (!AcceptsJson(request.Header("accept").value_or(""))) {
    return SendStatus(w, 406, "only application/json is served for the OpenAPI documents");
  }
  w.Send(200, kJson, *doc);
}

// The Table group version a client asks for ("meta.k8s.io/v1" or "meta.k8s.io/v1beta1"),
// or "" for plain JSON: the first media range of Accept that this API can serve decides.
std::string_view NegotiateTable(std::optional<std::string_view> accept) {
  if (!accept) return {};
  std::string_view rest = *accept;
  while (!rest.empty()) {
    const std::string_view range = NextMediaRange(&rest);
    const std::size_t semi = range.find(';');
    const std::string_view type = Trim(range.substr(0, semi));
    std::string_view as, version, group;
    bool other_params = false;
    for (std::string_view params = semi == std::string_view::npos ? "" : range.substr(semi + 1);
         !params.empty();) {
      const std::size_t next = params.find(';');
      const std::string_view param = Trim(params.substr(0, next));
      params = next == std::string_view::npos ? std::string_view() : params.substr(next + 1);
      const std::size_t eq = param.find('=');
      const std::string_view name = Trim(param.substr(0, eq));
      const std::string_view value = eq == std::string_view::npos ? "" : Trim(param.substr(eq + 1));
      if (EqualsIgnoreCase(name, "as")) {
        as = value;
      } else if (EqualsIgnoreCase(name, "v")) {
        version = value;
      } else if (EqualsIgnoreCase(name, "g")) {
        group = value;
      } else if (!EqualsIgnoreCase(name, "q") && !EqualsIgnoreCase(name, "charset")) {
        other_params = true;
      }
    }
    if (!IsJsonType(type)) continue;  // protobuf, yaml, ...: not served, try the next range
    if (as.empty()) {
      if (!other_params) return {};
      continue;
    }
    if (as == "Table" && group == "meta.k8s.io") {
      if (version == "v1") return "meta.k8s.io/v1";
      if (version == "v1beta1") return "meta.k8s.io/v1beta1";
    }
    // Another `as` (PartialObjectMetadataList, a Table version we lack): try the next.
  }
  return {};
}

// ---- Lists -----------------------------------------------------------------------------

// How items of one response are written: as Event objects or as Table rows.
struct Renderer {
  std::string_view table;  // Table group version, "" for plain JSON
  IncludeObject include = IncludeObject::kMetadata;
  std::int64_t now_unix_ms = 0;

  // The document up to the first item. `cont` is the continue token ("" for none).
  std::string Prefix(std::string_view cont) const {
    std::string out;
    if (table.empty()) {
      out = "{\"kind\":\"EventList\",\"apiVersion\":";
      AppendJsonString(&out, kGroupVersion);
    } else {
      out = "{\"kind\":\"Table\",\"apiVersion\":";
      AppendJsonString(&out, table);
    }
    out += ",\"metadata\":{\"resourceVersion\":\"\"";
    if (!cont.empty()) {
      out += ",\"continue\":";
      AppendJsonString(&out, cont);
    }
    out += "}";
    if (table.empty()) {
      out += ",\"items\":[";
    } else {
      out += ",\"columnDefinitions\":";
      AppendEventTableColumnsJson(&out);
      out += ",\"rows\":[";
    }
    return out;
  }
  static std::string_view Suffix() { return "]}"; }

  void Item(std::string* out, const EventRecord& record) const {
    if (table.empty()) {
      AppendEventJson(out, record);
    } else {
      AppendEventTableRowJson(out, record, include, now_unix_ms, table);
    }
  }
  // Appends the items of `refs`, each preceded by ',' unless it is the document's first.
  void Items(std::string* out, std::span<const EventRef> refs, bool* first) const {
    for (const EventRef& ref : refs) {
      if (!*first) out->push_back(',');
      *first = false;
      Item(out, *ref);
    }
  }
};

// A non-negative decimal integer (no sign, no spaces), or nullopt.
std::optional<std::uint64_t> ParseCount(std::string_view text) {
  if (text.empty() || text.size() > 18) return std::nullopt;
  std::uint64_t v = 0;
  for (const char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return v;
}

bool ParseInclude(std::optional<std::string_view> value, IncludeObject* out) {
  if (!value || value->empty() || *value == "Metadata") {
    *out = IncludeObject::kMetadata;
  } else if (*value == "None") {
    *out = IncludeObject::kNone;
  } else if (*value == "Object") {
    *out = IncludeObject::kObject;
  } else {
    return false;
  }
  return true;
}

}  // namespace

EventsApi::EventsApi(Hooks hooks) : hooks_(std::move(hooks)) {}

std::int64_t EventsApi::NowUnixMs() const {
  if (hooks_.now_unix_ms) return hooks_.now_unix_ms();
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void EventsApi::Handle(const HttpRequest& request, ResponseWriter& writer) const {
  if (request.method != "GET" && request.method != "HEAD") {
    return SendStatus(writer, 405,
                      "the server does not allow this method on the requested resource");
  }
  const std::optional<std::vector<std::string>> path = SplitPath(request.path);
  if (!path) return SendStatus(writer, 400, "invalid URL path escape");
  const std::optional<QueryParams> params = QueryParams::Parse(request.query);
  if (!params) return SendStatus(writer, 400, "invalid URL query escape");
  const std::vector<std::string>& s = *path;
  // An escaped '/' (%2F) inside a segment: no Kubernetes name holds one, and the request's
  // authorization split the decoded path there, so it named other segments than these.
  for (const std::string& segment : s) {
    if (segment.find('/') != std::string::npos) return SendNotFound(writer);
  }

  if (!s.empty() && s[0] == "openapi") return ServeOpenApi(request, s, writer);
  if (s.empty() || s[0] != "apis") return SendNotFound(writer);
  if (s.size() == 1) return writer.Send(200, kJson, GroupListJson());
  if (s[1] != kApiGroup) return SendNotFound(writer);
  if (s.size() == 2) return writer.Send(200, kJson, GroupJson(false));
  if (s[2] != kApiVersion) return SendNotFound(writer);
  if (s.size() == 3) return writer.Send(200, kJson, ResourceListJson());
  // Resource requests.
  if (s[3] == "watch") return SendWatchNotSupported(writer);
  const bool all_namespaces = s.size() == 4 && s[3] == kResource;
  const bool in_namespace =
      s.size() >= 6 && s.size() <= 7 && s[3] == "namespaces" && !s[4].empty() && s[5] == kResource;
  if (!all_namespaces && !in_namespace) return SendNotFound(writer);
  if (const auto watch = params->Get("watch"); watch && WatchRequested(*watch)) {
    return SendWatchNotSupported(writer);
  }
  if (all_namespaces) return List(request, *params, std::nullopt, writer);
  if (s.size() == 6) return List(request, *params, s[4], writer);
  if (s[6].empty()) return SendNotFound(writer);
  return Get(request, *params, s[4], s[6], writer);
}

void EventsApi::Get(const HttpRequest& request, const QueryParams& params, const std::string& ns,
                    const std::string& name, ResponseWriter& writer) const {
  Renderer renderer;
  renderer.table = NegotiateTable(request.Header("accept"));
  if (!ParseInclude(params.Get("includeObject"), &renderer.include)) {
    return SendStatus(writer, 400, "includeObject must be None, Metadata or Object");
  }
  // "<Event name>.<resourceVersion>": Event names may contain dots, resourceVersions do not.
  const std::size_t dot = name.rfind('.');
  EventRef record;
  if (dot != std::string::npos && dot > 0 && dot + 1 < name.size()) {
    record = hooks_.find(ns, std::string_view(name).substr(0, dot),
                         std::string_view(name).substr(dot + 1));
  }
  if (!record) {
    std::string message = "events.eventbuffer.dev ";
    message += '"';
    message += name;
    message += "\" not found";
    const StatusDetails details{name, kApiGroup, kResource};
    return SendStatus(writer, 404, message, &details);
  }
  std::string body;
  if (renderer.table.empty()) {
    AppendEventJson(&body, *record);
  } else {
    renderer.now_unix_ms = NowUnixMs();
    body = renderer.Prefix("");
    renderer.Item(&body, *record);
    body += Renderer::Suffix();
  }
  writer.Send(200, kJson, std::move(body));
}

void EventsApi::List(const HttpRequest& request, const QueryParams& params,
                     std::optional<std::string> ns, ResponseWriter& writer) const {
  Renderer renderer;
  renderer.table = NegotiateTable(request.Header("accept"));
  if (!ParseInclude(params.Get("includeObject"), &renderer.include)) {
    return SendStatus(writer, 400, "includeObject must be None, Metadata or Object");
  }
  if (!CheckResourceVersionParams(params, writer)) return;
  if (const auto labels = params.Get("labelSelector"); labels && !Trim(*labels).empty()) {
    return SendStatus(writer, 400,
                      "labelSelector is not supported: events.eventbuffer.dev keep no labels");
  }
  const std::string_view field_text = params.Get("fieldSelector").value_or("");
  std::string error;
  std::optional<EventFieldSelector> selector = EventFieldSelector::Parse(field_text, &error);
  if (!selector) return SendStatus(writer, 400, error);

  std::size_t limit = 0;
  if (const auto text = params.Get("limit"); text && !text->empty()) {
    const std::optional<std::uint64_t> value = ParseCount(*text);
    if (!value) return SendStatus(writer, 400, "limit must be a non-negative integer");
    limit = *value > kMaxLimit ? kMaxLimit : static_cast<std::size_t>(*value);
  }
  // Not used (a list is answered at once), but checked as the API server decodes it.
  if (const auto text = params.Get("timeoutSeconds"); text && !text->empty()) {
    std::string_view digits = *text;
    if (digits.front() == '-' || digits.front() == '+') digits.remove_prefix(1);
    if (!ParseCount(digits)) return SendStatus(writer, 400, "timeoutSeconds must be an integer");
  }

  const std::uint64_t query_hash = ListQueryHash(ns, field_text);
  EventQuery query;
  query.ns = std::move(ns);
  if (const auto token = params.Get("continue"); token && !token->empty()) {
    query.after = DecodeContinueToken(*token, query_hash, &error);
    if (!query.after) return SendStatus(writer, 400, "invalid continue token: " + error);
  }
  if (!selector->empty()) {
    query.match = [sel = std::move(*selector)](const EventRecord& r) { return sel.Matches(r); };
  }
  renderer.now_unix_ms = renderer.table.empty() ? 0 : NowUnixMs();

  if (limit > 0) {
    query.limit = limit;
    EventPage page = hooks_.list(query);
    std::string cont;
    if (page.more && !page.items.empty()) {
      cont = EncodeContinueToken(PositionOf(*page.items.back()), query_hash);
    }
    std::string body = renderer.Prefix(cont);
    bool first = true;
    if (page.items.size() <= kWholeItems) {
      renderer.Items(&body, page.items, &first);
      body += Renderer::Suffix();
      return writer.Send(200, kJson, std::move(body));
    }
    // A long page is rendered part by part as the client reads it (its items are held by
    // reference meanwhile), so a slow client never makes the server hold the whole body.
    struct PageStream {
      Renderer renderer;
      std::vector<EventRef> items;
      std::size_t next = 0;
      bool first = true;
      std::string prefix;
    };
    auto st = std::make_shared<PageStream>();
    st->renderer = renderer;
    st->items = std::move(page.items);
    st->prefix = std::move(body);
    return writer.Stream(200, kJson, [st](std::string* out) {
      out->append(st->prefix);
      st->prefix.clear();
      const std::size_t n = std::min(st->items.size() - st->next, kStreamPartItems);
      const std::span<EventRef> part(st->items.data() + st->next, n);
      st->renderer.Items(out, part, &st->first);
      for (EventRef& ref : part) ref.reset();  // written: no longer held for this response
      st->next += n;
      if (st->next < st->items.size()) return true;
      out->append(Renderer::Suffix());
      return false;
    });
  }

  // No limit: page through the buffer. A list of up to kWholeItems is sent whole (with a
  // Content-Length); a longer one is streamed part by part as the client reads it, each
  // part a List call from where the previous one ended.
  query.limit = kWholeItems;
  EventPage page = hooks_.list(query);
  std::string chunk = renderer.Prefix("");
  bool first = true;
  renderer.Items(&chunk, page.items, &first);
  if (!page.more || page.items.empty()) {
    chunk += Renderer::Suffix();
    return writer.Send(200, kJson, std::move(chunk));
  }
  struct ListStream {
    std::function<EventPage(const EventQuery&)> list;
    EventQuery query;
    Renderer renderer;
    bool first = false;
    std::string head;  // the prefix and the first part, made before streaming began
  };
  auto st = std::make_shared<ListStream>();
  st->list = hooks_.list;
  st->renderer = renderer;
  st->query = std::move(query);
  st->query.limit = kStreamPartItems;
  st->query.after = PositionOf(*page.items.back());
  st->head = std::move(chunk);
  writer.Stream(200, kJson, [st](std::string* out) {
    if (!st->head.empty()) {
      out->swap(st->head);
      return true;
    }
    const EventPage next = st->list(st->query);
    st->renderer.Items(out, next.items, &st->first);
    if (!next.more || next.items.empty()) {
      out->append(Renderer::Suffix());
      return false;
    }
    st->query.after = PositionOf(*next.items.back());
    return true;
  });
}

}  // namespace eventbuffer::controller
