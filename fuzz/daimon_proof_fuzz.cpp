// Fuzzes DaiMoN's proof and verification JSON readers: whatever the text, they never crash; an
// accepted record prints back (to_json) to one that reads the same, with the same signed bytes,
// and checking its signature is an answer, not a crash.
// fuzz-deps: idn_daimon idn_identity idn_core
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include <nlohmann/json.hpp>

#include "daimon/proof.h"
#include "fuzz_check.h"

using namespace idn;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto j = nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return 0;
  if (auto p = daimon::proof_from_json(j); p.ok()) {
    auto again = daimon::proof_from_json(nlohmann::json::parse(daimon::to_json(*p).dump()));
    CHECK(again.ok());
    CHECK(daimon::signed_bytes(*again) == daimon::signed_bytes(*p));
    CHECK(again->signature == p->signature);
    (void)daimon::check_signature(*p);
  } else {
    CHECK(!p.status().message().empty());
  }
  if (auto v = daimon::verification_from_json(j); v.ok()) {
    auto again = daimon::verification_from_json(nlohmann::json::parse(daimon::to_json(*v).dump()));
    CHECK(again.ok());
    CHECK(daimon::signed_bytes(*again) == daimon::signed_bytes(*v));
    (void)daimon::check_signature(*v);
  }
  return 0;
}
