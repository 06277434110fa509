// Query strings and path segments of requests to the eventbuffer.dev API, decoded the way
// Go's net/url decodes them for the Kubernetes API server: '&'-separated name=value pairs,
// %XX escapes, and '+' as a space in the query (not in the path).
//
// Thread safety: plain values and pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace eventbuffer::controller {

class QueryParams {
 public:
  // Parses a raw query (without '?'). Returns nullopt on a bad %XX escape, the one error a
  // query can have (an empty pair or a name without '=' is allowed, as in Go).
  static std::optional<QueryParams> Parse(std::string_view query);

  // The first value of `name`, or nullopt when absent ("" when given without a value).
  std::optional<std::string_view> Get(std::string_view name) const;

  const std::vector<std::pair<std::string, std::string>>& pairs() const { return pairs_; }

 private:
  std::vector<std::pair<std::string, std::string>> pairs_;
};

// Decodes %XX escapes (and '+' as a space when `plus_is_space`) into *out. Returns false on
// a truncated or non-hex escape.
bool PercentDecode(std::string_view in, bool plus_is_space, std::string* out);

// Splits an absolute path on '/' and percent-decodes each segment ("/a/b" -> {"a","b"};
// empty segments are kept: "/a//b" -> {"a","","b"}). Returns nullopt when the path does not
// start with '/' or a segment has a bad escape.
std::optional<std::vector<std::string>> SplitPath(std::string_view path);

}  // namespace eventbuffer::controller
