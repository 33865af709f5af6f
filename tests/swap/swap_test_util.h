// What the swap tests share: deterministic node identities and their peer IDs' bytes (the
// ledger member IDs). Header-only; any thread.
#pragma once

#include <cstdint>

#include "core/bytes.h"
#include "identity/keys.h"
#include "identity/peer_id.h"

namespace idn::swap::testing {

// The Ed25519 identity whose 32-byte seed is `seed` repeated: the same key in every run.
inline identity::KeyPair key(uint8_t seed) {
  Bytes s(32, seed);
  return *identity::KeyPair::from_seed(s);
}

// The node ID bytes (peer ID multihash) of `k`, as ledgers and receipts name nodes.
inline Bytes id_of(const identity::KeyPair& k) {
  return identity::PeerId::from_public_key(k.public_key()).bytes();
}

}  // namespace idn::swap::testing
