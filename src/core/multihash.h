// Multihash: a self-describing digest, varint(hash code) || varint(digest length) || digest.
// Node IDs, CIDs and service IDs are multihashes; the hash functions run on OpenSSL's EVP.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "core/bytes.h"
#include "core/multibase.h"
#include "core/status.h"

namespace idn::core {

// Multicodec codes of the hash functions IDN computes (from the multiformats table).
enum class HashCode : uint64_t {
  kIdentity = 0x00,  // the "digest" is the data itself (short libp2p public keys)
  kSha2_256 = 0x12,
  kSha2_512 = 0x13,
  kSha3_256 = 0x16,
};

// Plain digests, for code that needs the bytes rather than a multihash.
std::array<uint8_t, 32> sha256(ByteView data);
std::array<uint8_t, 32> sha3_256(ByteView data);
std::array<uint8_t, 64> sha512(ByteView data);

// Largest digest we accept when parsing; identity multihashes carry data, so bound them.
inline constexpr size_t kMaxMultihashDigest = 4096;

class Multihash {
 public:
  // Hashes `data` with `code`. Errors: Unsupported for a code we cannot compute, LimitExceeded
  // for identity data above kMaxMultihashDigest.
  static Result<Multihash> compute(HashCode code, ByteView data);
  static Multihash sha2_256(ByteView data);
  static Multihash identity(ByteView data);  // Precondition: data.size() <= kMaxMultihashDigest.

  // Wraps an existing digest. For the hash functions we know, the digest must be the function's
  // full output (we refuse truncated digests: a short one would verify too much).
  static Result<Multihash> wrap(uint64_t code, ByteView digest);

  // Parses a multihash that spans all of `bytes`.
  static Result<Multihash> from_bytes(ByteView bytes);
  // Parses a multihash at the front of `in` (inside a CID or multiaddr); sets `consumed`.
  static Result<Multihash> read_prefix(ByteView in, size_t& consumed);
  // Accepts bare base58btc (the usual "Qm..." form, tried first) or a multibase string.
  static Result<Multihash> parse(std::string_view text);

  uint64_t code() const { return code_; }
  ByteView digest() const { return ByteView(bytes_).subspan(digest_offset_); }
  const Bytes& bytes() const { return bytes_; }

  std::string to_base58() const;                // bare base58btc, no prefix
  std::string to_string(Multibase base) const;  // multibase text
  std::string to_hex() const { return hex_encode(bytes_); }

  // True when `data` hashes to this multihash.
  // False for hash functions we cannot compute.
  bool matches(ByteView data) const;

  friend bool operator==(const Multihash& a, const Multihash& b) { return a.bytes_ == b.bytes_; }
  friend auto operator<=>(const Multihash& a, const Multihash& b) { return a.bytes_ <=> b.bytes_; }

 private:
  Multihash(uint64_t code, size_t digest_offset, Bytes bytes)
      : code_(code), digest_offset_(digest_offset), bytes_(std::move(bytes)) {}

  uint64_t code_ = 0;
  size_t digest_offset_ = 0;
  Bytes bytes_;
};

// Name of a hash code for messages ("sha2-256"), or "0x.." for unknown codes.
std::string hash_code_name(uint64_t code);

}  // namespace idn::core

template <>
struct std::hash<idn::core::Multihash> {
  size_t operator()(const idn::core::Multihash& m) const noexcept {
    return std::hash<std::string_view>{}(
        std::string_view(reinterpret_cast<const char*>(m.bytes().data()), m.bytes().size()));
  }
};
