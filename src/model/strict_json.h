// JSON parsing for untrusted files (model.json, safetensors headers): nlohmann silently keeps
// the last of duplicate keys and recurses when copying or printing deep values, so both are
// refused here before anyone looks at the document.
#pragma once

#include <string_view>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace idn::model {

// Corruption on invalid JSON (with the parser's position), on an object with a repeated key
// (naming it), or on nesting deeper than max_depth arrays/objects.
Result<nlohmann::json> parse_json_strict(std::string_view text, int max_depth);

}  // namespace idn::model
