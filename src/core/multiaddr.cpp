#include "core/multiaddr.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstdio>

#include "core/cid.h"
#include "core/multibase.h"
#include "core/varint.h"

namespace idn::core {
namespace {

constexpr int kVariable = -1;

struct ProtocolInfo {
  Protocol code;
  std::string_view name;
  int size;  // value bytes: 0 none, > 0 fixed, kVariable length-prefixed
};

constexpr ProtocolInfo kProtocols[] = {
    {Protocol::kIp4, "ip4", 4},
    {Protocol::kTcp, "tcp", 2},
    {Protocol::kIp6, "ip6", 16},
    {Protocol::kDns, "dns", kVariable},
    {Protocol::kDns4, "dns4", kVariable},
    {Protocol::kDns6, "dns6", kVariable},
    {Protocol::kDnsaddr, "dnsaddr", kVariable},
    {Protocol::kUdp, "udp", 2},
    {Protocol::kP2pCircuit, "p2p-circuit", 0},
    {Protocol::kP2p, "p2p", kVariable},
    {Protocol::kTls, "tls", 0},
    {Protocol::kQuicV1, "quic-v1", 0},
    {Protocol::kWs, "ws", 0},
    {Protocol::kWss, "wss", 0},
};

const ProtocolInfo* by_code(uint64_t code) {
  for (const auto& p : kProtocols)
    if (uint64_t(p.code) == code) return &p;
  return nullptr;
}

const ProtocolInfo* by_name(std::string_view name) {
  if (name == "ipfs") name = "p2p";  // legacy name of the same protocol
  for (const auto& p : kProtocols)
    if (p.name == name) return &p;
  return nullptr;
}

bool is_dns(Protocol p) {
  return p == Protocol::kDns || p == Protocol::kDns4 || p == Protocol::kDns6 ||
         p == Protocol::kDnsaddr;
}

// Quotes untrusted text for an error message: bounded, with non-printables escaped.
std::string quote(std::string_view s) {
  std::string out = "'";
  for (size_t i = 0; i < s.size() && i < 64; ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f) {
      out.push_back(static_cast<char>(c));
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  if (s.size() > 64) out += "...";
  return out + "'";
}

Status check_dns_name(ByteView v) {
  if (v.empty()) return Status::invalid_argument("empty DNS name");
  if (v.size() > 255) return Status::invalid_argument("DNS name longer than 255 bytes");
  for (uint8_t c : v) {
    if (c == '/' || c < 0x21 || c == 0x7f) {
      return Status::invalid_argument("DNS name contains '/', a space or a control character");
    }
  }
  return Status::ok();
}

// /p2p carries a peer ID: an identity or sha2-256 multihash. Other hash functions would have
// no text form that parses back (their base58 does not start with '1' or 'Qm').
Status check_peer_multihash(ByteView v) {
  IDN_ASSIGN_OR_RETURN(Multihash mh, Multihash::from_bytes(v));
  if (mh.code() != uint64_t(HashCode::kIdentity) && mh.code() != uint64_t(HashCode::kSha2_256)) {
    return Status::invalid_argument("peer ID uses hash " + hash_code_name(mh.code()) +
                                    "; only identity and sha2-256 are peer IDs");
  }
  return Status::ok();
}

// Text value -> binary value for protocol `p`.
Result<Bytes> value_from_text(const ProtocolInfo& p, std::string_view text) {
  auto bad = [&](std::string_view why) {
    std::string msg = "/";
    msg.append(p.name).append(" value ").append(quote(text)).append(": ").append(why);
    return Status::invalid_argument(std::move(msg));
  };
  switch (p.code) {
    case Protocol::kIp4: {
      Bytes b(4);
      if (inet_pton(AF_INET, std::string(text).c_str(), b.data()) != 1) {
        return bad("not a dotted-quad IPv4 address");
      }
      return b;
    }
    case Protocol::kIp6: {
      Bytes b(16);
      if (inet_pton(AF_INET6, std::string(text).c_str(), b.data()) != 1) {
        return bad("not an IPv6 address");
      }
      return b;
    }
    case Protocol::kTcp:
    case Protocol::kUdp: {
      unsigned port = 0;
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
      if (text.empty() || ec != std::errc() || end != text.data() + text.size() || port > 65535) {
        return bad("not a port number 0-65535");
      }
      return Bytes{static_cast<uint8_t>(port >> 8), static_cast<uint8_t>(port)};
    }
    case Protocol::kP2p: {
      // Peer IDs are written in base58btc, or as a CIDv1 with the libp2p-key codec.
      if (!text.empty() && (text[0] == '1' || text[0] == 'Q')) {
        auto raw = base58btc_decode(text);
        if (!raw.ok()) return bad(raw.status().message());
        Status s = check_peer_multihash(*raw);
        if (!s.is_ok()) return bad(s.message());
        return std::move(raw).value();
      }
      auto cid = Cid::parse(text);
      if (!cid.ok()) return bad("neither a base58btc peer ID nor a CID");
      if (cid->codec() != uint64_t(Multicodec::kLibp2pKey)) {
        return bad("CID does not use the libp2p-key codec");
      }
      Status s = check_peer_multihash(cid->hash().bytes());
      if (!s.is_ok()) return bad(s.message());
      return cid->hash().bytes();
    }
    default:
      if (is_dns(p.code)) {
        Status s = check_dns_name(as_bytes(text));
        if (!s.is_ok()) return bad(s.message());
        return to_bytes(text);
      }
      break;
  }
  return bad("protocol takes no value");
}

// Validates a binary value read off the wire.
Status check_binary_value(const ProtocolInfo& p, ByteView v) {
  if (is_dns(p.code)) return check_dns_name(v);
  if (p.code == Protocol::kP2p) return check_peer_multihash(v);
  return Status::ok();
}

}  // namespace

std::string_view protocol_name(Protocol p) {
  const ProtocolInfo* info = by_code(uint64_t(p));
  return info ? info->name : "unknown";
}

std::string format_ip6(ByteView a) {
  if (a.size() != 16) return "<invalid ip6>";
  uint16_t g[8];
  for (int i = 0; i < 8; ++i) g[i] = uint16_t(a[2 * i] << 8 | a[2 * i + 1]);
  int best = -1, best_len = 0;
  for (int i = 0; i < 8;) {
    if (g[i] != 0) {
      ++i;
      continue;
    }
    int j = i;
    while (j < 8 && g[j] == 0) ++j;
    if (j - i > best_len && j - i >= 2) {
      best = i;
      best_len = j - i;
    }
    i = j;
  }
  std::string out;
  char buf[8];
  for (int i = 0; i < 8; ++i) {
    if (i == best) {
      out += "::";
      i += best_len - 1;
      continue;
    }
    if (!out.empty() && out.back() != ':') out.push_back(':');
    std::snprintf(buf, sizeof buf, "%x", g[i]);
    out += buf;
  }
  return out;
}

std::string MultiaddrComponent::value_string() const {
  switch (protocol) {
    case Protocol::kIp4: {
      if (value.size() != 4) return "<invalid ip4>";
      char buf[16];
      std::snprintf(buf, sizeof buf, "%u.%u.%u.%u", value[0], value[1], value[2], value[3]);
      return buf;
    }
    case Protocol::kIp6:
      return format_ip6(value);
    case Protocol::kTcp:
    case Protocol::kUdp:
      if (value.size() != 2) return "<invalid port>";
      return std::to_string(value[0] << 8 | value[1]);
    case Protocol::kP2p:
      return base58btc_encode(value);
    default:
      if (is_dns(protocol)) return idn::to_string(value);
      return "";
  }
}

Result<Multiaddr> Multiaddr::parse(std::string_view text) {
  if (text.size() > 4 * kMaxMultiaddrSize) {
    return Status::limit_exceeded("multiaddr text of " + std::to_string(text.size()) +
                                  " characters is too long");
  }
  if (text.empty() || text[0] != '/') {
    return Status::invalid_argument("multiaddr " + quote(text) + " must start with '/'");
  }
  std::vector<MultiaddrComponent> comps;
  size_t pos = 1;
  auto next_segment = [&]() -> std::optional<std::string_view> {
    if (pos > text.size()) return std::nullopt;
    size_t end = text.find('/', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view seg = text.substr(pos, end - pos);
    pos = end + 1;
    return seg;
  };
  while (pos < text.size()) {
    std::string_view name = *next_segment();
    if (name.empty()) {
      return Status::invalid_argument("multiaddr " + quote(text) + " has an empty component");
    }
    const ProtocolInfo* p = by_name(name);
    if (!p) {
      return Status::invalid_argument("multiaddr " + quote(text) + ": unknown protocol " +
                                      quote(name));
    }
    Bytes value;
    if (p->size != 0) {
      auto seg = next_segment();
      if (!seg || seg->empty()) {
        return Status::invalid_argument("multiaddr " + quote(text) + ": /" + std::string(p->name) +
                                        " needs a value");
      }
      IDN_ASSIGN_OR_RETURN(value, value_from_text(*p, *seg));
    }
    comps.push_back({p->code, std::move(value)});
  }
  if (comps.empty()) return Status::invalid_argument("multiaddr '/' has no components");
  Multiaddr m(std::move(comps));
  if (m.to_bytes().size() > kMaxMultiaddrSize) {
    return Status::limit_exceeded("multiaddr exceeds " + std::to_string(kMaxMultiaddrSize) +
                                  " bytes");
  }
  return m;
}

Result<Multiaddr> Multiaddr::from_bytes(ByteView in) {
  if (in.size() > kMaxMultiaddrSize) {
    return Status::limit_exceeded("binary multiaddr of " + std::to_string(in.size()) +
                                  " bytes exceeds the limit of " +
                                  std::to_string(kMaxMultiaddrSize));
  }
  if (in.empty()) return Status::corruption("empty binary multiaddr");
  std::vector<MultiaddrComponent> comps;
  size_t pos = 0;
  while (pos < in.size()) {
    auto code = decode_uvarint(in.subspan(pos));
    if (!code.ok()) return code.status().with_context("multiaddr protocol code");
    pos += code->size;
    const ProtocolInfo* p = by_code(code->value);
    if (!p) {
      return Status::unsupported("multiaddr protocol code " + std::to_string(code->value) +
                                 " is not supported");
    }
    size_t len = 0;
    if (p->size == kVariable) {
      auto l = decode_uvarint(in.subspan(pos));
      if (!l.ok()) return l.status().with_context("multiaddr /" + std::string(p->name) + " length");
      pos += l->size;
      if (l->value > in.size() - pos) {
        return Status::corruption("multiaddr /" + std::string(p->name) + " declares " +
                                  std::to_string(l->value) + " bytes but " +
                                  std::to_string(in.size() - pos) + " remain");
      }
      len = static_cast<size_t>(l->value);
    } else {
      len = static_cast<size_t>(p->size);
      if (len > in.size() - pos) {
        return Status::corruption("multiaddr /" + std::string(p->name) + " value is truncated");
      }
    }
    ByteView v = in.subspan(pos, len);
    Status s = check_binary_value(*p, v);
    if (!s.is_ok()) {
      return Status::corruption("multiaddr /" + std::string(p->name) + " value: " + s.message());
    }
    comps.push_back({p->code, Bytes(v.begin(), v.end())});
    pos += len;
  }
  return Multiaddr(std::move(comps));
}

Result<Multiaddr> Multiaddr::from_tcp(std::string_view ip, uint16_t port) {
  Bytes v4(4), v6(16);
  std::string s(ip);
  Bytes port_bytes{static_cast<uint8_t>(port >> 8), static_cast<uint8_t>(port)};
  if (inet_pton(AF_INET, s.c_str(), v4.data()) == 1) {
    return Multiaddr({{Protocol::kIp4, v4}, {Protocol::kTcp, port_bytes}});
  }
  if (inet_pton(AF_INET6, s.c_str(), v6.data()) == 1) {
    return Multiaddr({{Protocol::kIp6, v6}, {Protocol::kTcp, port_bytes}});
  }
  return Status::invalid_argument(quote(ip) + " is neither an IPv4 nor an IPv6 address");
}

std::string Multiaddr::to_string() const {
  std::string out;
  for (const auto& c : components_) {
    out.push_back('/');
    out += protocol_name(c.protocol);
    const ProtocolInfo* p = by_code(uint64_t(c.protocol));
    if (p && p->size != 0) {
      out.push_back('/');
      out += c.value_string();
    }
  }
  return out;
}

Bytes Multiaddr::to_bytes() const {
  Bytes out;
  for (const auto& c : components_) {
    append_uvarint(uint64_t(c.protocol), out);
    const ProtocolInfo* p = by_code(uint64_t(c.protocol));
    if (p && p->size == kVariable) append_uvarint(c.value.size(), out);
    out.insert(out.end(), c.value.begin(), c.value.end());
  }
  return out;
}

Multiaddr Multiaddr::encapsulate(const Multiaddr& other) const {
  std::vector<MultiaddrComponent> c = components_;
  c.insert(c.end(), other.components_.begin(), other.components_.end());
  return Multiaddr(std::move(c));
}

Multiaddr Multiaddr::decapsulate(const Multiaddr& other) const {
  const auto& o = other.components_;
  if (o.empty() || o.size() > components_.size()) return *this;
  for (size_t start = components_.size() - o.size() + 1; start-- > 0;) {
    if (std::equal(o.begin(), o.end(), components_.begin() + static_cast<ptrdiff_t>(start))) {
      return Multiaddr(std::vector<MultiaddrComponent>(
          components_.begin(), components_.begin() + static_cast<ptrdiff_t>(start)));
    }
  }
  return *this;
}

Multiaddr Multiaddr::decapsulate(Protocol p) const {
  for (size_t i = components_.size(); i-- > 0;) {
    if (components_[i].protocol == p) {
      return Multiaddr(std::vector<MultiaddrComponent>(
          components_.begin(), components_.begin() + static_cast<ptrdiff_t>(i)));
    }
  }
  return *this;
}

const MultiaddrComponent* Multiaddr::find(Protocol p) const {
  for (const auto& c : components_)
    if (c.protocol == p) return &c;
  return nullptr;
}

static std::optional<uint16_t> port_of(const MultiaddrComponent* c) {
  if (!c || c->value.size() != 2) return std::nullopt;
  return static_cast<uint16_t>(c->value[0] << 8 | c->value[1]);
}

std::optional<uint16_t> Multiaddr::tcp_port() const {
  return port_of(find(Protocol::kTcp));
}
std::optional<uint16_t> Multiaddr::udp_port() const {
  return port_of(find(Protocol::kUdp));
}

std::optional<std::string> Multiaddr::ip() const {
  for (const auto& c : components_)
    if (c.protocol == Protocol::kIp4 || c.protocol == Protocol::kIp6) return c.value_string();
  return std::nullopt;
}

std::optional<std::string> Multiaddr::host() const {
  for (const auto& c : components_)
    if (c.protocol == Protocol::kIp4 || c.protocol == Protocol::kIp6 || is_dns(c.protocol))
      return c.value_string();
  return std::nullopt;
}

std::optional<Multihash> Multiaddr::peer_multihash() const {
  for (size_t i = components_.size(); i-- > 0;) {
    if (components_[i].protocol != Protocol::kP2p) continue;
    auto mh = Multihash::from_bytes(components_[i].value);
    if (mh.ok()) return std::move(mh).value();
    return std::nullopt;
  }
  return std::nullopt;
}

}  // namespace idn::core
