// Fuzzes IDN's signed DHT record codec (routing/record.h) and the relayed-provider value inside
// it: never a crash; an accepted record re-encodes to bytes that decode to the same record; an
// accepted relayed value re-encodes (when within the bounds) to one that decodes the same.
// fuzz-deps: idn_routing idn_identity idn_core
#include <cstddef>
#include <cstdint>

#include "fuzz_check.h"
#include "routing/record.h"

using namespace idn;
using namespace idn::routing;

namespace {

void relayed(ByteView value, const Bytes& signer) {
  auto peers = decode_relayed(value);
  if (!peers.ok()) return;
  if (auto relay = identity::PeerId::from_bytes(signer); relay.ok())
    (void)check_relayed(*relay, *peers);
  auto enc = encode_relayed(*peers);
  if (!enc.ok()) return;  // decoding appended /p2p/<peer> tails: may no longer fit
  auto again = decode_relayed(*enc);
  CHECK(again.ok());
  CHECK(*again == *peers);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const ByteView in(data, size);
  relayed(in, {});
  auto r = decode_record(in);
  if (!r.ok()) return 0;
  auto again = decode_record(encode_record(*r));
  CHECK(again.ok());
  CHECK(again->kind == r->kind && again->key == r->key && again->value == r->value);
  CHECK(again->peer_id == r->peer_id && again->public_key == r->public_key);
  CHECK(again->seq == r->seq && again->expires_unix_ms == r->expires_unix_ms);
  CHECK(again->withdrawn == r->withdrawn && again->signature == r->signature);
  (void)verify_record(*r, Clock::time_point(std::chrono::seconds(1'800'000'000)),
                      std::chrono::hours(2));
  if (r->kind == RecordKind::kRelayed) relayed(r->value, r->peer_id);
  return 0;
}
