#include "controller/serving/auth/delegated_auth_options.h"

#include <simdjson.h>
#include <spdlog/spdlog.h>

namespace eventbuffer::controller {

namespace {

// Parses a JSON array of strings ("[\"a\",\"b\"]"), as the ConfigMap stores its lists.
bool ParseStringArray(std::string_view text, std::vector<std::string>* out) {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(simdjson::padded_string(text)).get(root) != simdjson::SUCCESS) return false;
  simdjson::dom::array array;
  if (root.get(array) != simdjson::SUCCESS) return false;
  std::vector<std::string> values;
  for (simdjson::dom::element item : array) {
    std::string_view s;
    if (item.get(s) != simdjson::SUCCESS) return false;
    values.emplace_back(s);
  }
  *out = std::move(values);
  return true;
}

}  // namespace

bool ApplyAuthenticationConfigMap(const std::string& body, DelegatedAuthOptions* options,
                                  std::vector<std::string>* filled, std::string* error) {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(simdjson::padded_string(body)).get(root) != simdjson::SUCCESS) {
    *error = "ConfigMap is not JSON";
    return false;
  }
  simdjson::dom::object data;
  if (root["data"].get(data) != simdjson::SUCCESS) {
    *error = "ConfigMap has no data";
    return false;
  }
  auto text = [&data](const char* key, std::string* out) {
    std::string_view v;
    if (data[key].get(v) != simdjson::SUCCESS) return false;
    *out = std::string(v);
    return true;
  };

  DelegatedAuthOptions result = *options;
  std::vector<std::string> names;
  std::string value;
  if (result.client_ca_file.empty() && text("client-ca-file", &value) && !value.empty()) {
    result.client_ca_pem = value;
    names.emplace_back("client-ca-file");
  }
  if (result.requestheader_client_ca_file.empty() && text("requestheader-client-ca-file", &value) &&
      !value.empty()) {
    result.requestheader_client_ca_pem = value;
    names.emplace_back("requestheader-client-ca-file");
    struct ListKey {
      const char* key;
      std::vector<std::string>* field;
    };
    const ListKey lists[] = {
        {"requestheader-allowed-names", &result.requestheader_allowed_names},
        {"requestheader-username-headers", &result.requestheader_username_headers},
        {"requestheader-group-headers", &result.requestheader_group_headers},
        {"requestheader-extra-headers-prefix", &result.requestheader_extra_headers_prefix},
    };
    for (const ListKey& list : lists) {
      if (!list.field->empty() || !text(list.key, &value)) continue;
      if (!ParseStringArray(value, list.field)) {
        *error = std::string("ConfigMap key ") + list.key + " is not a JSON array of strings";
        return false;
      }
      names.emplace_back(list.key);
    }
  }
  *options = std::move(result);
  *filled = std::move(names);
  return true;
}

ConfigMapLoadResult LoadAuthenticationConfigMap(ReviewClient* client,
                                                DelegatedAuthOptions* options) {
  ConfigMapLoadResult result;
  const ReviewResponse response = client->Get(kAuthenticationConfigMapPath);
  if (response.http_status == 200) {
    std::string error;
    if (ApplyAuthenticationConfigMap(response.body, options, &result.filled, &error)) {
      result.loaded = true;
      spdlog::info("delegated auth: read kube-system/extension-apiserver-authentication ({} keys)",
                   result.filled.size());
      return result;
    }
    result.message = error;
  } else if (response.http_status == 404) {
    result.message = "ConfigMap kube-system/extension-apiserver-authentication not found";
  } else if (response.http_status == 401 || response.http_status == 403) {
    result.message =
        "no permission to read ConfigMap kube-system/extension-apiserver-authentication "
        "(bind the Role extension-apiserver-authentication-reader)";
  } else if (response.http_status == 0) {
    result.message = "cannot reach the API server: " + response.error;
  } else {
    result.message = "reading ConfigMap kube-system/extension-apiserver-authentication: HTTP " +
                     std::to_string(response.http_status);
  }
  spdlog::warn(
      "delegated auth: {}; client certificate and front-proxy authentication use only the "
      "flags",
      result.message);
  return result;
}

}  // namespace eventbuffer::controller
