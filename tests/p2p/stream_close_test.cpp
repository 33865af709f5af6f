// How a host ends streams a peer opened, seen frame by frame by a hand-made peer (raw Noise +
// yamux, as js-libp2p behaves): js-libp2p counts a stream against its protocol's limit until
// both sides have closed it (one outbound ping stream per connection), so the host's FIN must
// reach the peer no later than anything the peer could take as leave to open the next stream.
#include <gtest/gtest.h>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "p2p/host.h"
#include "p2p_test_util.h"

namespace idn::p2p {
namespace {

using namespace std::chrono_literals;
using testing::Loop;
using testing::make_host;

constexpr uint32_t kPingBytes = 32;

struct Frame {
  yamux::Header h;
  Bytes payload;
  int batch = 0;  // which read from the channel brought it (one per Noise message here)
};

// A peer that speaks yamux by hand over a real Noise channel: it writes exactly the frames it
// is told to, in one write, and records every frame the host sends in arrival order.
class RawPeer {
 public:
  static awaitable<Result<std::unique_ptr<RawPeer>>> connect(core::Multiaddr addr) {
    auto ex = co_await asio::this_coro::executor;
    asio::ip::tcp::socket sock(ex);
    boost::system::error_code ec;
    asio::ip::tcp::endpoint ep(asio::ip::make_address(*addr.ip()), *addr.tcp_port());
    co_await sock.async_connect(ep, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return Status::io_error(ec.message());
    auto tcp = std::make_unique<TcpStream>(std::move(sock));
    std::vector<std::string> noise{"/noise"};
    if (auto p = co_await select_protocol(*tcp, noise); !p.ok()) co_return p.status();
    auto ch = co_await noise_handshake(std::move(tcp), testing::new_key(), true, std::nullopt);
    if (!ch.ok()) co_return ch.status();
    std::vector<std::string> mux{std::string(yamux::kProtocolId)};
    if (auto m = co_await select_protocol(**ch, mux); !m.ok()) co_return m.status();
    auto peer = std::make_unique<RawPeer>();
    peer->ch_ = std::move(*ch);
    co_return peer;
  }

  // Frame builders; send() writes what they queued in one write (one Noise message).
  void syn(uint32_t id) { header(yamux::FrameType::kWindowUpdate, yamux::kSyn, id, 0); }
  void fin(uint32_t id) { header(yamux::FrameType::kWindowUpdate, yamux::kFin, id, 0); }
  void data(uint32_t id, ByteView payload) {
    header(yamux::FrameType::kData, 0, id, static_cast<uint32_t>(payload.size()));
    out_.insert(out_.end(), payload.begin(), payload.end());
  }
  // multistream-select's header and a proposal of `protocol`, as one Data frame.
  void propose(uint32_t id, std::string_view protocol) {
    Bytes m = multistream::encode_message(multistream::kHeader);
    multistream::append_message(protocol, m);
    data(id, m);
  }
  awaitable<Status> send() { co_return co_await ch_->write(std::exchange(out_, {})); }

  // Reads until `done(frames)` holds (false after 5 s or when the host hangs up).
  awaitable<bool> read_until(std::function<bool(const std::vector<Frame>&)> done) {
    auto ex = co_await asio::this_coro::executor;
    std::vector<uint8_t> buf(64 * 1024);
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (!done(frames)) {
      if (std::chrono::steady_clock::now() > deadline) co_return false;
      asio::steady_timer timer(ex, deadline);
      timer.async_wait([this](boost::system::error_code ec) {
        if (!ec) ch_->reset();
      });
      auto n = co_await ch_->read_some(buf);
      timer.cancel();
      if (!n.ok() || *n == 0) co_return false;
      ++batches_;
      in_.insert(in_.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(*n));
      size_t pos = 0;
      while (in_.size() - pos >= yamux::kHeaderLen) {
        auto h = yamux::decode_header(ByteView(in_).subspan(pos, yamux::kHeaderLen));
        if (!h.ok()) co_return false;
        size_t len = h->type == yamux::FrameType::kData ? h->length : 0;
        if (in_.size() - pos < yamux::kHeaderLen + len) break;
        auto p = in_.begin() + static_cast<std::ptrdiff_t>(pos + yamux::kHeaderLen);
        frames.push_back(Frame{*h, Bytes(p, p + static_cast<std::ptrdiff_t>(len)), batches_});
        pos += yamux::kHeaderLen + len;
      }
      in_.erase(in_.begin(), in_.begin() + static_cast<std::ptrdiff_t>(pos));
    }
    co_return true;
  }

  std::vector<Frame> frames;  // everything the host sent, in order

 private:
  void header(yamux::FrameType t, uint16_t flags, uint32_t id, uint32_t len) {
    yamux::append_header({0, t, flags, id, len}, out_);
  }
  std::unique_ptr<SecureChannel> ch_;
  Bytes out_, in_;
  int batches_ = 0;
};

// Payload bytes the host sent on stream `id`.
size_t data_on(const std::vector<Frame>& fs, uint32_t id) {
  size_t n = 0;
  for (const auto& f : fs) {
    if (f.h.stream_id == id && f.h.type == yamux::FrameType::kData) n += f.payload.size();
  }
  return n;
}
// Index of the host's first frame on stream `id` with `flag`, or -1.
int first_with(const std::vector<Frame>& fs, uint32_t id, uint16_t flag) {
  for (size_t i = 0; i < fs.size(); ++i) {
    if (fs[i].h.stream_id == id && (fs[i].h.flags & flag)) return static_cast<int>(i);
  }
  return -1;
}
int first_data(const std::vector<Frame>& fs, uint32_t id) {
  for (size_t i = 0; i < fs.size(); ++i) {
    if (fs[i].h.stream_id == id && fs[i].h.type == yamux::FrameType::kData)
      return static_cast<int>(i);
  }
  return -1;
}
// The listener's answer to propose(): the header and the protocol echoed.
size_t echo_len(std::string_view protocol) {
  Bytes m = multistream::encode_message(multistream::kHeader);
  multistream::append_message(protocol, m);
  return m.size();
}

core::Multiaddr listen(Loop& loop, Host& h) {
  EXPECT_TRUE(loop.call([&] { return h.listen(testing::loopback()).ok(); }));
  return loop.call([&] { return h.listen_addrs().at(0); });
}

TEST(StreamCloseTest, TheFinOfAFinishedPingLeavesBeforeTheAnswerToTheNextStream) {
  // The peer's FIN for ping stream 1 arrives in the same read as the SYN and protocol proposal
  // of stream 3 (a node busy for a moment reads both at once). The ping handler of stream 1
  // ends on that FIN; its FIN must leave ahead of stream 3's protocol echo, which the peer
  // takes as leave to start pinging on stream 3.
  Loop loop;
  auto h = make_host(loop);
  auto addr = listen(loop, *h);
  const std::string ping(kPingProtocolId);
  auto order = loop.run([&]() -> awaitable<Result<std::pair<int, int>>> {
    auto peer = co_await RawPeer::connect(addr);
    if (!peer.ok()) co_return peer.status();
    RawPeer& p = **peer;
    p.syn(1);
    p.propose(1, ping);
    p.data(1, Bytes(kPingBytes, 7));
    if (Status st = co_await p.send(); !st.is_ok()) co_return st;
    const size_t want = echo_len(ping) + kPingBytes;
    if (!co_await p.read_until([&](auto& fs) { return data_on(fs, 1) >= want; })) {
      co_return Status::timeout("no pong on stream 1");
    }
    if (first_with(p.frames, 1, yamux::kFin) >= 0) {
      co_return Status::internal("the host closed stream 1 before the peer did");
    }
    p.fin(1);
    p.syn(3);
    p.propose(3, ping);
    if (Status st = co_await p.send(); !st.is_ok()) co_return st;
    if (!co_await p.read_until([](auto& fs) {
          return first_data(fs, 3) >= 0 && first_with(fs, 1, yamux::kFin) >= 0;
        })) {
      co_return Status::timeout("no echo on stream 3 or no FIN on stream 1");
    }
    co_return std::make_pair(first_with(p.frames, 1, yamux::kFin), first_data(p.frames, 3));
  });
  ASSERT_TRUE(order.ok()) << order.status().to_string();
  EXPECT_LT(order->first, order->second)
      << "stream 1's FIN (frame " << order->first << ") left after stream 3's protocol echo (frame "
      << order->second << ")";
}

TEST(StreamCloseTest, APingThatCameWithItsFinIsAnsweredWithPongAndFinInOneWrite) {
  // js-libp2p writes its 32 bytes and its FIN back to back: the pong then carries the FIN, so
  // the peer sees the stream closed the moment it has its answer.
  Loop loop;
  auto h = make_host(loop);
  auto addr = listen(loop, *h);
  const std::string ping(kPingProtocolId);
  auto writes = loop.run([&]() -> awaitable<Result<uint64_t>> {
    auto peer = co_await RawPeer::connect(addr);
    if (!peer.ok()) co_return peer.status();
    RawPeer& p = **peer;
    p.syn(1);
    p.propose(1, ping);
    if (Status st = co_await p.send(); !st.is_ok()) co_return st;
    if (!co_await p.read_until([&](auto& fs) { return data_on(fs, 1) >= echo_len(ping); })) {
      co_return Status::timeout("no protocol echo on stream 1");
    }
    const uint64_t before = h->stats().writes;
    const size_t frames_before = p.frames.size();
    Bytes payload(kPingBytes);
    for (uint32_t i = 0; i < kPingBytes; ++i) payload[i] = static_cast<uint8_t>(i * 7 + 1);
    p.data(1, payload);
    p.fin(1);
    if (Status st = co_await p.send(); !st.is_ok()) co_return st;
    if (!co_await p.read_until([](auto& fs) { return first_with(fs, 1, yamux::kFin) >= 0; })) {
      co_return Status::timeout("no FIN on stream 1");
    }
    Bytes pong;
    for (size_t i = frames_before; i < p.frames.size(); ++i) {
      const Frame& f = p.frames[i];
      if (f.h.stream_id == 1 && f.h.type == yamux::FrameType::kData) {
        pong.insert(pong.end(), f.payload.begin(), f.payload.end());
      }
    }
    if (pong != payload) co_return Status::internal("the pong differs from the ping");
    co_return h->stats().writes - before;
  });
  ASSERT_TRUE(writes.ok()) << writes.status().to_string();
  EXPECT_EQ(*writes, 1u) << "pong and FIN took " << *writes << " writes";
}

TEST(StreamCloseTest, AResponderClosingAfterThePeersFinSendsItsFinAtOnce) {
  // A handler that reads the request to the end, answers and closes (the peer opened the
  // stream): its FIN is not held back for company, whatever the deferral for a requester's
  // FIN is, since no request of ours follows to carry it.
  Loop loop;
  HostConfig cfg;
  cfg.yamux.deferred_fin_for = std::chrono::hours(1);
  auto a = make_host(loop, cfg), b = make_host(loop, cfg);
  loop.call([&] {
    a->set_handler("/test/answer/1.0.0", [](std::shared_ptr<Stream> s) -> awaitable<void> {
      std::vector<uint8_t> buf(64);
      size_t got = 0;
      for (;;) {
        auto n = co_await s->read_some(buf);
        if (!n.ok()) co_return;
        if (*n == 0) break;
        got += *n;
      }
      if (!(co_await s->write(Bytes(100, static_cast<uint8_t>(got)))).is_ok()) co_return;
      (void)co_await s->close_write();
    });
    return 0;
  });
  auto aa = listen(loop, *a);
  ASSERT_TRUE(loop.run([&]() { return b->dial(aa); }).ok());
  ASSERT_TRUE(loop.run([&]() { return b->ping(a->id()); }).ok());  // identify is done too
  auto answer = loop.run([&]() -> awaitable<Result<Bytes>> {
    auto s = co_await b->new_stream(a->id(), "/test/answer/1.0.0");
    if (!s.ok()) co_return s.status();
    (*s)->set_deadline(std::chrono::steady_clock::now() + 5s);
    if (Status st = co_await (*s)->write(Bytes(4, 1)); !st.is_ok()) co_return st;
    if (Status st = co_await (*s)->close_write(); !st.is_ok()) co_return st;
    Bytes out;
    std::vector<uint8_t> buf(256);
    for (;;) {
      auto n = co_await (*s)->read_some(buf);
      if (!n.ok()) co_return n.status();  // Timeout: the FIN did not come
      if (*n == 0) co_return out;
      out.insert(out.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(*n));
    }
  });
  ASSERT_TRUE(answer.ok()) << answer.status().to_string();
  EXPECT_EQ(*answer, Bytes(100, 4));
}

}  // namespace
}  // namespace idn::p2p
