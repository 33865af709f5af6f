// libp2p's Noise security handshake ("/noise", libp2p/specs/noise) on top of noise.h: the XX
// handshake with an empty prologue whose payloads carry each side's libp2p identity key and a
// signature binding it to the Noise static key; then a SecureChannel that frames every
// transport message as 2-byte big-endian length || ciphertext (max 65535 bytes).
#pragma once

#include <functional>
#include <memory>
#include <optional>

#include "identity/keys.h"
#include "identity/peer_id.h"
#include "p2p/noise.h"
#include "p2p/stream.h"

namespace idn::p2p {

inline constexpr std::string_view kNoiseProtocolId = "/noise";
inline constexpr std::string_view kNoiseSignaturePrefix = "noise-libp2p-static-key:";

// NoiseHandshakePayload { bytes identity_key = 1; bytes identity_sig = 2; extensions = 4; }
struct NoisePayload {
  Bytes identity_key;  // serialized libp2p PublicKey
  Bytes identity_sig;
};
Bytes encode_noise_payload(const NoisePayload& p);
// Errors: Corruption for malformed protobuf or missing fields.
Result<NoisePayload> decode_noise_payload(ByteView bytes);

// Sans-IO libp2p Noise handshake. Initiator: start(), then on_message(msg2) returns msg3.
// Responder: on_message(msg1) returns msg2, on_message(msg3) returns nullopt. When complete():
// remote_peer() is authenticated and keys() gives the transport CipherStates.
class NoiseSecurity {
 public:
  // `expected_remote`: when set (a dial to /p2p/<id>), any other identity is refused.
  NoiseSecurity(const identity::KeyPair& identity, bool initiator,
                std::optional<identity::PeerId> expected_remote = std::nullopt);

  Result<Bytes> start();
  // Errors: PeerMisbehaved (bad crypto, bad signature, unexpected peer ID), Corruption.
  Result<std::optional<Bytes>> on_message(ByteView msg);

  bool complete() const { return hs_ && hs_->complete() && remote_.has_value(); }
  const identity::PeerId& remote_peer() const { return *remote_; }
  const std::optional<identity::PublicKey>& remote_key() const { return remote_key_; }
  Result<noise::XXHandshake::TransportKeys> keys() const;

 private:
  Result<Bytes> my_payload() const;
  Status verify_payload(ByteView payload);

  identity::KeyPair identity_;
  bool initiator_;
  std::optional<identity::PeerId> expected_;
  std::optional<noise::XXHandshake> hs_;
  Status init_status_;
  std::optional<identity::PeerId> remote_;
  std::optional<identity::PublicKey> remote_key_;
};

// An authenticated, encrypted stream over an inner stream (TCP).
class SecureChannel : public ByteStream {
 public:
  SecureChannel(std::unique_ptr<ByteStream> inner, noise::XXHandshake::TransportKeys keys,
                identity::PeerId remote)
      : inner_(std::move(inner)), keys_(std::move(keys)), remote_(std::move(remote)) {}

  awaitable<Status> write(ByteView data) override;
  // Sends `data` in chunks of at most `max_chunk` bytes, each as one Noise message whose
  // plaintext is a header_len-byte header (filled by make_header(chunk_len, header)) followed
  // by the chunk: the muxer's frames are encrypted straight from the caller's bytes, with no
  // copy into a frame buffer first. header_len + max_chunk must fit one Noise message.
  awaitable<Status> write_chunks(
      ByteView data, size_t max_chunk, size_t header_len,
      const std::function<void(size_t chunk_len, std::span<uint8_t> header)>& make_header);
  awaitable<Status> close_write() override { return inner_->close_write(); }
  void reset() override { inner_->reset(); }
  const identity::PeerId& remote_peer() const { return remote_; }
  ByteStream& inner() { return *inner_; }

 protected:
  awaitable<Result<size_t>> do_read_some(std::span<uint8_t> buf) override;

 private:
  std::unique_ptr<ByteStream> inner_;
  noise::XXHandshake::TransportKeys keys_;
  identity::PeerId remote_;
  // in_[in_start_, in_end_): received, not yet decrypted. Reading the socket in large chunks
  // and cutting frames out of the buffer costs one syscall per burst of frames instead of
  // three per frame (length byte, length byte, ciphertext).
  Bytes in_;
  size_t in_start_ = 0, in_end_ = 0;
  Bytes plain_;  // a decrypted frame larger than the caller's buffer, handed out in pieces
  size_t plain_pos_ = 0;
  Bytes out_;  // reused for length || ciphertext frames of one write
  bool writing_ = false;
};

// Runs the handshake over `io` (after "/noise" was negotiated) and returns the channel.
// The caller enforces the handshake deadline (by resetting `io`).
awaitable<Result<std::unique_ptr<SecureChannel>>> noise_handshake(
    std::unique_ptr<ByteStream> io, const identity::KeyPair& identity, bool initiator,
    std::optional<identity::PeerId> expected_remote);

}  // namespace idn::p2p
