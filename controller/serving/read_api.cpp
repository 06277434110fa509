#include "controller/serving/read_api.h"

#include <algorithm>
#include <tuple>

#include "controller/json_text.h"

namespace eventbuffer::controller {

namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool PercentDecode(std::string_view in, std::string* out, std::string* error) {
  out->clear();
  for (std::size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    if (c == '+') {
      out->push_back(' ');
    } else if (c == '%') {
      if (i + 2 >= in.size()) {
        *error = "bad percent-encoding in query";
        return false;
      }
      const int hi = HexValue(in[i + 1]);
      const int lo = HexValue(in[i + 2]);
      if (hi < 0 || lo < 0) {
        *error = "bad percent-encoding in query";
        return false;
      }
      out->push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      out->push_back(c);
    }
  }
  return true;
}

HttpReply Error(int status, std::string_view message) {
  HttpReply reply;
  reply.status = status;
  reply.body = "{\"error\":";
  AppendJsonString(&reply.body, message);
  reply.body += "}";
  return reply;
}

}  // namespace

bool ParseQuery(std::string_view query, std::vector<std::pair<std::string, std::string>>* out,
                std::string* error) {
  out->clear();
  while (!query.empty()) {
    const std::size_t amp = query.find('&');
    std::string_view part = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (part.empty()) continue;
    const std::size_t eq = part.find('=');
    std::string name, value;
    if (!PercentDecode(part.substr(0, eq), &name, error)) return false;
    if (eq != std::string_view::npos && !PercentDecode(part.substr(eq + 1), &value, error)) {
      return false;
    }
    out->emplace_back(std::move(name), std::move(value));
  }
  return true;
}

void ReadApi::AppendEventJson(std::string* out, const EventRecord& r) {
  using F = EventRecord::Field;
  out->append("{\"uid\":");
  AppendJsonString(out, r.uid());
  out->append(",\"resourceVersion\":");
  AppendJsonString(out, r.resource_version());
  out->append(",\"reason\":");
  AppendJsonString(out, r.reason());
  out->append(",\"type\":");
  AppendJsonString(out, r.type());
  out->append(",\"message\":");
  AppendJsonString(out, r.message());
  out->append(",\"count\":");
  out->append(std::to_string(r.count()));
  out->append(",\"firstTimestamp\":");
  AppendJsonString(out, r.Get(F::kFirstTimestamp));
  out->append(",\"lastTimestamp\":");
  AppendJsonString(out, r.Get(F::kLastTimestamp));
  out->append(",\"source\":{\"component\":");
  AppendJsonString(out, r.Get(F::kSourceComponent));
  out->append(",\"host\":");
  AppendJsonString(out, r.Get(F::kSourceHost));
  out->append("}}");
}

HttpReply ReadApi::Handle(std::string_view method, std::string_view path,
                          std::string_view query) const {
  if (method != "GET" && method != "HEAD") return Error(405, "only GET is supported");
  if (path == "/healthz") {
    std::string why;
    if (hooks_.healthy && !hooks_.healthy(&why)) {
      return HttpReply{500, "unhealthy: " + why + "\n", "text/plain"};
    }
    return HttpReply{200, "ok\n", "text/plain"};
  }
  if (path == "/readyz") {
    if (hooks_.ready && !hooks_.ready()) {
      return HttpReply{503, "not ready: the first list is not complete\n", "text/plain"};
    }
    return HttpReply{200, "ok\n", "text/plain"};
  }
  if (path == "/v1/events") return Events(query);
  if (path == "/v1/objects") {
    if (!query.empty()) return Error(400, "/v1/objects takes no query parameters");
    std::vector<ObjectSummary> objects = hooks_.objects();
    std::sort(objects.begin(), objects.end(), [](const auto& a, const auto& b) {
      return std::tie(a.ns, a.kind, a.name) < std::tie(b.ns, b.kind, b.name);
    });
    HttpReply reply;
    reply.body.reserve(64 + objects.size() * 80);
    reply.body = "{\"objects\":[";
    bool first = true;
    for (const auto& o : objects) {
      if (!first) reply.body.push_back(',');
      first = false;
      reply.body += "{\"namespace\":";
      AppendJsonString(&reply.body, o.ns);
      reply.body += ",\"kind\":";
      AppendJsonString(&reply.body, o.kind);
      reply.body += ",\"name\":";
      AppendJsonString(&reply.body, o.name);
      reply.body += ",\"events\":" + std::to_string(o.events) + "}";
    }
    reply.body += "]}";
    return reply;
  }
  if (path == "/v1/status") {
    HttpReply reply;
    reply.body = "{\"buffer\":" + (hooks_.buffer_status_json ? hooks_.buffer_status_json() : "{}") +
                 ",\"watch\":" + (hooks_.watch_status_json ? hooks_.watch_status_json() : "{}") +
                 "}";
    return reply;
  }
  return Error(404, "unknown path");
}

HttpReply ReadApi::Events(std::string_view query) const {
  std::vector<std::pair<std::string, std::string>> params;
  std::string error;
  if (!ParseQuery(query, &params, &error)) return Error(400, error);
  std::string ns, kind, name;
  bool has_kind = false, has_name = false, has_ns = false;
  for (auto& [key, value] : params) {
    bool* seen = nullptr;
    std::string* target = nullptr;
    if (key == "namespace") {
      seen = &has_ns;
      target = &ns;
    } else if (key == "kind") {
      seen = &has_kind;
      target = &kind;
    } else if (key == "name") {
      seen = &has_name;
      target = &name;
    } else {
      return Error(400,
                   "unknown query parameter '" + key + "' (expected namespace, kind and name)");
    }
    if (*seen) return Error(400, "query parameter '" + key + "' given twice");
    *seen = true;
    *target = std::move(value);
  }
  // kind and name must be given but may be empty: the API server accepts an Event without
  // involvedObject (or with one that lacks them), and /v1/objects lists its object with
  // an empty kind and name; "namespace=&kind=&name=" reads it back (key "//").
  if (!has_kind) return Error(400, "query parameter 'kind' is required");
  if (!has_name) return Error(400, "query parameter 'name' is required");
  if (ns.find('/') != std::string::npos || kind.find('/') != std::string::npos) {
    return Error(400, "namespace and kind must not contain '/'");
  }
  const std::string key = MakeKey(ns, kind, name);
  const std::vector<EventRef> events = hooks_.read(key);
  HttpReply reply;
  reply.body.reserve(64 + events.size() * 400);
  reply.body = "{\"key\":";
  AppendJsonString(&reply.body, key);
  reply.body += ",\"events\":[";
  for (std::size_t i = 0; i < events.size(); ++i) {
    if (i > 0) reply.body.push_back(',');
    AppendEventJson(&reply.body, *events[i]);
  }
  reply.body += "]}";
  return reply;
}

}  // namespace eventbuffer::controller
