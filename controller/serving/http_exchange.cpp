#include "controller/serving/http_exchange.h"

#include <strings.h>

namespace eventbuffer::controller {

namespace {

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace

std::optional<std::string_view> HttpRequest::Header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (EqualsIgnoreCase(n, name)) return std::string_view(v);
  }
  return std::nullopt;
}

std::vector<std::pair<std::string_view, std::string_view>> HttpRequest::HeadersWithPrefix(
    std::string_view prefix) const {
  std::vector<std::pair<std::string_view, std::string_view>> out;
  for (const auto& [n, v] : headers) {
    if (n.size() >= prefix.size() &&
        EqualsIgnoreCase(std::string_view(n).substr(0, prefix.size()), prefix)) {
      out.emplace_back(n, v);
    }
  }
  return out;
}

}  // namespace eventbuffer::controller
