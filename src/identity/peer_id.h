// Node identity (dissertation §7.1): a node ID is the libp2p peer ID of the node's Ed25519 key,
// i.e. a multihash of its protobuf PublicKey, with a proof-of-work "difficulty" = the number of
// leading zero bits of SHA-256(peer ID bytes), so identities cost 2^d key generations.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "core/bytes.h"
#include "core/multiaddr.h"
#include "core/multihash.h"
#include "core/status.h"
#include "identity/keys.h"

namespace idn::identity {

// Multicodec of libp2p public keys, used in the CIDv1 text form of peer IDs.
inline constexpr uint64_t kLibp2pKeyCodec = 0x72;
// Serialized public keys up to this size are inlined (identity multihash), per the peer-id spec.
inline constexpr size_t kMaxInlineKeySize = 42;
// Upper bound on the difficulty a node may demand; 2^64 attempts is beyond any budget.
inline constexpr int kMaxDifficulty = 64;

class PeerId {
 public:
  static PeerId from_public_key(const PublicKey& key);
  // From the multihash bytes (as carried in multiaddrs and identify). Only identity and
  // sha2-256 multihashes are peer IDs. Errors: InvalidArgument.
  static Result<PeerId> from_bytes(ByteView bytes);
  static Result<PeerId> from_multihash(core::Multihash mh);
  // Either text form: bare base58btc ("12D3KooW...", "Qm...") or a CIDv1 with the libp2p-key
  // codec in any multibase ("bafzaa..."). Errors: InvalidArgument naming what is wrong.
  static Result<PeerId> parse(std::string_view text);

  const core::Multihash& multihash() const { return mh_; }
  const Bytes& bytes() const { return mh_.bytes(); }
  std::string to_base58() const { return mh_.to_base58(); }  // canonical text form
  std::string to_cid_string() const;                         // CIDv1 libp2p-key, base32 lower
  std::string to_string() const { return to_base58(); }

  // The public key inlined in an identity-multihash peer ID. Errors: NotFound for hashed IDs
  // (the key must then come from the peer), Corruption when the inlined bytes are not a key.
  Result<PublicKey> extract_public_key() const;
  // True when `key` is the key this ID names.
  bool matches(const PublicKey& key) const;

  // Leading zero bits of SHA-256(bytes()): the §7.1 proof-of-work difficulty achieved.
  int difficulty() const;

  friend bool operator==(const PeerId& a, const PeerId& b) { return a.mh_ == b.mh_; }
  friend auto operator<=>(const PeerId& a, const PeerId& b) { return a.mh_ <=> b.mh_; }

 private:
  explicit PeerId(core::Multihash mh) : mh_(std::move(mh)) {}
  core::Multihash mh_;
};

// The peer a multiaddr names in its last /p2p component. Errors: NotFound (no /p2p),
// InvalidArgument (the component is not a peer ID).
Result<PeerId> peer_id_of(const core::Multiaddr& addr);
// addr + /p2p/<id>.
core::Multiaddr with_peer_id(const core::Multiaddr& addr, const PeerId& id);

// Leading zero bits of `data` read as a big-endian bit string (countPrecedingZeroBits).
int leading_zero_bits(ByteView data);

struct GenerateOptions {
  int difficulty = 0;
  // Supplies each candidate's 32-byte Ed25519 seed; defaults to OpenSSL's CSPRNG. Tests inject a
  // deterministic source.
  std::function<Status(std::span<uint8_t, kEd25519SeedSize>)> seed_source;
  // Called every `progress_every` attempts with (attempts so far, best difficulty seen); return
  // false to cancel.
  std::function<bool(uint64_t attempts, int best)> progress;
  uint64_t progress_every = 1024;
  // 0 = unlimited; otherwise give up with LimitExceeded after this many attempts.
  uint64_t max_attempts = 0;
};

struct GeneratedIdentity {
  KeyPair key;
  PeerId id;
  uint64_t attempts;
};

// GENERATENODEID(difficulty): draws key pairs until the peer ID has at least `difficulty`
// leading zero bits in SHA-256(peer ID). Expected 2^difficulty attempts.
// Errors: InvalidArgument (difficulty outside 0..64), Cancelled, LimitExceeded.
Result<GeneratedIdentity> generate_with_difficulty(const GenerateOptions& options);

// The check every node runs on connect: `proved_public_key_protobuf` (the key the remote proved
// it holds, e.g. from the Noise handshake) must hash to `expected`, and `expected` must meet
// `required_difficulty`. Errors: PeerMisbehaved (malformed key, ID mismatch, too easy an ID).
Status verify_peer(const PeerId& expected, ByteView proved_public_key_protobuf,
                   int required_difficulty);

}  // namespace idn::identity

template <>
struct std::hash<idn::identity::PeerId> {
  size_t operator()(const idn::identity::PeerId& p) const noexcept {
    return std::hash<idn::core::Multihash>{}(p.multihash());
  }
};
