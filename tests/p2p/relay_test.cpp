#include "p2p/relay.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "p2p/host.h"
#include "p2p_test_util.h"

namespace idn::p2p::relay {
namespace {

using namespace std::chrono_literals;
using testing::Loop;
using testing::loopback;
using testing::make_host;

TEST(RelayCodecTest, HopAndStopMessagesRoundTrip) {
  HopMessage h;
  h.type = HopType::kStatus;
  h.status = RelayStatus::kOk;
  h.reservation =
      Reservation{1234567890, {core::Multiaddr::parse("/ip4/1.2.3.4/tcp/5")->to_bytes()}, {}};
  h.limit = Limit{120, 1 << 17};
  auto d = decode_hop(encode_hop(h));
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  EXPECT_EQ(d->type, HopType::kStatus);
  EXPECT_EQ(d->status, RelayStatus::kOk);
  ASSERT_TRUE(d->reservation);
  EXPECT_EQ(d->reservation->expire, 1234567890u);
  EXPECT_EQ(d->reservation->addrs, h.reservation->addrs);
  ASSERT_TRUE(d->limit);
  EXPECT_EQ(d->limit->duration, 120u);
  EXPECT_EQ(d->limit->data, 1u << 17);
  EXPECT_FALSE(d->peer);

  StopMessage s;
  s.type = StopType::kConnect;
  s.peer = RelayPeer{Bytes{0, 2, 1, 2}, {}};
  auto e = decode_stop(encode_stop(s));
  ASSERT_TRUE(e.ok()) << e.status().to_string();
  EXPECT_EQ(e->type, StopType::kConnect);
  ASSERT_TRUE(e->peer);
  EXPECT_EQ(e->peer->id, s.peer->id);
  EXPECT_FALSE(e->limit);
  EXPECT_FALSE(e->status);
}

TEST(RelayCodecTest, RefusesMalformedMessagesWithAReason) {
  EXPECT_EQ(decode_hop({}).status().code(), Code::kInvalidArgument);                 // no type
  EXPECT_EQ(decode_hop(Bytes{0x08, 0x07}).status().code(), Code::kInvalidArgument);  // type 7
  EXPECT_EQ(decode_stop(Bytes{0x08, 0x02}).status().code(), Code::kInvalidArgument);
  EXPECT_FALSE(decode_hop(Bytes{0x08}).ok());  // truncated varint
  // A peer without an ID.
  HopMessage h;
  h.type = HopType::kConnect;
  h.peer = RelayPeer{};
  auto r = decode_hop(encode_hop(h));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("without an ID"), std::string::npos);
  // Too many addresses.
  h.peer = RelayPeer{Bytes{0, 1, 7}, std::vector<Bytes>(kMaxRelayAddrs + 1, Bytes{4, 1, 2, 3, 4})};
  EXPECT_EQ(decode_hop(encode_hop(h)).status().code(), Code::kInvalidArgument);
  // Over the message size.
  EXPECT_EQ(decode_hop(Bytes(kMaxRelayMessage + 1, 0)).status().code(), Code::kInvalidArgument);
}

// The seeds of fuzz/relay_message_fuzz.cpp decode, so the fuzzer starts past the parser.
TEST(RelayCodecTest, FuzzSeedsDecode) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(IDN_SOURCE_DIR) / "fuzz/corpus/relay_message";
  size_t n = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    std::ifstream f(e.path(), std::ios::binary);
    Bytes b((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    const std::string name = e.path().filename().string();
    const bool ok = name.rfind("hop_", 0) == 0 ? decode_hop(b).ok() : decode_stop(b).ok();
    EXPECT_TRUE(ok) << name;
    ++n;
  }
  EXPECT_GE(n, 5u);
}

// A relay R, a target T that reserves a slot and echoes whatever a circuit brings, and a
// dialer D that connects to T through R.
struct Net {
  Loop loop;
  testing::HostPtr r = make_host(loop), t = make_host(loop), d = make_host(loop);
  std::chrono::system_clock::time_point now = std::chrono::system_clock::now();
  std::unique_ptr<RelayService> relay;
  std::vector<std::pair<identity::PeerId, bool>> events;
  core::Multiaddr raddr;

  explicit Net(RelayConfig config = {}) {
    loop.call([&] {
      relay = std::make_unique<RelayService>(
          *r, config, std::function<std::vector<core::Multiaddr>()>{}, [this] { return now; });
      relay->set_reservation_observer(
          [this](const identity::PeerId& p, bool on) { events.emplace_back(p, on); });
      relay->attach();
      return 0;
    });
    EXPECT_TRUE(loop.call([&] { return r->listen(loopback()); }).ok());
    raddr = loop.call([&] { return r->listen_addrs().at(0); });
    for (Host* h : {t.get(), d.get()}) {
      auto id = loop.run([&] { return h->dial(raddr); });
      EXPECT_TRUE(id.ok()) << id.status().to_string();
    }
    loop.call([&] {
      t->set_handler(std::string(kStopProtocolId),
                     [this](std::shared_ptr<Stream> s) { return serve_stop(std::move(s)); });
      return 0;
    });
  }
  ~Net() {
    loop.call([&] {
      relay.reset();
      return 0;
    });
  }

  awaitable<void> serve_stop(std::shared_ptr<Stream> s) {
    auto bytes = co_await read_length_prefixed(*s, kMaxRelayMessage);
    if (!bytes.ok()) co_return;
    auto m = decode_stop(*bytes);
    if (!m.ok() || !m->peer || m->peer->id != d->id().bytes()) co_return s->reset();
    StopMessage ok;
    ok.type = StopType::kStatus;
    ok.status = RelayStatus::kOk;
    (void)co_await write_length_prefixed(*s, encode_stop(ok));
    Bytes buf(4096);
    for (;;) {
      auto n = co_await s->read_some(buf);
      if (!n.ok() || *n == 0) break;
      if (!(co_await s->write(ByteView(buf.data(), *n))).is_ok()) break;
    }
    (void)co_await s->close_write();
  }

  // One hop exchange from `from`; the stream stays in `out` (the circuit, after CONNECT OK).
  Result<HopMessage> hop(Host& from, HopMessage m, std::shared_ptr<Stream>* out = nullptr) {
    return loop.run([&]() -> awaitable<Result<HopMessage>> {
      auto s = co_await from.new_stream(r->id(), std::string(kHopProtocolId));
      if (!s.ok()) co_return s.status();
      Status st = co_await write_length_prefixed(**s, encode_hop(m));
      if (!st.is_ok()) co_return st;
      auto bytes = co_await read_length_prefixed(**s, kMaxRelayMessage);
      if (!bytes.ok()) co_return bytes.status();
      if (out) *out = *s;
      co_return decode_hop(*bytes);
    });
  }
  Result<HopMessage> reserve(Host& from) {
    HopMessage m;
    m.type = HopType::kReserve;
    return hop(from, m);
  }
  Result<HopMessage> connect(const identity::PeerId& to, std::shared_ptr<Stream>* out = nullptr) {
    HopMessage m;
    m.type = HopType::kConnect;
    m.peer = RelayPeer{to.bytes(), {}};
    return hop(*d, m, out);
  }
};

awaitable<Result<Bytes>> read_all(ByteStream& s) {
  Bytes out, buf(4096);
  for (;;) {
    auto n = co_await s.read_some(buf);
    if (!n.ok()) co_return n.status();
    if (*n == 0) co_return out;
    out.insert(out.end(), buf.begin(), buf.begin() + *n);
  }
}

TEST(RelayServiceTest, ReservesWithExpiryAndAddressesAndNoLimit) {
  Net net;
  auto a = net.reserve(*net.t);
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  EXPECT_EQ(a->status, RelayStatus::kOk);
  ASSERT_TRUE(a->reservation);
  const auto want = std::chrono::duration_cast<std::chrono::seconds>(
      (net.now + RelayConfig{}.reservation_ttl).time_since_epoch());
  EXPECT_EQ(a->reservation->expire, static_cast<uint64_t>(want.count()));
  ASSERT_EQ(a->reservation->addrs.size(), 1u);
  EXPECT_EQ(*core::Multiaddr::from_bytes(a->reservation->addrs[0]), net.raddr);
  EXPECT_FALSE(a->limit);
  EXPECT_TRUE(net.loop.call([&] { return net.relay->has_reservation(net.t->id()); }));
  auto circuit = net.loop.call([&] { return net.relay->circuit_addrs(net.t->id()); });
  ASSERT_EQ(circuit.size(), 1u);
  EXPECT_EQ(circuit[0].to_string(),
            net.raddr.to_string() + "/p2p-circuit/p2p/" + net.t->id().to_string());
  ASSERT_EQ(net.events.size(), 1u);
  EXPECT_TRUE(net.events[0].second);
}

TEST(RelayServiceTest, ConnectSplicesBothDirectionsAndCloses) {
  Net net;
  ASSERT_TRUE(net.reserve(*net.t).ok());
  std::shared_ptr<Stream> s;
  auto a = net.connect(net.t->id(), &s);
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  ASSERT_EQ(a->status, RelayStatus::kOk);
  EXPECT_FALSE(a->limit);
  Bytes payload(300 * 1024);  // past the yamux window: back-pressure on both legs
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<uint8_t>(i * 7 + i / 251);
  auto echoed = net.loop.run([&]() -> awaitable<Result<Bytes>> {
    auto ex = co_await asio::this_coro::executor;
    asio::co_spawn(
        ex,
        [s, &payload]() -> awaitable<void> {
          (void)co_await s->write(payload);
          (void)co_await s->close_write();
        },
        asio::detached);
    co_return co_await read_all(*s);
  });
  ASSERT_TRUE(echoed.ok()) << echoed.status().to_string();
  EXPECT_EQ(*echoed, payload);
  net.loop.call([&] {
    s.reset();
    return 0;
  });
  EXPECT_GE(net.relay->stats().bytes_relayed, 2 * payload.size());
  EXPECT_EQ(net.relay->stats().connects_ok, 1u);
}

TEST(RelayServiceTest, ConnectToAPeerWithoutReservationIsRefused) {
  Net net;
  auto a = net.connect(net.t->id());
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  EXPECT_EQ(a->status, RelayStatus::kNoReservation);
}

TEST(RelayServiceTest, ReservationsPastTheLimitAreRefused) {
  RelayConfig c;
  c.max_reservations = 1;
  Net net(c);
  EXPECT_EQ(net.reserve(*net.t)->status, RelayStatus::kOk);
  EXPECT_EQ(net.reserve(*net.t)->status, RelayStatus::kOk);  // a refresh, not a second slot
  EXPECT_EQ(net.reserve(*net.d)->status, RelayStatus::kResourceLimitExceeded);
}

TEST(RelayServiceTest, CircuitsPastThePerPeerLimitAreRefused) {
  RelayConfig c;
  c.max_circuits_per_peer = 1;
  Net net(c);
  ASSERT_TRUE(net.reserve(*net.t).ok());
  std::shared_ptr<Stream> first;
  EXPECT_EQ(net.connect(net.t->id(), &first)->status, RelayStatus::kOk);
  EXPECT_EQ(net.connect(net.t->id())->status, RelayStatus::kResourceLimitExceeded);
  net.loop.call([&] {
    first.reset();
    return 0;
  });
}

TEST(RelayServiceTest, ReservationEndsAtExpiryAndOnDisconnect) {
  Net net;
  ASSERT_TRUE(net.reserve(*net.t).ok());
  net.now += RelayConfig{}.reservation_ttl + 1s;
  EXPECT_EQ(net.connect(net.t->id())->status, RelayStatus::kNoReservation);
  ASSERT_EQ(net.events.size(), 2u);
  EXPECT_FALSE(net.events[1].second);

  ASSERT_TRUE(net.reserve(*net.t).ok());
  net.loop.call([&] {
    net.relay->on_disconnected(net.t->id());
    return 0;
  });
  EXPECT_FALSE(net.loop.call([&] { return net.relay->has_reservation(net.t->id()); }));
  ASSERT_EQ(net.events.size(), 4u);
  EXPECT_FALSE(net.events[3].second);
}

TEST(RelayServiceTest, ATargetThatRefusesTheStopStreamFailsTheConnect) {
  Net net;
  ASSERT_TRUE(net.reserve(*net.t).ok());
  net.loop.call([&] {
    net.t->remove_handler(std::string(kStopProtocolId));
    return 0;
  });
  EXPECT_EQ(net.connect(net.t->id())->status, RelayStatus::kConnectionFailed);
  EXPECT_EQ(net.relay->stats().connects_failed, 1u);
  EXPECT_EQ(net.relay->stats().circuits_active, 0u);
}

TEST(RelayServiceTest, MalformedAndUnexpectedMessagesGetTheirStatus) {
  Net net;
  HopMessage m;
  m.type = HopType::kConnect;  // no peer
  EXPECT_EQ(net.hop(*net.d, m)->status, RelayStatus::kMalformedMessage);
  m.type = HopType::kStatus;
  EXPECT_EQ(net.hop(*net.d, m)->status, RelayStatus::kUnexpectedMessage);
}

}  // namespace
}  // namespace idn::p2p::relay
