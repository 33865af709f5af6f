// Host: a libp2p-compatible node endpoint. It listens and dials through its transports (TCP
// and WebSocket by default, see transport.h), upgrades every connection (multistream-select
// "/noise" -> Noise XX -> multistream-select "/yamux/1.0.0" -> yamux), keeps one connection per
// peer, negotiates an application protocol per stream, and serves identify (/ipfs/id/1.0.0, push)
// and ping (/ipfs/ping/1.0.0) on every connection. A stock js-libp2p node (TCP or WebSocket + noise
// + yamux + identify + ping) can dial it and be dialled.
//
// Example (inside a coroutine on the host's executor):
//   p2p::Host host(ioc.get_executor(), key);
//   auto addr = host.listen(*core::Multiaddr::parse("/ip4/127.0.0.1/tcp/0"));
//   host.set_handler("/idn/echo/1.0.0", [](std::shared_ptr<p2p::Stream> s) -> awaitable<void> {
//     auto msg = co_await p2p::read_length_prefixed(*s, 1 << 20);
//     if (msg.ok()) co_await p2p::write_length_prefixed(*s, *msg);
//     co_await s->close_write();
//   });
//   auto peer = co_await host.dial(*core::Multiaddr::parse("/ip4/.../tcp/4001/p2p/12D3..."));
//   auto stream = co_await host.new_stream(*peer, "/idn/echo/1.0.0");
//
// Threading: a Host and everything it hands out live on one executor (one io_context thread).
// Call its methods from that thread (co_spawn or post onto it); only stats() may be read from
// anywhere. Call stop() and let the io_context finish (or stop it) before destroying the Host.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/multiaddr.h"
#include "identity/keys.h"
#include "identity/peer_id.h"
#include "p2p/connection.h"
#include "p2p/defaults.h"
#include "p2p/handshake_budget.h"
#include "p2p/identify.h"
#include "p2p/stream.h"
#include "p2p/transport.h"
#include "p2p/yamux.h"

namespace idn::p2p {

inline constexpr std::string_view kPingProtocolId = "/ipfs/ping/1.0.0";

struct HostConfig {
  size_t max_connections = defaults::kMaxConnections;  // established + our dials in progress
  std::chrono::milliseconds handshake_timeout = defaults::kHandshakeTimeout;
  HandshakeLimits inbound_handshakes;  // inbound handshakes in progress (see handshake_budget.h)
  std::chrono::milliseconds idle_timeout = defaults::kIdleTimeout;  // T_c
  std::chrono::milliseconds idle_sweep_interval = defaults::kIdleSweepInterval;
  std::chrono::milliseconds stream_negotiation_timeout = defaults::kStreamNegotiationTimeout;
  std::chrono::milliseconds dial_timeout = defaults::kDialTimeout;
  size_t max_identify_message = defaults::kMaxIdentifyMessage;
  yamux::SessionLimits yamux;
  std::string agent_version = "idn/0.1.0";
  std::string protocol_version = "ipfs/0.1.0";
  // Local IP address our dials leave from (the kernel's choice when unset): a host with
  // several addresses, or a test that must reach a node from a second loopback address.
  std::optional<asio::ip::address> dial_from;
  // Time source for idle accounting and ping RTTs; tests inject a fake. Timers that bound
  // handshakes and negotiations use the executor's steady clock.
  std::function<SteadyTime()> clock = [] { return std::chrono::steady_clock::now(); };
  // Listening and dialling go to the first transport that handles the address. Empty: TCP
  // and WebSocket (make_tcp_transport, make_ws_transport). Tests give a memory transport alone.
  std::vector<std::shared_ptr<Transport>> transports;
};

// A snapshot for metrics export (Prometheus counters and gauges).
struct HostStats {
  uint64_t connections_opened = 0, connections_closed = 0, connections_active = 0;
  uint64_t inbound_connections = 0, outbound_connections = 0;
  uint64_t handshakes_ok = 0, handshakes_failed = 0;
  uint64_t handshakes_pending = 0;  // inbound handshakes in progress
  // Inbound connections closed at once, by the limit that refused them, and inbound
  // handshakes evicted for a newer connection while the pending budget was full.
  uint64_t inbound_refused_per_address = 0, inbound_refused_pending = 0;
  uint64_t inbound_refused_connections = 0;  // max_connections established peers
  uint64_t handshakes_evicted = 0;
  uint64_t streams_opened = 0, streams_closed = 0, streams_active = 0, streams_refused = 0;
  uint64_t bytes_in = 0, bytes_out = 0;
  uint64_t writes = 0;  // socket writes: how well small messages are coalesced
};

// What we know about a connected peer.
struct PeerInfo {
  identity::PeerId id;
  core::Multiaddr remote_addr;  // where its connection comes from / goes to
  bool outbound = false;        // we dialled it
  std::optional<IdentifyInfo> identify;
  std::optional<std::chrono::microseconds> rtt;  // last ping round trip
};

using StreamHandler = std::function<awaitable<void>(std::shared_ptr<Stream>)>;

class Host {
 public:
  Host(asio::any_io_executor ex, identity::KeyPair key, HostConfig config = {});
  ~Host();
  Host(const Host&) = delete;
  Host& operator=(const Host&) = delete;

  const identity::PeerId& id() const { return id_; }
  const identity::KeyPair& key() const { return key_; }
  const HostConfig& config() const { return config_; }

  // Binds /ip4|ip6/<addr>/tcp/<port>[/ws] (port 0: ephemeral) and starts accepting. Returns
  // the bound address (without /p2p). Errors: InvalidArgument (no transport handles it),
  // IOError.
  Result<core::Multiaddr> listen(const core::Multiaddr& addr);
  // Bound addresses, each with /p2p/<our id> appended.
  std::vector<core::Multiaddr> listen_addrs() const;

  // Connects to /ip4|ip6|dns*/.../tcp/<port>[/ws][/p2p/<id>] and upgrades; or, through a circuit
  // relay, to .../p2p/<relay>/p2p-circuit/p2p/<id> (circuit_transport.h). With /p2p/<id> a remote
  // with another identity is refused (PeerMisbehaved). Returns the authenticated peer ID; when
  // already connected to that peer, returns at once. Errors: IOError, Timeout, PeerMisbehaved,
  // Unsupported (remote speaks neither /noise nor /yamux/1.0.0), LimitExceeded.
  awaitable<Result<identity::PeerId>> dial(const core::Multiaddr& addr);

  // Inbound streams negotiating `protocol` go to `handler` (replaces an earlier one).
  void set_handler(std::string protocol, StreamHandler handler);
  void remove_handler(const std::string& protocol);
  std::vector<std::string> protocols() const;

  // Opens a stream to a connected peer and negotiates `protocol` (or the first of
  // `protocols` the peer accepts). Errors: NotFound (not connected), Unsupported, Timeout.
  awaitable<Result<std::shared_ptr<Stream>>> new_stream(const identity::PeerId& peer,
                                                        std::string protocol);
  awaitable<Result<std::shared_ptr<Stream>>> new_stream(const identity::PeerId& peer,
                                                        std::vector<std::string> protocols);
  // Opens a stream and selects `protocol` optimistically: returns at once, the proposal rides
  // with the first write, and the first read fails with Unsupported if the peer refused it.
  // Saves a round trip per stream for protocols the peer is known to serve (a provider of a
  // service speaks /idn/infer). Errors: NotFound (not connected), LimitExceeded.
  awaitable<Result<std::shared_ptr<Stream>>> new_stream_optimistic(const identity::PeerId& peer,
                                                                   std::string protocol);

  // One /ipfs/ping/1.0.0 round trip; the RTT is also kept in peer_info(). Errors as
  // new_stream, plus PeerMisbehaved when the echo differs.
  awaitable<Result<std::chrono::microseconds>> ping(const identity::PeerId& peer);

  bool is_connected(const identity::PeerId& peer) const;
  std::vector<identity::PeerId> connected_peers() const;
  std::optional<PeerInfo> peer_info(const identity::PeerId& peer) const;
  // Waits until `peer` is connected (and, with `identified`, its identify has arrived).
  // Returns false when `timeout` passes first.
  awaitable<bool> wait_for_peer(const identity::PeerId& peer, std::chrono::milliseconds timeout,
                                bool identified = false);
  // Closes the connection to `peer` (logged with `reason`).
  void disconnect(const identity::PeerId& peer, std::string reason);

  // Called on the executor when a peer connects (reason ok) or its connection closes.
  using ConnectionObserver =
      std::function<void(const identity::PeerId&, bool connected, const Status& reason)>;
  void set_connection_observer(ConnectionObserver observer) { observer_ = std::move(observer); }

  HostStats stats() const;
  const HostCounters& counters() const { return *counters_; }

  // Stops listening and closes every connection. Idempotent.
  void stop();

 private:
  struct Listener;
  struct PeerState {
    std::shared_ptr<Connection> conn;
    std::optional<IdentifyInfo> identify;
    std::optional<std::chrono::microseconds> rtt;
  };

  awaitable<void> accept_loop(std::shared_ptr<Listener> l);
  awaitable<void> handle_inbound(std::unique_ptr<RawConnection> raw);
  // The transport's opening (WebSocket upgrade), then security + muxer upgrade of a fresh
  // connection; on success registers it. `ticket`: the inbound connection's slot in budget_
  // (0 for dials).
  awaitable<Result<std::shared_ptr<Connection>>> upgrade(std::unique_ptr<RawConnection> raw,
                                                         bool outbound,
                                                         std::optional<identity::PeerId> expected,
                                                         HandshakeBudget::Ticket ticket = 0);
  void log_inbound_refusal(const std::string& who, std::string_view why);
  Result<std::shared_ptr<Connection>> register_connection(std::shared_ptr<Connection> c);
  void on_connection_closed(Connection& c, const Status& reason);
  void on_inbound_stream(std::shared_ptr<Stream> s);
  awaitable<void> serve_stream(std::shared_ptr<Stream> s);
  awaitable<Result<std::shared_ptr<Stream>>> open_raw_stream(const identity::PeerId& peer);
  awaitable<void> run_identify(std::shared_ptr<Connection> c);
  awaitable<void> idle_sweeper();
  IdentifyInfo local_identify(const Connection& c) const;
  awaitable<void> handle_identify(std::shared_ptr<Stream> s);
  awaitable<void> handle_identify_push(std::shared_ptr<Stream> s);
  awaitable<void> handle_ping(std::shared_ptr<Stream> s);
  Status accept_identify(const identity::PeerId& peer, ByteView msg);

  asio::any_io_executor ex_;
  identity::KeyPair key_;
  identity::PeerId id_;
  HostConfig config_;
  std::shared_ptr<HostCounters> counters_;
  Transport* transport_for(const core::Multiaddr& addr) const;
  std::unique_ptr<Transport> circuit_;  // dials .../p2p-circuit/p2p/<peer> through this host

  std::vector<std::shared_ptr<Listener>> listeners_;
  std::map<std::string, StreamHandler> handlers_;
  std::unordered_map<identity::PeerId, PeerState> peers_;
  size_t pending_dials_ = 0;  // outbound handshakes in progress
  HandshakeBudget budget_;    // inbound handshakes in progress
  LogThrottle limit_log_;
  std::atomic<uint64_t> refused_connections_{0};
  Signal peers_changed_;
  ConnectionObserver observer_;
  bool stopped_ = false;
  bool sweeper_running_ = false;
  std::shared_ptr<bool> alive_;  // lets detached coroutines notice the host is gone
};

}  // namespace idn::p2p
