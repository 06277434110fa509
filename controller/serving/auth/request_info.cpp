#include "controller/serving/auth/request_info.h"

#include <strings.h>

#include <cctype>
#include <vector>

namespace eventbuffer::controller {

namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string DecodeQueryComponent(std::string_view in) {
  std::string plus_as_space(in);
  for (char& c : plus_as_space) {
    if (c == '+') c = ' ';
  }
  return PercentDecode(plus_as_space);
}

// The first value of query parameter `key`, decoded; *found says whether it was there.
std::string QueryValue(std::string_view query, std::string_view key, bool* found) {
  *found = false;
  while (!query.empty()) {
    const std::size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    const std::size_t eq = pair.find('=');
    if (DecodeQueryComponent(pair.substr(0, eq)) != key) continue;
    *found = true;
    return eq == std::string_view::npos ? std::string() : DecodeQueryComponent(pair.substr(eq + 1));
  }
  return {};
}

// Go's strconv.ParseBool true values.

// Splits "/a/b/c/" into {"a","b","c"}: leading and trailing slashes trimmed, as k8s does.
std::vector<std::string> SplitPath(const std::string& path) {
  std::size_t begin = 0;
  std::size_t end = path.size();
  while (begin < end && path[begin] == '/') ++begin;
  while (end > begin && path[end - 1] == '/') --end;
  std::vector<std::string> parts;
  if (begin == end) return parts;
  std::size_t start = begin;
  for (std::size_t i = begin; i <= end; ++i) {
    if (i == end || path[i] == '/') {
      parts.emplace_back(path.substr(start, i - start));
      start = i + 1;
    }
  }
  return parts;
}

std::string Lower(std::string_view s) {
  std::string lower(s);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return lower;
}

std::string VerbForMethod(std::string_view method) {
  if (method == "GET" || method == "HEAD") return "get";
  if (method == "POST") return "create";
  if (method == "PUT") return "update";
  if (method == "PATCH") return "patch";
  if (method == "DELETE") return "delete";
  return Lower(method);
}

}  // namespace

std::string PercentDecode(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%' && i + 2 < in.size()) {
      const int hi = HexValue(in[i + 1]);
      const int lo = HexValue(in[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(in[i]);
  }
  return out;
}

RequestAttributes ParseRequestAttributes(std::string_view method, std::string_view path,
                                         std::string_view query) {
  RequestAttributes attrs;
  attrs.path = PercentDecode(path);
  const std::string method_verb = VerbForMethod(method);
  // Non-resource unless the path has the API shape below: the method lower-cased, as k8s,
  // except that HEAD is a get (a GET without the body).
  attrs.verb = method_verb == "get" ? "get" : Lower(method);

  std::vector<std::string> parts = SplitPath(attrs.path);
  std::size_t at = 0;
  if (parts.size() >= 3 && parts[0] == "apis") {
    attrs.group = parts[1];
    attrs.version = parts[2];
    at = 3;
  } else if (parts.size() >= 2 && parts[0] == "api") {
    attrs.version = parts[1];
    at = 2;
  } else {
    attrs.group.clear();
    return attrs;  // non-resource
  }
  // /apis/{group}/{version} and /api/{version} are discovery documents: non-resource.
  if (at == parts.size()) {
    attrs.group.clear();
    attrs.version.clear();
    return attrs;
  }
  attrs.resource_request = true;
  attrs.verb = method_verb;

  // Legacy /watch/ prefix: /apis/g/v/watch/namespaces/ns/events.
  if (parts[at] == "watch" && (method == "GET" || method == "HEAD")) {
    attrs.verb = "watch";
    ++at;
    if (at == parts.size()) {
      // "/apis/g/v/watch" names nothing: not a resource request.
      attrs = RequestAttributes{};
      attrs.path = PercentDecode(path);
      attrs.verb = "get";
      return attrs;
    }
  }

  std::vector<std::string> rest(parts.begin() + static_cast<std::ptrdiff_t>(at), parts.end());
  if (rest[0] == "namespaces" && rest.size() > 1) {
    attrs.namespace_name = rest[1];
    // A further step names a resource in the namespace, unless it is a subresource of the
    // namespace object itself (status, finalize).
    if (rest.size() > 2 && rest[2] != "status" && rest[2] != "finalize") {
      rest.erase(rest.begin(), rest.begin() + 2);
    }
  }
  attrs.resource = rest[0];
  if (rest.size() >= 2) attrs.name = rest[1];
  if (rest.size() >= 3) attrs.subresource = rest[2];

  if (attrs.name.empty()) {
    if (attrs.verb == "get") {
      bool found = false;
      const std::string watch = QueryValue(query, "watch", &found);
      attrs.verb = found && WatchRequested(watch) ? "watch" : "list";
    } else if (attrs.verb == "delete") {
      attrs.verb = "deletecollection";
    }
  }
  return attrs;
}

bool WatchRequested(std::string_view value) {
  return !(value == "0" || (value.size() == 5 && strncasecmp(value.data(), "false", 5) == 0));
}

}  // namespace eventbuffer::controller
