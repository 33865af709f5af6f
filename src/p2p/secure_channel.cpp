#include "p2p/secure_channel.h"

#include <algorithm>
#include <cstring>

#include "p2p/protobuf_lite.h"

namespace idn::p2p {

Bytes encode_noise_payload(const NoisePayload& p) {
  Bytes out;
  pb::append_bytes_field(1, p.identity_key, out);
  pb::append_bytes_field(2, p.identity_sig, out);
  return out;
}

Result<NoisePayload> decode_noise_payload(ByteView bytes) {
  NoisePayload p;
  Status st = pb::for_each_field(bytes, [&](const pb::Field& f) {
    if (f.wire_type == 2 && f.number == 1) p.identity_key.assign(f.bytes.begin(), f.bytes.end());
    if (f.wire_type == 2 && f.number == 2) p.identity_sig.assign(f.bytes.begin(), f.bytes.end());
    return Status::ok();  // extensions (4) and unknown fields are ignored
  });
  if (!st.is_ok()) return st.with_context("Noise handshake payload");
  if (p.identity_key.empty() || p.identity_sig.empty()) {
    return Status::corruption("Noise handshake payload lacks identity_key or identity_sig");
  }
  return p;
}

NoiseSecurity::NoiseSecurity(const identity::KeyPair& identity, bool initiator,
                             std::optional<identity::PeerId> expected_remote)
    : identity_(identity), initiator_(initiator), expected_(std::move(expected_remote)) {
  // A fresh static Noise key per connection: it is bound to the identity by the signature,
  // so nothing is gained by keeping it.
  auto s = noise::DhKeyPair::generate();
  if (!s.ok()) {
    init_status_ = s.status();
    return;
  }
  hs_.emplace(initiator, *s, ByteView{});
}

Result<Bytes> NoiseSecurity::my_payload() const {
  Bytes msg = to_bytes(kNoiseSignaturePrefix);
  const auto& spub = hs_->local_static().public_key;
  msg.insert(msg.end(), spub.begin(), spub.end());
  NoisePayload p{identity_.public_key().to_protobuf(), identity_.sign(msg)};
  return encode_noise_payload(p);
}

Status NoiseSecurity::verify_payload(ByteView payload) {
  IDN_ASSIGN_OR_RETURN(NoisePayload p, decode_noise_payload(payload));
  auto key = identity::PublicKey::from_protobuf(p.identity_key);
  if (!key.ok())
    return Status::peer_misbehaved("Noise: remote identity key: " + key.status().to_string());
  const auto& rs = hs_->remote_static();
  if (!rs) return Status::internal("Noise: remote static key missing");
  Bytes msg = to_bytes(kNoiseSignaturePrefix);
  msg.insert(msg.end(), rs->begin(), rs->end());
  if (!key->verify(msg, p.identity_sig)) {
    return Status::peer_misbehaved("Noise: identity signature over the static key is invalid");
  }
  identity::PeerId id = identity::PeerId::from_public_key(*key);
  if (expected_ && !(*expected_ == id)) {
    return Status::peer_misbehaved("Noise: dialled peer " + expected_->to_string() +
                                   " but the remote authenticated as " + id.to_string());
  }
  remote_ = id;
  remote_key_ = *key;
  return Status::ok();
}

Result<Bytes> NoiseSecurity::start() {
  if (!init_status_.is_ok()) return init_status_;
  if (!initiator_ || hs_->step() != 0) return Status::internal("NoiseSecurity::start misuse");
  return hs_->write_message({});
}

Result<std::optional<Bytes>> NoiseSecurity::on_message(ByteView msg) {
  if (!init_status_.is_ok()) return init_status_;
  if (complete()) return Status::peer_misbehaved("Noise: handshake message after completion");
  IDN_ASSIGN_OR_RETURN(Bytes payload, hs_->read_message(msg));
  if (initiator_) {
    // msg2 carries the responder's identity; answer with msg3 carrying ours.
    IDN_RETURN_IF_ERROR(verify_payload(payload));
    IDN_ASSIGN_OR_RETURN(Bytes mine, my_payload());
    IDN_ASSIGN_OR_RETURN(Bytes out, hs_->write_message(mine));
    return std::optional<Bytes>(std::move(out));
  }
  if (hs_->step() == 1) {  // read msg1 (its payload is empty in libp2p); answer with msg2
    IDN_ASSIGN_OR_RETURN(Bytes mine, my_payload());
    IDN_ASSIGN_OR_RETURN(Bytes out, hs_->write_message(mine));
    return std::optional<Bytes>(std::move(out));
  }
  IDN_RETURN_IF_ERROR(verify_payload(payload));
  return std::optional<Bytes>();
}

Result<noise::XXHandshake::TransportKeys> NoiseSecurity::keys() const {
  if (!complete()) return Status::internal("Noise keys requested before completion");
  return hs_->split();
}

awaitable<Status> SecureChannel::write(ByteView data) {
  constexpr size_t kMaxPlain = noise::kMaxMessageLen - noise::kTagLen;
  const size_t frames = std::max<size_t>(1, (data.size() + kMaxPlain - 1) / kMaxPlain);
  // Encrypts straight from `data` into one buffer of length || ciphertext frames, sent with
  // one write. The buffer is reused across writes; a write overlapping another (Connection
  // never does that) gets its own.
  Bytes local;
  Bytes& out = writing_ ? local : out_;
  out.resize(data.size() + frames * (2 + noise::kTagLen));
  size_t pos = 0, at = 0;
  do {
    const size_t n = std::min(kMaxPlain, data.size() - pos);
    const size_t ct_len = n + noise::kTagLen;
    out[at] = static_cast<uint8_t>(ct_len >> 8);
    out[at + 1] = static_cast<uint8_t>(ct_len);
    Status st = keys_.send.encrypt_into({}, data.subspan(pos, n),
                                        std::span<uint8_t>(out.data() + at + 2, ct_len));
    if (!st.is_ok()) co_return st;
    pos += n;
    at += 2 + ct_len;
  } while (pos < data.size());
  const bool owner = &out == &out_;
  if (owner) writing_ = true;
  Status st = co_await inner_->write(out);
  if (owner) writing_ = false;
  co_return st;
}

awaitable<Status> SecureChannel::write_chunks(
    ByteView data, size_t max_chunk, size_t header_len,
    const std::function<void(size_t chunk_len, std::span<uint8_t> header)>& make_header) {
  constexpr size_t kMaxPlain = noise::kMaxMessageLen - noise::kTagLen;
  if (max_chunk == 0 || header_len + max_chunk > kMaxPlain || header_len > 64) {
    co_return Status::internal("SecureChannel::write_chunks: chunk does not fit a Noise message");
  }
  const size_t frames = std::max<size_t>(1, (data.size() + max_chunk - 1) / max_chunk);
  Bytes local;
  Bytes& out = writing_ ? local : out_;
  out.resize(data.size() + frames * (2 + header_len + noise::kTagLen));
  uint8_t header[64];
  size_t pos = 0, at = 0;
  do {
    const size_t n = std::min(max_chunk, data.size() - pos);
    const size_t ct_len = header_len + n + noise::kTagLen;
    out[at] = static_cast<uint8_t>(ct_len >> 8);
    out[at + 1] = static_cast<uint8_t>(ct_len);
    make_header(n, std::span<uint8_t>(header, header_len));
    Status st = keys_.send.encrypt_into({}, ByteView(header, header_len), data.subspan(pos, n),
                                        std::span<uint8_t>(out.data() + at + 2, ct_len));
    if (!st.is_ok()) co_return st;
    pos += n;
    at += 2 + ct_len;
  } while (pos < data.size());
  const bool owner = &out == &out_;
  if (owner) writing_ = true;
  Status st = co_await inner_->write(out);
  if (owner) writing_ = false;
  co_return st;
}

awaitable<Result<size_t>> SecureChannel::do_read_some(std::span<uint8_t> buf) {
  // Room for several maximal frames, so a burst of them costs one read.
  constexpr size_t kInBuffer = 256 * 1024;
  if (plain_pos_ < plain_.size()) {
    size_t n = std::min(buf.size(), plain_.size() - plain_pos_);
    std::memcpy(buf.data(), plain_.data() + plain_pos_, n);
    plain_pos_ += n;
    co_return n;
  }
  if (in_.empty()) in_.resize(kInBuffer);
  size_t produced = 0;
  while (true) {
    // Decrypt every complete frame that fits the caller's buffer, straight into it.
    while (in_end_ - in_start_ >= 2) {
      const uint8_t* p = in_.data() + in_start_;
      const size_t len = size_t{p[0]} << 8 | p[1];
      if (in_end_ - in_start_ < 2 + len) break;
      ByteView ct(p + 2, len);
      const size_t pt_len = len >= noise::kTagLen ? len - noise::kTagLen : 0;
      if (pt_len <= buf.size() - produced) {
        auto n = keys_.recv.decrypt_into({}, ct, buf.subspan(produced));
        if (!n.ok()) co_return n.status();
        produced += *n;
        in_start_ += 2 + len;
        continue;
      }
      if (produced > 0) break;  // hand out what we have; this frame waits for the next call
      // The caller's buffer is smaller than the frame: keep the rest of it in plain_.
      plain_.resize(pt_len);
      auto n = keys_.recv.decrypt_into({}, ct, plain_);
      if (!n.ok()) co_return n.status();
      in_start_ += 2 + len;
      produced = std::min(buf.size(), *n);
      std::memcpy(buf.data(), plain_.data(), produced);
      plain_pos_ = produced;
      co_return produced;
    }
    if (produced > 0) co_return produced;
    // Need more bytes: make room for the whole pending frame, then read.
    if (in_start_ == in_end_) {
      in_start_ = in_end_ = 0;
    } else if (in_.size() - in_start_ < 2 + noise::kMaxMessageLen) {
      std::memmove(in_.data(), in_.data() + in_start_, in_end_ - in_start_);
      in_end_ -= in_start_;
      in_start_ = 0;
    }
    auto r =
        co_await inner_->read_some(std::span<uint8_t>(in_.data() + in_end_, in_.size() - in_end_));
    if (!r.ok()) co_return r.status();
    if (*r == 0) {
      if (in_start_ == in_end_) co_return size_t{0};  // clean EOF between frames
      co_return Status::corruption("Noise: connection ended inside a frame");
    }
    in_end_ += *r;
  }
}

namespace {

awaitable<Status> write_frame(ByteStream& io, ByteView msg) {
  if (msg.size() > noise::kMaxMessageLen) {
    co_return Status::internal("Noise handshake message over 65535 bytes");
  }
  Bytes f(2 + msg.size());
  f[0] = static_cast<uint8_t>(msg.size() >> 8);
  f[1] = static_cast<uint8_t>(msg.size());
  if (!msg.empty()) std::memcpy(f.data() + 2, msg.data(), msg.size());
  co_return co_await io.write(f);
}

awaitable<Result<Bytes>> read_frame(ByteStream& io) {
  uint8_t len_bytes[2];
  Status st = co_await io.read_exact(len_bytes);
  if (!st.is_ok()) co_return st;
  Bytes msg(size_t{len_bytes[0]} << 8 | len_bytes[1]);
  st = co_await io.read_exact(msg);
  if (!st.is_ok()) co_return st;
  co_return msg;
}

}  // namespace

awaitable<Result<std::unique_ptr<SecureChannel>>> noise_handshake(
    std::unique_ptr<ByteStream> io, const identity::KeyPair& identity, bool initiator,
    std::optional<identity::PeerId> expected_remote) {
  NoiseSecurity sec(identity, initiator, std::move(expected_remote));
  if (initiator) {
    auto m1 = sec.start();
    if (!m1.ok()) co_return m1.status();
    Status st = co_await write_frame(*io, *m1);
    if (!st.is_ok()) co_return st;
  }
  while (!sec.complete()) {
    auto in = co_await read_frame(*io);
    if (!in.ok()) co_return in.status().with_context("Noise handshake");
    auto out = sec.on_message(*in);
    if (!out.ok()) co_return out.status();
    if (out->has_value()) {
      Status st = co_await write_frame(*io, **out);
      if (!st.is_ok()) co_return st;
    }
  }
  auto keys = sec.keys();
  if (!keys.ok()) co_return keys.status();
  co_return std::make_unique<SecureChannel>(std::move(io), std::move(*keys), sec.remote_peer());
}

}  // namespace idn::p2p
