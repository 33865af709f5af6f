// Fuzzes model.json parsing and validation: whatever the text, it never crashes, and an
// accepted spec prints (to_json_text) to a document that parses back to the same JSON, with the
// same weights required.
// fuzz-deps: idn_model idn_core
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "fuzz_check.h"
#include "model/model_spec.h"

using namespace idn;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto spec = model::parse_model_spec_text(text);
  if (!spec.ok()) {
    CHECK(!spec.status().message().empty());
    return 0;
  }
  const std::string printed = model::to_json_text(*spec);
  auto again = model::parse_model_spec_text(printed);
  CHECK(again.ok());
  CHECK(model::to_json_text(*again) == printed);
  const auto weights = spec->required_weights();
  const auto weights_again = again->required_weights();
  CHECK(weights.size() == weights_again.size());
  for (size_t i = 0; i < weights.size(); ++i)
    CHECK(weights[i].name == weights_again[i].name && weights[i].shape == weights_again[i].shape);
  CHECK(spec->num_classes() > 0);
  return 0;
}
