#include <gtest/gtest.h>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "p2p/host.h"
#include "p2p_test_util.h"

namespace idn::p2p {
namespace {

using namespace std::chrono_literals;
using testing::Loop;
using testing::loopback;
using testing::make_host;

constexpr std::string_view kEcho = "/test/echo/1.0.0";

awaitable<void> echo_handler(std::shared_ptr<Stream> s) {
  std::vector<uint8_t> buf(16 * 1024);
  while (true) {
    auto n = co_await s->read_some(buf);
    if (!n.ok() || *n == 0) break;
    if (!(co_await s->write(ByteView(buf.data(), *n))).is_ok()) break;
  }
  (void)co_await s->close_write();
}

// Reads until EOF.
awaitable<Result<Bytes>> read_all(ByteStream& s) {
  Bytes out;
  std::vector<uint8_t> buf(16 * 1024);
  while (true) {
    auto n = co_await s.read_some(buf);
    if (!n.ok()) co_return n.status();
    if (*n == 0) co_return out;
    out.insert(out.end(), buf.begin(), buf.begin() + *n);
  }
}

core::Multiaddr listen(Loop& loop, Host& h) {
  auto a = loop.call([&] { return h.listen(loopback()); });
  EXPECT_TRUE(a.ok()) << a.status().to_string();
  return loop.call([&] { return h.listen_addrs().at(0); });
}

TEST(HostTest, ThreeHostsConnectAuthenticateIdentifyAndPing) {
  Loop loop;
  auto a = make_host(loop), b = make_host(loop), c = make_host(loop);
  auto aa = listen(loop, *a), ba = listen(loop, *b), ca = listen(loop, *c);
  struct Pair {
    Host* from;
    core::Multiaddr to;
    identity::PeerId want;
  };
  std::vector<Pair> pairs = {
      {a.get(), ba, b->id()}, {b.get(), ca, c->id()}, {c.get(), aa, a->id()}};
  for (auto& p : pairs) {
    auto r = loop.run([&]() { return p.from->dial(p.to); });
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    EXPECT_EQ(*r, p.want);
  }
  // Each host sees the other two, authenticated and identified.
  for (Host* h : {a.get(), b.get(), c.get()}) {
    for (Host* o : {a.get(), b.get(), c.get()}) {
      if (h == o) continue;
      bool ok = loop.run([&]() { return h->wait_for_peer(o->id(), 10s, true); });
      ASSERT_TRUE(ok) << "identify did not arrive";
      auto info = loop.call([&] { return h->peer_info(o->id()); });
      ASSERT_TRUE(info && info->identify);
      EXPECT_EQ(info->identify->public_key, o->key().public_key().to_protobuf());
      EXPECT_EQ(info->identify->agent_version, "idn/0.1.0");
      auto& protos = info->identify->protocols;
      EXPECT_NE(std::find(protos.begin(), protos.end(), "/ipfs/ping/1.0.0"), protos.end());
      ASSERT_FALSE(info->identify->listen_addrs.empty());
      ASSERT_TRUE(info->identify->observed_addr.has_value());
      EXPECT_EQ(info->identify->observed_addr->ip(), "127.0.0.1");
    }
  }
  auto rtt = loop.run([&]() { return a->ping(b->id()); });
  ASSERT_TRUE(rtt.ok()) << rtt.status().to_string();
  auto info = loop.call([&] { return a->peer_info(b->id()); });
  EXPECT_TRUE(info->rtt.has_value());
  // Dialling an already connected peer reuses the connection.
  auto again = loop.run([&]() { return a->dial(ba); });
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(a->stats().connections_opened, 2u);
  EXPECT_GE(a->stats().handshakes_ok, 2u);
}

TEST(HostTest, ManyConcurrentStreamsEchoWithFlowControl) {
  Loop loop;
  auto a = make_host(loop), b = make_host(loop);
  loop.call([&] {
    b->set_handler(std::string(kEcho), echo_handler);
    return 0;
  });
  auto ba = listen(loop, *b);
  ASSERT_TRUE(loop.run([&]() { return a->dial(ba); }).ok());
  constexpr int kStreams = 40;
  constexpr size_t kSize = 600 * 1024;  // > 2 windows: exercises WindowUpdate both ways
  auto result = loop.run(
      [&]() -> awaitable<int> {
        int ok = 0;
        std::vector<std::shared_ptr<Stream>> streams;
        for (int i = 0; i < kStreams; ++i) {
          auto s = co_await a->new_stream(b->id(), std::string(kEcho));
          if (!s.ok()) co_return -1;
          streams.push_back(*s);
        }
        // Writers run concurrently with readers; each stream's writer blocks at the window until
        // the echo side reads.
        auto ex = co_await asio::this_coro::executor;
        std::vector<std::future<bool>> writes;
        for (int i = 0; i < kStreams; ++i) {
          writes.push_back(asio::co_spawn(
              ex,
              [s = streams[i], i]() -> awaitable<bool> {
                Bytes data(kSize, static_cast<uint8_t>(i));
                Status st = co_await s->write(data);
                if (st.is_ok()) st = co_await s->close_write();
                co_return st.is_ok();
              },
              asio::use_future));
        }
        for (int i = 0; i < kStreams; ++i) {
          auto got = co_await read_all(*streams[i]);
          if (got.ok() && got->size() == kSize &&
              std::all_of(got->begin(), got->end(), [i](uint8_t v) { return v == i; })) {
            ++ok;
          }
        }
        co_return ok;
      },
      60s);
  EXPECT_EQ(result, kStreams);
  auto st = a->stats();
  EXPECT_GE(st.bytes_out, kStreams * kSize);
  EXPECT_GE(st.streams_opened, static_cast<uint64_t>(kStreams));
}

TEST(HostTest, DialWithWrongExpectedPeerIdIsRefused) {
  Loop loop;
  auto a = make_host(loop), b = make_host(loop), c = make_host(loop);
  auto ba = listen(loop, *b);
  auto wrong = identity::with_peer_id(ba.decapsulate(core::Protocol::kP2p), c->id());
  auto r = loop.run([&]() { return a->dial(wrong); });
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kPeerMisbehaved);
  EXPECT_FALSE(loop.call([&] { return a->is_connected(b->id()); }));
  EXPECT_EQ(a->stats().handshakes_failed, 1u);
}

// Connects a raw TCP socket to `addr`, sends `bytes`, then reads until the host closes it.
// Returns true when the host closed the connection within the deadline.
awaitable<bool> raw_client_closed_by_host(core::Multiaddr addr, Bytes bytes) {
  auto ex = co_await asio::this_coro::executor;
  asio::ip::tcp::socket sock(ex);
  boost::system::error_code ec;
  asio::ip::tcp::endpoint ep(asio::ip::make_address(*addr.ip()), *addr.tcp_port());
  co_await sock.async_connect(ep, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return false;
  if (!bytes.empty()) {
    co_await asio::async_write(sock, asio::buffer(bytes),
                               asio::redirect_error(asio::use_awaitable, ec));
  }
  uint8_t buf[1024];
  for (;;) {
    co_await sock.async_read_some(asio::buffer(buf), asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return true;  // EOF or reset: the host hung up
  }
}

TEST(HostTest, GarbageBytesCloseThatConnectionOnly) {
  Loop loop;
  auto a = make_host(loop), b = make_host(loop);
  auto aa = listen(loop, *a);
  Bytes garbage(300, 0xee);
  EXPECT_TRUE(loop.run([&]() { return raw_client_closed_by_host(aa, garbage); }));
  EXPECT_EQ(a->stats().handshakes_failed, 1u);
  // Still serving.
  auto r = loop.run([&]() { return b->dial(aa); });
  EXPECT_TRUE(r.ok()) << r.status().to_string();
}

TEST(HostTest, StalledHandshakeIsClosedAfterTimeout) {
  Loop loop;
  HostConfig cfg;
  cfg.handshake_timeout = 300ms;
  auto a = make_host(loop, cfg);
  auto aa = listen(loop, *a);
  // Valid multistream header and "/noise" proposal, then silence inside the Noise handshake.
  Bytes hello = multistream::encode_message(multistream::kHeader);
  multistream::append_message("/noise", hello);
  EXPECT_TRUE(loop.run([&]() { return raw_client_closed_by_host(aa, hello); }));
  EXPECT_EQ(a->stats().handshakes_failed, 1u);
  EXPECT_EQ(a->stats().handshakes_ok, 0u);
}

// Upgrades a raw connection by hand (as a peer would), to send arbitrary yamux bytes.
awaitable<Result<std::unique_ptr<SecureChannel>>> manual_upgrade(core::Multiaddr addr,
                                                                 identity::KeyPair key) {
  auto ex = co_await asio::this_coro::executor;
  asio::ip::tcp::socket sock(ex);
  boost::system::error_code ec;
  asio::ip::tcp::endpoint ep(asio::ip::make_address(*addr.ip()), *addr.tcp_port());
  co_await sock.async_connect(ep, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return Status::io_error(ec.message());
  auto tcp = std::make_unique<TcpStream>(std::move(sock));
  std::vector<std::string> noise{"/noise"};
  auto p = co_await select_protocol(*tcp, noise);
  if (!p.ok()) co_return p.status();
  auto ch = co_await noise_handshake(std::move(tcp), key, true, std::nullopt);
  if (!ch.ok()) co_return ch.status();
  std::vector<std::string> mux{"/yamux/1.0.0"};
  auto m = co_await select_protocol(**ch, mux);
  if (!m.ok()) co_return m.status();
  co_return std::move(*ch);
}

awaitable<bool> closed_after_sending(core::Multiaddr addr, Bytes yamux_bytes) {
  auto ch = co_await manual_upgrade(addr, testing::new_key());
  if (!ch.ok()) co_return false;
  if (!(co_await (*ch)->write(yamux_bytes)).is_ok()) co_return true;
  std::vector<uint8_t> buf(4096);
  for (;;) {
    auto n = co_await (*ch)->read_some(buf);
    if (!n.ok() || *n == 0) co_return true;
  }
}

TEST(HostTest, OversizedYamuxFrameClosesConnectionHostKeepsServing) {
  Loop loop;
  auto a = make_host(loop), b = make_host(loop);
  auto aa = listen(loop, *a);
  Bytes frame;
  yamux::append_header({0, yamux::FrameType::kData, yamux::kSyn, 1, 64 * 1024 * 1024}, frame);
  EXPECT_TRUE(loop.run([&]() { return closed_after_sending(aa, frame); }));
  EXPECT_EQ(a->stats().connections_closed, 1u);
  EXPECT_TRUE(loop.run([&]() { return b->dial(aa); }).ok());
  EXPECT_TRUE(loop.run([&]() { return b->ping(a->id()); }).ok());
}

// Polls `pred` on the loop for up to 5 s.
awaitable<bool> eventually(std::function<bool()> pred) {
  auto ex = co_await asio::this_coro::executor;
  for (auto until = std::chrono::steady_clock::now() + 5s; !pred();) {
    if (std::chrono::steady_clock::now() > until) co_return false;
    asio::steady_timer t(ex, 1ms);
    co_await t.async_wait(asio::use_awaitable);
  }
  co_return true;
}

struct GoAwaySeen {
  bool connected_before = false, disconnected_after = false;
  Code new_stream = Code::kOk;
};

// A hand-made peer opens a stream (so the host keeps the connection for it), then says
// GoAway and keeps its socket open, as a node does while it drains in-flight requests.
awaitable<GoAwaySeen> go_away_with_a_stream_open(core::Multiaddr addr, Host& host) {
  GoAwaySeen out;
  identity::KeyPair key = testing::new_key();
  identity::PeerId id = identity::PeerId::from_public_key(key.public_key());
  auto ch = co_await manual_upgrade(addr, key);
  if (!ch.ok()) co_return out;
  Bytes syn;
  yamux::append_header({0, yamux::FrameType::kWindowUpdate, yamux::kSyn, 1, 0}, syn);
  if (!(co_await (*ch)->write(syn)).is_ok()) co_return out;
  out.connected_before = co_await eventually([&] { return host.is_connected(id); });
  Bytes away;
  yamux::append_header({0, yamux::FrameType::kGoAway, 0, 0, 0}, away);
  if (!(co_await (*ch)->write(away)).is_ok()) co_return out;
  out.disconnected_after = co_await eventually([&] { return !host.is_connected(id); });
  auto s = co_await host.new_stream(id, std::string(kEcho));
  out.new_stream = s.status().code();
  co_return out;
}

TEST(HostTest, APeerThatSentGoAwayIsNoLongerConnectedForNewStreams) {
  Loop loop;
  auto a = make_host(loop);
  auto aa = listen(loop, *a);
  auto seen = loop.run([&]() { return go_away_with_a_stream_open(aa, *a); });
  EXPECT_TRUE(seen.connected_before);
  EXPECT_TRUE(seen.disconnected_after) << "a going-away peer still counts as connected";
  EXPECT_EQ(seen.new_stream, Code::kNotFound);
}

TEST(HostTest, StreamFloodClosesConnection) {
  Loop loop;
  HostConfig cfg;
  cfg.yamux.max_streams = 16;
  auto a = make_host(loop, cfg);
  auto aa = listen(loop, *a);
  Bytes frames;
  for (uint32_t i = 0; i < 100; ++i) {
    yamux::append_header({0, yamux::FrameType::kWindowUpdate, yamux::kSyn, 2 * i + 1, 0}, frames);
  }
  EXPECT_TRUE(loop.run([&]() { return closed_after_sending(aa, frames); }));
  EXPECT_EQ(a->stats().connections_closed, 1u);
  EXPECT_EQ(a->stats().connections_active, 0u);
}

TEST(HostTest, IdleConnectionClosedAfterTcWithFakeClock) {
  Loop loop;
  auto fake_now = std::make_shared<std::atomic<int64_t>>(0);
  HostConfig cfg;
  cfg.idle_timeout = 60s;
  cfg.idle_sweep_interval = 10ms;
  cfg.clock = [fake_now] { return SteadyTime(std::chrono::milliseconds(fake_now->load())); };
  auto a = make_host(loop, cfg), b = make_host(loop);
  auto ba = listen(loop, *b);
  loop.call([&] { return a->listen(loopback()).ok(); });
  ASSERT_TRUE(loop.run([&]() { return a->dial(ba); }).ok());
  ASSERT_TRUE(loop.run([&]() { return a->wait_for_peer(b->id(), 10s, true); }));
  EXPECT_TRUE(loop.call([&] { return a->is_connected(b->id()); }));
  bool gone = loop.run([&]() -> awaitable<bool> {
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
      if (!a->is_connected(b->id())) co_return true;
      // Time passes in jumps of 61 s (> T_c); the first jump may still see the tail of the
      // identify exchange, a later one finds the connection idle.
      fake_now->fetch_add(61'000);
      asio::steady_timer t(co_await asio::this_coro::executor, 5ms);
      co_await t.async_wait(asio::use_awaitable);
    }
    co_return false;
  });
  EXPECT_TRUE(gone) << "streams still open: "
                    << loop.call([&] { return a->stats().streams_active; });
}

TEST(HostTest, UnknownProtocolIsRefusedAndConnectionSurvives) {
  Loop loop;
  auto a = make_host(loop), b = make_host(loop);
  auto ba = listen(loop, *b);
  ASSERT_TRUE(loop.run([&]() { return a->dial(ba); }).ok());
  auto s = loop.run([&]() { return a->new_stream(b->id(), std::string("/nope/1.0.0")); });
  EXPECT_EQ(s.status().code(), Code::kUnsupported);
  EXPECT_TRUE(loop.run([&]() { return a->ping(b->id()); }).ok());
}

// Optimistic select: write at once, then read what comes back (the echo, or the refusal).
awaitable<Result<Bytes>> optimistic_round_trip(Host& a, identity::PeerId b, std::string protocol,
                                               Bytes message) {
  auto s = co_await a.new_stream_optimistic(b, protocol);
  if (!s.ok()) co_return s.status();
  if (Status st = co_await (*s)->write(message); !st.is_ok()) co_return st;
  if (Status st = co_await (*s)->close_write(); !st.is_ok()) co_return st;
  co_return co_await read_all(**s);
}

TEST(HostTest, OptimisticSelectSendsDataWithTheProposal) {
  Loop loop;
  auto a = make_host(loop), b = make_host(loop);
  loop.call([&] { b->set_handler(std::string(kEcho), echo_handler); });
  auto ba = listen(loop, *b);
  ASSERT_TRUE(loop.run([&]() { return a->dial(ba); }).ok());
  // Larger than the 256-byte buffer the echo check reads with: data follows the echo.
  Bytes msg(5000);
  for (size_t i = 0; i < msg.size(); ++i) msg[i] = static_cast<uint8_t>(i * 7);
  auto got = loop.run([&] { return optimistic_round_trip(*a, b->id(), std::string(kEcho), msg); });
  ASSERT_TRUE(got.ok()) << got.status().to_string();
  EXPECT_EQ(*got, msg);
}

TEST(HostTest, AnExchangeOfSmallMessagesTakesOneWriteEachWay) {
  // The listener's ACK, protocol echo, three answers and FIN are written in one turn and leave
  // in one write; the dialer's SYN, proposal, request and FIN likewise.
  Loop loop;
  auto a = make_host(loop), b = make_host(loop);
  loop.call([&] {
    b->set_handler("/answers/1.0.0", [](std::shared_ptr<Stream> s) -> awaitable<void> {
      uint8_t req[4];
      if (!(co_await s->read_exact(req)).is_ok()) co_return;
      for (int i = 0; i < 3; ++i) {
        Bytes answer(100, static_cast<uint8_t>(req[0] + i));
        if (!(co_await s->write(answer)).is_ok()) co_return;
      }
      (void)co_await s->close_write();
    });
  });
  auto ba = listen(loop, *b);
  ASSERT_TRUE(loop.run([&]() { return a->dial(ba); }).ok());
  ASSERT_TRUE(loop.run([&]() { return a->ping(b->id()); }).ok());  // identify is done too
  const auto wa = a->stats().writes, wb = b->stats().writes;
  constexpr int kExchanges = 20;
  for (int i = 0; i < kExchanges; ++i) {
    auto got = loop.run([&] {
      return optimistic_round_trip(*a, b->id(), "/answers/1.0.0", Bytes{7, 0, 0, 0});
    });
    ASSERT_TRUE(got.ok()) << got.status().to_string();
    ASSERT_EQ(got->size(), 300u);
    EXPECT_EQ((*got)[299], 9);
  }
  // A few writes of slack for what else the connection carries (identify push, pings).
  EXPECT_LE(b->stats().writes - wb, kExchanges + 3u);
  EXPECT_LE(a->stats().writes - wa, kExchanges + 3u);
}

TEST(HostTest, ARequesterFinAfterTheAnswerRidesWithItsNextRequest) {
  // The inference pattern: request, read the answer up to the server's FIN, then close. That
  // last FIN only frees the stream, so it waits for the next request's packet instead of
  // waking the server on its own; the server still sees every FIN (the last one after
  // defaults::kDeferredFinFor).
  Loop loop;
  auto a = make_host(loop), b = make_host(loop);
  auto eofs = std::make_shared<int>(0);
  auto seen = std::make_shared<std::unique_ptr<Signal>>();
  loop.call([&] {
    *seen = std::make_unique<Signal>(loop.ex());
    b->set_handler("/answers/1.0.0", [eofs, seen](std::shared_ptr<Stream> s) -> awaitable<void> {
      uint8_t req[4];
      if (!(co_await s->read_exact(req)).is_ok()) co_return;
      if (!(co_await s->write(Bytes(100, req[0]))).is_ok()) co_return;
      if (!(co_await s->close_write()).is_ok()) co_return;
      uint8_t more[1];
      auto n = co_await s->read_some(more);  // the requester's FIN
      if (n.ok() && *n == 0) ++*eofs;
      (*seen)->notify_all();
    });
  });
  auto ba = listen(loop, *b);
  ASSERT_TRUE(loop.run([&]() { return a->dial(ba); }).ok());
  ASSERT_TRUE(loop.run([&]() { return a->ping(b->id()); }).ok());  // identify is done too
  const auto wa = a->stats().writes, wb = b->stats().writes;
  // All requests from one coroutine, back to back as a client issues them (a round trip to
  // the test thread between them could outlast the FIN's 1 ms wait on a loaded machine).
  constexpr int kExchanges = 20;
  auto answers = loop.run([&]() -> awaitable<Result<std::vector<Bytes>>> {
    std::vector<Bytes> out;
    for (int i = 0; i < kExchanges; ++i) {
      auto s = co_await a->new_stream_optimistic(b->id(), "/answers/1.0.0");
      if (!s.ok()) co_return s.status();
      Bytes req{static_cast<uint8_t>(i), 0, 0, 0};
      if (Status st = co_await (*s)->write(req); !st.is_ok()) co_return st;
      auto answer = co_await read_all(**s);
      if (!answer.ok()) co_return answer.status();
      if (Status st = co_await (*s)->close_write(); !st.is_ok()) co_return st;
      out.push_back(std::move(*answer));
    }
    co_return out;
  });
  ASSERT_TRUE(answers.ok()) << answers.status().to_string();
  ASSERT_EQ(answers->size(), static_cast<size_t>(kExchanges));
  for (int i = 0; i < kExchanges; ++i) {
    ASSERT_EQ((*answers)[i].size(), 100u);
    EXPECT_EQ((*answers)[i][0], i);
  }
  auto all_closed = loop.run([&]() -> awaitable<bool> {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (*eofs < kExchanges && co_await (*seen)->wait(deadline)) {
    }
    co_return *eofs == kExchanges;
  });
  EXPECT_TRUE(all_closed) << *eofs << " of " << kExchanges << " FINs reached the server";
  // One write per request (with the previous stream's FIN), one per answer, the last FIN
  // alone, and a little slack for what else the connection carries (identify push, pings).
  EXPECT_LE(a->stats().writes - wa, kExchanges + 4u);
  EXPECT_LE(b->stats().writes - wb, kExchanges + 3u);
}

TEST(HostTest, OptimisticSelectOfAnUnknownProtocolFailsOnRead) {
  Loop loop;
  auto a = make_host(loop), b = make_host(loop);
  auto ba = listen(loop, *b);
  ASSERT_TRUE(loop.run([&]() { return a->dial(ba); }).ok());
  auto got = loop.run([&] {
    return optimistic_round_trip(*a, b->id(), "/nope/1.0.0", Bytes{1, 2, 3});
  });
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), Code::kUnsupported) << got.status().to_string();
  EXPECT_TRUE(loop.run([&]() { return a->ping(b->id()); }).ok());
}

}  // namespace
}  // namespace idn::p2p

namespace idn::p2p {
namespace {

TEST(HostTest, SimultaneousDialsLeaveOneConnectionThatWorks) {
  using namespace std::chrono_literals;
  testing::Loop loop;
  auto a = testing::make_host(loop), b = testing::make_host(loop);
  loop.call(
      [&] { return a->listen(testing::loopback()).ok() && b->listen(testing::loopback()).ok(); });
  auto aa = loop.call([&] { return a->listen_addrs().at(0); });
  auto ba = loop.call([&] { return b->listen_addrs().at(0); });
  auto both = loop.run([&]() -> awaitable<bool> {
    auto ex = co_await asio::this_coro::executor;
    auto ok_a = std::make_shared<int>(-1), ok_b = std::make_shared<int>(-1);
    Signal done(ex);
    auto dial = [&done](Host* h, core::Multiaddr to, std::shared_ptr<int> out) -> awaitable<void> {
      auto r = co_await h->dial(to);
      *out = r.ok() ? 1 : 0;
      done.notify_all();
    };
    asio::co_spawn(ex, dial(a.get(), ba, ok_a), asio::detached);
    asio::co_spawn(ex, dial(b.get(), aa, ok_b), asio::detached);
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while ((*ok_a < 0 || *ok_b < 0) && std::chrono::steady_clock::now() < deadline) {
      co_await done.wait(deadline);
    }
    co_return *ok_a == 1 && *ok_b == 1;
  });
  EXPECT_TRUE(both);
  // Whatever survived the duplicate resolution carries traffic both ways.
  ASSERT_TRUE(loop.run([&]() { return a->wait_for_peer(b->id(), 10s); }));
  ASSERT_TRUE(loop.run([&]() { return b->wait_for_peer(a->id(), 10s); }));
  EXPECT_TRUE(loop.run([&]() { return a->ping(b->id()); }).ok());
  EXPECT_TRUE(loop.run([&]() { return b->ping(a->id()); }).ok());
  EXPECT_LE(a->stats().connections_active, 2u);
}

}  // namespace
}  // namespace idn::p2p
