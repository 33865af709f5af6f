// Ed25519 node keys (OpenSSL 3 EVP) and their libp2p protobuf encodings, which peer IDs are
// derived from and which the Noise handshake carries. Both classes are immutable values, safe
// to share between threads.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <memory>

#include "core/bytes.h"
#include "core/status.h"

typedef struct evp_pkey_st EVP_PKEY;

namespace idn::identity {

// libp2p's KeyType enum (peer-id spec). IDN creates only Ed25519 keys.
enum class KeyType : uint8_t { kRSA = 0, kEd25519 = 1, kSecp256k1 = 2, kECDSA = 3 };

inline constexpr size_t kEd25519PublicKeySize = 32;
inline constexpr size_t kEd25519SeedSize = 32;
inline constexpr size_t kEd25519SignatureSize = 64;

class PublicKey {
 public:
  // From the 32 raw key bytes. Errors: InvalidArgument on wrong length or an unusable point.
  static Result<PublicKey> from_raw(ByteView raw);
  // From a serialized libp2p `PublicKey{Type, Data}` message. Only the canonical encoding is
  // accepted (fields in order, each once, no unknown fields): the peer ID is the hash of these
  // exact bytes, so a second encoding of one key would give a second peer ID.
  // Errors: Corruption (malformed), Unsupported (a key type other than Ed25519).
  static Result<PublicKey> from_protobuf(ByteView bytes);

  const std::array<uint8_t, kEd25519PublicKeySize>& raw() const { return raw_; }
  KeyType type() const { return KeyType::kEd25519; }
  // 0x08 0x01 0x12 0x20 || raw: exactly 36 bytes.
  Bytes to_protobuf() const;

  // RFC 8032 Ed25519 verification; false for any malformed signature.
  bool verify(ByteView message, ByteView signature) const;

  friend bool operator==(const PublicKey& a, const PublicKey& b) { return a.raw_ == b.raw_; }

 private:
  PublicKey(std::array<uint8_t, kEd25519PublicKeySize> raw, std::shared_ptr<EVP_PKEY> pkey)
      : raw_(raw), pkey_(std::move(pkey)) {}

  std::array<uint8_t, kEd25519PublicKeySize> raw_;
  std::shared_ptr<EVP_PKEY> pkey_;
};

class KeyPair {
 public:
  // A fresh key from OpenSSL's CSPRNG.
  static Result<KeyPair> generate();
  // Deterministic key from a 32-byte RFC 8032 private seed.
  static Result<KeyPair> from_seed(ByteView seed);
  // From a serialized libp2p `PrivateKey` message (Ed25519: seed || public, 64 bytes; the older
  // 96-byte form with the public key twice is accepted when both copies agree).
  static Result<KeyPair> from_protobuf(ByteView bytes);
  // Adopts an OpenSSL key (used by the keystore). Errors: Unsupported for non-Ed25519 keys.
  static Result<KeyPair> from_evp(EVP_PKEY* pkey);

  const PublicKey& public_key() const { return public_; }
  // 64-byte Ed25519 signature.
  Bytes sign(ByteView message) const;
  // The 32-byte private seed. Secret: never log it.
  std::array<uint8_t, kEd25519SeedSize> seed() const;
  // libp2p `PrivateKey{Type=Ed25519, Data=seed||public}`. Secret.
  Bytes to_protobuf() const;
  // The OpenSSL handle, for PEM/PKCS#8 encoding. Owned by this KeyPair.
  EVP_PKEY* evp() const { return pkey_.get(); }

 private:
  KeyPair(std::shared_ptr<EVP_PKEY> pkey, PublicKey pub)
      : pkey_(std::move(pkey)), public_(std::move(pub)) {}

  std::shared_ptr<EVP_PKEY> pkey_;
  PublicKey public_;
};

}  // namespace idn::identity
