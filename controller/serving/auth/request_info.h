// RequestAttributes: what a request asks to do, in the terms of Kubernetes authorization
// (k8s.io/apiserver's RequestInfo), parsed from method, path and query alone.
//
//   /apis/{group}/{version}[/namespaces/{ns}]/{resource}[/{name}[/{subresource}]]
//   /api/{version}[/namespaces/{ns}]/{resource}[/{name}[/{subresource}]]   (group "")
// is a resource request; anything else (/apis, /apis/{group}, /apis/{group}/{version},
// /metrics, /openapi/v2, /healthz, ...) is a non-resource request for its path.
//
// Verbs: GET and HEAD map to `get`, or to `list` on a collection (no name), or to `watch`
// on a collection when the query has watch=<true> (Go's ParseBool: 1, t, T, TRUE, true,
// True). The legacy prefix /apis/{group}/{version}/watch/... also gives `watch`. POST →
// create, PUT → update, PATCH → patch, DELETE → delete (deletecollection without a name).
// A non-resource request's verb is `get` for GET and HEAD, else the method lower-cased.
//
// The path is percent-decoded before it is split (as Go's URL.Path is), so the handler
// that serves the request must read the path the same way.
//
// Unlike k8s, a `fieldSelector=metadata.name=X` on a list does NOT narrow the request to
// the name X: the read API does not filter by it, so narrowing would let a user allowed
// to get one event list them all.
#pragma once

#include <string>
#include <string_view>

namespace eventbuffer::controller {

struct RequestAttributes {
  bool resource_request = false;
  std::string verb;  // get, list, watch, create, ...
  // Resource requests only.
  std::string namespace_name;  // "" = cluster scope (or all namespaces for a list)
  std::string group;           // "" = core
  std::string version;
  std::string resource;
  std::string subresource;
  std::string name;
  // Non-resource requests: the percent-decoded path. Resource requests: the same, for logs.
  std::string path;

  friend bool operator==(const RequestAttributes&, const RequestAttributes&) = default;
};

// Parses a request. `path` and `query` are as sent (not percent-decoded).
RequestAttributes ParseRequestAttributes(std::string_view method, std::string_view path,
                                         std::string_view query);

// Whether a present `watch` query parameter asks for a watch, as the API server reads it:
// anything but "0" or "false" (in any case), also "" and "yes". The API that serves the
// request reads it with this too, so it answers the verb that was authorized.
bool WatchRequested(std::string_view value);

// Percent-decodes `in` ("%2F" → "/"). A '%' not followed by two hex digits stays as is.
// '+' is not a space here (paths); see DecodeQueryComponent for query values.
std::string PercentDecode(std::string_view in);

}  // namespace eventbuffer::controller
