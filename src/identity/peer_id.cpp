#include "identity/peer_id.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <array>

#include "core/multibase.h"
#include "core/varint.h"

namespace idn::identity {

using core::HashCode;
using core::Multihash;

PeerId PeerId::from_public_key(const PublicKey& key) {
  Bytes proto = key.to_protobuf();
  if (proto.size() <= kMaxInlineKeySize) return PeerId(Multihash::identity(proto));
  return PeerId(Multihash::sha2_256(proto));
}

Result<PeerId> PeerId::from_multihash(Multihash mh) {
  if (mh.code() == uint64_t(HashCode::kSha2_256)) return PeerId(std::move(mh));
  if (mh.code() == uint64_t(HashCode::kIdentity)) {
    if (mh.digest().size() > kMaxInlineKeySize) {
      return Status::invalid_argument("identity peer ID inlines " +
                                      std::to_string(mh.digest().size()) +
                                      " bytes; keys over 42 bytes must be hashed");
    }
    return PeerId(std::move(mh));
  }
  return Status::invalid_argument("peer ID uses hash " + core::hash_code_name(mh.code()) +
                                  "; only identity and sha2-256 are peer IDs");
}

Result<PeerId> PeerId::from_bytes(ByteView bytes) {
  auto mh = Multihash::from_bytes(bytes);
  if (!mh.ok()) return Status::invalid_argument("peer ID: " + mh.status().message());
  return from_multihash(std::move(mh).value());
}

Result<PeerId> PeerId::parse(std::string_view text) {
  if (text.empty()) return Status::invalid_argument("empty peer ID");
  // Base58 peer IDs are multihashes: identity ones start with '1', sha2-256 ones with "Qm".
  if (text[0] == '1' || text.starts_with("Qm")) {
    auto raw = core::base58btc_decode(text);
    if (!raw.ok()) return raw.status().with_context("peer ID");
    return from_bytes(*raw);
  }
  auto raw = core::multibase_decode(text);
  if (!raw.ok()) {
    return Status::invalid_argument(
        "peer ID '" + std::string(text.substr(0, 80)) +
        "' is neither base58btc nor a multibase CID: " + raw.status().message());
  }
  // CIDv1: varint(1) varint(0x72) multihash.
  auto version = core::decode_uvarint(*raw);
  if (!version.ok() || version->value != 1) {
    return Status::invalid_argument("peer ID CID is not version 1");
  }
  auto codec = core::decode_uvarint(ByteView(*raw).subspan(version->size));
  if (!codec.ok() || codec->value != kLibp2pKeyCodec) {
    return Status::invalid_argument("peer ID CID does not use the libp2p-key codec (0x72)");
  }
  return from_bytes(ByteView(*raw).subspan(version->size + codec->size));
}

std::string PeerId::to_cid_string() const {
  Bytes cid;
  core::append_uvarint(1, cid);
  core::append_uvarint(kLibp2pKeyCodec, cid);
  cid.insert(cid.end(), bytes().begin(), bytes().end());
  return core::multibase_encode(core::Multibase::kBase32, cid);
}

Result<PublicKey> PeerId::extract_public_key() const {
  if (mh_.code() != uint64_t(HashCode::kIdentity)) {
    return Status::not_found("peer ID " + to_base58() +
                             " hashes its key; the key must come from the peer");
  }
  return PublicKey::from_protobuf(mh_.digest());
}

bool PeerId::matches(const PublicKey& key) const {
  return from_public_key(key) == *this;
}

Result<PeerId> peer_id_of(const core::Multiaddr& addr) {
  auto mh = addr.peer_multihash();
  if (!mh) return Status::not_found("multiaddr " + addr.to_string() + " names no peer (/p2p)");
  return PeerId::from_multihash(std::move(*mh));
}

core::Multiaddr with_peer_id(const core::Multiaddr& addr, const PeerId& id) {
  return addr.encapsulate(core::Multiaddr::p2p(id.multihash()));
}

int leading_zero_bits(ByteView data) {
  int n = 0;
  for (uint8_t b : data) {
    if (b == 0) {
      n += 8;
      continue;
    }
    for (int bit = 7; bit >= 0 && !(b >> bit & 1); --bit) ++n;
    break;
  }
  return n;
}

int PeerId::difficulty() const {
  return leading_zero_bits(core::sha256(bytes()));
}

Result<GeneratedIdentity> generate_with_difficulty(const GenerateOptions& o) {
  if (o.difficulty < 0 || o.difficulty > kMaxDifficulty) {
    return Status::invalid_argument("difficulty must be between 0 and " +
                                    std::to_string(kMaxDifficulty) + ", got " +
                                    std::to_string(o.difficulty));
  }
  std::array<uint8_t, kEd25519SeedSize> seed{};
  int best = -1;
  uint64_t every = o.progress_every ? o.progress_every : 1;
  for (uint64_t attempts = 1;; ++attempts) {
    if (o.seed_source) {
      IDN_RETURN_IF_ERROR(o.seed_source(seed));
    } else if (RAND_priv_bytes(seed.data(), int(seed.size())) != 1) {
      return Status::internal("OpenSSL RAND_priv_bytes failed");
    }
    auto key = KeyPair::from_seed(seed);
    OPENSSL_cleanse(seed.data(), seed.size());
    if (!key.ok()) return key.status();
    PeerId id = PeerId::from_public_key(key->public_key());
    int d = id.difficulty();
    best = std::max(best, d);
    if (d >= o.difficulty)
      return GeneratedIdentity{std::move(key).value(), std::move(id), attempts};
    if (o.max_attempts && attempts >= o.max_attempts) {
      return Status::limit_exceeded("no identity with difficulty " + std::to_string(o.difficulty) +
                                    " after " + std::to_string(attempts) + " attempts (best " +
                                    std::to_string(best) + ")");
    }
    if (o.progress && attempts % every == 0 && !o.progress(attempts, best)) {
      return Status::cancelled("identity generation cancelled after " + std::to_string(attempts) +
                               " attempts");
    }
  }
}

Status verify_peer(const PeerId& expected, ByteView proved_public_key_protobuf,
                   int required_difficulty) {
  auto key = PublicKey::from_protobuf(proved_public_key_protobuf);
  if (!key.ok()) {
    return Status::peer_misbehaved("peer " + expected.to_base58() +
                                   " presented an unusable public key: " + key.status().message());
  }
  // The ID is a hash of the key's canonical encoding; from_protobuf accepted only canonical
  // bytes, so re-deriving from the parsed key hashes exactly what the peer sent.
  PeerId actual = PeerId::from_public_key(*key);
  if (actual != expected) {
    return Status::peer_misbehaved("peer claimed ID " + expected.to_base58() +
                                   " but proved the key of " + actual.to_base58());
  }
  int d = actual.difficulty();
  if (d < required_difficulty) {
    return Status::peer_misbehaved("peer " + actual.to_base58() + " has ID difficulty " +
                                   std::to_string(d) + ", below the required " +
                                   std::to_string(required_difficulty));
  }
  return Status::ok();
}

}  // namespace idn::identity
