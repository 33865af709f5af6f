// How the ledger file keeps receipts: one blob per peer and group commit holding a run of
// fixed-layout records (about 70 bytes each, against ~250 bytes and two B-tree inserts for a
// row per receipt). The peer is the row's; each record says which of the pair served, so
// server and signer are rebuilt from (self, peer). Pure functions: safe from any thread.
#pragma once

#include <span>
#include <vector>

#include "core/bytes.h"
#include "core/status.h"
#include "swap/ledger.h"

namespace idn::swap {

// Record layout (little-endian): u8 version/flags (bit 0: self served), u64 request_id,
// u64 operations, u64 unix_ms, u64 sequence, u8 service length, service bytes.
inline constexpr uint8_t kLogWeServed = 0x01;
inline constexpr size_t kLogMaxService = 255;

// Encodes receipts between `self` and `peer` (each must be: server and signer the two, in
// either direction; service IDs up to kLogMaxService bytes). InvalidArgument otherwise.
Result<Bytes> encode_receipt_log(ByteView self, ByteView peer, std::span<const HeldReceipt> rs);
// The inverse. Corruption naming the offset when the blob is truncated or malformed.
Result<std::vector<HeldReceipt>> decode_receipt_log(ByteView self, ByteView peer, ByteView blob);

}  // namespace idn::swap
