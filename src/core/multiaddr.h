// Multiaddr: self-describing, composable network addresses (/ip4/1.2.3.4/tcp/4001/p2p/12D3...),
// in their text and binary (varint code || value) forms, for the protocols IDN's transports
// speak. Immutable value type.
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/bytes.h"
#include "core/multihash.h"
#include "core/status.h"

namespace idn::core {

// Codes from the multiaddr protocol table. Values are part of the wire format.
enum class Protocol : uint64_t {
  kIp4 = 4,
  kTcp = 6,
  kIp6 = 41,
  kDns = 53,
  kDns4 = 54,
  kDns6 = 55,
  kDnsaddr = 56,
  kUdp = 273,
  kP2pCircuit = 290,
  kP2p = 421,  // text alias "ipfs"
  kTls = 448,
  kQuicV1 = 461,
  kWs = 477,
  kWss = 478,
};

std::string_view protocol_name(Protocol p);

struct MultiaddrComponent {
  Protocol protocol;
  Bytes value;  // binary value without the length prefix (empty for ws, wss, ...)

  std::string value_string() const;  // text form of the value ("127.0.0.1", "4001", ...)
  friend bool operator==(const MultiaddrComponent&, const MultiaddrComponent&) = default;
};

// Longest multiaddr we accept; real ones are well under 200 bytes.
inline constexpr size_t kMaxMultiaddrSize = 1024;

class Multiaddr {
 public:
  Multiaddr() = default;  // the empty address

  // Text form. Errors: InvalidArgument (unknown protocol, missing or malformed value, trailing
  // garbage), LimitExceeded (longer than kMaxMultiaddrSize).
  static Result<Multiaddr> parse(std::string_view text);
  // Binary form. Errors: Corruption (truncated, bad varint, malformed value), Unsupported
  // (protocol code we do not know, so cannot skip), LimitExceeded.
  static Result<Multiaddr> from_bytes(ByteView bytes);
  // /ip4/<ip>/tcp/<port> or /ip6/<ip>/tcp/<port> depending on the address family of `ip`.
  static Result<Multiaddr> from_tcp(std::string_view ip, uint16_t port);

  // The one-component address /p2p/<peer>.
  static Multiaddr p2p(const Multihash& peer) {
    return Multiaddr({{Protocol::kP2p, peer.bytes()}});
  }

  std::string to_string() const;
  Bytes to_bytes() const;
  const std::vector<MultiaddrComponent>& components() const { return components_; }
  bool empty() const { return components_.empty(); }

  // this + other (e.g. /ip4/1.2.3.4/tcp/1 + /p2p/12D3...).
  Multiaddr encapsulate(const Multiaddr& other) const;
  // Everything before the last occurrence of `other` as a component sequence; unchanged when
  // `other` does not occur (libp2p semantics).
  Multiaddr decapsulate(const Multiaddr& other) const;
  // Everything before the last component with protocol `p`; unchanged when there is none.
  Multiaddr decapsulate(Protocol p) const;

  // Value of the first component with protocol `p`, if any.
  const MultiaddrComponent* find(Protocol p) const;
  std::optional<uint16_t> tcp_port() const;
  std::optional<uint16_t> udp_port() const;
  // Text of the first ip4 or ip6 address ("127.0.0.1", "::1").
  std::optional<std::string> ip() const;
  // The first ip4/ip6 address or dns/dns4/dns6/dnsaddr name.
  std::optional<std::string> host() const;
  // The multihash of the last /p2p component (the peer this address reaches); see
  // identity::peer_id_of for a typed PeerId.
  std::optional<Multihash> peer_multihash() const;

  friend bool operator==(const Multiaddr& a, const Multiaddr& b) {
    return a.components_ == b.components_;
  }
  friend auto operator<=>(const Multiaddr& a, const Multiaddr& b) {
    return a.to_bytes() <=> b.to_bytes();
  }

 private:
  explicit Multiaddr(std::vector<MultiaddrComponent> c) : components_(std::move(c)) {}
  std::vector<MultiaddrComponent> components_;
};

// Formats 16 bytes as RFC 5952 text (lower case, longest zero run of 2+ groups as "::").
std::string format_ip6(ByteView addr16);

}  // namespace idn::core
