#include "controller/serving/auth/request_info.h"

#include <gtest/gtest.h>

namespace eventbuffer::controller {
namespace {

RequestAttributes Resource(std::string verb, std::string ns, std::string group, std::string version,
                           std::string resource, std::string name, std::string subresource,
                           std::string path) {
  RequestAttributes a;
  a.resource_request = true;
  a.verb = std::move(verb);
  a.namespace_name = std::move(ns);
  a.group = std::move(group);
  a.version = std::move(version);
  a.resource = std::move(resource);
  a.name = std::move(name);
  a.subresource = std::move(subresource);
  a.path = std::move(path);
  return a;
}

RequestAttributes NonResource(std::string path, std::string verb = "get") {
  RequestAttributes a;
  a.verb = std::move(verb);
  a.path = std::move(path);
  return a;
}

constexpr const char* kNsEvents = "/apis/eventbuffer.dev/v1alpha1/namespaces/b/events";

TEST(RequestInfoTest, NamespacedCollectionIsAList) {
  EXPECT_EQ(ParseRequestAttributes("GET", kNsEvents, ""),
            Resource("list", "b", "eventbuffer.dev", "v1alpha1", "events", "", "", kNsEvents));
  EXPECT_EQ(ParseRequestAttributes("HEAD", kNsEvents, "limit=5").verb, "list");
}

TEST(RequestInfoTest, WatchParameterMakesAWatch) {
  EXPECT_EQ(ParseRequestAttributes("GET", kNsEvents, "watch=true").verb, "watch");
  EXPECT_EQ(ParseRequestAttributes("GET", kNsEvents, "resourceVersion=5&watch=1").verb, "watch");
  EXPECT_EQ(ParseRequestAttributes("GET", kNsEvents, "watch=false").verb, "list");
  EXPECT_EQ(ParseRequestAttributes("GET", kNsEvents, "watch=0").verb, "list");
  // As the API server converts it: anything but 0 or false (any case) is a watch.
  EXPECT_EQ(ParseRequestAttributes("GET", kNsEvents, "watch=yes").verb, "watch");
  EXPECT_EQ(ParseRequestAttributes("GET", kNsEvents, "watch=").verb, "watch");
  EXPECT_EQ(ParseRequestAttributes("GET", kNsEvents, "watch=FALSE").verb, "list");
  EXPECT_EQ(ParseRequestAttributes("GET", kNsEvents, "watchx=true").verb, "list");
  // The first value counts, as Go's url.Values.Get.
  EXPECT_EQ(ParseRequestAttributes("GET", kNsEvents, "watch=true&watch=false").verb, "watch");
}

TEST(RequestInfoTest, NamedEventIsAGet) {
  const std::string path = std::string(kNsEvents) + "/e1";
  EXPECT_EQ(ParseRequestAttributes("GET", path, "watch=true"),
            Resource("get", "b", "eventbuffer.dev", "v1alpha1", "events", "e1", "", path));
}

TEST(RequestInfoTest, AllNamespacesListHasNoNamespace) {
  const std::string path = "/apis/eventbuffer.dev/v1alpha1/events";
  EXPECT_EQ(ParseRequestAttributes("GET", path, ""),
            Resource("list", "", "eventbuffer.dev", "v1alpha1", "events", "", "", path));
  EXPECT_EQ(ParseRequestAttributes("GET", path, "watch=true").verb, "watch");
}

TEST(RequestInfoTest, SubresourceAndClusterScopedName) {
  const std::string path = std::string(kNsEvents) + "/e1/status";
  EXPECT_EQ(ParseRequestAttributes("GET", path, ""),
            Resource("get", "b", "eventbuffer.dev", "v1alpha1", "events", "e1", "status", path));
  EXPECT_EQ(ParseRequestAttributes("GET", "/apis/g/v1/things/x", ""),
            Resource("get", "", "g", "v1", "things", "x", "", "/apis/g/v1/things/x"));
}

TEST(RequestInfoTest, NamespaceObjectItself) {
  EXPECT_EQ(ParseRequestAttributes("GET", "/api/v1/namespaces/b", ""),
            Resource("get", "b", "", "v1", "namespaces", "b", "", "/api/v1/namespaces/b"));
  EXPECT_EQ(ParseRequestAttributes("GET", "/api/v1/namespaces", ""),
            Resource("list", "", "", "v1", "namespaces", "", "", "/api/v1/namespaces"));
  EXPECT_EQ(
      ParseRequestAttributes("GET", "/api/v1/namespaces/b/status", ""),
      Resource("get", "b", "", "v1", "namespaces", "b", "status", "/api/v1/namespaces/b/status"));
}

TEST(RequestInfoTest, CoreGroupUnderApi) {
  EXPECT_EQ(ParseRequestAttributes("GET", "/api/v1/namespaces/x/pods", ""),
            Resource("list", "x", "", "v1", "pods", "", "", "/api/v1/namespaces/x/pods"));
}

TEST(RequestInfoTest, DiscoveryAndOtherPathsAreNonResource) {
  for (const char* path : {"/", "", "/apis", "/apis/", "/apis/eventbuffer.dev",
                           "/apis/eventbuffer.dev/v1alpha1", "/apis/eventbuffer.dev/v1alpha1/",
                           "/api", "/api/v1", "/metrics", "/openapi/v2", "/healthz", "/version"}) {
    EXPECT_EQ(ParseRequestAttributes("GET", path, ""), NonResource(path)) << path;
    EXPECT_EQ(ParseRequestAttributes("HEAD", path, "watch=true"), NonResource(path)) << path;
  }
}

TEST(RequestInfoTest, LegacyWatchPrefix) {
  const std::string path = "/apis/eventbuffer.dev/v1alpha1/watch/namespaces/b/events";
  EXPECT_EQ(ParseRequestAttributes("GET", path, ""),
            Resource("watch", "b", "eventbuffer.dev", "v1alpha1", "events", "", "", path));
}

TEST(RequestInfoTest, OtherMethodsMapToWriteVerbs) {
  EXPECT_EQ(ParseRequestAttributes("POST", kNsEvents, "").verb, "create");
  EXPECT_EQ(ParseRequestAttributes("DELETE", kNsEvents, "").verb, "deletecollection");
  EXPECT_EQ(ParseRequestAttributes("DELETE", std::string(kNsEvents) + "/e", "").verb, "delete");
  EXPECT_EQ(ParseRequestAttributes("PUT", std::string(kNsEvents) + "/e", "").verb, "update");
  EXPECT_EQ(ParseRequestAttributes("POST", "/metrics", ""), NonResource("/metrics", "post"));
}

TEST(RequestInfoTest, PathIsPercentDecodedBeforeSplitting) {
  // %61 is 'a': the same namespace the handler sees after decoding.
  const RequestAttributes a =
      ParseRequestAttributes("GET", "/apis/eventbuffer.dev/v1alpha1/namespaces/%61/events", "");
  EXPECT_EQ(a.namespace_name, "a");
  EXPECT_EQ(a.verb, "list");
  EXPECT_EQ(ParseRequestAttributes("GET", "/%6detrics", "").path, "/metrics");
  EXPECT_EQ(PercentDecode("a%2Fb%zz%4"), "a/b%zz%4");
}

TEST(RequestInfoTest, FieldSelectorDoesNotNarrowAList) {
  const RequestAttributes a =
      ParseRequestAttributes("GET", kNsEvents, "fieldSelector=metadata.name%3De1");
  EXPECT_EQ(a.verb, "list");
  EXPECT_EQ(a.name, "");
}

}  // namespace
}  // namespace eventbuffer::controller
