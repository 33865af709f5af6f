#include "p2p/circuit_transport.h"

#include <fmt/format.h>

#include "p2p/host.h"
#include "p2p/relay.h"

namespace idn::p2p {

Result<CircuitAddr> parse_circuit_addr(const core::Multiaddr& addr) {
  const auto& cs = addr.components();
  auto bad = [&](std::string_view why) {
    return Status::invalid_argument(fmt::format("circuit address {}: {}", addr.to_string(), why));
  };
  size_t at = cs.size();
  for (size_t i = 0; i < cs.size(); ++i) {
    if (cs[i].protocol != core::Protocol::kP2pCircuit) continue;
    if (at != cs.size()) return bad("more than one /p2p-circuit");
    at = i;
  }
  if (at == cs.size()) return bad("no /p2p-circuit");
  if (at == 0 || cs[at - 1].protocol != core::Protocol::kP2p)
    return bad("want /p2p/<relay> right before /p2p-circuit");
  if (at + 2 != cs.size() || cs[at + 1].protocol != core::Protocol::kP2p)
    return bad("want /p2p/<peer> after /p2p-circuit, and nothing else");
  auto relay_id = identity::PeerId::from_bytes(cs[at - 1].value);
  auto peer = identity::PeerId::from_bytes(cs[at + 1].value);
  if (!relay_id.ok()) return relay_id.status();
  if (!peer.ok()) return peer.status();
  core::Multiaddr relay = addr.decapsulate(core::Protocol::kP2pCircuit);
  return CircuitAddr{std::move(relay), std::move(*relay_id), std::move(*peer)};
}

namespace {

// A hop stream after CONNECT: the byte stream to the peer behind the relay.
class CircuitConnection : public RawConnection {
 public:
  CircuitConnection(core::Multiaddr local, core::Multiaddr remote, std::shared_ptr<Stream> s)
      : RawConnection(std::move(local), std::move(remote), asio::ip::address()),
        stream_(std::move(s)) {}
  awaitable<Status> write(ByteView data) override { co_return co_await stream_->write(data); }
  awaitable<Status> close_write() override { co_return co_await stream_->close_write(); }
  void reset() override { stream_->reset(); }

 protected:
  awaitable<Result<size_t>> do_read_some(std::span<uint8_t> buf) override {
    co_return co_await stream_->read_some(buf);
  }

 private:
  std::shared_ptr<Stream> stream_;
};

class CircuitTransport : public Transport {
 public:
  explicit CircuitTransport(Host& host) : host_(host) {}
  std::string_view name() const override { return "circuit"; }
  bool handles(const core::Multiaddr& addr) const override {
    return addr.find(core::Protocol::kP2pCircuit) != nullptr;
  }
  Result<std::unique_ptr<TransportListener>> listen(asio::any_io_executor,
                                                    const core::Multiaddr& addr) override {
    return Status::invalid_argument("listening through a relay is not built (" + addr.to_string() +
                                    ")");
  }
  awaitable<Result<std::unique_ptr<RawConnection>>> dial(asio::any_io_executor,
                                                         const core::Multiaddr& addr,
                                                         DialOptions options) override {
    auto c = parse_circuit_addr(addr);
    if (!c.ok()) co_return c.status();
    if (c->relay.find(core::Protocol::kP2pCircuit))
      co_return Status::invalid_argument("a circuit through a circuit: " + addr.to_string());
    if (!host_.is_connected(c->relay_id)) {
      auto r = co_await host_.dial(c->relay);
      if (!r.ok()) co_return r.status();
    }
    auto s = co_await host_.new_stream(c->relay_id, std::string(relay::kHopProtocolId));
    if (!s.ok()) co_return s.status();
    (*s)->set_deadline(SteadyTime::clock::now() + options.timeout);
    relay::HopMessage m;
    m.type = relay::HopType::kConnect;
    m.peer = relay::RelayPeer{c->peer.bytes(), {}};
    if (Status st = co_await write_length_prefixed(**s, relay::encode_hop(m)); !st.is_ok())
      co_return st;
    auto bytes = co_await read_length_prefixed(**s, relay::kMaxRelayMessage);
    if (!bytes.ok()) co_return bytes.status();
    auto answer = relay::decode_hop(*bytes);
    if (!answer.ok()) co_return Status::peer_misbehaved("relay: " + answer.status().to_string());
    const auto status = answer->status.value_or(relay::RelayStatus::kUnused);
    if (answer->type != relay::HopType::kStatus || status != relay::RelayStatus::kOk) {
      (*s)->reset();
      co_return Status::unavailable(fmt::format("relay {} refused the circuit to {}: {}",
                                                c->relay_id.to_string(), c->peer.to_string(),
                                                relay::relay_status_name(status)));
    }
    (*s)->set_deadline(SteadyTime::max());
    auto local = c->relay.encapsulate(*core::Multiaddr::parse("/p2p-circuit"));
    co_return std::make_unique<CircuitConnection>(
        std::move(local), addr.decapsulate(core::Protocol::kP2p), std::move(*s));
  }

 private:
  Host& host_;
};

}  // namespace

std::unique_ptr<Transport> make_circuit_transport(Host& host) {
  return std::make_unique<CircuitTransport>(host);
}

}  // namespace idn::p2p
