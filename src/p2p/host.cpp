#include "p2p/host.h"

#include <openssl/rand.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "p2p/circuit_transport.h"
#include "p2p/websocket_transport.h"

namespace idn::p2p {

namespace {

constexpr auto kUse = asio::use_awaitable;

std::string reason_text(const Status& st) {
  return st.is_ok() ? std::string("remote went away (GoAway)") : st.to_string();
}

// Resets a stream (closing its socket) if `timeout` passes before disarm(); lets a coroutine
// bound a whole multi-step exchange such as a handshake.
class DeadlineGuard {
 public:
  DeadlineGuard(asio::any_io_executor ex, std::chrono::milliseconds timeout,
                std::function<void()> on_expiry)
      : state_(std::make_shared<State>()), timer_(std::make_shared<asio::steady_timer>(ex)) {
    state_->on_expiry = std::move(on_expiry);
    timer_->expires_after(timeout);
    timer_->async_wait([st = state_, t = timer_](boost::system::error_code ec) {
      if (ec || !st->armed) return;
      st->fired = true;
      st->on_expiry();
    });
  }
  ~DeadlineGuard() { disarm(); }
  void disarm() {
    state_->armed = false;
    timer_->cancel();
  }
  // A function that expires the deadline now (if still armed): to end the exchange early.
  std::function<void()> expirer() const {
    return [st = state_, t = timer_] {
      if (!st->armed) return;
      st->armed = false;
      st->fired = true;
      t->cancel();
      st->on_expiry();
    };
  }
  bool fired() const { return state_->fired; }

 private:
  struct State {
    bool armed = true;
    bool fired = false;
    std::function<void()> on_expiry;
  };
  std::shared_ptr<State> state_;
  std::shared_ptr<asio::steady_timer> timer_;
};

}  // namespace

struct Host::Listener {
  std::unique_ptr<TransportListener> listener;
  core::Multiaddr addr;
};

Host::Host(asio::any_io_executor ex, identity::KeyPair key, HostConfig config)
    : ex_(ex),
      key_(std::move(key)),
      id_(identity::PeerId::from_public_key(key_.public_key())),
      config_(std::move(config)),
      counters_(std::make_shared<HostCounters>()),
      budget_(config_.inbound_handshakes),
      limit_log_(defaults::kLimitLogInterval),
      peers_changed_(ex),
      alive_(std::make_shared<bool>(true)) {
  if (config_.transports.empty()) config_.transports = {make_tcp_transport(), make_ws_transport()};
  circuit_ = make_circuit_transport(*this);
  set_handler(std::string(kIdentifyProtocolId),
              [this](std::shared_ptr<Stream> s) { return handle_identify(std::move(s)); });
  set_handler(std::string(kIdentifyPushProtocolId),
              [this](std::shared_ptr<Stream> s) { return handle_identify_push(std::move(s)); });
  set_handler(std::string(kPingProtocolId),
              [this](std::shared_ptr<Stream> s) { return handle_ping(std::move(s)); });
}

Host::~Host() {
  *alive_ = false;
  stop();
}

// ------------------------------------------------------------------------------- listening

Transport* Host::transport_for(const core::Multiaddr& addr) const {
  if (circuit_->handles(addr)) return circuit_.get();
  for (const auto& t : config_.transports)
    if (t->handles(addr)) return t.get();
  return nullptr;
}

Result<core::Multiaddr> Host::listen(const core::Multiaddr& addr) {
  Transport* t = transport_for(addr);
  if (!t) {
    return Status::invalid_argument("listen: no transport for " + addr.to_string() +
                                    " (want /ip4|ip6/<addr>/tcp/<port>[/ws])");
  }
  IDN_ASSIGN_OR_RETURN(auto tl, t->listen(ex_, addr));
  auto l = std::make_shared<Listener>();
  l->addr = tl->addr();
  l->listener = std::move(tl);
  listeners_.push_back(l);
  stopped_ = false;
  asio::co_spawn(ex_, accept_loop(l), asio::detached);
  if (!sweeper_running_) {
    sweeper_running_ = true;
    asio::co_spawn(ex_, idle_sweeper(), asio::detached);
  }
  spdlog::info("p2p: {} listening on {}", id_.to_string(), l->addr.to_string());
  return l->addr;
}

std::vector<core::Multiaddr> Host::listen_addrs() const {
  std::vector<core::Multiaddr> out;
  for (const auto& l : listeners_) out.push_back(identity::with_peer_id(l->addr, id_));
  return out;
}

awaitable<void> Host::accept_loop(std::shared_ptr<Listener> l) {
  auto alive = alive_;
  while (*alive && !l->listener->closed()) {
    auto c = co_await l->listener->accept();
    if (!*alive) co_return;
    if (!c.ok()) {
      if (c.status().code() == Code::kCancelled || l->listener->closed()) co_return;
      spdlog::warn("p2p: {}", c.status().to_string());
      continue;
    }
    asio::co_spawn(ex_, handle_inbound(std::move(*c)), asio::detached);
  }
}

awaitable<void> Host::handle_inbound(std::unique_ptr<RawConnection> raw) {
  std::string who = raw->remote_addr().to_string();
  if (stopped_) co_return;
  // Established peers and handshakes in progress have separate budgets (handshake_budget.h):
  // half-open connections can fill only the latter.
  if (peers_.size() >= config_.max_connections) {
    refused_connections_++;
    log_inbound_refusal(who, "connection limit " + std::to_string(config_.max_connections) +
                                 " reached (established peers)");
    co_return;
  }
  auto adm = budget_.admit(raw->remote_ip(), config_.clock(), nullptr);
  if (!adm.ticket) {
    log_inbound_refusal(who, budget_.describe(adm.refused));
    co_return;
  }
  if (adm.evicted_other) {
    log_inbound_refusal(who, "admitted by evicting a stalled handshake (pending-handshake limit " +
                                 std::to_string(budget_.limits().max_pending) + " reached)");
  }
  auto r = co_await upgrade(std::move(raw), false, std::nullopt, adm.ticket);
  (void)r;  // upgrade() logs failures
}

void Host::log_inbound_refusal(const std::string& who, std::string_view why) {
  if (auto skipped = limit_log_.allow(config_.clock())) {
    spdlog::info("p2p: inbound connection from {}: {}{}", who, why,
                 *skipped ? fmt::format(" ({} similar events not logged in the last {} s)",
                                        *skipped, defaults::kLimitLogInterval.count())
                          : std::string());
  }
}

// --------------------------------------------------------------------------------- dialling

awaitable<Result<identity::PeerId>> Host::dial(const core::Multiaddr& addr) {
  std::optional<identity::PeerId> expected;
  // Through a relay: the peer is the one after /p2p-circuit, and the circuit transport takes
  // the whole address.
  const bool circuit = addr.find(core::Protocol::kP2pCircuit) != nullptr;
  if (circuit) {
    auto c = parse_circuit_addr(addr);
    if (!c.ok()) co_return c.status();
    expected = c->peer;
    if (*expected == id_) co_return Status::invalid_argument("refusing to dial ourselves");
    if (is_connected(*expected)) co_return *expected;
  } else if (addr.find(core::Protocol::kP2p)) {
    auto pid = identity::peer_id_of(addr);
    if (!pid.ok()) co_return pid.status();
    expected = *pid;
    if (*expected == id_) co_return Status::invalid_argument("refusing to dial ourselves");
    if (is_connected(*expected)) co_return *expected;
  }
  const core::Multiaddr target = circuit ? addr : addr.decapsulate(core::Protocol::kP2p);
  Transport* t = transport_for(target);
  if (!t) {
    co_return Status::invalid_argument("dial: no transport for " + addr.to_string() +
                                       " (want .../tcp/<port>[/ws][/p2p/<id>])");
  }
  if (stopped_) co_return Status::unavailable("host is stopped");
  if (peers_.size() + pending_dials_ >= config_.max_connections) {
    co_return Status::limit_exceeded("connection limit " + std::to_string(config_.max_connections) +
                                     " reached");
  }
  auto raw = co_await t->dial(ex_, target, DialOptions{config_.dial_timeout, config_.dial_from});
  if (!raw.ok()) co_return raw.status();
  auto c = co_await upgrade(std::move(*raw), true, expected);
  if (!c.ok()) co_return c.status();
  co_return (*c)->remote_peer();
}

awaitable<Result<std::shared_ptr<Connection>>> Host::upgrade(
    std::unique_ptr<RawConnection> raw, bool outbound, std::optional<identity::PeerId> expected,
    HandshakeBudget::Ticket ticket) {
  auto alive = alive_;
  core::Multiaddr local_addr = raw->local_addr();
  core::Multiaddr remote_addr = raw->remote_addr();
  std::string who = outbound ? std::string("to ") : std::string("from ");
  who += remote_addr.to_string();

  if (outbound) ++pending_dials_;
  RawConnection* io = raw.get();
  DeadlineGuard guard(ex_, config_.handshake_timeout, [io] { io->reset(); });
  if (ticket) budget_.set_evictor(ticket, guard.expirer());
  auto fail = [&](Status st) -> Status {
    bool evicted = false;
    if (*alive) {
      if (outbound) --pending_dials_;
      if (ticket) evicted = !budget_.release(ticket);
      counters_->handshakes_failed++;
    }
    if (evicted) {
      // Counted in the budget's stats and logged (throttled) when it happened.
      spdlog::debug("p2p: connection {} evicted during its handshake: {}", who, st.to_string());
      return Status::limit_exceeded("handshake evicted for a newer connection");
    }
    if (guard.fired()) {
      st = Status::timeout("handshake not finished within " +
                           std::to_string(config_.handshake_timeout.count()) + " ms (" +
                           st.to_string() + ")");
    }
    spdlog::info("p2p: connection {} closed during handshake: {}", who, st.to_string());
    return st;
  };

  // 0. the transport's own opening (WebSocket upgrade)
  Status opened = co_await io->open();
  if (!*alive) co_return Status::cancelled("host destroyed");
  if (!opened.is_ok()) co_return fail(opened);
  // 1. security protocol
  Result<std::string> sec = Status::internal("unset");
  if (outbound) {
    std::vector<std::string> want{std::string(kNoiseProtocolId)};
    sec = co_await select_protocol(*raw, std::move(want));
  } else {
    sec = co_await accept_protocol(*raw, [](std::string_view p) { return p == kNoiseProtocolId; });
  }
  if (!*alive) co_return Status::cancelled("host destroyed");
  if (!sec.ok()) co_return fail(sec.status().with_context("security negotiation"));
  if (ticket) budget_.mark_progress(ticket);
  // 2. Noise XX
  auto ch = co_await noise_handshake(std::move(raw), key_, outbound, expected);
  if (!*alive) co_return Status::cancelled("host destroyed");
  if (!ch.ok()) co_return fail(ch.status());
  // 3. muxer
  SecureChannel& chan = **ch;
  Result<std::string> mux = Status::internal("unset");
  if (outbound) {
    std::vector<std::string> want{std::string(yamux::kProtocolId)};
    mux = co_await select_protocol(chan, std::move(want));
  } else {
    mux =
        co_await accept_protocol(chan, [](std::string_view p) { return p == yamux::kProtocolId; });
  }
  if (!*alive) co_return Status::cancelled("host destroyed");
  if (!mux.ok()) co_return fail(mux.status().with_context("muxer negotiation"));
  guard.disarm();
  if (outbound) --pending_dials_;
  budget_.release(ticket);
  counters_->handshakes_ok++;

  Connection::Callbacks cbs;
  cbs.on_inbound_stream = [this, alive](std::shared_ptr<Stream> s) {
    if (*alive) on_inbound_stream(std::move(s));
  };
  cbs.on_closed = [this, alive](Connection& c, const Status& reason) {
    if (*alive) on_connection_closed(c, reason);
  };
  auto conn = std::make_shared<Connection>(ex_, std::move(*ch), outbound, local_addr, remote_addr,
                                           config_.yamux, counters_, config_.clock, cbs);
  conn->start();
  co_return register_connection(std::move(conn));
}

Result<std::shared_ptr<Connection>> Host::register_connection(std::shared_ptr<Connection> c) {
  const identity::PeerId peer = c->remote_peer();
  counters_->connections_opened++;
  (c->outbound() ? counters_->outbound_connections : counters_->inbound_connections)++;
  spdlog::info("p2p: connection {} {} {} ({}) established", c->serial(),
               c->outbound() ? "to" : "from", peer.to_string(), c->remote_addr().to_string());
  if (stopped_) {
    c->close(Status::unavailable("host is stopping"));
    return Status::unavailable("host is stopping");
  }
  auto it = peers_.find(peer);
  if (it == peers_.end() && peers_.size() >= config_.max_connections) {
    Status st = Status::limit_exceeded("connection limit " +
                                       std::to_string(config_.max_connections) + " reached");
    c->close(st);
    return st;
  }
  if (it != peers_.end() && it->second.conn && !it->second.conn->closed()) {
    // One connection per peer. Both ends apply the same rule, so they keep the same one: the
    // connection whose dialer has the smaller peer ID.
    auto dialer = [&](const Connection& x) -> const identity::PeerId& {
      return x.outbound() ? id_ : x.remote_peer();
    };
    std::shared_ptr<Connection> old = it->second.conn;
    // Two connections dialled by the same side (concurrent dials) are ordered by the dialer's
    // TCP address, which both ends also agree on.
    auto dialer_addr = [](const Connection& x) {
      return (x.outbound() ? x.local_addr() : x.remote_addr()).to_bytes();
    };
    bool keep_new = dialer(*c) == dialer(*old) ? dialer_addr(*c) < dialer_addr(*old)
                                               : dialer(*c) < dialer(*old);
    std::shared_ptr<Connection> loser = keep_new ? old : c;
    if (keep_new) it->second.conn = c;
    loser->close(Status::cancelled("duplicate connection to " + peer.to_string() +
                                   " (keeping the one dialled by the smaller peer ID)"));
    if (!keep_new) return old;
  } else {
    peers_[peer] = PeerState{c, std::nullopt, std::nullopt};
  }
  auto keep = peers_[peer].conn;
  if (observer_) observer_(peer, true, Status::ok());
  peers_changed_.notify_all();
  asio::co_spawn(ex_, run_identify(keep), asio::detached);
  return keep;
}

void Host::on_connection_closed(Connection& c, const Status& reason) {
  counters_->connections_closed++;
  const identity::PeerId peer = c.remote_peer();
  spdlog::info("p2p: connection {} {} {} ({}) closed: {}", c.serial(), c.outbound() ? "to" : "from",
               peer.to_string(), c.remote_addr().to_string(), reason_text(reason));
  auto it = peers_.find(peer);
  if (it != peers_.end() && it->second.conn.get() == &c) {
    peers_.erase(it);
    if (observer_) observer_(peer, false, reason);
  }
  peers_changed_.notify_all();
}

// ---------------------------------------------------------------------------------- streams

void Host::set_handler(std::string protocol, StreamHandler handler) {
  handlers_[std::move(protocol)] = std::move(handler);
}

void Host::remove_handler(const std::string& protocol) {
  handlers_.erase(protocol);
}

std::vector<std::string> Host::protocols() const {
  std::vector<std::string> out;
  for (const auto& [p, h] : handlers_) out.push_back(p);
  return out;
}

void Host::on_inbound_stream(std::shared_ptr<Stream> s) {
  asio::co_spawn(ex_, serve_stream(std::move(s)), asio::detached);
}

awaitable<void> Host::serve_stream(std::shared_ptr<Stream> s) {
  auto alive = alive_;
  s->set_deadline(std::chrono::steady_clock::now() + config_.stream_negotiation_timeout);
  auto p = co_await accept_protocol(
      *s, [this](std::string_view p) { return handlers_.count(std::string(p)) > 0; });
  if (!*alive) co_return;
  if (!p.ok()) {
    counters_->streams_refused++;
    spdlog::debug("p2p: inbound stream from {} refused: {}", s->remote_peer().to_string(),
                  p.status().to_string());
    s->reset();
    co_return;
  }
  s->set_deadline(SteadyTime::max());
  s->set_protocol(*p);
  auto it = handlers_.find(*p);
  if (it == handlers_.end()) {
    s->reset();
    co_return;
  }
  StreamHandler h = it->second;  // the handler may be replaced while it runs
  co_await h(std::move(s));
}

awaitable<Result<std::shared_ptr<Stream>>> Host::new_stream(const identity::PeerId& peer,
                                                            std::string protocol) {
  std::vector<std::string> v{std::move(protocol)};
  co_return co_await new_stream(peer, std::move(v));
}

awaitable<Result<std::shared_ptr<Stream>>> Host::open_raw_stream(const identity::PeerId& peer) {
  auto it = peers_.find(peer);
  if (it == peers_.end() || !it->second.conn || it->second.conn->closed()) {
    co_return Status::not_found("not connected to " + peer.to_string() + "; dial it first");
  }
  auto conn = it->second.conn;
  co_return co_await conn->open_stream();
}

awaitable<Result<std::shared_ptr<Stream>>> Host::new_stream_optimistic(const identity::PeerId& peer,
                                                                       std::string protocol) {
  auto s = co_await open_raw_stream(peer);
  if (!s.ok()) co_return s.status();
  (*s)->select_optimistically(protocol);
  co_return std::move(*s);
}

awaitable<Result<std::shared_ptr<Stream>>> Host::new_stream(const identity::PeerId& peer,
                                                            std::vector<std::string> protocols) {
  auto s = co_await open_raw_stream(peer);
  if (!s.ok()) co_return s.status();
  (*s)->set_deadline(std::chrono::steady_clock::now() + config_.stream_negotiation_timeout);
  auto p = co_await select_protocol(**s, std::move(protocols));
  if (!p.ok()) {
    (*s)->reset();
    co_return p.status().with_context("stream to " + peer.to_string());
  }
  (*s)->set_deadline(SteadyTime::max());
  (*s)->set_protocol(*p);
  co_return std::move(*s);
}

// -------------------------------------------------------------------------- identify, ping

IdentifyInfo Host::local_identify(const Connection& c) const {
  IdentifyInfo info;
  info.protocol_version = config_.protocol_version;
  info.agent_version = config_.agent_version;
  info.public_key = key_.public_key().to_protobuf();
  for (const auto& l : listeners_) info.listen_addrs.push_back(l->addr);
  if (!c.remote_addr().empty()) info.observed_addr = c.remote_addr();
  info.protocols = protocols();
  return info;
}

awaitable<void> Host::handle_identify(std::shared_ptr<Stream> s) {
  auto it = peers_.find(s->remote_peer());
  IdentifyInfo info;
  if (it != peers_.end() && it->second.conn) {
    info = local_identify(*it->second.conn);
  } else {
    info.protocol_version = config_.protocol_version;
    info.agent_version = config_.agent_version;
    info.public_key = key_.public_key().to_protobuf();
    info.protocols = protocols();
  }
  Status st = co_await write_length_prefixed(*s, encode_identify(info));
  if (st.is_ok()) st = co_await s->close_write();
  if (!st.is_ok())
    spdlog::debug("p2p: identify to {} failed: {}", s->remote_peer().to_string(), st.to_string());
}

Status Host::accept_identify(const identity::PeerId& peer, ByteView msg) {
  IDN_ASSIGN_OR_RETURN(IdentifyInfo info, decode_identify(msg));
  if (!info.public_key.empty()) {
    auto key = identity::PublicKey::from_protobuf(info.public_key);
    if (!key.ok() || !peer.matches(*key)) {
      return Status::peer_misbehaved("identify from " + peer.to_string() +
                                     " carries a public key of another peer");
    }
  }
  auto it = peers_.find(peer);
  if (it == peers_.end()) return Status::unavailable("peer disconnected during identify");
  it->second.identify = std::move(info);
  peers_changed_.notify_all();
  return Status::ok();
}

awaitable<void> Host::run_identify(std::shared_ptr<Connection> c) {
  auto alive = alive_;
  const identity::PeerId peer = c->remote_peer();
  auto s = co_await new_stream(peer, std::string(kIdentifyProtocolId));
  if (!*alive) co_return;
  Status st = s.status();
  if (st.is_ok()) {
    (*s)->set_deadline(std::chrono::steady_clock::now() + config_.stream_negotiation_timeout);
    auto msg = co_await read_length_prefixed(**s, config_.max_identify_message);
    if (!*alive) co_return;
    st = msg.ok() ? accept_identify(peer, *msg) : msg.status();
    if (!c->closed()) (void)co_await (*s)->close_write();
  }
  if (!st.is_ok()) {
    spdlog::info("p2p: identify of {} failed: {}", peer.to_string(), st.to_string());
    if (st.code() == Code::kPeerMisbehaved) c->close(st.with_context("identify"));
  }
}

awaitable<void> Host::handle_identify_push(std::shared_ptr<Stream> s) {
  auto msg = co_await read_length_prefixed(*s, config_.max_identify_message);
  Status st = msg.ok() ? accept_identify(s->remote_peer(), *msg) : msg.status();
  if (!st.is_ok())
    spdlog::debug("p2p: identify push from {}: {}", s->remote_peer().to_string(), st.to_string());
  (void)co_await s->close_write();
}

awaitable<void> Host::handle_ping(std::shared_ptr<Stream> s) {
  uint8_t buf[defaults::kPingSize];
  while (true) {
    Status st = co_await s->read_exact(buf);
    if (!st.is_ok()) break;  // EOF or reset ends the ping session
    if (s->at_eof()) {
      // The ping came with the pinger's FIN (js-libp2p sends both at once and counts the
      // stream until ours arrives): the pong carries our FIN.
      (void)co_await s->write_last(ByteView(buf, sizeof buf));
      co_return;
    }
    st = co_await s->write(ByteView(buf, sizeof buf));
    if (!st.is_ok()) break;
  }
  (void)co_await s->close_write();
}

awaitable<Result<std::chrono::microseconds>> Host::ping(const identity::PeerId& peer) {
  auto s = co_await new_stream(peer, std::string(kPingProtocolId));
  if (!s.ok()) co_return s.status();
  uint8_t out[defaults::kPingSize], in[defaults::kPingSize];
  if (RAND_bytes(out, sizeof out) != 1) co_return Status::internal("RAND_bytes failed");
  (*s)->set_deadline(std::chrono::steady_clock::now() + config_.stream_negotiation_timeout);
  auto t0 = config_.clock();
  Status st = co_await (*s)->write(ByteView(out, sizeof out));
  if (st.is_ok()) st = co_await (*s)->read_exact(in);
  if (!st.is_ok()) co_return st.with_context("ping " + peer.to_string());
  auto rtt = std::chrono::duration_cast<std::chrono::microseconds>(config_.clock() - t0);
  (void)co_await (*s)->close_write();
  if (!std::equal(std::begin(out), std::end(out), std::begin(in))) {
    co_return Status::peer_misbehaved("ping: " + peer.to_string() + " echoed different bytes");
  }
  auto it = peers_.find(peer);
  if (it != peers_.end()) it->second.rtt = rtt;
  co_return rtt;
}

// ------------------------------------------------------------------------------- bookkeeping

bool Host::is_connected(const identity::PeerId& peer) const {
  auto it = peers_.find(peer);
  return it != peers_.end() && it->second.conn && !it->second.conn->closed();
}

std::vector<identity::PeerId> Host::connected_peers() const {
  std::vector<identity::PeerId> out;
  for (const auto& [p, st] : peers_) {
    if (st.conn && !st.conn->closed()) out.push_back(p);
  }
  return out;
}

std::optional<PeerInfo> Host::peer_info(const identity::PeerId& peer) const {
  auto it = peers_.find(peer);
  if (it == peers_.end() || !it->second.conn) return std::nullopt;
  return PeerInfo{peer, it->second.conn->remote_addr(), it->second.conn->outbound(),
                  it->second.identify, it->second.rtt};
}

awaitable<bool> Host::wait_for_peer(const identity::PeerId& peer, std::chrono::milliseconds timeout,
                                    bool identified) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    auto it = peers_.find(peer);
    if (it != peers_.end() && it->second.conn && !it->second.conn->closed() &&
        (!identified || it->second.identify)) {
      co_return true;
    }
    if (!co_await peers_changed_.wait(deadline) && std::chrono::steady_clock::now() >= deadline) {
      co_return false;
    }
  }
}

void Host::disconnect(const identity::PeerId& peer, std::string reason) {
  auto it = peers_.find(peer);
  if (it == peers_.end() || !it->second.conn) return;
  auto c = it->second.conn;
  c->close(Status::cancelled(std::move(reason)));
}

awaitable<void> Host::idle_sweeper() {
  auto alive = alive_;
  asio::steady_timer timer(ex_);
  while (*alive && !stopped_) {
    timer.expires_after(config_.idle_sweep_interval);
    boost::system::error_code ec;
    co_await timer.async_wait(asio::redirect_error(kUse, ec));
    if (!*alive || stopped_) break;
    const auto now = config_.clock();
    std::vector<std::shared_ptr<Connection>> idle;
    for (const auto& [p, st] : peers_) {
      if (st.conn && st.conn->num_streams() == 0 &&
          now - st.conn->last_activity() >= config_.idle_timeout) {
        idle.push_back(st.conn);
      }
    }
    for (auto& c : idle) {
      c->close(Status::timeout("idle for " + std::to_string(config_.idle_timeout.count()) +
                               " ms with no streams (T_c)"));
    }
  }
  if (*alive) sweeper_running_ = false;
}

HostStats Host::stats() const {
  const HostCounters& c = *counters_;
  HostStats s;
  s.connections_opened = c.connections_opened;
  s.connections_closed = c.connections_closed;
  s.connections_active =
      s.connections_opened - std::min(s.connections_opened, s.connections_closed);
  s.inbound_connections = c.inbound_connections;
  s.outbound_connections = c.outbound_connections;
  s.handshakes_ok = c.handshakes_ok;
  s.handshakes_failed = c.handshakes_failed;
  const HandshakeBudget::Stats& b = budget_.stats();
  s.handshakes_pending = b.pending;
  s.inbound_refused_per_address = b.refused_per_address;
  s.inbound_refused_pending = b.refused_total;
  s.inbound_refused_connections = refused_connections_;
  s.handshakes_evicted = b.evicted;
  s.streams_opened = c.streams_opened;
  s.streams_closed = c.streams_closed;
  s.streams_active = s.streams_opened - std::min(s.streams_opened, s.streams_closed);
  s.streams_refused = c.streams_refused;
  s.bytes_in = c.bytes_in;
  s.bytes_out = c.bytes_out;
  s.writes = c.writes;
  return s;
}

void Host::stop() {
  if (stopped_ && listeners_.empty() && peers_.empty()) return;
  stopped_ = true;
  for (auto& l : listeners_) l->listener->close();
  listeners_.clear();
  std::vector<std::shared_ptr<Connection>> conns;
  for (auto& [p, st] : peers_) {
    if (st.conn) conns.push_back(st.conn);
  }
  for (auto& c : conns) c->close(Status::cancelled("host stopping"));
  peers_changed_.notify_all();
}

}  // namespace idn::p2p
