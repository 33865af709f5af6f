// Fuzzes the kad-dht bridge's message codec (routing/kad_bridge.h): never a crash, and every
// accepted message re-encodes to bytes that decode to the same message.
// fuzz-deps: idn_routing idn_p2p idn_identity idn_core
#include <cstddef>
#include <cstdint>

#include "fuzz_check.h"
#include "routing/kad_bridge.h"

using namespace idn;
using namespace idn::routing;

namespace {
bool same_peers(const std::vector<KadPeer>& a, const std::vector<KadPeer>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].id != b[i].id || a[i].addrs != b[i].addrs || a[i].connection != b[i].connection)
      return false;
  return true;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto m = decode_kad_message(ByteView(data, size));
  if (!m.ok()) return 0;
  auto again = decode_kad_message(encode_kad_message(*m));
  CHECK(again.ok());
  CHECK(again->type == m->type && again->key == m->key && again->record == m->record);
  CHECK(again->cluster_level == m->cluster_level);
  CHECK(same_peers(again->closer, m->closer) && same_peers(again->providers, m->providers));
  return 0;
}
