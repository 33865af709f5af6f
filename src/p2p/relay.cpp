#include "p2p/relay.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <map>

#include "p2p/host.h"
#include "p2p/protobuf_lite.h"

namespace idn::p2p::relay {

std::string_view relay_status_name(RelayStatus s) {
  switch (s) {
    case RelayStatus::kUnused:
      return "UNUSED";
    case RelayStatus::kOk:
      return "OK";
    case RelayStatus::kReservationRefused:
      return "RESERVATION_REFUSED";
    case RelayStatus::kResourceLimitExceeded:
      return "RESOURCE_LIMIT_EXCEEDED";
    case RelayStatus::kPermissionDenied:
      return "PERMISSION_DENIED";
    case RelayStatus::kConnectionFailed:
      return "CONNECTION_FAILED";
    case RelayStatus::kNoReservation:
      return "NO_RESERVATION";
    case RelayStatus::kMalformedMessage:
      return "MALFORMED_MESSAGE";
    case RelayStatus::kUnexpectedMessage:
      return "UNEXPECTED_MESSAGE";
  }
  return "unknown status";
}

namespace {

// ---- codec ----

Bytes encode_peer(const RelayPeer& p) {
  Bytes out;
  if (!p.id.empty()) pb::append_bytes_field(1, p.id, out);
  for (const auto& a : p.addrs) pb::append_bytes_field(2, a, out);
  return out;
}

Bytes encode_limit(const Limit& l) {
  Bytes out;
  if (l.duration != 0) pb::append_varint_field(1, l.duration, out);
  if (l.data != 0) pb::append_varint_field(2, l.data, out);
  return out;
}

Bytes encode_reservation(const Reservation& r) {
  Bytes out;
  pb::append_varint_field(1, r.expire, out);
  for (const auto& a : r.addrs) pb::append_bytes_field(2, a, out);
  if (!r.voucher.empty()) pb::append_bytes_field(3, r.voucher, out);
  return out;
}

Status add_addr(std::vector<Bytes>& addrs, ByteView a, std::string_view what) {
  if (addrs.size() >= kMaxRelayAddrs)
    return Status::invalid_argument(
        fmt::format("{}: more than {} addresses", what, kMaxRelayAddrs));
  if (a.size() > core::kMaxMultiaddrSize)
    return Status::invalid_argument(fmt::format("{}: an address of {} bytes (at most {})", what,
                                                a.size(), core::kMaxMultiaddrSize));
  addrs.emplace_back(a.begin(), a.end());
  return Status::ok();
}

Result<RelayPeer> decode_peer(ByteView bytes) {
  RelayPeer p;
  bool has_id = false;
  IDN_RETURN_IF_ERROR(pb::for_each_field(bytes, [&](const pb::Field& f) -> Status {
    if (f.number == 1 && f.wire_type == 2) {
      if (f.bytes.empty() || f.bytes.size() > kMaxRelayPeerIdBytes)
        return Status::invalid_argument(fmt::format("relay peer: an ID of {} bytes (1 to {})",
                                                    f.bytes.size(), kMaxRelayPeerIdBytes));
      p.id.assign(f.bytes.begin(), f.bytes.end());
      has_id = true;
    } else if (f.number == 2 && f.wire_type == 2) {
      return add_addr(p.addrs, f.bytes, "relay peer");
    }
    return Status::ok();
  }));
  if (!has_id) return Status::invalid_argument("relay peer without an ID");
  return p;
}

Result<Reservation> decode_reservation(ByteView bytes) {
  Reservation r;
  IDN_RETURN_IF_ERROR(pb::for_each_field(bytes, [&](const pb::Field& f) -> Status {
    if (f.number == 1 && f.wire_type == 0) {
      r.expire = f.varint;
    } else if (f.number == 2 && f.wire_type == 2) {
      return add_addr(r.addrs, f.bytes, "reservation");
    } else if (f.number == 3 && f.wire_type == 2) {
      r.voucher.assign(f.bytes.begin(), f.bytes.end());
    }
    return Status::ok();
  }));
  return r;
}

Result<Limit> decode_limit(ByteView bytes) {
  Limit l;
  IDN_RETURN_IF_ERROR(pb::for_each_field(bytes, [&](const pb::Field& f) -> Status {
    if (f.number == 1 && f.wire_type == 0) {
      if (f.varint > UINT32_MAX) return Status::invalid_argument("limit duration over 32 bits");
      l.duration = static_cast<uint32_t>(f.varint);
    } else if (f.number == 2 && f.wire_type == 0) {
      l.data = f.varint;
    }
    return Status::ok();
  }));
  return l;
}

Status check_size(ByteView bytes) {
  if (bytes.size() > kMaxRelayMessage)
    return Status::invalid_argument(
        fmt::format("relay message of {} bytes (at most {})", bytes.size(), kMaxRelayMessage));
  return Status::ok();
}

}  // namespace

Bytes encode_hop(const HopMessage& m) {
  Bytes out;
  pb::append_varint_field(1, static_cast<uint32_t>(m.type), out);
  if (m.peer) pb::append_bytes_field(2, encode_peer(*m.peer), out);
  if (m.reservation) pb::append_bytes_field(3, encode_reservation(*m.reservation), out);
  if (m.limit) pb::append_bytes_field(4, encode_limit(*m.limit), out);
  if (m.status) pb::append_varint_field(5, static_cast<uint32_t>(*m.status), out);
  return out;
}

Bytes encode_stop(const StopMessage& m) {
  Bytes out;
  pb::append_varint_field(1, static_cast<uint32_t>(m.type), out);
  if (m.peer) pb::append_bytes_field(2, encode_peer(*m.peer), out);
  if (m.limit) pb::append_bytes_field(3, encode_limit(*m.limit), out);
  if (m.status) pb::append_varint_field(4, static_cast<uint32_t>(*m.status), out);
  return out;
}

Result<HopMessage> decode_hop(ByteView bytes) {
  IDN_RETURN_IF_ERROR(check_size(bytes));
  HopMessage m;
  bool has_type = false;
  IDN_RETURN_IF_ERROR(pb::for_each_field(bytes, [&](const pb::Field& f) -> Status {
    if (f.number == 1 && f.wire_type == 0) {
      if (f.varint > static_cast<uint64_t>(HopType::kStatus))
        return Status::invalid_argument(fmt::format("hop message of unknown type {}", f.varint));
      m.type = static_cast<HopType>(f.varint);
      has_type = true;
    } else if (f.number == 2 && f.wire_type == 2) {
      IDN_ASSIGN_OR_RETURN(m.peer, decode_peer(f.bytes));
    } else if (f.number == 3 && f.wire_type == 2) {
      IDN_ASSIGN_OR_RETURN(m.reservation, decode_reservation(f.bytes));
    } else if (f.number == 4 && f.wire_type == 2) {
      IDN_ASSIGN_OR_RETURN(m.limit, decode_limit(f.bytes));
    } else if (f.number == 5 && f.wire_type == 0) {
      if (f.varint > UINT32_MAX) return Status::invalid_argument("hop status over 32 bits");
      m.status = static_cast<RelayStatus>(f.varint);
    }
    return Status::ok();
  }));
  if (!has_type) return Status::invalid_argument("hop message without a type");
  return m;
}

Result<StopMessage> decode_stop(ByteView bytes) {
  IDN_RETURN_IF_ERROR(check_size(bytes));
  StopMessage m;
  bool has_type = false;
  IDN_RETURN_IF_ERROR(pb::for_each_field(bytes, [&](const pb::Field& f) -> Status {
    if (f.number == 1 && f.wire_type == 0) {
      if (f.varint > static_cast<uint64_t>(StopType::kStatus))
        return Status::invalid_argument(fmt::format("stop message of unknown type {}", f.varint));
      m.type = static_cast<StopType>(f.varint);
      has_type = true;
    } else if (f.number == 2 && f.wire_type == 2) {
      IDN_ASSIGN_OR_RETURN(m.peer, decode_peer(f.bytes));
    } else if (f.number == 3 && f.wire_type == 2) {
      IDN_ASSIGN_OR_RETURN(m.limit, decode_limit(f.bytes));
    } else if (f.number == 4 && f.wire_type == 0) {
      if (f.varint > UINT32_MAX) return Status::invalid_argument("stop status over 32 bits");
      m.status = static_cast<RelayStatus>(f.varint);
    }
    return Status::ok();
  }));
  if (!has_type) return Status::invalid_argument("stop message without a type");
  return m;
}

// ---- service ----

struct RelayService::State {
  Host* host = nullptr;
  RelayConfig config;
  std::function<std::vector<core::Multiaddr>()> addrs;
  std::function<std::chrono::system_clock::time_point()> now;
  ReservationObserver observer;
  std::map<identity::PeerId, std::chrono::system_clock::time_point> reservations;  // -> expiry
  std::map<identity::PeerId, size_t> circuits_per_peer;
  RelayStats stats;

  // Drops expired reservations (telling the observer).
  void prune() {
    const auto t = now();
    for (auto it = reservations.begin(); it != reservations.end();) {
      if (it->second > t) {
        ++it;
        continue;
      }
      identity::PeerId peer = it->first;
      it = reservations.erase(it);
      if (observer) observer(peer, false);
    }
  }
  bool reserved(const identity::PeerId& peer) {
    prune();
    return reservations.count(peer) != 0;
  }
  std::optional<Limit> limit() const {
    if (config.circuit_duration.count() == 0 && config.circuit_data == 0) return std::nullopt;
    return Limit{static_cast<uint32_t>(config.circuit_duration.count()), config.circuit_data};
  }
  std::vector<core::Multiaddr> relay_addrs() const {
    return addrs ? addrs() : host->listen_addrs();
  }
};

namespace {

using StatePtr = std::shared_ptr<RelayService::State>;

awaitable<void> reply_hop(Stream& s, RelayStatus status, std::optional<Reservation> r = {},
                          std::optional<Limit> limit = {}) {
  HopMessage m;
  m.type = HopType::kStatus;
  m.status = status;
  m.reservation = std::move(r);
  m.limit = limit;
  (void)co_await write_length_prefixed(s, encode_hop(m));
  (void)co_await s.close_write();
}

// One spliced circuit: the dialer's hop stream and the target's stop stream. Released (and
// counted out) when both directions are done.
struct Circuit {
  StatePtr state;
  identity::PeerId src, dst;
  std::shared_ptr<Stream> a, b;
  uint64_t bytes_ab = 0, bytes_ba = 0;
  int running = 2;
  Circuit(StatePtr st, identity::PeerId s, identity::PeerId d, std::shared_ptr<Stream> x,
          std::shared_ptr<Stream> y)
      : state(std::move(st)),
        src(std::move(s)),
        dst(std::move(d)),
        a(std::move(x)),
        b(std::move(y)) {
    ++state->stats.circuits_active;
    ++state->circuits_per_peer[src];
    ++state->circuits_per_peer[dst];
  }
  ~Circuit() {
    --state->stats.circuits_active;
    for (const auto* p : {&src, &dst}) {
      auto it = state->circuits_per_peer.find(*p);
      if (it != state->circuits_per_peer.end() && --it->second == 0)
        state->circuits_per_peer.erase(it);
    }
  }
  void reset_both() {
    a->reset();
    b->reset();
  }
};

// Copies `from` into `to` until EOF (then half-closes `to`) or an error (then resets both).
// Stream::write waits for the peer's yamux window, so a slow reader slows the sender.
awaitable<void> pump(std::shared_ptr<Circuit> c, bool forward) {
  Stream& from = forward ? *c->a : *c->b;
  Stream& to = forward ? *c->b : *c->a;
  uint64_t& count = forward ? c->bytes_ab : c->bytes_ba;
  const uint64_t data_limit = c->state->config.circuit_data;
  Bytes buf(c->state->config.splice_chunk);
  for (;;) {
    auto n = co_await from.read_some(buf);
    if (!n.ok()) {
      c->reset_both();
      break;
    }
    if (*n == 0) {
      (void)co_await to.close_write();
      break;
    }
    count += *n;
    c->state->stats.bytes_relayed += *n;
    if (data_limit != 0 && count > data_limit) {
      spdlog::debug("relay: circuit {} -> {} passed its data limit", c->src.to_string(),
                    c->dst.to_string());
      c->reset_both();
      break;
    }
    if (!(co_await to.write(ByteView(buf.data(), *n))).is_ok()) {
      c->reset_both();
      break;
    }
  }
}

awaitable<void> handle_reserve(StatePtr state, std::shared_ptr<Stream> s) {
  const identity::PeerId peer = s->remote_peer();
  if (s->remote_addr().find(core::Protocol::kP2pCircuit)) {
    ++state->stats.reservations_refused;  // the spec: no reservations over relayed connections
    co_return co_await reply_hop(*s, RelayStatus::kPermissionDenied);
  }
  const bool had = state->reserved(peer);
  if (!had && state->reservations.size() >= state->config.max_reservations) {
    ++state->stats.reservations_refused;
    spdlog::debug("relay: reservation of {} refused: {} held", peer.to_string(),
                  state->reservations.size());
    co_return co_await reply_hop(*s, RelayStatus::kResourceLimitExceeded);
  }
  const auto expiry = state->now() + state->config.reservation_ttl;
  state->reservations[peer] = expiry;
  ++state->stats.reservations_accepted;
  Reservation r;
  r.expire = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::seconds>(expiry.time_since_epoch()).count());
  for (const auto& a : state->relay_addrs()) {
    if (r.addrs.size() >= kMaxRelayAddrs) break;
    r.addrs.push_back(a.to_bytes());
  }
  if (!had) {
    spdlog::info("relay: {} reserved a slot", peer.to_string());
    if (state->observer) state->observer(peer, true);
  }
  co_await reply_hop(*s, RelayStatus::kOk, std::move(r), state->limit());
}

// Sends the STOP CONNECT and reads the target's answer.
awaitable<Result<StopMessage>> exchange_stop(Stream& b, const StopMessage& req) {
  Status st = co_await write_length_prefixed(b, encode_stop(req));
  if (!st.is_ok()) co_return st;
  auto bytes = co_await read_length_prefixed(b, kMaxRelayMessage);
  if (!bytes.ok()) co_return bytes.status();
  co_return decode_stop(*bytes);
}

awaitable<void> handle_connect(StatePtr state, std::shared_ptr<Stream> s, const HopMessage& m) {
  const identity::PeerId src = s->remote_peer();
  if (!m.peer) {
    ++state->stats.malformed;
    co_return co_await reply_hop(*s, RelayStatus::kMalformedMessage);
  }
  auto dst = identity::PeerId::from_bytes(m.peer->id);
  if (!dst.ok()) {
    ++state->stats.malformed;
    co_return co_await reply_hop(*s, RelayStatus::kMalformedMessage);
  }
  if (!state->reserved(*dst)) {
    ++state->stats.connects_refused;
    co_return co_await reply_hop(*s, RelayStatus::kNoReservation);
  }
  auto per_peer = [&](const identity::PeerId& p) {
    auto it = state->circuits_per_peer.find(p);
    return it == state->circuits_per_peer.end() ? size_t{0} : it->second;
  };
  if (state->stats.circuits_active >= state->config.max_circuits ||
      per_peer(src) >= state->config.max_circuits_per_peer ||
      per_peer(*dst) >= state->config.max_circuits_per_peer) {
    ++state->stats.connects_refused;
    co_return co_await reply_hop(*s, RelayStatus::kResourceLimitExceeded);
  }
  Host* host = state->host;
  auto stop = co_await host->new_stream(*dst, std::string(kStopProtocolId));
  if (!stop.ok()) {
    ++state->stats.connects_failed;
    spdlog::debug("relay: stop stream to {}: {}", dst->to_string(), stop.status().to_string());
    co_return co_await reply_hop(*s, RelayStatus::kConnectionFailed);
  }
  std::shared_ptr<Stream> b = std::move(*stop);
  b->set_deadline(SteadyTime::clock::now() + state->config.hop_timeout);
  StopMessage req;
  req.type = StopType::kConnect;
  req.peer = RelayPeer{src.bytes(), {}};
  req.limit = state->limit();
  Result<StopMessage> answer = co_await exchange_stop(*b, req);
  if (!answer.ok() || answer->type != StopType::kStatus || answer->status != RelayStatus::kOk) {
    ++state->stats.connects_failed;
    spdlog::debug(
        "relay: {} refused the circuit from {}: {}", dst->to_string(), src.to_string(),
        !answer.ok()
            ? answer.status().to_string()
            : std::string(relay_status_name(answer->status.value_or(RelayStatus::kUnused))));
    b->reset();
    co_return co_await reply_hop(*s, RelayStatus::kConnectionFailed);
  }
  HopMessage ok;
  ok.type = HopType::kStatus;
  ok.status = RelayStatus::kOk;
  ok.limit = state->limit();
  if (!(co_await write_length_prefixed(*s, encode_hop(ok))).is_ok()) {
    b->reset();
    co_return;
  }
  ++state->stats.connects_ok;
  const SteadyTime deadline = state->config.circuit_duration.count() == 0
                                  ? SteadyTime::max()
                                  : SteadyTime::clock::now() + state->config.circuit_duration;
  s->set_deadline(deadline);
  b->set_deadline(deadline);
  spdlog::debug("relay: circuit {} -> {}", src.to_string(), dst->to_string());
  auto c = std::make_shared<Circuit>(state, src, *dst, s, b);
  auto ex = co_await asio::this_coro::executor;
  asio::co_spawn(ex, pump(c, false), asio::detached);
  co_await pump(std::move(c), true);
}

awaitable<void> serve_hop(StatePtr state, std::shared_ptr<Stream> s) {
  s->set_deadline(SteadyTime::clock::now() + state->config.hop_timeout);
  auto bytes = co_await read_length_prefixed(*s, kMaxRelayMessage);
  if (!bytes.ok()) {
    ++state->stats.malformed;
    s->reset();
    co_return;
  }
  auto m = decode_hop(*bytes);
  if (!m.ok()) {
    ++state->stats.malformed;
    spdlog::debug("relay: malformed hop message from {}: {}", s->remote_peer().to_string(),
                  m.status().to_string());
    co_return co_await reply_hop(*s, RelayStatus::kMalformedMessage);
  }
  switch (m->type) {
    case HopType::kReserve:
      co_return co_await handle_reserve(std::move(state), std::move(s));
    case HopType::kConnect:
      co_return co_await handle_connect(std::move(state), std::move(s), *m);
    case HopType::kStatus:
      break;
  }
  ++state->stats.malformed;
  co_await reply_hop(*s, RelayStatus::kUnexpectedMessage);
}

}  // namespace

RelayService::RelayService(Host& host, RelayConfig config,
                           std::function<std::vector<core::Multiaddr>()> addrs,
                           std::function<std::chrono::system_clock::time_point()> now)
    : host_(host), state_(std::make_shared<State>()) {
  state_->host = &host;
  state_->config = config;
  state_->addrs = std::move(addrs);
  state_->now = now ? std::move(now) : [] { return std::chrono::system_clock::now(); };
}

RelayService::~RelayService() {
  detach();
}

void RelayService::attach() {
  if (attached_) return;
  attached_ = true;
  host_.set_handler(std::string(kHopProtocolId),
                    [state = state_](std::shared_ptr<Stream> s) -> awaitable<void> {
                      return serve_hop(state, std::move(s));
                    });
}

void RelayService::detach() {
  if (!attached_) return;
  attached_ = false;
  host_.remove_handler(std::string(kHopProtocolId));
}

void RelayService::on_disconnected(const identity::PeerId& peer) {
  if (state_->reservations.erase(peer) == 0) return;
  spdlog::info("relay: reservation of {} ended: disconnected", peer.to_string());
  if (state_->observer) state_->observer(peer, false);
}

void RelayService::set_reservation_observer(ReservationObserver observer) {
  state_->observer = std::move(observer);
}

bool RelayService::has_reservation(const identity::PeerId& peer) const {
  return state_->reserved(peer);
}

std::vector<identity::PeerId> RelayService::reserved_peers() const {
  state_->prune();
  std::vector<identity::PeerId> out;
  for (const auto& [p, _] : state_->reservations) out.push_back(p);
  return out;
}

std::vector<core::Multiaddr> RelayService::circuit_addrs(const identity::PeerId& peer) const {
  std::vector<core::Multiaddr> out;
  const auto tail = core::Multiaddr::parse("/p2p-circuit/p2p/" + peer.to_string());
  if (!tail.ok()) return out;
  for (auto a : state_->relay_addrs()) {
    if (!a.find(core::Protocol::kP2p))
      a = a.encapsulate(core::Multiaddr::p2p(state_->host->id().multihash()));
    out.push_back(a.encapsulate(*tail));
  }
  return out;
}

RelayStats RelayService::stats() const {
  RelayStats s = state_->stats;
  s.reservations_active = state_->reservations.size();
  return s;
}

}  // namespace idn::p2p::relay
