// Bitswap 1.2.0 wire message (boxo/bitswap message.proto): wantlist entries (want-block /
// want-have, cancel, sendDontHave), payload blocks with their CID prefix, and HAVE/DONT_HAVE
// presences. Hand-encoded (the schema is small and fixed) so store/ needs no protoc output.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "core/bytes.h"
#include "core/cid.h"
#include "core/status.h"

namespace idn::store::bitswap {

inline constexpr std::string_view kProtocol120 = "/ipfs/bitswap/1.2.0";
inline constexpr std::string_view kProtocol110 = "/ipfs/bitswap/1.1.0";

enum class WantType : uint64_t { kBlock = 0, kHave = 1 };
enum class PresenceType : uint64_t { kHave = 0, kDontHave = 1 };

struct WantEntry {
  core::Cid cid;
  int32_t priority = 1;
  bool cancel = false;
  WantType type = WantType::kBlock;
  bool send_dont_have = false;
};

struct Block {
  core::Cid cid;  // computed from prefix + data when decoding, so it always matches `data`
  Bytes data;
};

struct Presence {
  core::Cid cid;
  PresenceType type = PresenceType::kHave;
};

struct Message {
  std::vector<WantEntry> wants;
  bool full_wantlist = false;
  std::vector<Block> blocks;
  std::vector<Presence> presences;
  int32_t pending_bytes = 0;
  // Payload entries whose prefix was malformed or named an unknown hash: the sender broke
  // the protocol; counted, not returned as blocks.
  size_t bad_blocks = 0;

  bool empty() const { return wants.empty() && blocks.empty() && presences.empty(); }
};

// CID prefix: uvarint version, codec, multihash code, digest length.
Bytes cid_prefix(const core::Cid& cid);
// The CID a payload block has: the prefix's parameters applied to hash(data).
Result<core::Cid> cid_from_prefix(ByteView prefix, ByteView data);

Bytes encode(const Message& m);
// Errors: Corruption for malformed protobuf or CIDs. Blocks in the 1.0.0 `blocks` field are
// read as CIDv0 (sha2-256 dag-pb) as that version defines.
Result<Message> decode(ByteView bytes);

}  // namespace idn::store::bitswap
