// How the ledger file keeps receipts: one blob per peer and group commit holding a run of
// fixed-layout records (about 70 bytes each, against ~250 bytes and two B-tree inserts for a
// row per receipt). The peer is the row's; each record says which of the pair served, so
// server and signer are rebuilt from (self, peer). LedgerStore keeps the same compact records
// in memory. Pure functions: safe from any thread.
#pragma once

#include <memory>
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

// One receipt between self and a peer as the log (and memory) keeps it. `service` is never
// null; records of the same service may share it.
struct LogRecord {
  uint64_t request_id = 0, operations = 0, unix_ms = 0, sequence = 0;
  bool we_served = false;
  std::shared_ptr<const Bytes> service;
};

// The record of `h` between `self` and `peer`. InvalidArgument when the receipt is not between
// the two (server and signer, in either direction) or its service ID is over kLogMaxService.
Result<LogRecord> log_record_of(ByteView self, ByteView peer, const HeldReceipt& h);
// The inverse: the receipt with server and signer rebuilt (no signature).
HeldReceipt held_receipt_of(ByteView self, ByteView peer, const LogRecord& r);

// Appends the records' bytes to `out`. Each service must be at most kLogMaxService bytes.
void append_log_records(Bytes& out, std::span<const LogRecord> rs);
// The inverse. Corruption naming the offset when the blob is truncated or malformed.
// Consecutive records of the same service share it.
Result<std::vector<LogRecord>> decode_log_records(ByteView blob);

// The same for whole receipts between `self` and `peer` (errors as log_record_of).
Result<Bytes> encode_receipt_log(ByteView self, ByteView peer, std::span<const HeldReceipt> rs);
Result<std::vector<HeldReceipt>> decode_receipt_log(ByteView self, ByteView peer, ByteView blob);

}  // namespace idn::swap
