#include "controller/serving/api/openapi.h"

#include <cstdio>
#include <string>

#include "eventbuffer/gray_flag.h"

namespace eventbuffer::controller {

namespace {

// The schemas, with @REF@ where a reference's prefix goes ("#/definitions/" in OpenAPI v2,
// "#/components/schemas/" in v3). Names are in this API's own namespace
// (dev.eventbuffer.v1alpha1.*), so that the API server's aggregated document never
// confuses them with its own ObjectMeta or ObjectReference: these describe only the fields
// this API serves.
constexpr std::string_view kSchemas = R"({
"dev.eventbuffer.v1alpha1.Event":{
 "description":"One occurrence of a core/v1 Event held by the buffer: one revision of the Event (a BackOff Event repeated five times is five occurrences, count 1 to 5). Read-only.",
 "type":"object",
 "required":["metadata","involvedObject"],
 "properties":{
  "apiVersion":{"description":"eventbuffer.dev/v1alpha1","type":"string"},
  "kind":{"description":"Event","type":"string"},
  "metadata":{"description":"The occurrence's name is <Event name>.<resourceVersion>; namespace, uid and creationTimestamp are the Event's.","allOf":[{"$ref":"@REF@dev.eventbuffer.v1alpha1.ObjectMeta"}],"default":{}},
  "involvedObject":{"description":"The object this Event is about.","allOf":[{"$ref":"@REF@dev.eventbuffer.v1alpha1.ObjectReference"}],"default":{}},
  "reason":{"description":"Short, machine-readable cause of the Event, e.g. BackOff.","type":"string"},
  "message":{"description":"Human-readable description (held up to the configured maximum; longer ones end with a truncation marker).","type":"string"},
  "type":{"description":"Normal or Warning.","type":"string"},
  "count":{"description":"How many times the Event had occurred as of this revision.","type":"integer","format":"int32"},
  "firstTimestamp":{"description":"When the Event was first recorded.","type":"string","format":"date-time"},
  "lastTimestamp":{"description":"When the Event most recently occurred, as of this revision.","type":"string","format":"date-time"},
  "eventTime":{"description":"When the Event was first observed (microseconds), for Events written through events.k8s.io.","type":"string","format":"date-time"},
  "series":{"description":"The series this Event belongs to, if it is one.","allOf":[{"$ref":"@REF@dev.eventbuffer.v1alpha1.EventSeries"}]},
  "source":{"description":"The component that reported the Event.","allOf":[{"$ref":"@REF@dev.eventbuffer.v1alpha1.EventSource"}],"default":{}},
  "reportingComponent":{"description":"The controller that emitted the Event, e.g. kubernetes.io/kubelet.","type":"string","default":""},
  "reportingInstance":{"description":"The instance of that controller, e.g. kubelet-node-1.","type":"string","default":""},
  "action":{"description":"What action was taken or failed regarding the involved object.","type":"string"},
  "related":{"description":"A second object, for more complex actions.","allOf":[{"$ref":"@REF@dev.eventbuffer.v1alpha1.ObjectReference"}]}
 },
 "x-kubernetes-group-version-kind":[{"group":"eventbuffer.dev","kind":"Event","version":"v1alpha1"}]
},
"dev.eventbuffer.v1alpha1.EventList":{
 "description":"A list of held occurrences, in time order.",
 "type":"object",
 "required":["items"],
 "properties":{
  "apiVersion":{"description":"eventbuffer.dev/v1alpha1","type":"string"},
  "kind":{"description":"EventList","type":"string"},
  "metadata":{"description":"Paging: the continue token when more items follow.","allOf":[{"$ref":"@REF@dev.eventbuffer.v1alpha1.ListMeta"}],"default":{}},
  "items":{"description":"The occurrences.","type":"array","items":{"default":{},"allOf":[{"$ref":"@REF@dev.eventbuffer.v1alpha1.Event"}]}}
 },
 "x-kubernetes-group-version-kind":[{"group":"eventbuffer.dev","kind":"EventList","version":"v1alpha1"}]
},
"dev.eventbuffer.v1alpha1.ObjectMeta":{
 "description":"The metadata an occurrence carries.",
 "type":"object",
 "properties":{
  "name":{"description":"<Event name>.<resourceVersion>: unique per occurrence within its namespace.","type":"string"},
  "namespace":{"description":"The Event's namespace.","type":"string"},
  "uid":{"description":"The Event's uid (shared by all its occurrences).","type":"string"},
  "resourceVersion":{"description":"The resourceVersion of this revision of the Event.","type":"string"},
  "creationTimestamp":{"description":"When the Event object was created.","type":"string","format":"date-time"}
 }
},
"dev.eventbuffer.v1alpha1.ListMeta":{
 "description":"The metadata of a list.",
 "type":"object",
 "properties":{
  "continue":{"description":"Set when more items follow: pass it as the continue parameter, with the same query, to get the next page.","type":"string"},
  "resourceVersion":{"description":"Always empty: a list is of what the buffer holds when it is read.","type":"string"}
 }
},
"dev.eventbuffer.v1alpha1.ObjectReference":{
 "description":"A reference to an object.",
 "type":"object",
 "properties":{
  "apiVersion":{"type":"string"},
  "kind":{"type":"string"},
  "name":{"type":"string"},
  "namespace":{"description":"Empty for cluster-scoped objects.","type":"string"},
  "uid":{"type":"string"},
  "resourceVersion":{"description":"Not held by the buffer: empty in involvedObject.","type":"string"},
  "fieldPath":{"description":"A part of the object, e.g. spec.containers{app}.","type":"string"}
 },
 "x-kubernetes-map-type":"atomic"
},
"dev.eventbuffer.v1alpha1.EventSource":{
 "description":"The component that reported an Event.",
 "type":"object",
 "properties":{
  "component":{"description":"e.g. kubelet.","type":"string"},
  "host":{"description":"The node name, for Events from a node's components.","type":"string"}
 }
},
"dev.eventbuffer.v1alpha1.EventSeries":{
 "description":"A series of occurrences of one Event, as events.k8s.io reports it.",
 "type":"object",
 "properties":{
  "count":{"description":"Occurrences in the series up to lastObservedTime.","type":"integer","format":"int32"},
  "lastObservedTime":{"description":"When the last occurrence of the series was observed (microseconds).","type":"string","format":"date-time"}
 }
}
})";

std::string Replace(std::string_view text, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(text.size() + text.size() / 8);
  std::size_t at = 0;
  for (std::size_t hit; (hit = text.find(from, at)) != std::string_view::npos; at = hit + from.size()) {
    out.append(text.substr(at, hit - at));
    out.append(to);
  }
  out.append(text.substr(at));
  return out;
}

// The three operations, with @RESPONSE(X)@ and @PARAM(...)@ spelled per version below.
struct Operation {
  std::string_view path;
  std::string_view id;
  std::string_view action;  // x-kubernetes-action
  std::string_view kind;    // of the response
  std::string_view summary;
  bool namespaced;
  bool named;
};

constexpr Operation kOperations[] = {
    {"/apis/eventbuffer.dev/v1alpha1/events", "listEventbufferDevV1alpha1EventForAllNamespaces",
     "list", "EventList", "list the held occurrences of all namespaces", false, false},
    {"/apis/eventbuffer.dev/v1alpha1/namespaces/{namespace}/events",
     "listEventbufferDevV1alpha1NamespacedEvent", "list", "EventList",
     "list the held occurrences of one namespace", true, false},
    {"/apis/eventbuffer.dev/v1alpha1/namespaces/{namespace}/events/{name}",
     "readEventbufferDevV1alpha1NamespacedEvent", "get", "Event", "read one held occurrence",
     true, true},
};

struct Param {
  std::string_view name;
  std::string_view in;
  std::string_view type;
  std::string_view description;
};

constexpr Param kListParams[] = {
    {"fieldSelector", "query", "string",
     "Select occurrences by fields: involvedObject.kind, .namespace, .name, .uid, .apiVersion, "
     ".fieldPath, reason, reportingComponent, source, type, metadata.name, metadata.namespace."},
    {"limit", "query", "integer", "At most this many items; a continue token when more follow."},
    {"continue", "query", "string", "The token from the previous page of the same query."},
    {"resourceVersion", "query", "string",
     "Accepted; every list is of what the buffer holds now."},
    {"resourceVersionMatch", "query", "string",
     "NotOlderThan is served as now; Exact is answered 410 Expired."},
};

void AppendParam(std::string* out, const Param& p, bool v3) {
  *out += R"({"name":")";
  *out += p.name;
  *out += R"(","in":")";
  *out += p.in;
  *out += R"(","description":")";
  *out += p.description;
  *out += '"';
  if (p.in == "path") *out += R"(,"required":true)";
  if (v3) {
    *out += R"(,"schema":{"type":")";
    *out += p.type;
    *out += R"("}})";
  } else {
    *out += R"(,"type":")";
    *out += p.type;
    *out += R"("})";
  }
}

std::string Paths(bool v3) {
  const std::string ref = v3 ? "#/components/schemas/" : "#/definitions/";
  std::string out = "{";
  bool first = true;
  for (const Operation& op : kOperations) {
    if (!first) out += ',';
    first = false;
    out += '"';
    out += op.path;
    out += R"(":{"get":{"description":")";
    out += op.summary;
    out += R"(","operationId":")";
    out += op.id;
    out += R"(","tags":["eventbuffer.dev_v1alpha1"],)";
    if (!v3) {
      out += R"("consumes":["*/*"],"produces":["application/json","application/json;as=Table;v=v1;g=meta.k8s.io"],"schemes":["https"],)";
    }
    out += R"("parameters":[)";
    bool first_param = true;
    auto add = [&](const Param& p) {
      if (!first_param) out += ',';
      first_param = false;
      AppendParam(&out, p, v3);
    };
    if (op.namespaced) add({"namespace", "path", "string", "the namespace of the Events"});
    if (op.named) add({"name", "path", "string", "<Event name>.<resourceVersion>"});
    if (!op.named) {
      for (const Param& p : kListParams) add(p);
    }
    out += R"(],"responses":{"200":{"description":"OK",)";
    const std::string schema = R"("schema":{"$ref":")" + ref + "dev.eventbuffer.v1alpha1." +
                               std::string(op.kind) + R"("})";
    if (v3) {
      out += R"("content":{"application/json":{)" + schema + "}}";
    } else {
      out += schema;
    }
    out += R"(},"401":{"description":"Unauthorized"}},"x-kubernetes-action":")";
    out += op.action;
    out += R"(","x-kubernetes-group-version-kind":{"group":"eventbuffer.dev","kind":"Event","version":"v1alpha1"}}})";
  }
  out += '}';
  return out;
}

constexpr std::string_view kInfo =
    R"("info":{"title":"kube-eventbuffer","description":"Event occurrences kept beyond the API server's Event TTL, read-only.","version":"v1alpha1"})";

std::string BuildV2() {
  std::string out = R"({"swagger":"2.0",)";
  out += kInfo;
  out += R"(,"paths":)";
  out += Paths(false);
  out += R"(,"definitions":)";
  out += Replace(kSchemas, "@REF@", "#/definitions/");
  out += '}';
  return out;
}

std::string BuildV3() {
  std::string out = R"({"openapi":"3.0.0",)";
  out += kInfo;
  out += R"(,"paths":)";
  out += Paths(true);
  out += R"(,"components":{"schemas":)";
  out += Replace(kSchemas, "@REF@", "#/components/schemas/");
  out += "}}";
  return out;
}

// The document's 64-bit FNV-1a hash in hex: the v3 root's `hash`, which changes with it.
std::string HashHex(std::string_view text) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llX", static_cast<unsigned long long>(Fnv1a64(text)));
  return buf;
}

}  // namespace

const std::string& OpenApiV2Json() {
  static const std::string doc = BuildV2();
  return doc;
}

const std::string& OpenApiV3GroupVersionJson() {
  static const std::string doc = BuildV3();
  return doc;
}

const std::string& OpenApiV3RootJson() {
  static const std::string doc =
      R"({"paths":{"apis/eventbuffer.dev/v1alpha1":{"serverRelativeURL":"/openapi/v3/apis/eventbuffer.dev/v1alpha1?hash=)" +
      HashHex(OpenApiV3GroupVersionJson()) + R"("}}})";
  return doc;
}

}  // namespace eventbuffer::controller
