#include "routing/record.h"

#include "core/varint.h"
#include "routing/defaults.h"

namespace idn::routing {
namespace {

constexpr std::string_view kDomain = "idn-routing-record-v1";
constexpr uint8_t kVersion = 1;

void put_field(ByteView b, Bytes& out) {
  core::append_length_prefixed(b, out);
}

struct Reader {
  ByteView in;
  size_t pos = 0;
  Result<uint64_t> uvarint(std::string_view what) {
    auto v = core::decode_uvarint(in.subspan(pos));
    if (!v.ok())
      return Status::corruption(std::string("record ") + std::string(what) + ": " +
                                v.status().message());
    pos += v->size;
    return v->value;
  }
  Result<Bytes> field(std::string_view what, size_t max) {
    IDN_ASSIGN_OR_RETURN(uint64_t n, uvarint(what));
    if (n > max || n > in.size() - pos)
      return Status::corruption("record " + std::string(what) + ": length " + std::to_string(n) +
                                " exceeds " + std::to_string(std::min(max, in.size() - pos)));
    Bytes b(in.begin() + pos, in.begin() + pos + n);
    pos += n;
    return b;
  }
};

}  // namespace

std::string_view record_kind_name(RecordKind k) {
  switch (k) {
    case RecordKind::kPeer:
      return "peer";
    case RecordKind::kProvider:
      return "provider";
    case RecordKind::kValue:
      return "value";
    case RecordKind::kRelayed:
      return "relayed";
  }
  return "unknown";
}

std::string_view verdict_name(Verdict v) {
  switch (v) {
    case Verdict::kValid:
      return "valid";
    case Verdict::kMalformed:
      return "malformed";
    case Verdict::kForged:
      return "forged";
    case Verdict::kExpired:
      return "expired";
    case Verdict::kReplayed:
      return "replayed";
  }
  return "unknown";
}

Bytes Record::signing_bytes() const {
  Bytes out(kDomain.begin(), kDomain.end());
  out.push_back(kVersion);
  out.push_back(static_cast<uint8_t>(kind));
  put_field(key, out);
  put_field(value, out);
  put_field(peer_id, out);
  put_field(public_key, out);
  core::append_uvarint(seq, out);
  core::append_uvarint(static_cast<uint64_t>(expires_unix_ms), out);
  out.push_back(withdrawn ? 1 : 0);
  return out;
}

Result<Record> sign_record(const identity::KeyPair& key, RecordKind kind, ByteView record_key,
                           ByteView value, uint64_t seq, Clock::time_point expires,
                           bool withdrawn) {
  if (record_key.empty() || record_key.size() > 256)
    return Status::invalid_argument("record key must be 1..256 bytes, got " +
                                    std::to_string(record_key.size()));
  if (value.size() > defaults::kMaxValueSize)
    return Status::invalid_argument("record value of " + std::to_string(value.size()) +
                                    " bytes exceeds the limit of " +
                                    std::to_string(defaults::kMaxValueSize));
  if (seq > core::kMaxUvarintValue) return Status::invalid_argument("sequence number too large");
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(expires.time_since_epoch());
  if (ms.count() < 0) return Status::invalid_argument("record expiry before 1970");
  Record r;
  r.kind = kind;
  r.key.assign(record_key.begin(), record_key.end());
  r.value.assign(value.begin(), value.end());
  r.peer_id = identity::PeerId::from_public_key(key.public_key()).bytes();
  r.public_key = key.public_key().to_protobuf();
  r.seq = seq;
  r.expires_unix_ms = ms.count();
  r.withdrawn = withdrawn;
  r.signature = key.sign(r.signing_bytes());
  return r;
}

Bytes encode_record(const Record& r) {
  Bytes out;
  out.push_back(kVersion);
  out.push_back(static_cast<uint8_t>(r.kind));
  put_field(r.key, out);
  put_field(r.value, out);
  put_field(r.peer_id, out);
  put_field(r.public_key, out);
  core::append_uvarint(r.seq, out);
  core::append_uvarint(static_cast<uint64_t>(r.expires_unix_ms), out);
  out.push_back(r.withdrawn ? 1 : 0);
  put_field(r.signature, out);
  return out;
}

Result<Record> decode_record(ByteView bytes) {
  if (bytes.size() > defaults::kMaxRecordSize)
    return Status::corruption("record of " + std::to_string(bytes.size()) +
                              " bytes exceeds the limit of " +
                              std::to_string(defaults::kMaxRecordSize));
  if (bytes.size() < 2) return Status::corruption("record truncated");
  if (bytes[0] != kVersion)
    return Status::corruption("record version " + std::to_string(bytes[0]) + " unsupported");
  Record r;
  uint8_t kind = bytes[1];
  if (kind < 1 || kind > 4) return Status::corruption("record kind " + std::to_string(kind));
  r.kind = static_cast<RecordKind>(kind);
  Reader rd{bytes, 2};
  IDN_ASSIGN_OR_RETURN(r.key, rd.field("key", 256));
  IDN_ASSIGN_OR_RETURN(r.value, rd.field("value", defaults::kMaxValueSize));
  IDN_ASSIGN_OR_RETURN(r.peer_id, rd.field("peer id", 128));
  IDN_ASSIGN_OR_RETURN(r.public_key, rd.field("public key", 128));
  IDN_ASSIGN_OR_RETURN(r.seq, rd.uvarint("seq"));
  IDN_ASSIGN_OR_RETURN(uint64_t exp, rd.uvarint("expiry"));
  r.expires_unix_ms = static_cast<int64_t>(exp);
  if (rd.pos >= bytes.size()) return Status::corruption("record truncated before flags");
  uint8_t flags = bytes[rd.pos++];
  if (flags > 1) return Status::corruption("record flags " + std::to_string(flags));
  r.withdrawn = flags == 1;
  IDN_ASSIGN_OR_RETURN(r.signature, rd.field("signature", 64));
  if (rd.pos != bytes.size())
    return Status::corruption(std::to_string(bytes.size() - rd.pos) +
                              " trailing bytes after record");
  if (r.key.empty()) return Status::corruption("record key empty");
  return r;
}

Result<Bytes> encode_relayed(const std::vector<RelayedPeer>& peers) {
  if (peers.size() > defaults::kMaxRelayedPeers)
    return Status::invalid_argument("a relayed-provider record names at most " +
                                    std::to_string(defaults::kMaxRelayedPeers) + " peers, got " +
                                    std::to_string(peers.size()));
  Bytes out;
  core::append_uvarint(peers.size(), out);
  for (const auto& p : peers) {
    if (p.addrs.empty() || p.addrs.size() > defaults::kMaxRelayedAddrs)
      return Status::invalid_argument("relayed peer " + p.id.to_string() + " has " +
                                      std::to_string(p.addrs.size()) + " addresses, need 1.." +
                                      std::to_string(defaults::kMaxRelayedAddrs));
    put_field(p.id.bytes(), out);
    core::append_uvarint(p.addrs.size(), out);
    for (const auto& a : p.addrs) {
      // Stored without the final /p2p/<peer> (decode puts it back): 16 x 4 addresses fit.
      const auto& c = a.components();
      bool tail = !c.empty() && c.back().protocol == core::Protocol::kP2p &&
                  c.back().value == p.id.bytes() && c.size() >= 2 &&
                  c[c.size() - 2].protocol == core::Protocol::kP2pCircuit;
      put_field(
          tail ? a.decapsulate(core::Multiaddr::p2p(p.id.multihash())).to_bytes() : a.to_bytes(),
          out);
    }
  }
  if (out.size() > defaults::kMaxValueSize)
    return Status::invalid_argument("relayed-provider value of " + std::to_string(out.size()) +
                                    " bytes exceeds the limit of " +
                                    std::to_string(defaults::kMaxValueSize));
  return out;
}

Result<std::vector<RelayedPeer>> decode_relayed(ByteView value) {
  if (value.size() > defaults::kMaxValueSize)
    return Status::corruption("relayed-provider value of " + std::to_string(value.size()) +
                              " bytes exceeds the limit of " +
                              std::to_string(defaults::kMaxValueSize));
  Reader rd{value, 0};
  IDN_ASSIGN_OR_RETURN(uint64_t n, rd.uvarint("relayed peer count"));
  if (n > defaults::kMaxRelayedPeers)
    return Status::corruption("record names " + std::to_string(n) + " relayed peers, limit " +
                              std::to_string(defaults::kMaxRelayedPeers));
  std::vector<RelayedPeer> out;
  for (uint64_t i = 0; i < n; ++i) {
    IDN_ASSIGN_OR_RETURN(Bytes id, rd.field("relayed peer id", 128));
    auto pid = identity::PeerId::from_bytes(id);
    if (!pid.ok()) return Status::corruption("relayed peer id: " + pid.status().message());
    IDN_ASSIGN_OR_RETURN(uint64_t na, rd.uvarint("relayed address count"));
    if (na == 0 || na > defaults::kMaxRelayedAddrs)
      return Status::corruption("relayed peer lists " + std::to_string(na) +
                                " addresses, need 1.." +
                                std::to_string(defaults::kMaxRelayedAddrs));
    RelayedPeer p{*pid, {}};
    for (uint64_t j = 0; j < na; ++j) {
      IDN_ASSIGN_OR_RETURN(Bytes b, rd.field("relayed address", 1024));
      auto a = core::Multiaddr::from_bytes(b);
      if (!a.ok()) return Status::corruption("relayed address: " + a.status().message());
      if (a->empty() || a->components().back().protocol != core::Protocol::kP2p)
        *a = a->encapsulate(core::Multiaddr::p2p(p.id.multihash()));
      p.addrs.push_back(std::move(*a));
    }
    out.push_back(std::move(p));
  }
  if (rd.pos != value.size())
    return Status::corruption(std::to_string(value.size() - rd.pos) +
                              " trailing bytes after the relayed peers");
  return out;
}

Status check_relayed(const identity::PeerId& relay, const std::vector<RelayedPeer>& peers) {
  for (const auto& p : peers) {
    if (p.id == relay)
      return Status::peer_misbehaved("relay " + relay.to_string() + " names itself as relayed");
    for (const auto& a : p.addrs) {
      const auto& c = a.components();
      auto bad = [&](std::string_view why) {
        return Status::peer_misbehaved("relayed address " + a.to_string() + " of " +
                                       p.id.to_string() + ": " + std::string(why));
      };
      size_t circuit = c.size(), circuits = 0;
      for (size_t i = 0; i < c.size(); ++i)
        if (c[i].protocol == core::Protocol::kP2pCircuit) circuit = i, ++circuits;
      if (circuits != 1) return bad("not exactly one /p2p-circuit");
      if (circuit < 2 || c[circuit - 1].protocol != core::Protocol::kP2p ||
          c[circuit - 1].value != relay.bytes())
        return bad("not a circuit through the record's signer");
      for (size_t i = 0; i + 1 < circuit; ++i)
        if (c[i].protocol == core::Protocol::kP2p) return bad("a /p2p before the relay's");
      if (c.size() > circuit + 2) return bad("components after the relayed peer");
      if (c.size() == circuit + 2 &&
          (c[circuit + 1].protocol != core::Protocol::kP2p || c[circuit + 1].value != p.id.bytes()))
        return bad("does not end at the relayed peer");
    }
  }
  return Status::ok();
}

Verdict verify_record(const Record& r, Clock::time_point now, Clock::duration max_lifetime) {
  auto pk = identity::PublicKey::from_protobuf(r.public_key);
  if (!pk.ok()) return Verdict::kForged;
  auto pid = identity::PeerId::from_bytes(r.peer_id);
  if (!pid.ok() || !pid->matches(*pk)) return Verdict::kForged;
  if (!pk->verify(r.signing_bytes(), r.signature)) return Verdict::kForged;
  if (r.kind == RecordKind::kPeer && r.key != r.peer_id) return Verdict::kForged;
  if (r.expires_at() <= now) return Verdict::kExpired;
  if (r.expires_at() > now + max_lifetime) return Verdict::kForged;
  return Verdict::kValid;
}

}  // namespace idn::routing
