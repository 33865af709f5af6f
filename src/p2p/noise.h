// The Noise Protocol Framework pieces libp2p needs: Noise_XX_25519_ChaChaPoly_SHA256 as a
// sans-IO handshake state machine (CipherState / SymmetricState / HandshakeState, spec rev 34).
// The libp2p-specific payload and framing live in secure_channel.h.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <utility>

#include "core/bytes.h"
#include "core/status.h"

struct evp_cipher_ctx_st;  // OpenSSL's EVP_CIPHER_CTX

namespace idn::p2p::noise {

inline constexpr std::string_view kProtocolName = "Noise_XX_25519_ChaChaPoly_SHA256";
inline constexpr size_t kDhLen = 32;
inline constexpr size_t kHashLen = 32;
inline constexpr size_t kTagLen = 16;
// Noise caps every message (handshake or transport) at 65535 bytes.
inline constexpr size_t kMaxMessageLen = 65535;

using Key32 = std::array<uint8_t, 32>;

// An X25519 key pair (raw 32-byte keys as RFC 7748 defines them).
struct DhKeyPair {
  Key32 private_key{};
  Key32 public_key{};

  static Result<DhKeyPair> generate();
  static Result<DhKeyPair> from_private(ByteView private_key);
};

// X25519(private, public). Fails on a malformed public key or an all-zero shared secret
// (a low-order point sent by a misbehaving peer).
Result<Key32> dh(const Key32& private_key, ByteView public_key);

Key32 sha256(ByteView data);
Key32 hmac_sha256(ByteView key, ByteView data);

// A ChaChaPoly key and a 64-bit nonce counter. Without a key it passes data through, as the
// spec requires for the first handshake message.
class CipherState {
 public:
  CipherState() = default;
  explicit CipherState(const Key32& k) : k_(k) {}

  bool has_key() const { return k_.has_value(); }
  uint64_t nonce() const { return n_; }
  void set_nonce(uint64_t n) { n_ = n; }

  Result<Bytes> encrypt_with_ad(ByteView ad, ByteView plaintext);
  // On failure the nonce is not consumed, so a forged frame cannot desynchronise the stream.
  Result<Bytes> decrypt_with_ad(ByteView ad, ByteView ciphertext);

  // The transport's copy-free forms. encrypt_into: `out` (at least plaintext.size() + 16
  // bytes) receives ciphertext || tag and may start at the plaintext's own storage.
  // decrypt_into: `out` (at least ciphertext.size() - 16 bytes) may be the ciphertext's own
  // storage; returns the plaintext length.
  Status encrypt_into(ByteView ad, ByteView plaintext, std::span<uint8_t> out);
  // encrypt_into of the plaintext head || body without joining them first (a frame header and
  // the application's bytes): `out` gets head.size() + body.size() + 16 bytes.
  Status encrypt_into(ByteView ad, ByteView head, ByteView body, std::span<uint8_t> out);
  Result<size_t> decrypt_into(ByteView ad, ByteView ciphertext, std::span<uint8_t> out);

 private:
  // The OpenSSL context, keyed once and reused for every message: creating and keying one per
  // frame cost more than encrypting a small frame. Copies start without one.
  class Ctx {
   public:
    Ctx() = default;
    Ctx(const Ctx&) {}
    Ctx& operator=(const Ctx&) {
      reset();
      return *this;
    }
    ~Ctx() { reset(); }
    // The context keyed with `k` for encryption or decryption (nullptr if OpenSSL fails).
    evp_cipher_ctx_st* get(const Key32& k, bool encrypt);

   private:
    void reset();
    evp_cipher_ctx_st* ctx_ = nullptr;
    int mode_ = -1;  // 1 encrypt, 0 decrypt, -1 not keyed
  };

  std::optional<Key32> k_;
  uint64_t n_ = 0;
  Ctx ctx_;
};

class SymmetricState {
 public:
  explicit SymmetricState(std::string_view protocol_name);

  void mix_key(ByteView input_key_material);
  void mix_hash(ByteView data);
  Result<Bytes> encrypt_and_hash(ByteView plaintext);
  Result<Bytes> decrypt_and_hash(ByteView ciphertext);
  // (initiator->responder, responder->initiator)
  std::pair<CipherState, CipherState> split() const;

  const Key32& handshake_hash() const { return h_; }
  bool has_key() const { return cipher_.has_key(); }

 private:
  Key32 ck_{};
  Key32 h_{};
  CipherState cipher_;
};

// The XX pattern:  -> e   <- e, ee, s, es   -> s, se
// Use: the initiator calls write_message, read_message, write_message; the responder
// read_message, write_message, read_message. After that complete() is true and split() gives
// the transport CipherStates. Any failure poisons the state (every later call fails).
class XXHandshake {
 public:
  // `fixed_ephemeral` is for test vectors only; normal use generates a fresh ephemeral key.
  XXHandshake(bool initiator, DhKeyPair static_key, ByteView prologue,
              std::optional<DhKeyPair> fixed_ephemeral = std::nullopt);

  Result<Bytes> write_message(ByteView payload);
  Result<Bytes> read_message(ByteView message);  // returns the decrypted payload

  bool initiator() const { return initiator_; }
  bool complete() const { return step_ == 3 && !failed_; }
  // Which message index (0..2) comes next and whether this side writes it.
  int step() const { return step_; }
  bool my_turn_to_write() const { return (step_ % 2 == 0) == initiator_; }

  const Key32& handshake_hash() const { return ss_.handshake_hash(); }
  // The remote's static X25519 key, once received (message 2 for the initiator, 3 for the
  // responder).
  const std::optional<Key32>& remote_static() const { return rs_; }
  const DhKeyPair& local_static() const { return s_; }

  struct TransportKeys {
    CipherState send;
    CipherState recv;
  };
  Result<TransportKeys> split() const;

 private:
  Result<Bytes> write_impl(ByteView payload);
  Result<Bytes> read_impl(ByteView message);
  Status mix_dh(const Key32& priv, const std::optional<Key32>& pub);

  bool initiator_;
  SymmetricState ss_;
  DhKeyPair s_;
  std::optional<DhKeyPair> e_;
  std::optional<DhKeyPair> fixed_e_;
  std::optional<Key32> re_;
  std::optional<Key32> rs_;
  int step_ = 0;
  bool failed_ = false;
};

}  // namespace idn::p2p::noise
