#include "controller/serving/api/events_api.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <algorithm>
#include <set>
#include <thread>
#include <tuple>

#include "tests/controller/serving/api/fake_event_store.h"

namespace eventbuffer::controller {
namespace {

using testing::EventSpec;
using testing::FakeEventStore;
using testing::RecordingWriter;
using testing::Rfc3339;

constexpr std::int64_t kBaseMs = 1714557600000;  // 2024-05-01T10:00:00Z
constexpr std::int64_t kNowMs = kBaseMs + 24 * 3600 * 1000;
constexpr std::string_view kKubectlTable =
    "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;"
    "g=meta.k8s.io,application/json";
constexpr std::string_view kAggregatedDiscovery =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,"
    "application/json";

// Occurrence i of a generated data set: three namespaces, four occurrences per second (so
// the uid and then the numeric resourceVersion break ties), resourceVersions of 1-4 digits.
EventSpec Generated(int i) {
  EventSpec s;
  s.ns = "ns-" + std::to_string(i % 3);
  s.uid = "uid-" + std::to_string((i * 7) % 13);
  s.name = "obj-" + std::to_string((i * 7) % 13) + ".evt";
  s.rv = std::to_string(i + 1);
  s.first_timestamp = Rfc3339(kBaseMs);
  s.last_timestamp = Rfc3339(kBaseMs + (i / 4) * 1000);
  s.reason = i % 5 == 0 ? "BackOff" : "Pulled";
  s.type = i % 5 == 0 ? "Warning" : "Normal";
  s.involved_name = "pod-" + std::to_string(i % 10);
  return s;
}

// The list position of a spec, computed here independently of PositionLess.
auto Key(const EventSpec& s) {
  std::int64_t ms = 0;
  ParseRfc3339Millis(s.last_timestamp, &ms);
  return std::make_tuple(ms, s.uid, s.rv.size(), s.rv);
}

std::string NameOf(const EventSpec& s) { return s.name + "." + s.rv; }

class EventsApiTest : public ::testing::Test {
 protected:
  // Adds generated occurrences [from, to) in a shuffled order.
  void AddGenerated(FakeEventStore& store, int from, int to) {
    std::vector<int> order;
    for (int i = from; i < to; ++i) order.push_back(i);
    std::reverse(order.begin(), order.end());
    std::rotate(order.begin(), order.begin() + order.size() / 3, order.end());
    for (int i : order) {
      store.Add(Generated(i).Build());
      specs_.push_back(Generated(i));
    }
  }

  // Names of the generated occurrences in expected list order, filtered.
  std::vector<std::string> Expected(const std::function<bool(const EventSpec&)>& keep) const {
    std::vector<EventSpec> specs;
    for (const auto& s : specs_) {
      if (keep(s)) specs.push_back(s);
    }
    std::sort(specs.begin(), specs.end(),
              [](const EventSpec& a, const EventSpec& b) { return Key(a) < Key(b); });
    std::vector<std::string> names;
    for (const auto& s : specs) names.push_back(NameOf(s));
    return names;
  }

  RecordingWriter Call(const EventsApi& api, std::string path, std::string query = "",
                       std::string accept = "application/json", std::string method = "GET") {
    HttpRequest request;
    request.method = method;
    request.path = path;
    request.query = query;
    request.target = query.empty() ? path : path + "?" + query;
    if (!accept.empty()) request.headers.emplace_back("accept", accept);
    RecordingWriter writer;
    api.Handle(request, writer);
    return writer;
  }
  RecordingWriter Call(std::string path, std::string query = "",
                       std::string accept = "application/json") {
    return Call(api_, std::move(path), std::move(query), std::move(accept));
  }

  // Parses a body; fails the test when it is not JSON.
  simdjson::dom::element Json(const std::string& body) {
    simdjson::dom::element root;
    const auto error = parser_.parse(body).get(root);
    EXPECT_EQ(error, simdjson::SUCCESS) << body.substr(0, 500);
    return root;
  }

  static std::string Str(simdjson::dom::element e, std::string_view pointer) {
    std::string_view v;
    if (e.at_pointer(pointer).get(v) != simdjson::SUCCESS)
      return "<missing " + std::string(pointer) + ">";
    return std::string(v);
  }

  // The item (or row) names of an EventList or Table body, and its continue token.
  std::vector<std::string> Names(const std::string& body, std::string* cont = nullptr) {
    const auto root = Json(body);
    std::vector<std::string> names;
    const bool table = Str(root, "/kind") == "Table";
    simdjson::dom::array items;
    EXPECT_EQ(root.at_pointer(table ? "/rows" : "/items").get(items), simdjson::SUCCESS);
    for (simdjson::dom::element item : items) {
      names.push_back(table ? Str(item, "/cells/9") : Str(item, "/metadata/name"));
    }
    if (cont != nullptr) {
      std::string_view c;
      *cont =
          root.at_pointer("/metadata/continue").get(c) == simdjson::SUCCESS ? std::string(c) : "";
    }
    return names;
  }

  // Pages through a list with `limit`, calling `between` after each page.
  std::vector<std::string> Paged(const EventsApi& api, const std::string& path,
                                 const std::string& query, int limit,
                                 const std::function<void(int page)>& between = nullptr) {
    std::vector<std::string> all;
    std::string cont;
    for (int page = 0;; ++page) {
      std::string q = query + (query.empty() ? "" : "&") + "limit=" + std::to_string(limit);
      if (!cont.empty()) q += "&continue=" + cont;
      const RecordingWriter w = Call(api, path, q);
      EXPECT_EQ(w.status, 200) << w.body;
      if (w.status != 200) break;
      const std::vector<std::string> names = Names(w.body, &cont);
      EXPECT_LE(names.size(), static_cast<std::size_t>(limit));
      all.insert(all.end(), names.begin(), names.end());
      if (cont.empty()) break;
      EXPECT_FALSE(names.empty());
      if (between) between(page);
      EXPECT_LT(page, 100000) << "does not end";
    }
    return all;
  }

  void ExpectStatus(const RecordingWriter& w, int code, std::string_view reason,
                    std::string_view message_part = "") {
    EXPECT_EQ(w.status, code) << w.body;
    EXPECT_EQ(w.content_type, "application/json");
    const auto root = Json(w.body);
    EXPECT_EQ(Str(root, "/kind"), "Status");
    EXPECT_EQ(Str(root, "/status"), "Failure");
    EXPECT_EQ(Str(root, "/reason"), reason);
    std::int64_t c = 0;
    EXPECT_EQ(root["code"].get(c), simdjson::SUCCESS);
    EXPECT_EQ(c, code);
    EXPECT_NE(Str(root, "/message").find(message_part), std::string::npos) << w.body;
  }

  FakeEventStore store_;
  EventsApi api_{store_.Hooks(kNowMs)};
  std::vector<EventSpec> specs_;
  simdjson::dom::parser parser_;
};

// ---- Discovery and routing ---------------------------------------------------------------

TEST_F(EventsApiTest, DiscoveryDocumentsNameTheGroupVersionAndResource) {
  for (const std::string& accept :
       {std::string("application/json"), std::string(kAggregatedDiscovery)}) {
    RecordingWriter w = Call("/apis", "", accept);
    EXPECT_EQ(w.status, 200);
    EXPECT_EQ(w.content_type, "application/json") << "plain discovery, also when v2 is asked for";
    auto root = Json(w.body);
    EXPECT_EQ(Str(root, "/kind"), "APIGroupList");
    EXPECT_EQ(Str(root, "/apiVersion"), "v1");
    EXPECT_EQ(Str(root, "/groups/0/name"), "eventbuffer.dev");
    EXPECT_EQ(Str(root, "/groups/0/versions/0/groupVersion"), "eventbuffer.dev/v1alpha1");
    EXPECT_EQ(Str(root, "/groups/0/versions/0/version"), "v1alpha1");
    EXPECT_EQ(Str(root, "/groups/0/preferredVersion/groupVersion"), "eventbuffer.dev/v1alpha1");
    EXPECT_EQ(Str(root, "/groups/0/preferredVersion/version"), "v1alpha1");

    w = Call("/apis/eventbuffer.dev", "", accept);
    EXPECT_EQ(w.status, 200);
    root = Json(w.body);
    EXPECT_EQ(Str(root, "/kind"), "APIGroup");
    EXPECT_EQ(Str(root, "/apiVersion"), "v1");
    EXPECT_EQ(Str(root, "/name"), "eventbuffer.dev");
    EXPECT_EQ(Str(root, "/versions/0/groupVersion"), "eventbuffer.dev/v1alpha1");
    EXPECT_EQ(Str(root, "/preferredVersion/version"), "v1alpha1");

    w = Call("/apis/eventbuffer.dev/v1alpha1", "", accept);
    EXPECT_EQ(w.status, 200);
    EXPECT_EQ(w.content_type, "application/json");
    root = Json(w.body);
    EXPECT_EQ(Str(root, "/kind"), "APIResourceList");
    EXPECT_EQ(Str(root, "/apiVersion"), "v1");
    EXPECT_EQ(Str(root, "/groupVersion"), "eventbuffer.dev/v1alpha1");
    simdjson::dom::array resources;
    ASSERT_EQ(root["resources"].get(resources), simdjson::SUCCESS);
    ASSERT_EQ(resources.size(), 1u);
    const auto r = resources.at(0).value();
    EXPECT_EQ(Str(r, "/name"), "events");
    EXPECT_EQ(Str(r, "/singularName"), "event");
    EXPECT_EQ(Str(r, "/kind"), "Event");
    bool namespaced = false;
    EXPECT_EQ(r["namespaced"].get(namespaced), simdjson::SUCCESS);
    EXPECT_TRUE(namespaced);
    simdjson::dom::array verbs;
    ASSERT_EQ(r["verbs"].get(verbs), simdjson::SUCCESS);
    std::vector<std::string> got;
    for (simdjson::dom::element v : verbs) got.emplace_back(std::string_view(v));
    EXPECT_EQ(got, (std::vector<std::string>{"get", "list"}));
    EXPECT_FALSE(r["shortNames"].error() == simdjson::SUCCESS);
    EXPECT_FALSE(r["categories"].error() == simdjson::SUCCESS);
  }
}

TEST_F(EventsApiTest, UnknownPathsAreNotFound) {
  for (const char* path :
       {"/", "/api", "/api/v1", "/api/v1/events", "/openapi", "/openapi/v1", "/openapi/v2/x",
        "/openapi/v3/apis/metrics.k8s.io/v1beta1", "/openapi/v3/apis/eventbuffer.dev",
        "/openapi/v3/apis/eventbuffer.dev/v1", "/apis/metrics.k8s.io",
        "/apis/eventbuffer.dev/v1", "/apis/eventbuffer.dev/v1alpha1/pods",
        "/apis/eventbuffer.dev/v1alpha1/events/x", "/apis/eventbuffer.dev/v1alpha1/namespaces",
        "/apis/eventbuffer.dev/v1alpha1/namespaces/a",
        "/apis/eventbuffer.dev/v1alpha1/namespaces//events",
        "/apis/eventbuffer.dev/v1alpha1/namespaces/a/events/",
        "/apis/eventbuffer.dev/v1alpha1/namespaces/a/events/x/status",
        "/apis/eventbuffer.dev/v1alpha1/namespaces/a/pods", "/healthz", "/apis/",
        "/apis/eventbuffer.dev/v1alpha1/namespaces/default%2F..%2Fbulk/events",
        "/apis/eventbuffer.dev/v1alpha1/namespaces/a/events/x%2fy",
        "/apis/eventbuffer.dev%2Fv1alpha1/events"}) {
    SCOPED_TRACE(path);
    ExpectStatus(Call(path), 404, "NotFound");
  }
}

// Every "$ref" in `e` names a schema present in `schemas`; returns how many were checked.
int CheckRefs(simdjson::dom::element e, simdjson::dom::object schemas, std::string_view prefix) {
  int checked = 0;
  simdjson::dom::object object;
  simdjson::dom::array array;
  if (e.get(object) == simdjson::SUCCESS) {
    for (auto [key, value] : object) {
      if (key == "$ref") {
        std::string_view ref;
        EXPECT_EQ(value.get(ref), simdjson::SUCCESS);
        EXPECT_EQ(ref.substr(0, prefix.size()), prefix) << ref;
        simdjson::dom::element target;
        EXPECT_EQ(schemas[ref.substr(prefix.size())].get(target), simdjson::SUCCESS) << ref;
        ++checked;
      } else {
        checked += CheckRefs(value, schemas, prefix);
      }
    }
  } else if (e.get(array) == simdjson::SUCCESS) {
    for (auto item : array) checked += CheckRefs(item, schemas, prefix);
  }
  return checked;
}

TEST_F(EventsApiTest, OpenApiDocumentsDescribeTheEventKindForKubectlExplain) {
  // v2, as the API server's aggregator and older kubectl read it.
  const RecordingWriter v2 = Call("/openapi/v2");
  ASSERT_EQ(v2.status, 200);
  EXPECT_EQ(v2.content_type, "application/json");
  const auto v2_root = Json(v2.body);
  EXPECT_EQ(Str(v2_root, "/swagger"), "2.0");
  simdjson::dom::object definitions;
  ASSERT_EQ(v2_root["definitions"].get(definitions), simdjson::SUCCESS);
  EXPECT_EQ(CheckRefs(v2_root, definitions, "#/definitions/"), 10);  // 7 in schemas, 3 in paths
  EXPECT_EQ(Str(v2_root, "/definitions/dev.eventbuffer.v1alpha1.Event/x-kubernetes-group-version-kind/0/kind"),
            "Event");
  EXPECT_EQ(Str(v2_root, "/definitions/dev.eventbuffer.v1alpha1.Event/x-kubernetes-group-version-kind/0/group"),
            "eventbuffer.dev");
  EXPECT_EQ(Str(v2_root, "/definitions/dev.eventbuffer.v1alpha1.EventList/x-kubernetes-group-version-kind/0/kind"),
            "EventList");
  // Every field an item carries is described.
  simdjson::dom::object properties;
  ASSERT_EQ(v2_root.at_pointer("/definitions/dev.eventbuffer.v1alpha1.Event/properties").get(properties),
            simdjson::SUCCESS);
  for (const char* field : {"apiVersion", "kind", "metadata", "involvedObject", "reason", "message",
                            "type", "count", "firstTimestamp", "lastTimestamp", "eventTime", "series",
                            "source", "reportingComponent", "reportingInstance", "action", "related"}) {
    simdjson::dom::element f;
    EXPECT_EQ(properties[field].get(f), simdjson::SUCCESS) << field;
  }
  EXPECT_EQ(Str(v2_root, "/paths/~1apis~1eventbuffer.dev~1v1alpha1~1namespaces~1{namespace}~1events~1{name}/get/x-kubernetes-action"),
            "get");

  // v3: the root names the group version's document, which is served at that URL.
  const RecordingWriter root = Call("/openapi/v3");
  ASSERT_EQ(root.status, 200);
  const std::string url =
      Str(Json(root.body), "/paths/apis~1eventbuffer.dev~1v1alpha1/serverRelativeURL");
  ASSERT_EQ(url.rfind("/openapi/v3/apis/eventbuffer.dev/v1alpha1?hash=", 0), 0u) << url;
  const std::size_t q = url.find('?');
  const RecordingWriter v3 = Call(url.substr(0, q), url.substr(q + 1));
  ASSERT_EQ(v3.status, 200);
  const auto v3_root = Json(v3.body);
  EXPECT_EQ(Str(v3_root, "/openapi"), "3.0.0");
  simdjson::dom::object schemas;
  ASSERT_EQ(v3_root.at_pointer("/components/schemas").get(schemas), simdjson::SUCCESS);
  EXPECT_EQ(CheckRefs(v3_root, schemas, "#/components/schemas/"), 10);
  EXPECT_EQ(Str(v3_root, "/components/schemas/dev.eventbuffer.v1alpha1.Event/x-kubernetes-group-version-kind/0/version"),
            "v1alpha1");

  // JSON only: a client asking for protobuf alone gets 406 and asks again (kubectl does).
  ExpectStatus(Call("/openapi/v2", "", "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"),
               406, "NotAcceptable");
  ExpectStatus(Call(url.substr(0, q), "", "application/com.github.proto-openapi.spec.v3@v1.0+protobuf"),
               406, "NotAcceptable");
  EXPECT_EQ(Call("/openapi/v2", "", "application/com.github.proto-openapi.spec.v2@v1.0+protobuf, "
                 "application/json").status, 200);
  EXPECT_EQ(Call("/openapi/v2", "", "").status, 200) << "no Accept: JSON";
  EXPECT_EQ(Call("/openapi/v2", "", "*/*").status, 200);
}

TEST_F(EventsApiTest, OnlyGetAndHeadAreServed) {
  ExpectStatus(Call(api_, "/apis", "", "application/json", "POST"), 405, "MethodNotAllowed");
  EXPECT_EQ(Call(api_, "/apis", "", "application/json", "HEAD").status, 200);
}

TEST_F(EventsApiTest, BadEscapesAreBadRequests) {
  ExpectStatus(Call("/apis/eventbuffer.dev/v1alpha1/namespaces/a%zz/events"), 400, "BadRequest");
  ExpectStatus(Call("/apis/eventbuffer.dev/v1alpha1/events", "fieldSelector=%"), 400, "BadRequest");
}

TEST_F(EventsApiTest, WatchIsMethodNotAllowed) {
  ExpectStatus(Call("/apis/eventbuffer.dev/v1alpha1/events", "watch=true"), 405, "MethodNotAllowed",
               "watch is not supported");
  ExpectStatus(Call("/apis/eventbuffer.dev/v1alpha1/namespaces/a/events", "watch=1"), 405,
               "MethodNotAllowed");
  ExpectStatus(
      Call("/apis/eventbuffer.dev/v1alpha1/namespaces/a/events/x.1", "watch=true&fieldSelector="),
      405, "MethodNotAllowed");
  ExpectStatus(Call("/apis/eventbuffer.dev/v1alpha1/watch/namespaces/a/events"), 405,
               "MethodNotAllowed");
  EXPECT_EQ(Call("/apis/eventbuffer.dev/v1alpha1/events", "watch=false").status, 200);
  EXPECT_EQ(Call("/apis/eventbuffer.dev/v1alpha1/events", "watch=False").status, 200);
  EXPECT_EQ(Call("/apis/eventbuffer.dev/v1alpha1/events", "watch=0").status, 200);
  // Any other value asks for a watch, as the API server reads it (and authorization did).
  for (const char* value : {"watch=yes", "watch=garbage", "watch="}) {
    ExpectStatus(Call("/apis/eventbuffer.dev/v1alpha1/events", value), 405, "MethodNotAllowed");
  }
}

// ---- Lists and gets ---------------------------------------------------------------------

TEST_F(EventsApiTest, ListsANamespaceAndAllNamespacesInPositionOrder) {
  AddGenerated(store_, 0, 90);  // fewer than EventsApi::kWholeItems: sent whole
  RecordingWriter w = Call("/apis/eventbuffer.dev/v1alpha1/events",
                           "resourceVersion=0&resourceVersionMatch=NotOlderThan&timeoutSeconds=5&"
                           "allowWatchBookmarks=true&pretty=true&someFutureParam=x");
  EXPECT_EQ(w.status, 200);
  EXPECT_EQ(w.sends, 1) << "a list of one page is sent whole";
  const auto root = Json(w.body);
  EXPECT_EQ(Str(root, "/kind"), "EventList");
  EXPECT_EQ(Str(root, "/apiVersion"), "eventbuffer.dev/v1alpha1");
  EXPECT_EQ(Str(root, "/metadata/resourceVersion"), "");
  EXPECT_EQ(Str(root, "/items/0/kind"), "Event");
  EXPECT_EQ(Str(root, "/items/0/apiVersion"), "eventbuffer.dev/v1alpha1");
  EXPECT_EQ(Names(w.body), Expected([](const EventSpec&) { return true; }));

  w = Call("/apis/eventbuffer.dev/v1alpha1/namespaces/ns-1/events");
  EXPECT_EQ(w.status, 200);
  const std::vector<std::string> ns1 = Names(w.body);
  EXPECT_EQ(ns1.size(), 30u);
  EXPECT_EQ(ns1, Expected([](const EventSpec& s) { return s.ns == "ns-1"; }));

  w = Call("/apis/eventbuffer.dev/v1alpha1/namespaces/nothing-here/events");
  EXPECT_EQ(w.status, 200);
  EXPECT_TRUE(Names(w.body).empty());
}

TEST_F(EventsApiTest, GetFindsAnOccurrenceByTheResourceVersionAfterTheLastDot) {
  EventSpec s;
  s.ns = "team-a";
  s.name = "web.1.17a8b9";  // Event names have dots
  s.rv = "77";
  store_.Add(s.Build());
  s.rv = "78";
  s.message = "second revision";
  store_.Add(s.Build());

  RecordingWriter w =
      Call("/apis/eventbuffer.dev/v1alpha1/namespaces/team-a/events/web.1.17a8b9.78");
  EXPECT_EQ(w.status, 200) << w.body;
  auto root = Json(w.body);
  EXPECT_EQ(Str(root, "/kind"), "Event");
  EXPECT_EQ(Str(root, "/metadata/name"), "web.1.17a8b9.78");
  EXPECT_EQ(Str(root, "/metadata/resourceVersion"), "78");
  EXPECT_EQ(Str(root, "/message"), "second revision");

  w = Call("/apis/eventbuffer.dev/v1alpha1/namespaces/team-a/events/web.1.17a8b9.77");
  EXPECT_EQ(Str(Json(w.body), "/metadata/resourceVersion"), "77");

  for (const char* name :
       {"web.1.17a8b9.79", "web.1.17a8b9", "web", "web.1.17a8b9.", ".77", "web.1.17a8b9.77.x"}) {
    SCOPED_TRACE(name);
    const RecordingWriter w404 =
        Call(std::string("/apis/eventbuffer.dev/v1alpha1/namespaces/team-a/events/") + name);
    ExpectStatus(w404, 404, "NotFound",
                 std::string("events.eventbuffer.dev \"") + name + "\" not found");
    const auto status = Json(w404.body);
    EXPECT_EQ(Str(status, "/details/name"), name);
    EXPECT_EQ(Str(status, "/details/group"), "eventbuffer.dev");
    EXPECT_EQ(Str(status, "/details/kind"), "events");
  }
  ExpectStatus(Call("/apis/eventbuffer.dev/v1alpha1/namespaces/team-b/events/web.1.17a8b9.77"), 404,
               "NotFound");
}

TEST_F(EventsApiTest, FieldSelectorsFilterTheList) {
  AddGenerated(store_, 0, 90);
  const std::string path = "/apis/eventbuffer.dev/v1alpha1/events";
  EXPECT_EQ(Names(Call(path, "fieldSelector=reason%3DBackOff").body),
            Expected([](const EventSpec& s) { return s.reason == "BackOff"; }));
  EXPECT_EQ(Names(Call(path, "fieldSelector=reason%3D%3DBackOff").body),
            Expected([](const EventSpec& s) { return s.reason == "BackOff"; }));
  EXPECT_EQ(Names(Call(path, "fieldSelector=type!%3DWarning,involvedObject.name%3Dpod-3").body),
            Expected([](const EventSpec& s) {
              return s.type != "Warning" && s.involved_name == "pod-3";
            }));
  EXPECT_EQ(Names(Call(path, "fieldSelector=metadata.namespace%3Dns-2").body),
            Expected([](const EventSpec& s) { return s.ns == "ns-2"; }));
  EXPECT_EQ(Names(Call(path, "fieldSelector=metadata.name%3D" + NameOf(Generated(17))).body),
            std::vector<std::string>{NameOf(Generated(17))});
  // A namespaced list with another namespace's selector is empty.
  EXPECT_TRUE(Names(Call("/apis/eventbuffer.dev/v1alpha1/namespaces/ns-1/events",
                         "fieldSelector=metadata.namespace%3Dns-2")
                        .body)
                  .empty());
  EXPECT_EQ(Names(Call(path, "fieldSelector=").body).size(), 90u);

  ExpectStatus(Call(path, "fieldSelector=spec.foo%3Dbar"), 400, "BadRequest",
               "\"spec.foo\" is not a known field selector: only \"involvedObject.kind\"");
  ExpectStatus(Call(path, "fieldSelector=reason"), 400, "BadRequest", "can't understand");
  ExpectStatus(Call(path, "fieldSelector=reason%3Da%3Db"), 400, "BadRequest");
  ExpectStatus(Call(path, "fieldSelector=reason%3Da%5C"), 400, "BadRequest");
}

TEST_F(EventsApiTest, LabelSelectorsOtherThanEmptyAreBadRequests) {
  AddGenerated(store_, 0, 5);
  const std::string path = "/apis/eventbuffer.dev/v1alpha1/events";
  EXPECT_EQ(Names(Call(path, "labelSelector=").body).size(), 5u);
  for (const char* selector : {"app%3Dweb", "!app", "app", "app+notin+(x)"}) {
    ExpectStatus(Call(path, std::string("labelSelector=") + selector), 400, "BadRequest",
                 "labelSelector");
  }
}

TEST_F(EventsApiTest, ResourceVersionParametersAreCheckedAsTheApiServerChecksThem) {
  AddGenerated(store_, 0, 5);
  const std::string path = "/apis/eventbuffer.dev/v1alpha1/events";
  // Accepted: the buffer as it is now.
  for (const char* fine : {"resourceVersion=0", "resourceVersion=12345", "resourceVersion=",
                           "resourceVersion=0&resourceVersionMatch=NotOlderThan",
                           "resourceVersion=777&resourceVersionMatch=NotOlderThan"}) {
    EXPECT_EQ(Names(Call(path, fine).body).size(), 5u) << fine;
  }
  // ListOptions validation: 422 Invalid, each message as the API server words it.
  ExpectStatus(Call(path, "resourceVersionMatch=NotOlderThan"), 422, "Invalid",
               "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: "
               "resourceVersionMatch is forbidden unless resourceVersion is provided");
  ExpectStatus(Call(path, "resourceVersion=5&resourceVersionMatch=Bogus"), 422, "Invalid",
               "resourceVersionMatch: Unsupported value: \"Bogus\": supported values: "
               "\"Exact\", \"NotOlderThan\", \"\"");
  ExpectStatus(Call(path, "resourceVersion=0&resourceVersionMatch=Exact"), 422, "Invalid",
               "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"");
  // Several problems: all of them, in brackets.
  ExpectStatus(Call(path, "resourceVersionMatch=exact"), 422, "Invalid",
               "is invalid: [resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden "
               "unless resourceVersion is provided, resourceVersionMatch: Unsupported value");
  // With a continue token (before the token itself is looked at).
  const std::string first = Call(path, "limit=2").body;
  const std::string token = Str(Json(first), "/metadata/continue");
  ASSERT_FALSE(token.empty());
  EXPECT_EQ(Names(Call(path, "limit=2&continue=" + token + "&resourceVersion=0").body).size(), 2u);
  ExpectStatus(Call(path, "limit=2&continue=" + token + "&resourceVersion=9"), 400, "BadRequest",
               "specifying resource version is not allowed when using continue");
  ExpectStatus(Call(path, "continue=" + token + "&resourceVersion=9&resourceVersionMatch=NotOlderThan"),
               422, "Invalid", "resourceVersionMatch is forbidden when continue is provided");
  // Exact at a resourceVersion: the buffer keeps no snapshot to serve it from.
  ExpectStatus(Call(path, "resourceVersion=12345&resourceVersionMatch=Exact"), 410, "Expired",
               "list without resourceVersion");
}

TEST_F(EventsApiTest, LimitTimeoutAndIncludeObjectAreValidated) {
  AddGenerated(store_, 0, 5);
  const std::string path = "/apis/eventbuffer.dev/v1alpha1/events";
  for (const char* bad :
       {"limit=abc", "limit=-1", "limit=1.5", "limit=+3", "limit=99999999999999999999"}) {
    ExpectStatus(Call(path, bad), 400, "BadRequest");
  }
  EXPECT_EQ(Names(Call(path, "limit=0").body).size(), 5u) << "0 is no limit";
  EXPECT_EQ(Names(Call(path, "limit=").body).size(), 5u);
  // ("+7" in a query is " 7": refused, as the API server's integer parse refuses it.)
  for (const char* bad : {"timeoutSeconds=abc", "timeoutSeconds=1.5", "timeoutSeconds=-",
                          "timeoutSeconds=30s", "timeoutSeconds=99999999999999999999",
                          "timeoutSeconds=+7"}) {
    ExpectStatus(Call(path, bad), 400, "BadRequest", "timeoutSeconds");
  }
  for (const char* fine : {"timeoutSeconds=30", "timeoutSeconds=0", "timeoutSeconds=-5",
                           "timeoutSeconds=%2B7", "timeoutSeconds="}) {
    EXPECT_EQ(Names(Call(path, fine).body).size(), 5u) << fine;
  }
  ExpectStatus(Call(path, "includeObject=Everything", std::string(kKubectlTable)), 400,
               "BadRequest");
}

// ---- Paging ------------------------------------------------------------------------------

TEST_F(EventsApiTest, PagedListsEqualTheUnpagedList) {
  AddGenerated(store_, 0, 307);
  struct Case {
    std::string path, query;
  };
  for (const Case& c :
       {Case{"/apis/eventbuffer.dev/v1alpha1/events", ""},
        Case{"/apis/eventbuffer.dev/v1alpha1/namespaces/ns-0/events", ""},
        Case{"/apis/eventbuffer.dev/v1alpha1/events", "fieldSelector=type%3DNormal"}}) {
    const std::vector<std::string> whole = Names(Call(c.path, c.query).body);
    ASSERT_FALSE(whole.empty());
    for (int limit : {1, 7, 100, 102, 306, 307, 1000}) {
      SCOPED_TRACE(c.path + "?" + c.query + " limit " + std::to_string(limit));
      EXPECT_EQ(Paged(api_, c.path, c.query, limit), whole);
    }
  }
  // A Table pages the same way.
  std::string cont;
  const auto first = Names(
      Call("/apis/eventbuffer.dev/v1alpha1/events", "limit=10", std::string(kKubectlTable)).body,
      &cont);
  EXPECT_EQ(first.size(), 10u);
  EXPECT_FALSE(cont.empty());
  const auto second = Names(Call("/apis/eventbuffer.dev/v1alpha1/events",
                                 "limit=10&continue=" + cont, std::string(kKubectlTable))
                                .body);
  const auto whole20 = Names(Call("/apis/eventbuffer.dev/v1alpha1/events", "limit=20").body);
  ASSERT_EQ(whole20.size(), 20u);
  EXPECT_EQ(first, std::vector<std::string>(whole20.begin(), whole20.begin() + 10));
  EXPECT_EQ(second, std::vector<std::string>(whole20.begin() + 10, whole20.end()));
}

TEST_F(EventsApiTest, PagingContinuesByPositionWhileItemsAreAddedAndEvicted) {
  AddGenerated(store_, 0, 300);
  // Between pages: evict every 29th item (a different residue each time), add items both before and
  // after the last returned position.
  int next = 300;
  std::set<std::string> evicted;
  std::set<std::string> early_names;
  const auto between = [&](int page) {
    store_.RemoveIf([&](const EventRecord& r) {
      const int i = std::stoi(std::string(r.resource_version())) - 1;
      const bool drop = i % 29 == page % 29;
      if (drop)
        evicted.insert(std::string(r.Get(EventRecord::Field::kName)) + "." +
                       std::string(r.resource_version()));
      return drop;
    });
    for (int k = 0; k < 3; ++k) {
      EventSpec late = Generated(next);
      late.last_timestamp = Rfc3339(kBaseMs + 10'000'000 + next * 1000);  // after everything
      store_.Add(late.Build());
      specs_.push_back(late);
      EventSpec early = Generated(next + 1);
      early.last_timestamp = Rfc3339(kBaseMs - 1000);  // before everything: never listed
      store_.Add(early.Build());
      early_names.insert(NameOf(early));
      next += 2;
    }
  };
  const std::vector<std::string> got =
      Paged(api_, "/apis/eventbuffer.dev/v1alpha1/events", "", 25, between);

  // No duplicates, in position order, nothing from before the start once paging began.
  std::set<std::string> seen;
  for (const auto& n : got) EXPECT_TRUE(seen.insert(n).second) << "duplicate " << n;
  std::vector<std::string> sorted_expected =
      Expected([&](const EventSpec& s) { return seen.count(NameOf(s)) > 0; });
  EXPECT_EQ(got, sorted_expected) << "items come in position order";
  // Every original item not evicted was listed; every late item not evicted was too.
  for (const EventSpec& s : specs_) {
    if (evicted.count(NameOf(s)) == 0) {
      EXPECT_EQ(seen.count(NameOf(s)), 1u) << NameOf(s);
    }
  }
  // Items added before the position reached are not listed.
  EXPECT_GE(early_names.size(), 3u * 10);
  EXPECT_FALSE(evicted.empty());
  for (const auto& n : got) EXPECT_EQ(early_names.count(n), 0u) << n;
}

TEST_F(EventsApiTest, AnotherInstanceOverTheSameDataContinuesIdentically) {
  FakeEventStore other_store;
  AddGenerated(store_, 0, 200);
  AddGenerated(other_store, 0, 200);
  const EventsApi other(other_store.Hooks(kNowMs));
  const std::string path = "/apis/eventbuffer.dev/v1alpha1/namespaces/ns-2/events";
  const std::string query = "fieldSelector=type%3DNormal";
  const std::vector<std::string> whole = Names(Call(path, query).body);
  // Alternate instances page by page.
  std::vector<std::string> all;
  std::string cont;
  for (int page = 0; page < 1000; ++page) {
    const EventsApi& api = page % 2 == 0 ? api_ : other;
    std::string q = query + "&limit=9";
    if (!cont.empty()) q += "&continue=" + cont;
    const RecordingWriter w = Call(api, path, q);
    ASSERT_EQ(w.status, 200) << w.body;
    const auto names = Names(w.body, &cont);
    all.insert(all.end(), names.begin(), names.end());
    if (cont.empty()) break;
  }
  EXPECT_EQ(all, whole);
  EXPECT_GT(whole.size(), 9u);
}

TEST_F(EventsApiTest, InvalidOrForeignContinueTokensAreBadRequests) {
  AddGenerated(store_, 0, 50);
  const std::string path = "/apis/eventbuffer.dev/v1alpha1/namespaces/ns-0/events";
  std::string cont;
  Names(Call(path, "limit=5").body, &cont);
  ASSERT_FALSE(cont.empty());
  EXPECT_EQ(Call(path, "limit=5&continue=" + cont).status, 200);
  // Without limit the rest is listed.
  EXPECT_EQ(Names(Call(path, "continue=" + cont).body).size(), 17u - 5u);

  std::string tampered = cont;
  tampered[tampered.size() / 2] = tampered[tampered.size() / 2] == 'A' ? 'B' : 'A';
  for (const std::string& bad :
       {tampered, std::string("garbage!"), std::string("e30"), cont.substr(0, cont.size() - 2)}) {
    ExpectStatus(Call(path, "limit=5&continue=" + bad), 400, "BadRequest",
                 "invalid continue token: continue key is not valid");
  }
  // The token of another namespace, of all namespaces, or of another field selector.
  ExpectStatus(
      Call("/apis/eventbuffer.dev/v1alpha1/namespaces/ns-1/events", "limit=5&continue=" + cont),
      400, "BadRequest", "another namespace or fieldSelector");
  ExpectStatus(Call("/apis/eventbuffer.dev/v1alpha1/events", "limit=5&continue=" + cont), 400,
               "BadRequest");
  ExpectStatus(Call(path, "limit=5&fieldSelector=type%3DNormal&continue=" + cont), 400,
               "BadRequest");
}

TEST_F(EventsApiTest, LimitIsCappedAndTheCapStillPages) {
  AddGenerated(store_, 0, static_cast<int>(EventsApi::kMaxLimit) + 10);
  std::string cont;
  const auto first =
      Names(Call("/apis/eventbuffer.dev/v1alpha1/events", "limit=1000000").body, &cont);
  EXPECT_EQ(first.size(), EventsApi::kMaxLimit);
  EXPECT_FALSE(cont.empty());
  const auto rest = Names(
      Call("/apis/eventbuffer.dev/v1alpha1/events", "limit=1000000&continue=" + cont).body, &cont);
  EXPECT_EQ(rest.size(), 10u);
  EXPECT_TRUE(cont.empty());
}

// ---- Tables and content negotiation -----------------------------------------------------

TEST_F(EventsApiTest, KubectlGetsATable) {
  EventSpec s;
  s.last_timestamp = Rfc3339(kNowMs - (3 * 3600 + 12 * 60) * 1000);
  store_.Add(s.Build());
  AddGenerated(store_, 0, 4);
  RecordingWriter w = Call("/apis/eventbuffer.dev/v1alpha1/namespaces/default/events", "limit=500",
                           std::string(kKubectlTable));
  EXPECT_EQ(w.status, 200);
  auto root = Json(w.body);
  EXPECT_EQ(Str(root, "/kind"), "Table");
  EXPECT_EQ(Str(root, "/apiVersion"), "meta.k8s.io/v1");
  EXPECT_EQ(Str(root, "/metadata/resourceVersion"), "");
  EXPECT_EQ(Str(root, "/columnDefinitions/0/name"), "Last Seen");
  EXPECT_EQ(Str(root, "/columnDefinitions/6/name"), "Message");
  simdjson::dom::array rows;
  ASSERT_EQ(root["rows"].get(rows), simdjson::SUCCESS);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(Str(root, "/rows/0/cells/0"), "3h12m");
  EXPECT_EQ(Str(root, "/rows/0/cells/1"), "Warning");
  EXPECT_EQ(Str(root, "/rows/0/cells/2"), "BackOff");
  EXPECT_EQ(Str(root, "/rows/0/cells/3"), "pod/web-1");
  EXPECT_EQ(Str(root, "/rows/0/cells/6"), "Back-off restarting failed container");
  EXPECT_EQ(Str(root, "/rows/0/object/kind"), "PartialObjectMetadata");
  EXPECT_EQ(Str(root, "/rows/0/object/apiVersion"), "meta.k8s.io/v1");
  EXPECT_EQ(Str(root, "/rows/0/object/metadata/name"), NameOf(s));
  EXPECT_EQ(Str(root, "/rows/0/object/metadata/namespace"), "default");

  w = Call("/apis/eventbuffer.dev/v1alpha1/namespaces/default/events", "includeObject=Object",
           std::string(kKubectlTable));
  root = Json(w.body);
  EXPECT_EQ(Str(root, "/rows/0/object/kind"), "Event");
  EXPECT_EQ(Str(root, "/rows/0/object/reason"), "BackOff");

  w = Call("/apis/eventbuffer.dev/v1alpha1/namespaces/default/events", "includeObject=None",
           std::string(kKubectlTable));
  root = Json(w.body);
  EXPECT_NE(root.at_pointer("/rows/0/object").error(), simdjson::SUCCESS);

  // A get answers with a one-row Table.
  w = Call("/apis/eventbuffer.dev/v1alpha1/namespaces/default/events/" + NameOf(s), "",
           std::string(kKubectlTable));
  EXPECT_EQ(w.status, 200);
  root = Json(w.body);
  EXPECT_EQ(Str(root, "/kind"), "Table");
  ASSERT_EQ(root["rows"].get(rows), simdjson::SUCCESS);
  EXPECT_EQ(rows.size(), 1u);
  EXPECT_EQ(Str(root, "/rows/0/cells/9"), NameOf(s));
  EXPECT_NE(root.at_pointer("/metadata/continue").error(), simdjson::SUCCESS);
}

TEST_F(EventsApiTest, AcceptDecidesBetweenTableAndJson) {
  AddGenerated(store_, 0, 3);
  const std::string path = "/apis/eventbuffer.dev/v1alpha1/events";
  const auto kind = [&](const std::string& accept) {
    const RecordingWriter w = Call(path, "", accept);
    EXPECT_EQ(w.status, 200);
    EXPECT_EQ(w.content_type, "application/json");
    const auto root = Json(w.body);
    return Str(root, "/kind") + " " + Str(root, "/apiVersion");
  };
  EXPECT_EQ(kind("application/json"), "EventList eventbuffer.dev/v1alpha1");
  EXPECT_EQ(kind(""), "EventList eventbuffer.dev/v1alpha1");
  EXPECT_EQ(kind("*/*"), "EventList eventbuffer.dev/v1alpha1");
  EXPECT_EQ(kind("application/vnd.kubernetes.protobuf"), "EventList eventbuffer.dev/v1alpha1");
  EXPECT_EQ(kind("application/yaml"), "EventList eventbuffer.dev/v1alpha1");
  EXPECT_EQ(kind(std::string(kKubectlTable)), "Table meta.k8s.io/v1");
  EXPECT_EQ(kind("application/json; as=Table; v=v1beta1; g=meta.k8s.io, application/json"),
            "Table meta.k8s.io/v1beta1");
  EXPECT_EQ(
      kind("application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io,application/json"),
      "EventList eventbuffer.dev/v1alpha1");
  EXPECT_EQ(kind("application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io,"
                 "application/json;as=Table;v=v1;g=meta.k8s.io"),
            "Table meta.k8s.io/v1");
  EXPECT_EQ(kind("application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io,"
                 "application/json;as=Table;v=v1;g=meta.k8s.io"),
            "Table meta.k8s.io/v1");
  EXPECT_EQ(kind("application/json;as=Table;v=v2;g=meta.k8s.io"),
            "EventList eventbuffer.dev/v1alpha1");
  EXPECT_EQ(kind("application/json,application/json;as=Table;v=v1;g=meta.k8s.io"),
            "EventList eventbuffer.dev/v1alpha1")
      << "the first acceptable range wins";
}

// ---- Streaming ---------------------------------------------------------------------------

TEST_F(EventsApiTest, AnUnlimitedListStreamsPageByPage) {
  constexpr int kItems = 100000;
  for (int i = 0; i < kItems; ++i) {
    EventSpec s;
    s.uid = "u";
    s.rv = std::to_string(i + 1);
    s.last_timestamp = Rfc3339(kBaseMs + i * 1000);
    s.ns = i % 2 == 0 ? "even" : "odd";
    store_.Add(s.Build());
  }
  RecordingWriter w = Call("/apis/eventbuffer.dev/v1alpha1/events");
  EXPECT_EQ(w.status, 200);
  EXPECT_EQ(w.sends, 0);
  EXPECT_EQ(w.begins, 1);
  EXPECT_GE(w.writes, (kItems - EventsApi::kWholeItems) / EventsApi::kStreamPartItems);
  const std::vector<std::string> names = Names(w.body);
  ASSERT_EQ(names.size(), static_cast<std::size_t>(kItems));
  for (int i = 0; i < kItems; ++i) {
    ASSERT_EQ(names[i], "web-1.17a8b9c0d1e2f3a4." + std::to_string(i + 1)) << i;
  }
  // Tables stream too, and a namespace filter is applied across pages.
  w = Call("/apis/eventbuffer.dev/v1alpha1/namespaces/odd/events", "", std::string(kKubectlTable));
  EXPECT_EQ(w.begins, 1);
  const auto odd = Names(w.body);
  ASSERT_EQ(odd.size(), static_cast<std::size_t>(kItems / 2));
  EXPECT_EQ(odd.front(), "web-1.17a8b9c0d1e2f3a4.2");
  EXPECT_EQ(odd.back(), "web-1.17a8b9c0d1e2f3a4." + std::to_string(kItems));
}

TEST_F(EventsApiTest, ALongLimitedPageStreamsInPartsWithItsContinueToken) {
  AddGenerated(store_, 0, 1500);
  const std::string path = "/apis/eventbuffer.dev/v1alpha1/events";
  const std::vector<std::string> all = Names(Call(path).body);
  ASSERT_EQ(all.size(), 1500u);
  RecordingWriter w = Call(path, "limit=1200");
  EXPECT_EQ(w.sends, 0);
  EXPECT_EQ(w.begins, 1) << "more than kWholeItems: streamed";
  EXPECT_GE(w.writes, 1200 / EventsApi::kStreamPartItems);
  const auto root = Json(w.body);
  const std::string token = Str(root, "/metadata/continue");
  ASSERT_FALSE(token.empty());
  std::vector<std::string> names = Names(w.body);
  ASSERT_EQ(names.size(), 1200u);
  const std::vector<std::string> rest = Names(Call(path, "limit=1200&continue=" + token).body);
  names.insert(names.end(), rest.begin(), rest.end());
  EXPECT_EQ(names, all);
  // The same as a Table.
  w = Call(path, "limit=1200", std::string(kKubectlTable));
  EXPECT_EQ(w.begins, 1);
  EXPECT_EQ(Str(Json(w.body), "/kind"), "Table");
  EXPECT_EQ(Names(w.body).size(), 1200u);
  // Up to kWholeItems: one body with a Content-Length.
  w = Call(path, "limit=" + std::to_string(EventsApi::kWholeItems));
  EXPECT_EQ(w.sends, 1);
  EXPECT_EQ(w.begins, 0);
}

TEST_F(EventsApiTest, AStreamStopsWhenTheClientIsGone) {
  for (int i = 0; i < 20 * static_cast<int>(EventsApi::kStreamPartItems); ++i) {
    EventSpec s;
    s.rv = std::to_string(i + 1);
    s.last_timestamp = Rfc3339(kBaseMs + i * 1000);
    store_.Add(s.Build());
  }
  HttpRequest request;
  request.method = "GET";
  request.path = "/apis/eventbuffer.dev/v1alpha1/events";
  RecordingWriter w;
  w.fail_at_write = 3;
  const std::size_t calls_before = store_.list_calls();
  api_.Handle(request, w);
  EXPECT_EQ(w.begins, 1);
  EXPECT_EQ(w.writes, 3u) << "no Write after the one that failed";
  EXPECT_EQ(w.writes_after_failure, 1u);
  EXPECT_EQ(store_.list_calls() - calls_before, 3u) << "no page listed after the failure";
  EXPECT_NE(parser_.parse(w.body).error(), simdjson::SUCCESS) << "the body was cut short";
}

// ---- Threads -----------------------------------------------------------------------------

TEST_F(EventsApiTest, ConcurrentRequestsGetTheSameAnswers) {
  AddGenerated(store_, 0, 600);
  EventSpec related;
  related.ns = "ns-0";
  related.related = R"({"kind":"Node","name":"n1"})";
  store_.Add(related.Build());
  const std::vector<std::pair<std::string, std::string>> requests = {
      {"/apis/eventbuffer.dev/v1alpha1/events", ""},
      {"/apis/eventbuffer.dev/v1alpha1/namespaces/ns-0/events", "limit=50"},
      {"/apis/eventbuffer.dev/v1alpha1/namespaces/ns-0/events", "includeObject=Object"},
      {"/apis/eventbuffer.dev/v1alpha1/namespaces/ns-0/events/" + NameOf(related), ""},
      {"/apis", ""},
  };
  std::vector<std::string> want;
  for (const auto& [path, query] : requests)
    want.push_back(Call(path, query, std::string(kKubectlTable)).body);
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 10; ++round) {
        for (std::size_t i = 0; i < requests.size(); ++i) {
          const std::size_t k = (i + t) % requests.size();
          HttpRequest request;
          request.method = "GET";
          request.path = requests[k].first;
          request.query = requests[k].second;
          request.headers.emplace_back("accept", std::string(kKubectlTable));
          RecordingWriter w;
          api_.Handle(request, w);
          if (w.body != want[k]) mismatches.fetch_add(1);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
}

}  // namespace
}  // namespace eventbuffer::controller
