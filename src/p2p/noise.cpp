#include "p2p/noise.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cstring>
#include <memory>

namespace idn::p2p::noise {
namespace {

struct PkeyDeleter {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct PkeyCtxDeleter {
  void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyDeleter>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxDeleter>;

constexpr uint64_t kMaxNonce = ~uint64_t{0};  // reserved by the spec

std::array<uint8_t, 12> nonce_bytes(uint64_t n) {
  std::array<uint8_t, 12> iv{};
  for (int i = 0; i < 8; ++i) iv[4 + i] = static_cast<uint8_t>(n >> (8 * i));
  return iv;
}

// HKDF as Noise defines it (two outputs, chaining with HMAC-SHA256).
std::pair<Key32, Key32> hkdf2(const Key32& ck, ByteView ikm) {
  Key32 temp = hmac_sha256(ck, ikm);
  uint8_t one = 1;
  Key32 out1 = hmac_sha256(temp, ByteView(&one, 1));
  uint8_t buf[33];
  std::memcpy(buf, out1.data(), 32);
  buf[32] = 2;
  Key32 out2 = hmac_sha256(temp, ByteView(buf, 33));
  return {out1, out2};
}

}  // namespace

Key32 sha256(ByteView data) {
  Key32 out{};
  SHA256(data.data(), data.size(), out.data());
  return out;
}

Key32 hmac_sha256(ByteView key, ByteView data) {
  Key32 out{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), data.data(), data.size(), out.data(),
       &len);
  return out;
}

Result<DhKeyPair> DhKeyPair::from_private(ByteView private_key) {
  if (private_key.size() != kDhLen) {
    return Status::invalid_argument("X25519 private key must be 32 bytes, got " +
                                    std::to_string(private_key.size()));
  }
  PkeyPtr pkey(EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, nullptr, private_key.data(), kDhLen));
  if (!pkey) return Status::internal("OpenSSL refused an X25519 private key");
  DhKeyPair kp;
  std::copy(private_key.begin(), private_key.end(), kp.private_key.begin());
  size_t len = kDhLen;
  if (EVP_PKEY_get_raw_public_key(pkey.get(), kp.public_key.data(), &len) != 1 || len != kDhLen) {
    return Status::internal("OpenSSL could not derive an X25519 public key");
  }
  return kp;
}

Result<DhKeyPair> DhKeyPair::generate() {
  Key32 priv{};
  if (RAND_bytes(priv.data(), static_cast<int>(priv.size())) != 1) {
    return Status::internal("OpenSSL RAND_bytes failed: no entropy for an X25519 key");
  }
  return from_private(priv);
}

Result<Key32> dh(const Key32& private_key, ByteView public_key) {
  if (public_key.size() != kDhLen) {
    return Status::peer_misbehaved("X25519 public key must be 32 bytes, got " +
                                   std::to_string(public_key.size()));
  }
  PkeyPtr priv(EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, nullptr, private_key.data(), kDhLen));
  PkeyPtr pub(EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, nullptr, public_key.data(), kDhLen));
  if (!priv || !pub) return Status::peer_misbehaved("malformed X25519 key");
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new(priv.get(), nullptr));
  Key32 out{};
  size_t len = out.size();
  if (!ctx || EVP_PKEY_derive_init(ctx.get()) != 1 ||
      EVP_PKEY_derive_set_peer(ctx.get(), pub.get()) != 1 ||
      EVP_PKEY_derive(ctx.get(), out.data(), &len) != 1 || len != kDhLen) {
    return Status::peer_misbehaved("X25519 key agreement failed (low-order public key?)");
  }
  if (std::all_of(out.begin(), out.end(), [](uint8_t b) { return b == 0; })) {
    return Status::peer_misbehaved("X25519 shared secret is all zero (low-order public key)");
  }
  return out;
}

void CipherState::Ctx::reset() {
  EVP_CIPHER_CTX_free(ctx_);
  ctx_ = nullptr;
  mode_ = -1;
}

evp_cipher_ctx_st* CipherState::Ctx::get(const Key32& k, bool encrypt) {
  const int mode = encrypt ? 1 : 0;
  if (ctx_ && mode_ == mode) return ctx_;
  if (!ctx_) ctx_ = EVP_CIPHER_CTX_new();
  if (!ctx_) return nullptr;
  if (EVP_CipherInit_ex(ctx_, EVP_chacha20_poly1305(), nullptr, k.data(), nullptr, mode) != 1) {
    reset();
    return nullptr;
  }
  mode_ = mode;
  return ctx_;
}

Status CipherState::encrypt_into(ByteView ad, ByteView plaintext, std::span<uint8_t> out) {
  return encrypt_into(ad, plaintext, {}, out);
}

Status CipherState::encrypt_into(ByteView ad, ByteView head, ByteView body,
                                 std::span<uint8_t> out) {
  const size_t plaintext_len = head.size() + body.size();
  if (out.size() < plaintext_len + kTagLen)
    return Status::internal("Noise encrypt_into: no room for the tag");
  if (!k_) return Status::internal("Noise encrypt_into before the handshake keyed it");
  if (n_ == kMaxNonce) return Status::limit_exceeded("Noise nonce space exhausted; reconnect");
  EVP_CIPHER_CTX* ctx = ctx_.get(*k_, true);
  auto iv = nonce_bytes(n_);
  int len = 0;
  if (!ctx || EVP_EncryptInit_ex(ctx, nullptr, nullptr, nullptr, iv.data()) != 1 ||
      (!ad.empty() &&
       EVP_EncryptUpdate(ctx, nullptr, &len, ad.data(), static_cast<int>(ad.size())) != 1) ||
      EVP_EncryptUpdate(ctx, out.data(), &len, head.data(), static_cast<int>(head.size())) != 1 ||
      (!body.empty() && EVP_EncryptUpdate(ctx, out.data() + head.size(), &len, body.data(),
                                          static_cast<int>(body.size())) != 1) ||
      EVP_EncryptFinal_ex(ctx, out.data() + plaintext_len, &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, kTagLen, out.data() + plaintext_len) != 1) {
    return Status::internal("OpenSSL ChaCha20-Poly1305 encryption failed");
  }
  ++n_;
  return Status::ok();
}

Result<size_t> CipherState::decrypt_into(ByteView ad, ByteView ciphertext, std::span<uint8_t> out) {
  if (!k_) return Status::internal("Noise decrypt_into before the handshake keyed it");
  if (n_ == kMaxNonce) return Status::limit_exceeded("Noise nonce space exhausted; reconnect");
  if (ciphertext.size() < kTagLen) {
    return Status::peer_misbehaved("Noise ciphertext of " + std::to_string(ciphertext.size()) +
                                   " bytes is shorter than the 16-byte tag");
  }
  const size_t pt_len = ciphertext.size() - kTagLen;
  if (out.size() < pt_len) return Status::internal("Noise decrypt_into: output too small");
  EVP_CIPHER_CTX* ctx = ctx_.get(*k_, false);
  auto iv = nonce_bytes(n_);
  uint8_t tag[kTagLen];
  std::memcpy(tag, ciphertext.data() + pt_len, kTagLen);
  int len = 0;
  if (!ctx || EVP_DecryptInit_ex(ctx, nullptr, nullptr, nullptr, iv.data()) != 1 ||
      (!ad.empty() &&
       EVP_DecryptUpdate(ctx, nullptr, &len, ad.data(), static_cast<int>(ad.size())) != 1) ||
      EVP_DecryptUpdate(ctx, out.data(), &len, ciphertext.data(), static_cast<int>(pt_len)) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, kTagLen, tag) != 1 ||
      EVP_DecryptFinal_ex(ctx, out.data() + len, &len) != 1) {
    return Status::peer_misbehaved("Noise decryption failed: bad authentication tag");
  }
  ++n_;
  return pt_len;
}

Result<Bytes> CipherState::encrypt_with_ad(ByteView ad, ByteView plaintext) {
  if (!k_) return Bytes(plaintext.begin(), plaintext.end());
  Bytes out(plaintext.size() + kTagLen);
  IDN_RETURN_IF_ERROR(encrypt_into(ad, plaintext, out));
  return out;
}

Result<Bytes> CipherState::decrypt_with_ad(ByteView ad, ByteView ciphertext) {
  if (!k_) return Bytes(ciphertext.begin(), ciphertext.end());
  Bytes out(ciphertext.size() >= kTagLen ? ciphertext.size() - kTagLen : 0);
  IDN_ASSIGN_OR_RETURN(size_t n, decrypt_into(ad, ciphertext, out));
  out.resize(n);
  return out;
}

SymmetricState::SymmetricState(std::string_view protocol_name) {
  if (protocol_name.size() <= kHashLen) {
    std::copy(protocol_name.begin(), protocol_name.end(), h_.begin());
  } else {
    h_ = sha256(as_bytes(protocol_name));
  }
  ck_ = h_;
}

void SymmetricState::mix_key(ByteView ikm) {
  auto [ck, temp_k] = hkdf2(ck_, ikm);
  ck_ = ck;
  cipher_ = CipherState(temp_k);
}

void SymmetricState::mix_hash(ByteView data) {
  Bytes buf(h_.begin(), h_.end());
  buf.insert(buf.end(), data.begin(), data.end());
  h_ = sha256(buf);
}

Result<Bytes> SymmetricState::encrypt_and_hash(ByteView plaintext) {
  IDN_ASSIGN_OR_RETURN(Bytes ct, cipher_.encrypt_with_ad(h_, plaintext));
  mix_hash(ct);
  return ct;
}

Result<Bytes> SymmetricState::decrypt_and_hash(ByteView ciphertext) {
  IDN_ASSIGN_OR_RETURN(Bytes pt, cipher_.decrypt_with_ad(h_, ciphertext));
  mix_hash(ciphertext);
  return pt;
}

std::pair<CipherState, CipherState> SymmetricState::split() const {
  auto [k1, k2] = hkdf2(ck_, ByteView{});
  return {CipherState(k1), CipherState(k2)};
}

XXHandshake::XXHandshake(bool initiator, DhKeyPair static_key, ByteView prologue,
                         std::optional<DhKeyPair> fixed_ephemeral)
    : initiator_(initiator),
      ss_(kProtocolName),
      s_(static_key),
      fixed_e_(std::move(fixed_ephemeral)) {
  ss_.mix_hash(prologue);
}

Status XXHandshake::mix_dh(const Key32& priv, const std::optional<Key32>& pub) {
  if (!pub) return Status::internal("Noise DH before the remote key is known");
  IDN_ASSIGN_OR_RETURN(Key32 shared, dh(priv, *pub));
  ss_.mix_key(shared);
  return Status::ok();
}

Result<Bytes> XXHandshake::write_message(ByteView payload) {
  if (failed_) return Status::cancelled("Noise handshake already failed");
  if (step_ >= 3) return Status::internal("Noise handshake is already complete");
  if (!my_turn_to_write()) return Status::internal("Noise: not this side's turn to write");
  auto r = write_impl(payload);
  if (!r.ok()) failed_ = true;
  return r;
}

Result<Bytes> XXHandshake::read_message(ByteView message) {
  if (failed_) return Status::cancelled("Noise handshake already failed");
  if (step_ >= 3) return Status::peer_misbehaved("Noise handshake message after completion");
  if (my_turn_to_write()) return Status::internal("Noise: not this side's turn to read");
  auto r = read_impl(message);
  if (!r.ok()) failed_ = true;
  return r;
}

Result<Bytes> XXHandshake::write_impl(ByteView payload) {
  Bytes out;
  auto append = [&out](ByteView b) { out.insert(out.end(), b.begin(), b.end()); };
  if (step_ == 0 || step_ == 1) {  // e
    if (fixed_e_) {
      e_ = *fixed_e_;
    } else {
      IDN_ASSIGN_OR_RETURN(e_, DhKeyPair::generate());
    }
    append(e_->public_key);
    ss_.mix_hash(e_->public_key);
  }
  if (step_ == 1) {  // ee, s, es  (responder)
    IDN_RETURN_IF_ERROR(mix_dh(e_->private_key, re_));
    IDN_ASSIGN_OR_RETURN(Bytes enc_s, ss_.encrypt_and_hash(s_.public_key));
    append(enc_s);
    IDN_RETURN_IF_ERROR(mix_dh(s_.private_key, re_));
  }
  if (step_ == 2) {  // s, se  (initiator)
    IDN_ASSIGN_OR_RETURN(Bytes enc_s, ss_.encrypt_and_hash(s_.public_key));
    append(enc_s);
    IDN_RETURN_IF_ERROR(mix_dh(s_.private_key, re_));
  }
  IDN_ASSIGN_OR_RETURN(Bytes enc_payload, ss_.encrypt_and_hash(payload));
  append(enc_payload);
  if (out.size() > kMaxMessageLen) {
    return Status::limit_exceeded("Noise handshake message would exceed 65535 bytes");
  }
  ++step_;
  return out;
}

Result<Bytes> XXHandshake::read_impl(ByteView msg) {
  if (msg.size() > kMaxMessageLen) {
    return Status::peer_misbehaved("Noise handshake message exceeds 65535 bytes");
  }
  size_t pos = 0;
  auto take = [&](size_t n) -> Result<ByteView> {
    if (msg.size() - pos < n) {
      return Status::peer_misbehaved("Noise handshake message " + std::to_string(step_ + 1) +
                                     " truncated: " + std::to_string(msg.size()) + " bytes");
    }
    ByteView v = msg.subspan(pos, n);
    pos += n;
    return v;
  };
  if (step_ == 0 || step_ == 1) {  // e
    IDN_ASSIGN_OR_RETURN(ByteView re, take(kDhLen));
    Key32 k{};
    std::copy(re.begin(), re.end(), k.begin());
    re_ = k;
    ss_.mix_hash(re);
  }
  if (step_ == 1) {  // ee, s, es  (we are the initiator)
    IDN_RETURN_IF_ERROR(mix_dh(e_->private_key, re_));
    IDN_ASSIGN_OR_RETURN(ByteView enc_s, take(kDhLen + kTagLen));
    IDN_ASSIGN_OR_RETURN(Bytes rs, ss_.decrypt_and_hash(enc_s));
    Key32 k{};
    std::copy(rs.begin(), rs.end(), k.begin());
    rs_ = k;
    IDN_RETURN_IF_ERROR(mix_dh(e_->private_key, rs_));
  }
  if (step_ == 2) {  // s, se  (we are the responder)
    IDN_ASSIGN_OR_RETURN(ByteView enc_s, take(kDhLen + kTagLen));
    IDN_ASSIGN_OR_RETURN(Bytes rs, ss_.decrypt_and_hash(enc_s));
    Key32 k{};
    std::copy(rs.begin(), rs.end(), k.begin());
    rs_ = k;
    IDN_RETURN_IF_ERROR(mix_dh(e_->private_key, rs_));
  }
  if (ss_.has_key() && msg.size() - pos < kTagLen) {
    return Status::peer_misbehaved("Noise handshake message " + std::to_string(step_ + 1) +
                                   " truncated before its payload tag");
  }
  IDN_ASSIGN_OR_RETURN(Bytes payload, ss_.decrypt_and_hash(msg.subspan(pos)));
  ++step_;
  return payload;
}

Result<XXHandshake::TransportKeys> XXHandshake::split() const {
  if (!complete()) return Status::internal("Noise split before the handshake completed");
  auto [c1, c2] = ss_.split();
  if (initiator_) return TransportKeys{c1, c2};
  return TransportKeys{c2, c1};
}

}  // namespace idn::p2p::noise
