// Circuit relay v2 (libp2p/specs relay/circuit-v2.md), the relay side: peers that cannot listen
// (browsers) reserve a slot on a node with /libp2p/circuit/relay/0.2.0/hop RESERVE and are then
// reachable at /<node addr>/p2p/<node>/p2p-circuit/p2p/<peer>; a dialer sends CONNECT on the
// hop protocol, the node opens /libp2p/circuit/relay/0.2.0/stop to the reserved peer over the
// connection it holds, and once both say OK splices the two streams (Noise and yamux then run
// end to end through it). Answers carry no `limit` unless one is configured, so js-libp2p treats
// the relayed connection as unlimited and runs ordinary protocols (/idn/infer) on it.
// The codec is pure. Threading: RelayService lives on the Host's executor, like the Host.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "core/bytes.h"
#include "core/multiaddr.h"
#include "core/status.h"
#include "identity/peer_id.h"
#include "p2p/stream.h"

namespace idn::p2p {
class Host;
}

namespace idn::p2p::relay {

inline constexpr std::string_view kHopProtocolId = "/libp2p/circuit/relay/0.2.0/hop";
inline constexpr std::string_view kStopProtocolId = "/libp2p/circuit/relay/0.2.0/stop";
// go-libp2p and js-libp2p read at most 4 KiB per relay message; a peer with a few addresses
// and a voucher fits in well under that.
inline constexpr size_t kMaxRelayMessage = 4096;
inline constexpr size_t kMaxRelayAddrs = 32;        // per Peer or Reservation
inline constexpr size_t kMaxRelayPeerIdBytes = 64;  // a multihash of a key (identity or sha256)

// The spec's Status: append-only wire values. Unknown values decode as they are.
enum class RelayStatus : uint32_t {
  kUnused = 0,
  kOk = 100,
  kReservationRefused = 200,
  kResourceLimitExceeded = 201,
  kPermissionDenied = 202,
  kConnectionFailed = 203,
  kNoReservation = 204,
  kMalformedMessage = 400,
  kUnexpectedMessage = 401,
};
std::string_view relay_status_name(RelayStatus s);

enum class HopType : uint32_t { kReserve = 0, kConnect = 1, kStatus = 2 };
enum class StopType : uint32_t { kConnect = 0, kStatus = 1 };

// Peer {id = 1 (multihash bytes), addrs = 2 (binary multiaddrs)}.
struct RelayPeer {
  Bytes id;
  std::vector<Bytes> addrs;
};
// Reservation {expire = 1 (Unix seconds), addrs = 2, voucher = 3 (a signed envelope, opaque)}.
struct Reservation {
  uint64_t expire = 0;
  std::vector<Bytes> addrs;
  Bytes voucher;
};
// Limit {duration = 1 (seconds), data = 2 (bytes per direction)}; 0: that limit is absent.
struct Limit {
  uint32_t duration = 0;
  uint64_t data = 0;
};

// HopMessage {type = 1, peer = 2, reservation = 3, limit = 4, status = 5}.
struct HopMessage {
  HopType type = HopType::kStatus;
  std::optional<RelayPeer> peer;
  std::optional<Reservation> reservation;
  std::optional<Limit> limit;
  std::optional<RelayStatus> status;
};
// StopMessage {type = 1, peer = 2, limit = 3, status = 4}.
struct StopMessage {
  StopType type = StopType::kStatus;
  std::optional<RelayPeer> peer;
  std::optional<Limit> limit;
  std::optional<RelayStatus> status;
};

Bytes encode_hop(const HopMessage& m);
Bytes encode_stop(const StopMessage& m);
// Errors: Corruption (malformed protobuf), InvalidArgument (no or unknown type, a peer without
// an ID or with an oversized one, more than kMaxRelayAddrs addresses, an address longer than
// core::kMaxMultiaddrSize). Unknown fields are skipped.
Result<HopMessage> decode_hop(ByteView bytes);
Result<StopMessage> decode_stop(ByteView bytes);

struct RelayConfig {
  size_t max_reservations = 128;               // peers holding a slot at once
  size_t max_circuits = 256;                   // spliced circuits at once, in total...
  size_t max_circuits_per_peer = 16;           // ...and per peer at either end
  std::chrono::seconds reservation_ttl{3600};  // a peer refreshes before expiry (js: 10 min)
  // Sent as the spec's Limit when non-zero, and enforced: a circuit is reset after this long
  // or after this many bytes in either direction. Zero (the default): no limit, so js-libp2p
  // runs every protocol on the relayed connection.
  std::chrono::seconds circuit_duration{0};
  uint64_t circuit_data = 0;
  std::chrono::milliseconds hop_timeout{30000};  // a HOP or STOP exchange before splicing
  size_t splice_chunk = 64 * 1024;               // read size per direction
};

struct RelayStats {
  uint64_t reservations_accepted = 0, reservations_refused = 0;
  uint64_t connects_ok = 0, connects_refused = 0, connects_failed = 0;
  uint64_t malformed = 0;
  uint64_t circuits_active = 0, bytes_relayed = 0;
  uint64_t reservations_active = 0;  // held now (expired ones counted until pruned)
};

class RelayService {
 public:
  // `addrs`: the relay's own addresses to put in reservations (each ends in /p2p/<relay>);
  // empty: the host's listen addresses. `now`: wall clock for expiry (tests inject one).
  RelayService(Host& host, RelayConfig config,
               std::function<std::vector<core::Multiaddr>()> addrs = {},
               std::function<std::chrono::system_clock::time_point()> now = {});
  ~RelayService();  // detaches
  RelayService(const RelayService&) = delete;
  RelayService& operator=(const RelayService&) = delete;

  // Serves the hop protocol on the host; detach() stops it. Circuits already spliced run on.
  void attach();
  void detach();

  // A peer's connection closed: its reservation ends (the Node calls this from its connection
  // observer).
  void on_disconnected(const identity::PeerId& peer);
  // Called with (peer, true) when a reservation is made (not when refreshed) and with
  // (peer, false) when it ends (expired, disconnected).
  using ReservationObserver = std::function<void(const identity::PeerId&, bool reserved)>;
  void set_reservation_observer(ReservationObserver observer);

  bool has_reservation(const identity::PeerId& peer) const;
  std::vector<identity::PeerId> reserved_peers() const;
  // The relayed address of `peer` for each relay address: /<addr>/p2p-circuit/p2p/<peer>.
  std::vector<core::Multiaddr> circuit_addrs(const identity::PeerId& peer) const;
  RelayStats stats() const;

  struct State;

 private:
  Host& host_;
  std::shared_ptr<State> state_;
  bool attached_ = false;
};

}  // namespace idn::p2p::relay
