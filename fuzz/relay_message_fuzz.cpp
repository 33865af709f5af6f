// Fuzzes the circuit relay v2 codec (p2p/relay.h): never a crash, and every accepted hop or stop
// message re-encodes to bytes that decode to the same message.
// fuzz-deps: idn_p2p idn_identity idn_core
#include <cstddef>
#include <cstdint>

#include "fuzz_check.h"
#include "p2p/relay.h"

using namespace idn;
using namespace idn::p2p::relay;

namespace {
bool same_peer(const std::optional<RelayPeer>& a, const std::optional<RelayPeer>& b) {
  if (a.has_value() != b.has_value()) return false;
  return !a || (a->id == b->id && a->addrs == b->addrs);
}
bool same_limit(const std::optional<Limit>& a, const std::optional<Limit>& b) {
  if (a.has_value() != b.has_value()) return false;
  return !a || (a->duration == b->duration && a->data == b->data);
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const ByteView in(data, size);
  if (auto m = decode_hop(in); m.ok()) {
    auto again = decode_hop(encode_hop(*m));
    CHECK(again.ok());
    CHECK(again->type == m->type && again->status == m->status);
    CHECK(same_peer(again->peer, m->peer) && same_limit(again->limit, m->limit));
    CHECK(again->reservation.has_value() == m->reservation.has_value());
    if (m->reservation) {
      CHECK(again->reservation->expire == m->reservation->expire);
      CHECK(again->reservation->addrs == m->reservation->addrs);
      CHECK(again->reservation->voucher == m->reservation->voucher);
    }
  }
  if (auto m = decode_stop(in); m.ok()) {
    auto again = decode_stop(encode_stop(*m));
    CHECK(again.ok());
    CHECK(again->type == m->type && again->status == m->status);
    CHECK(same_peer(again->peer, m->peer) && same_limit(again->limit, m->limit));
  }
  return 0;
}
