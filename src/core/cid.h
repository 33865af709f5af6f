// Content identifiers (CID): the address of a block in IDN's content store and in IPFS.
// CIDv1 = varint(1) || varint(codec) || multihash; CIDv0 is a bare sha2-256 dag-pb multihash
// written in base58btc ("Qm..."), read for compatibility and upgraded with to_v1().
#pragma once

#include <compare>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "core/bytes.h"
#include "core/multibase.h"
#include "core/multihash.h"
#include "core/status.h"

namespace idn::core {

// Multicodec content types IDN uses (multicodec table).
enum class Multicodec : uint64_t {
  kRaw = 0x55,    // plain bytes (UnixFS raw leaves, model weights chunks)
  kDagPb = 0x70,  // UnixFS protobuf nodes (files, directories)
  kDagCbor = 0x71,
  kLibp2pKey = 0x72,  // a peer ID in CID form
};

std::string multicodec_name(uint64_t codec);

class Cid {
 public:
  static Cid v1(uint64_t codec, Multihash hash);
  static Cid v1(Multicodec codec, Multihash hash) { return v1(uint64_t(codec), std::move(hash)); }
  // CIDv0 exists only for sha2-256 dag-pb. Errors: InvalidArgument for any other multihash.
  static Result<Cid> v0(Multihash hash);
  // CIDv1 of `data` hashed with sha2-256 (the IPFS default).
  static Cid of(Multicodec codec, ByteView data);

  // Binary form spanning all of `bytes` (34-byte 0x12 0x20 ... is CIDv0).
  // Errors: Corruption (malformed), Unsupported (CID versions other than 0 and 1).
  static Result<Cid> from_bytes(ByteView bytes);
  // Binary CID at the front of `in` (dag-pb links, bitswap messages); sets `consumed`.
  static Result<Cid> read_prefix(ByteView in, size_t& consumed);
  // Text form: 46-char "Qm..." is CIDv0, anything else a multibase CIDv1.
  // Errors: InvalidArgument.
  static Result<Cid> parse(std::string_view text);

  int version() const { return version_; }
  uint64_t codec() const { return codec_; }
  const Multihash& hash() const { return hash_; }

  Bytes to_bytes() const;
  // CIDv0: base58btc; CIDv1: base32 lower ("bafy...", "bafk...").
  std::string to_string() const;
  // CIDv1 text in the given base (a CIDv0 is first upgraded to v1).
  std::string to_string(Multibase base) const;
  Cid to_v1() const { return v1(codec_, hash_); }

  // True when `data` is the block this CID names (its multihash verifies).
  bool verifies(ByteView data) const { return hash_.matches(data); }

  friend bool operator==(const Cid& a, const Cid& b) {
    return a.version_ == b.version_ && a.codec_ == b.codec_ && a.hash_ == b.hash_;
  }
  friend auto operator<=>(const Cid& a, const Cid& b) { return a.to_bytes() <=> b.to_bytes(); }

 private:
  Cid(int version, uint64_t codec, Multihash hash)
      : version_(version), codec_(codec), hash_(std::move(hash)) {}

  int version_;
  uint64_t codec_;
  Multihash hash_;
};

}  // namespace idn::core

template <>
struct std::hash<idn::core::Cid> {
  size_t operator()(const idn::core::Cid& c) const noexcept {
    return std::hash<idn::core::Multihash>{}(c.hash()) ^ (c.codec() * 0x9e3779b97f4a7c15ULL) ^
           size_t(c.version());
  }
};
