// The libp2p identify message (/ipfs/id/1.0.0 and /ipfs/id/push/1.0.0): what a peer tells
// another about itself on every connection — its public key, listen addresses, the address it
// sees the other at, and the protocols it serves.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/bytes.h"
#include "core/multiaddr.h"
#include "core/status.h"

namespace idn::p2p {

inline constexpr std::string_view kIdentifyProtocolId = "/ipfs/id/1.0.0";
inline constexpr std::string_view kIdentifyPushProtocolId = "/ipfs/id/push/1.0.0";

// message Identify { protocolVersion = 5; agentVersion = 6; publicKey = 1; listenAddrs = 2;
//                    observedAddr = 4; protocols = 3; signedPeerRecord = 8; }
struct IdentifyInfo {
  std::string protocol_version;
  std::string agent_version;
  Bytes public_key;  // serialized libp2p PublicKey
  std::vector<core::Multiaddr> listen_addrs;
  std::optional<core::Multiaddr> observed_addr;
  std::vector<std::string> protocols;
  Bytes signed_peer_record;  // kept opaque (not verified); empty when absent
};

Bytes encode_identify(const IdentifyInfo& info);
// Addresses we cannot parse (protocols we do not know) are skipped, not errors: a newer peer
// may advertise transports we do not speak. Errors: Corruption for malformed protobuf.
Result<IdentifyInfo> decode_identify(ByteView bytes);

}  // namespace idn::p2p
