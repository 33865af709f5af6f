// Fuzzes the safetensors reader: whatever the bytes, parsing never crashes, and a file it
// accepts re-serializes to a file that parses to the same tensors and metadata, and that
// canonical file is a fixed point of serialize(parse(.)).
// fuzz-deps: idn_model idn_core
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "fuzz_check.h"
#include "model/safetensors.h"

using namespace idn;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto parsed = model::parse_safetensors(ByteView(data, size));
  if (!parsed.ok()) {
    CHECK(!parsed.status().message().empty());
    return 0;
  }
  auto bytes = model::serialize_safetensors(parsed->tensors, parsed->metadata);
  CHECK(bytes.ok());
  auto again = model::parse_safetensors(*bytes);
  CHECK(again.ok());
  CHECK(again->tensors == parsed->tensors);
  CHECK(again->metadata == parsed->metadata);
  auto canonical = model::serialize_safetensors(again->tensors, again->metadata);
  CHECK(canonical.ok() && *canonical == *bytes);
  return 0;
}
