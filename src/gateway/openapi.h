// The OpenAPI 3 description of the HTTP gateway: docs/openapi.json, built into the binary (the
// node serves it at /idn/v1/openapi.json). Thread-safe.
#pragma once

#include <string_view>

namespace idn::gateway {

std::string_view openapi_json();

}  // namespace idn::gateway
