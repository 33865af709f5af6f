// IDN's signed DHT record: {kind, key, value, peer id, public key, sequence, expiry, signature}.
// OpenDHT moves opaque bytes; these envelopes make every peer-address, provider, relayed-provider
// and value record attributable to an Ed25519 node key and checkable by any reader. Pure
// functions; any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <string_view>
#include <vector>

#include "core/bytes.h"
#include "core/multiaddr.h"
#include "core/status.h"
#include "identity/keys.h"
#include "identity/peer_id.h"

namespace idn::routing {

using Clock = std::chrono::system_clock;

enum class RecordKind : uint8_t {
  kPeer = 1,      // key = peer ID bytes; value = the peer's multiaddrs; only that peer signs it
  kProvider = 2,  // key = service/content multihash; value = the provider's multiaddrs
  kValue = 3,     // key = multihash; value = small metadata bytes
  // key = service multihash; value = the peers the signer (a relay) holds reservations for
  // that announced the service, each with its circuit addresses through the signer
  // (encode_relayed). Not kProvider: a signer has one record per (kind, key), and a relay may
  // provide the service itself as well; and a kProvider record names its signer as provider.
  kRelayed = 4,
};
std::string_view record_kind_name(RecordKind k);

struct Record {
  RecordKind kind = RecordKind::kValue;
  Bytes key;
  Bytes value;
  Bytes peer_id;     // multihash bytes of the signer's peer ID
  Bytes public_key;  // libp2p protobuf PublicKey of the signer
  uint64_t seq = 0;  // strictly increasing per (kind, key, signer); a newer record replaces
  int64_t expires_unix_ms = 0;
  bool withdrawn = false;  // tombstone: the signer no longer provides / publishes this
  Bytes signature;         // Ed25519 over signing_bytes()

  // The domain-separated bytes the signature covers (everything except the signature).
  Bytes signing_bytes() const;
  Clock::time_point expires_at() const {
    return Clock::time_point(std::chrono::milliseconds(expires_unix_ms));
  }
};

// Builds and signs a record. Errors: InvalidArgument for oversized keys/values.
Result<Record> sign_record(const identity::KeyPair& key, RecordKind kind, ByteView record_key,
                           ByteView value, uint64_t seq, Clock::time_point expires,
                           bool withdrawn = false);

Bytes encode_record(const Record& r);
// Parses a record; total on any input. Errors: Corruption naming the bad field.
Result<Record> decode_record(ByteView bytes);

// One entry of a kRelayed record: a peer reachable through the signer's circuit relay.
struct RelayedPeer {
  identity::PeerId id;
  std::vector<core::Multiaddr> addrs;  // each .../p2p/RELAY/p2p-circuit[/p2p/id]
  friend bool operator==(const RelayedPeer&, const RelayedPeer&) = default;
};
// The value of a kRelayed record: count, then per peer its ID bytes and its addresses, each
// stored without a final /p2p/<that peer>, which decode_relayed appends to every address that
// does not end in a /p2p (so readers get dialable .../p2p-circuit/p2p/<peer> addresses).
// Errors: InvalidArgument over defaults::kMaxRelayedPeers peers, kMaxRelayedAddrs addresses
// per peer, no address, or a value larger than defaults::kMaxValueSize.
Result<Bytes> encode_relayed(const std::vector<RelayedPeer>& peers);
// Parses a kRelayed value; total on any input. Errors: Corruption (including over the bounds).
Result<std::vector<RelayedPeer>> decode_relayed(ByteView value);
// Whether `relay` may claim these peers: none is the relay itself, and every address is a
// circuit through the relay (one /p2p-circuit, right after /p2p/RELAY, with a transport before
// it, followed by nothing or /p2p/<that peer>). Errors: PeerMisbehaved naming the entry.
Status check_relayed(const identity::PeerId& relay, const std::vector<RelayedPeer>& peers);

enum class Verdict {
  kValid,
  kMalformed,  // does not parse
  kForged,     // public key does not match the peer ID, or the signature does not verify
               // (a tampered record lands here too), or it names another key than asked
  kExpired,
  kReplayed,  // older sequence than one already seen for the same key and signer
};
std::string_view verdict_name(Verdict v);

// Checks what a record says about itself: the key hashes to the peer ID and signs the record,
// it is not expired at `now`, and its expiry is not implausibly far ahead (max_lifetime).
// Replay is checked by the caller, which remembers sequences.
Verdict verify_record(const Record& r, Clock::time_point now, Clock::duration max_lifetime);

}  // namespace idn::routing
