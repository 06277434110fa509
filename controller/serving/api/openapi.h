// The OpenAPI documents of the eventbuffer.dev/v1alpha1 API, so that `kubectl explain
// events.eventbuffer.dev` works and the API server's OpenAPI aggregation finds a schema
// for this APIService (as it does for metrics-server's):
//   /openapi/v2                                   OpenApiV2Json() (Swagger 2.0)
//   /openapi/v3                                   OpenApiV3RootJson(): the group-version's
//                                                 serverRelativeURL, with a content hash
//   /openapi/v3/apis/eventbuffer.dev/v1alpha1     OpenApiV3GroupVersionJson() (OpenAPI 3.0)
// Both describe the same schemas (Event, EventList and the metadata and references they
// carry, named dev.eventbuffer.v1alpha1.*) and the three read operations. JSON only (the
// API server's aggregator asks for JSON; kubectl reads v3 as JSON): a client that accepts
// only the protobuf form gets 406. (kubectl's v2 client reads protobuf only, so
// `kubectl explain --output=plaintext-openapiv2` works through the API server, not against
// this port directly.)
//
// Thread safety: each document is built once, on first use (a function-local static).
#pragma once

#include <string>

namespace eventbuffer::controller {

const std::string& OpenApiV2Json();
const std::string& OpenApiV3RootJson();
const std::string& OpenApiV3GroupVersionJson();

}  // namespace eventbuffer::controller
