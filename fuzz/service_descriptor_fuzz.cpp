// Fuzzes service descriptor parsing (§7.4; descriptors arrive from peers and the DHT): whatever
// the text, it never crashes; an accepted descriptor has a canonical form that parses back to
// the same descriptor and the same service ID, and that form matches that ID.
// fuzz-deps: idn_ise idn_model idn_core
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_check.h"
#include "ise/service_descriptor.h"

using namespace idn;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto d = ise::parse_descriptor(text);
  if (!d.ok()) {
    CHECK(!d.status().message().empty());
    return 0;
  }
  auto canonical = ise::canonical_json(*d);
  CHECK(canonical.ok());
  auto again = ise::parse_descriptor(*canonical);
  CHECK(again.ok());
  CHECK(*again == *d);
  auto id = ise::service_id(*d);
  CHECK(id.ok());
  CHECK(ise::matches_service_id(*canonical, *id));
  auto id_again = ise::service_id(*again);
  CHECK(id_again.ok() && *id_again == *id);
  // Accepted text that is not canonical does not match the ID (only the canonical bytes do).
  if (text != *canonical) CHECK(!ise::matches_service_id(text, *id));
  return 0;
}
