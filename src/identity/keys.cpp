#include "identity/keys.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include <algorithm>
#include <string>

#include "core/varint.h"

namespace idn::identity {
namespace {

std::shared_ptr<EVP_PKEY> own(EVP_PKEY* p) {
  return {p, EVP_PKEY_free};
}

// The most recent OpenSSL error as text, for messages (clears the error queue).
std::string openssl_error() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

struct ProtoKey {
  uint64_t type;
  ByteView data;
};

// Parses the canonical encoding of libp2p's {KeyType Type = 1; bytes Data = 2;}: tag 0x08, a
// varint, tag 0x12, a length, the data, nothing else.
Result<ProtoKey> parse_proto_key(ByteView in, const char* what) {
  auto fail = [&](const std::string& why) {
    return Status::corruption(std::string(what) + " protobuf: " + why);
  };
  if (in.empty() || in[0] != 0x08) return fail("does not start with field 1 (Type)");
  auto type = core::decode_uvarint(in.subspan(1));
  if (!type.ok()) return fail("bad Type varint: " + type.status().message());
  size_t pos = 1 + type->size;
  if (pos >= in.size() || in[pos] != 0x12) return fail("field 2 (Data) missing after Type");
  ++pos;
  auto len = core::decode_uvarint(in.subspan(pos));
  if (!len.ok()) return fail("bad Data length: " + len.status().message());
  pos += len->size;
  if (len->value != in.size() - pos) {
    return fail("Data declares " + std::to_string(len->value) + " bytes but " +
                std::to_string(in.size() - pos) + " remain (extra or missing bytes)");
  }
  return ProtoKey{type->value, in.subspan(pos)};
}

Bytes encode_proto_key(KeyType type, ByteView data) {
  Bytes out{0x08, static_cast<uint8_t>(type), 0x12};
  core::append_uvarint(data.size(), out);
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

Status unsupported_type(uint64_t type) {
  const char* names[] = {"RSA", "Ed25519", "Secp256k1", "ECDSA"};
  std::string name = type < 4 ? names[type] : "unknown type " + std::to_string(type);
  return Status::unsupported(name + " keys are not supported; IDN peers use Ed25519");
}

Result<PublicKey> public_of(EVP_PKEY* pkey) {
  std::array<uint8_t, kEd25519PublicKeySize> raw{};
  size_t len = raw.size();
  if (EVP_PKEY_get_raw_public_key(pkey, raw.data(), &len) != 1 || len != raw.size()) {
    return Status::internal("cannot read Ed25519 public key: " + openssl_error());
  }
  return PublicKey::from_raw(raw);
}

}  // namespace

Result<PublicKey> PublicKey::from_raw(ByteView raw) {
  if (raw.size() != kEd25519PublicKeySize) {
    return Status::invalid_argument("Ed25519 public key must be 32 bytes, got " +
                                    std::to_string(raw.size()));
  }
  EVP_PKEY* p = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, raw.data(), raw.size());
  if (!p) return Status::invalid_argument("unusable Ed25519 public key: " + openssl_error());
  std::array<uint8_t, kEd25519PublicKeySize> a{};
  std::copy(raw.begin(), raw.end(), a.begin());
  return PublicKey(a, own(p));
}

Result<PublicKey> PublicKey::from_protobuf(ByteView bytes) {
  IDN_ASSIGN_OR_RETURN(ProtoKey k, parse_proto_key(bytes, "PublicKey"));
  if (k.type != static_cast<uint64_t>(KeyType::kEd25519)) return unsupported_type(k.type);
  auto key = from_raw(k.data);
  if (!key.ok()) return Status::corruption("PublicKey protobuf: " + key.status().message());
  return key;
}

Bytes PublicKey::to_protobuf() const {
  return encode_proto_key(KeyType::kEd25519, raw_);
}

bool PublicKey::verify(ByteView message, ByteView signature) const {
  if (signature.size() != kEd25519SignatureSize) return false;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (!ctx) return false;
  bool ok = EVP_DigestVerifyInit(ctx, nullptr, nullptr, nullptr, pkey_.get()) == 1 &&
            EVP_DigestVerify(ctx, signature.data(), signature.size(), message.data(),
                             message.size()) == 1;
  EVP_MD_CTX_free(ctx);
  ERR_clear_error();
  return ok;
}

Result<KeyPair> KeyPair::from_evp(EVP_PKEY* pkey) {
  if (!pkey || !EVP_PKEY_is_a(pkey, "ED25519")) {
    return Status::unsupported("key is not Ed25519; IDN node keys are Ed25519");
  }
  if (EVP_PKEY_up_ref(pkey) != 1) return Status::internal("EVP_PKEY_up_ref failed");
  auto owned = own(pkey);
  IDN_ASSIGN_OR_RETURN(PublicKey pub, public_of(pkey));
  return KeyPair(std::move(owned), std::move(pub));
}

Result<KeyPair> KeyPair::generate() {
  EVP_PKEY* p = nullptr;
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nullptr);
  if (!ctx || EVP_PKEY_keygen_init(ctx) != 1 || EVP_PKEY_keygen(ctx, &p) != 1) {
    EVP_PKEY_CTX_free(ctx);
    return Status::internal("Ed25519 key generation failed: " + openssl_error());
  }
  EVP_PKEY_CTX_free(ctx);
  auto owned = own(p);
  IDN_ASSIGN_OR_RETURN(PublicKey pub, public_of(p));
  return KeyPair(std::move(owned), std::move(pub));
}

Result<KeyPair> KeyPair::from_seed(ByteView seed) {
  if (seed.size() != kEd25519SeedSize) {
    return Status::invalid_argument("Ed25519 seed must be 32 bytes, got " +
                                    std::to_string(seed.size()));
  }
  EVP_PKEY* p = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, seed.data(), seed.size());
  if (!p) return Status::invalid_argument("unusable Ed25519 seed: " + openssl_error());
  auto owned = own(p);
  IDN_ASSIGN_OR_RETURN(PublicKey pub, public_of(p));
  return KeyPair(std::move(owned), std::move(pub));
}

Result<KeyPair> KeyPair::from_protobuf(ByteView bytes) {
  IDN_ASSIGN_OR_RETURN(ProtoKey k, parse_proto_key(bytes, "PrivateKey"));
  if (k.type != static_cast<uint64_t>(KeyType::kEd25519)) return unsupported_type(k.type);
  if (k.data.size() != 64 && k.data.size() != 96) {
    return Status::corruption("Ed25519 PrivateKey data must be 64 (or legacy 96) bytes, got " +
                              std::to_string(k.data.size()));
  }
  ByteView pub = k.data.subspan(32, 32);
  if (k.data.size() == 96 && !std::equal(pub.begin(), pub.end(), k.data.begin() + 64)) {
    return Status::corruption("legacy 96-byte Ed25519 PrivateKey has two different public keys");
  }
  auto kp = from_seed(k.data.first(32));
  if (!kp.ok()) return Status::corruption(kp.status().message());
  const auto& derived = kp->public_key().raw();
  if (!std::equal(pub.begin(), pub.end(), derived.begin())) {
    return Status::corruption("Ed25519 PrivateKey's public half does not match its seed");
  }
  return kp;
}

Bytes KeyPair::sign(ByteView message) const {
  Bytes sig(kEd25519SignatureSize);
  size_t len = sig.size();
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  // Ed25519 signing cannot fail for a valid key short of allocation failure; an empty signature
  // then fails every verification rather than passing silently.
  if (!ctx || EVP_DigestSignInit(ctx, nullptr, nullptr, nullptr, pkey_.get()) != 1 ||
      EVP_DigestSign(ctx, sig.data(), &len, message.data(), message.size()) != 1) {
    sig.clear();
    ERR_clear_error();
  }
  EVP_MD_CTX_free(ctx);
  return sig;
}

std::array<uint8_t, kEd25519SeedSize> KeyPair::seed() const {
  std::array<uint8_t, kEd25519SeedSize> s{};
  size_t len = s.size();
  EVP_PKEY_get_raw_private_key(pkey_.get(), s.data(), &len);
  return s;
}

Bytes KeyPair::to_protobuf() const {
  auto s = seed();
  Bytes data(s.begin(), s.end());
  const auto& pub = public_.raw();
  data.insert(data.end(), pub.begin(), pub.end());
  Bytes out = encode_proto_key(KeyType::kEd25519, data);
  OPENSSL_cleanse(data.data(), data.size());
  OPENSSL_cleanse(s.data(), s.size());
  return out;
}

}  // namespace idn::identity
