// Transports (tcp, ws, memory) on their own: listen, dial, bytes both ways, close; the
// WebSocket's bounds (message size, upgrade request) and refusals. Then hosts talking over
// WebSocket and over a memory network.
#include <gtest/gtest.h>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "p2p/memory_transport.h"
#include "p2p/transport.h"
#include "p2p/websocket_transport.h"
#include "p2p_test_util.h"

namespace idn::p2p {
namespace {

using namespace std::chrono_literals;
using testing::Loop;
using testing::make_host;

constexpr auto kUse = asio::use_awaitable;
constexpr std::string_view kEcho = "/test/echo/1.0.0";

core::Multiaddr ma(std::string_view s) {
  return *core::Multiaddr::parse(s);
}

bool ends_with(const core::Multiaddr& a, std::string_view tail) {
  return a.to_string().ends_with(tail);
}

// A coroutine started on the executor whose result another coroutine joins later.
template <class T>
struct Task {
  explicit Task(asio::any_io_executor ex) : done(ex) {}
  std::optional<T> result;
  Signal done;
};

template <class F>
auto start(asio::any_io_executor ex, F f) {
  using T = typename decltype(f())::value_type;
  auto task = std::make_shared<Task<T>>(ex);
  asio::co_spawn(
      ex,
      [f, task]() mutable -> awaitable<void> {
        task->result.emplace(co_await f());
        task->done.notify_all();
      },
      asio::detached);
  return task;
}

template <class T>
awaitable<T> join(std::shared_ptr<Task<T>> task) {
  while (!task->result) co_await task->done.wait();
  co_return std::move(*task->result);
}

using Conn = std::unique_ptr<RawConnection>;

awaitable<Result<Conn>> accept_and_open(TransportListener& l) {
  auto c = co_await l.accept();
  if (!c.ok()) co_return c.status();
  if (Status st = co_await (*c)->open(); !st.is_ok()) co_return st;
  co_return std::move(*c);
}

awaitable<Result<Conn>> dial_and_open(Transport& t, const core::Multiaddr& addr) {
  auto c = co_await t.dial(co_await asio::this_coro::executor, addr, DialOptions{});
  if (!c.ok()) co_return c.status();
  if (Status st = co_await (*c)->open(); !st.is_ok()) co_return st;
  co_return std::move(*c);
}

Bytes pattern(size_t n) {
  Bytes b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(i * 7 + 3);
  return b;
}

struct Kind {
  std::string name;
  std::function<std::shared_ptr<Transport>()> make;
  std::string listen;
  std::string addr_tail;  // what bound and remote addresses end with
};
void PrintTo(const Kind& k, std::ostream* os) {
  *os << k.name;
}

class TransportTest : public ::testing::TestWithParam<Kind> {};

TEST_P(TransportTest, ListenDialBytesBothWaysAndClose) {
  Loop loop;
  auto t = GetParam().make();
  const std::string tail = GetParam().addr_tail;
  Status result = loop.run([&]() -> awaitable<Status> {
    auto ex = co_await asio::this_coro::executor;
    auto l = t->listen(ex, ma(GetParam().listen));
    if (!l.ok()) co_return l.status();
    core::Multiaddr bound = (*l)->addr();
    EXPECT_TRUE(t->handles(bound));
    EXPECT_NE(bound.tcp_port().value_or(0), 0);
    EXPECT_TRUE(ends_with(bound, tail)) << bound.to_string();
    EXPECT_EQ(ends_with(bound, "/ws"), tail == "/ws") << bound.to_string();
    auto accepted = start(ex, [&] { return accept_and_open(**l); });
    auto d = co_await dial_and_open(*t, bound);
    auto a = co_await join(accepted);
    if (!d.ok()) co_return d.status().with_context("dial");
    if (!a.ok()) co_return a.status().with_context("accept");
    EXPECT_EQ((*d)->remote_addr(), bound);
    EXPECT_EQ((*a)->remote_addr(), (*d)->local_addr());
    EXPECT_TRUE(ends_with((*a)->remote_addr(), tail));
    EXPECT_EQ((*a)->remote_ip().to_string(), "127.0.0.1");
    // Dialer -> listener, then a larger answer the other way.
    Bytes hello = pattern(5), big = pattern(300000);
    if (Status st = co_await (*d)->write(hello); !st.is_ok()) co_return st;
    Bytes got(hello.size());
    if (Status st = co_await (*a)->read_exact(got); !st.is_ok()) co_return st;
    EXPECT_EQ(got, hello);
    if (Status st = co_await (*a)->write(big); !st.is_ok()) co_return st;
    got.assign(big.size(), 0);
    if (Status st = co_await (*d)->read_exact(got); !st.is_ok()) co_return st;
    EXPECT_EQ(got, big);
    // close_write: the other side reads EOF. (A WebSocket close waits for the answering close
    // frame, which the reader sends, so it runs beside the read.)
    Conn& dc = *d;
    auto closed = start(ex, [&] { return dc->close_write(); });
    uint8_t b[16];
    auto n = co_await (*a)->read_some(b);
    EXPECT_TRUE(n.ok() && *n == 0) << (n.ok() ? std::to_string(*n) : n.status().to_string());
    Status cst = co_await join(closed);
    EXPECT_TRUE(cst.is_ok()) << cst.to_string();
    (*l)->close();
    EXPECT_TRUE((*l)->closed());
    auto after = co_await (*l)->accept();
    EXPECT_EQ(after.status().code(), Code::kCancelled);
    co_return Status::ok();
  });
  EXPECT_TRUE(result.is_ok()) << result.to_string();
}

TEST_P(TransportTest, ResetEndsThePeersReads) {
  Loop loop;
  auto t = GetParam().make();
  Status result = loop.run([&]() -> awaitable<Status> {
    auto ex = co_await asio::this_coro::executor;
    auto l = t->listen(ex, ma(GetParam().listen));
    if (!l.ok()) co_return l.status();
    auto accepted = start(ex, [&] { return accept_and_open(**l); });
    auto d = co_await dial_and_open(*t, (*l)->addr());
    auto a = co_await join(accepted);
    if (!d.ok() || !a.ok()) co_return Status::internal("no connection");
    (*d)->reset();
    uint8_t b[16];
    auto n = co_await (*a)->read_some(b);
    EXPECT_TRUE(!n.ok() || *n == 0);
    co_return Status::ok();
  });
  EXPECT_TRUE(result.is_ok()) << result.to_string();
}

// A write far over the WebSocket message limit (our secure channel hands over bursts of
// Noise frames at once) arrives whole: it goes as several messages.
TEST_P(TransportTest, OneLargeWriteArrivesWhole) {
  Loop loop;
  auto t = GetParam().make();
  Status result = loop.run([&]() -> awaitable<Status> {
    auto ex = co_await asio::this_coro::executor;
    auto l = t->listen(ex, ma(GetParam().listen));
    if (!l.ok()) co_return l.status();
    auto accepted = start(ex, [&] { return accept_and_open(**l); });
    auto d = co_await dial_and_open(*t, (*l)->addr());
    auto a = co_await join(accepted);
    if (!d.ok() || !a.ok()) co_return Status::internal("no connection");
    Bytes big = pattern(3 * defaults::kMaxWsMessage + 5);
    Conn& dc = *d;
    auto written = start(ex, [&] { return dc->write(big); });
    Bytes got(big.size());
    Status st = co_await (*a)->read_exact(got);
    Status wst = co_await join(written);
    if (!st.is_ok()) co_return st;
    if (!wst.is_ok()) co_return wst;
    EXPECT_EQ(got, big);
    co_return Status::ok();
  });
  EXPECT_TRUE(result.is_ok()) << result.to_string();
}

INSTANTIATE_TEST_SUITE_P(
    Kinds, TransportTest,
    ::testing::Values(
        Kind{"tcp", [] { return make_tcp_transport(); }, "/ip4/127.0.0.1/tcp/0", ""},
        Kind{"ws", [] { return make_ws_transport(); }, "/ip4/127.0.0.1/tcp/0/ws", "/ws"},
        Kind{"memory", [] { return make_memory_transport(std::make_shared<MemoryNetwork>()); },
             "/ip4/127.0.0.1/tcp/0", ""}),
    [](const auto& info) { return info.param.name; });

TEST(TransportTest, EachTransportHandlesItsOwnAddresses) {
  auto tcp = make_tcp_transport(), ws = make_ws_transport();
  EXPECT_TRUE(tcp->handles(ma("/ip4/1.2.3.4/tcp/1")));
  EXPECT_TRUE(tcp->handles(ma("/dns4/example.com/tcp/1")));
  EXPECT_FALSE(tcp->handles(ma("/ip4/1.2.3.4/tcp/1/ws")));
  EXPECT_FALSE(tcp->handles(ma("/ip4/1.2.3.4/udp/1")));
  EXPECT_TRUE(ws->handles(ma("/ip4/1.2.3.4/tcp/1/ws")));
  EXPECT_TRUE(ws->handles(ma("/ip6/::1/tcp/1/ws")));
  EXPECT_FALSE(ws->handles(ma("/ip4/1.2.3.4/tcp/1")));
  EXPECT_FALSE(ws->handles(ma("/ip4/1.2.3.4/tcp/1/wss")));
  auto mem = make_memory_transport(std::make_shared<MemoryNetwork>());
  EXPECT_TRUE(mem->handles(ma("/ip4/10.0.0.1/tcp/4001")));
  EXPECT_FALSE(mem->handles(ma("/dns4/example.com/tcp/1")));
}

TEST(TransportTest, MemoryDialWithoutListenerIsRefused) {
  Loop loop;
  auto net = std::make_shared<MemoryNetwork>();
  auto t = make_memory_transport(net);
  auto r = loop.run([&]() -> awaitable<Status> {
    auto c = co_await t->dial(co_await asio::this_coro::executor, ma("/ip4/10.0.0.9/tcp/1"), {});
    co_return c.status();
  });
  EXPECT_EQ(r.code(), Code::kIOError);
  EXPECT_NE(r.message().find("refused"), std::string::npos) << r.to_string();
  EXPECT_EQ(net->num_listeners(), 0u);
}

TEST(WsTransportTest, OversizedMessageFailsTheReadWithLimitExceeded) {
  Loop loop;
  auto t = make_ws_transport(WsLimits{.max_message = 1024});
  Status result = loop.run([&]() -> awaitable<Status> {
    auto ex = co_await asio::this_coro::executor;
    auto l = t->listen(ex, ma("/ip4/127.0.0.1/tcp/0/ws"));
    if (!l.ok()) co_return l.status();
    auto accepted = start(ex, [&] { return accept_and_open(**l); });
    auto d = co_await dial_and_open(*t, (*l)->addr());
    auto a = co_await join(accepted);
    if (!d.ok() || !a.ok()) co_return Status::internal("no connection");
    // One message at the limit passes; one byte more is refused.
    (void)co_await (*d)->write(pattern(1024));
    (void)co_await (*d)->write(pattern(1025));
    Bytes got(1024);
    if (Status st = co_await (*a)->read_exact(got); !st.is_ok()) co_return st;
    uint8_t b[16];
    auto n = co_await (*a)->read_some(b);
    EXPECT_FALSE(n.ok());
    EXPECT_EQ(n.status().code(), Code::kLimitExceeded) << n.status().to_string();
    co_return Status::ok();
  });
  EXPECT_TRUE(result.is_ok()) << result.to_string();
}

// Sends `request` on a plain TCP connection to `addr` and returns everything the server
// answers until it closes.
awaitable<std::string> http_exchange(core::Multiaddr addr, std::string request) {
  auto ex = co_await asio::this_coro::executor;
  asio::ip::tcp::socket sock(ex);
  boost::system::error_code ec;
  co_await sock.async_connect({asio::ip::make_address(*addr.ip()), *addr.tcp_port()},
                              asio::redirect_error(kUse, ec));
  if (ec) co_return "connect: " + ec.message();
  co_await asio::async_write(sock, asio::buffer(request), asio::redirect_error(kUse, ec));
  std::string out;
  char buf[4096];
  while (true) {
    size_t n = co_await sock.async_read_some(asio::buffer(buf), asio::redirect_error(kUse, ec));
    out.append(buf, n);
    if (ec) co_return out;
  }
}

struct Refusal {
  std::string answer;
  Status opened;
};

Refusal refused(Loop& loop, Transport& t, std::string request) {
  return loop.run([&]() -> awaitable<Refusal> {
    auto ex = co_await asio::this_coro::executor;
    auto l = t.listen(ex, ma("/ip4/127.0.0.1/tcp/0/ws"));
    if (!l.ok()) co_return Refusal{"", l.status()};
    auto accepted = start(ex, [&] { return accept_and_open(**l); });
    std::string answer = co_await http_exchange((*l)->addr(), request);
    auto a = co_await join(accepted);
    co_return Refusal{answer, a.status()};
  });
}

TEST(WsTransportTest, PlainHttpRequestGetsAClearRefusal) {
  Loop loop;
  auto t = make_ws_transport();
  auto r = refused(loop, *t, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
  EXPECT_TRUE(r.answer.starts_with("HTTP/1.1 400 Bad Request\r\n")) << r.answer;
  EXPECT_NE(r.answer.find("send a WebSocket upgrade"), std::string::npos) << r.answer;
  EXPECT_EQ(r.opened.code(), Code::kPeerMisbehaved) << r.opened.to_string();
}

TEST(WsTransportTest, BadUpgradeHeadersGetTheReason) {
  Loop loop;
  auto t = make_ws_transport();
  // An upgrade without Sec-WebSocket-Key: Beast names what is missing.
  auto r = refused(loop, *t,
                   "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\n"
                   "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n");
  EXPECT_TRUE(r.answer.starts_with("HTTP/1.1 400 Bad Request\r\n")) << r.answer;
  EXPECT_NE(r.answer.find("Sec-WebSocket-Key"), std::string::npos) << r.answer;
  EXPECT_EQ(r.opened.code(), Code::kPeerMisbehaved) << r.opened.to_string();
}

TEST(WsTransportTest, OversizedUpgradeRequestIsRefusedWith431) {
  Loop loop;
  auto t = make_ws_transport(WsLimits{.max_upgrade_request = 2048});
  auto r =
      refused(loop, *t,
              "GET / HTTP/1.1\r\nHost: localhost\r\nX-Pad: " + std::string(4096, 'a') + "\r\n\r\n");
  EXPECT_TRUE(r.answer.starts_with("HTTP/1.1 431 ")) << r.answer.substr(0, 200);
  EXPECT_EQ(r.opened.code(), Code::kPeerMisbehaved) << r.opened.to_string();
}

// ------------------------------------------------------------------------------ hosts

awaitable<void> echo_handler(std::shared_ptr<Stream> s) {
  std::vector<uint8_t> buf(16 * 1024);
  while (true) {
    auto n = co_await s->read_some(buf);
    if (!n.ok() || *n == 0) break;
    if (!(co_await s->write(ByteView(buf.data(), *n))).is_ok()) break;
  }
  (void)co_await s->close_write();
}

// Opens an echo stream to `peer`, sends `n` bytes, half-closes and checks they come back.
awaitable<Status> echo_round_trip(Host& h, identity::PeerId peer, size_t n) {
  auto s = co_await h.new_stream(peer, std::string(kEcho));
  if (!s.ok()) co_return s.status();
  Bytes sent = pattern(n);
  auto ex = co_await asio::this_coro::executor;
  auto writer = start(ex, [&]() -> awaitable<Status> {
    if (Status st = co_await (*s)->write(sent); !st.is_ok()) co_return st;
    co_return co_await (*s)->close_write();
  });
  Bytes got(n);
  Status st = co_await (*s)->read_exact(got);
  Status wst = co_await join(writer);
  if (!st.is_ok()) co_return st;
  if (!wst.is_ok()) co_return wst;
  if (got != sent) co_return Status::corruption("echo differs");
  co_return Status::ok();
}

TEST(HostTransportsTest, TwoHostsTalkOverWebSocket) {
  Loop loop;
  auto a = make_host(loop), b = make_host(loop);
  auto bound = loop.call([&] {
    a->set_handler(std::string(kEcho), echo_handler);
    return a->listen(ma("/ip4/127.0.0.1/tcp/0/ws"));
  });
  ASSERT_TRUE(bound.ok()) << bound.status().to_string();
  EXPECT_TRUE(ends_with(*bound, "/ws"));
  auto addr = loop.call([&] { return a->listen_addrs().at(0); });
  EXPECT_TRUE(ends_with(addr, "/ws/p2p/" + a->id().to_string())) << addr.to_string();
  auto r = loop.run([&] { return b->dial(addr); });
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  ASSERT_TRUE(loop.run([&] { return b->wait_for_peer(a->id(), 10s, true); }));
  auto info = loop.call([&] { return b->peer_info(a->id()); });
  ASSERT_TRUE(info && info->identify);
  EXPECT_TRUE(ends_with(info->remote_addr, "/ws")) << info->remote_addr.to_string();
  ASSERT_EQ(info->identify->listen_addrs.size(), 1u);
  EXPECT_TRUE(ends_with(info->identify->listen_addrs[0], "/ws"));
  ASSERT_TRUE(info->identify->observed_addr.has_value());
  EXPECT_TRUE(ends_with(*info->identify->observed_addr, "/ws"));
  auto rtt = loop.run([&] { return b->ping(a->id()); });
  EXPECT_TRUE(rtt.ok()) << rtt.status().to_string();
  Status st = loop.run([&] { return echo_round_trip(*b, a->id(), 500000); });
  EXPECT_TRUE(st.is_ok()) << st.to_string();
}

TEST(HostTransportsTest, HostsOnTwoLoopsTalkOverAMemoryNetwork) {
  Loop la, lb;
  auto net = std::make_shared<MemoryNetwork>();
  HostConfig cfg;
  cfg.transports = {make_memory_transport(net)};
  auto a = make_host(la, cfg), b = make_host(lb, cfg);
  auto bound = la.call([&] {
    a->set_handler(std::string(kEcho), echo_handler);
    return a->listen(ma("/ip4/10.0.0.1/tcp/4001"));
  });
  ASSERT_TRUE(bound.ok()) << bound.status().to_string();
  EXPECT_EQ(bound->to_string(), "/ip4/10.0.0.1/tcp/4001");
  // Real addresses are not reachable without sockets.
  auto tcp = lb.call([&] { return b->listen(ma("/ip4/127.0.0.1/tcp/0/ws")); });
  EXPECT_EQ(tcp.status().code(), Code::kInvalidArgument);
  auto addr = la.call([&] { return a->listen_addrs().at(0); });
  auto r = lb.run([&] { return b->dial(addr); });
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  ASSERT_TRUE(lb.run([&] { return b->wait_for_peer(a->id(), 10s, true); }));
  ASSERT_TRUE(la.run([&] { return a->wait_for_peer(b->id(), 10s, true); }));
  auto rtt = lb.run([&] { return b->ping(a->id()); });
  EXPECT_TRUE(rtt.ok()) << rtt.status().to_string();
  Status st = lb.run([&] { return echo_round_trip(*b, a->id(), 500000); });
  EXPECT_TRUE(st.is_ok()) << st.to_string();
  // The listener goes away with its host; the other side sees the connection close.
  auto closed = std::make_shared<std::promise<void>>();
  lb.call([&] {
    b->set_connection_observer([closed](const identity::PeerId&, bool connected, const Status&) {
      if (!connected) closed->set_value();
    });
    return 0;
  });
  la.call([&] {
    a->stop();
    return 0;
  });
  EXPECT_EQ(net->num_listeners(), 0u);
  EXPECT_EQ(closed->get_future().wait_for(10s), std::future_status::ready);
  lb.call([&] {
    b->set_connection_observer(nullptr);
    return 0;
  });
}

TEST(HostTransportsTest, AWebSocketClientThatNeverUpgradesIsClosedAtTheHandshakeDeadline) {
  Loop loop;
  HostConfig cfg;
  cfg.handshake_timeout = 300ms;
  auto a = make_host(loop, cfg);
  auto bound = loop.call([&] { return a->listen(ma("/ip4/127.0.0.1/tcp/0/ws")); });
  ASSERT_TRUE(bound.ok());
  // Half an upgrade request, then silence.
  std::string answer =
      loop.run([&] { return http_exchange(*bound, "GET / HTTP/1.1\r\nHost: localhost\r\n"); });
  EXPECT_EQ(answer, "");
  EXPECT_EQ(a->stats().handshakes_failed, 1u);
  EXPECT_EQ(a->stats().handshakes_ok, 0u);
}

// Upgrades count against the inbound handshake budget like TCP handshakes: with one pending
// handshake allowed per address, a second WebSocket client from 127.0.0.1 is closed at once
// while the first one's upgrade is still pending.
TEST(HostTransportsTest, PendingWebSocketUpgradesCountAgainstTheHandshakeBudget) {
  Loop loop;
  HostConfig cfg;
  cfg.inbound_handshakes.max_pending_per_address = 1;
  cfg.handshake_timeout = 5s;
  auto a = make_host(loop, cfg);
  auto bound = loop.call([&] { return a->listen(ma("/ip4/127.0.0.1/tcp/0/ws")); });
  ASSERT_TRUE(bound.ok());
  // Two clients each send half an upgrade request; whichever the host admitted second is
  // closed without an answer long before the first one's deadline.
  auto t0 = std::chrono::steady_clock::now();
  bool one_closed = loop.run([&]() -> awaitable<bool> {
    auto ex = co_await asio::this_coro::executor;
    auto state = std::make_shared<Task<int>>(ex);
    std::vector<std::shared_ptr<asio::ip::tcp::socket>> socks;
    for (int i = 0; i < 2; ++i) {
      auto sock = std::make_shared<asio::ip::tcp::socket>(ex);
      boost::system::error_code ec;
      co_await sock->async_connect({asio::ip::make_address("127.0.0.1"), *bound->tcp_port()},
                                   asio::redirect_error(kUse, ec));
      if (ec) co_return false;
      std::string half = "GET / HTTP/1.1\r\n";
      co_await asio::async_write(*sock, asio::buffer(half), asio::redirect_error(kUse, ec));
      socks.push_back(sock);
      asio::co_spawn(
          ex,
          [sock, state]() -> awaitable<void> {
            char buf[64];
            boost::system::error_code e;
            co_await sock->async_read_some(asio::buffer(buf), asio::redirect_error(kUse, e));
            if (!state->result) state->result = 1;
            state->done.notify_all();
          },
          asio::detached);
    }
    co_await join(state);
    for (auto& s : socks) s->close();
    co_return true;
  });
  EXPECT_TRUE(one_closed);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 4s);
  EXPECT_EQ(a->stats().inbound_refused_per_address, 1u);
}

// The connection limit counts WebSocket peers as it counts TCP ones: with one established
// peer allowed, a second peer's WebSocket connection is closed before its upgrade.
TEST(HostTransportsTest, WebSocketPeersCountAgainstTheConnectionLimit) {
  Loop loop;
  HostConfig cfg;
  cfg.max_connections = 1;
  auto a = make_host(loop, cfg), b = make_host(loop), c = make_host(loop);
  ASSERT_TRUE(loop.call([&] { return a->listen(ma("/ip4/127.0.0.1/tcp/0/ws")).ok(); }));
  auto addr = loop.call([&] { return a->listen_addrs().at(0); });
  auto rb = loop.run([&] { return b->dial(addr); });
  ASSERT_TRUE(rb.ok()) << rb.status().to_string();
  ASSERT_TRUE(loop.run([&] { return a->wait_for_peer(b->id(), 10s); }));
  auto rc = loop.run([&] { return c->dial(addr); });
  EXPECT_FALSE(rc.ok());
  EXPECT_EQ(a->stats().inbound_refused_connections, 1u);
  EXPECT_TRUE(loop.call([&] { return a->is_connected(b->id()); }));
}

}  // namespace
}  // namespace idn::p2p
