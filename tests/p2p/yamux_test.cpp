#include "p2p/yamux.h"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>

namespace idn::p2p::yamux {
namespace {

// Moves all pending output from one session to the other, both ways, until quiet.
Status pump(Session& a, Session& b) {
  for (int i = 0; i < 100; ++i) {
    Bytes x = a.take_output(), y = b.take_output();
    if (x.empty() && y.empty()) return Status::ok();
    if (!x.empty()) IDN_RETURN_IF_ERROR(b.feed(x));
    if (!y.empty()) IDN_RETURN_IF_ERROR(a.feed(y));
  }
  return Status::internal("pump did not settle");
}

Bytes frame(FrameType t, uint16_t flags, uint32_t id, uint32_t len, Bytes payload = {}) {
  Bytes out;
  append_header(Header{0, t, flags, id, len}, out);
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

TEST(YamuxTest, HeaderRoundTripsAndRejectsBadVersionOrType) {
  Bytes b;
  append_header(Header{0, FrameType::kWindowUpdate, kSyn | kAck, 7, 0x01020304}, b);
  ASSERT_EQ(b.size(), kHeaderLen);
  EXPECT_EQ(b, (Bytes{0, 1, 0, 3, 0, 0, 0, 7, 1, 2, 3, 4}));
  auto h = decode_header(b);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->stream_id, 7u);
  EXPECT_EQ(h->length, 0x01020304u);
  b[0] = 1;
  EXPECT_EQ(decode_header(b).status().code(), Code::kPeerMisbehaved);
  b[0] = 0;
  b[1] = 9;
  EXPECT_EQ(decode_header(b).status().code(), Code::kPeerMisbehaved);
}

TEST(YamuxTest, OpenWriteReadCloseBothWays) {
  Session c(true), s(false);
  auto id = c.open_stream();
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(*id % 2, 1u);
  ASSERT_TRUE(c.write(*id, as_bytes("hello")).ok());
  ASSERT_TRUE(c.close_write(*id).ok());
  ASSERT_TRUE(pump(c, s).ok());
  auto in = s.accept();
  ASSERT_TRUE(in.has_value());
  EXPECT_EQ(*in, *id);
  uint8_t buf[16];
  size_t n = s.read(*in, buf);
  EXPECT_EQ(std::string(buf, buf + n), "hello");
  EXPECT_TRUE(s.read_eof(*in));
  ASSERT_TRUE(s.write(*in, as_bytes("world")).ok());
  ASSERT_TRUE(s.close_write(*in).ok());
  ASSERT_TRUE(pump(c, s).ok());
  n = c.read(*id, buf);
  EXPECT_EQ(std::string(buf, buf + n), "world");
  EXPECT_TRUE(c.read_eof(*id));
  c.release(*id);
  s.release(*in);
  EXPECT_EQ(c.num_streams(), 0u);
  EXPECT_EQ(s.num_streams(), 0u);
}

TEST(YamuxTest, WriterStopsAtWindowAndResumesAfterReaderConsumes) {
  Session c(true), s(false);
  auto id = *c.open_stream();
  Bytes big(kInitialWindow + 1000, 0xab);
  auto n = c.write(id, big);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, kInitialWindow);  // never more than the window
  EXPECT_EQ(c.send_window(id), 0u);
  EXPECT_EQ(*c.write(id, ByteView(big).subspan(*n)), 0u);
  ASSERT_TRUE(pump(c, s).ok());
  auto in = *s.accept();
  Bytes sink(kInitialWindow);
  EXPECT_EQ(s.read(in, sink), kInitialWindow);
  ASSERT_TRUE(pump(c, s).ok());
  EXPECT_GE(c.send_window(id), kInitialWindow / 2);
  EXPECT_EQ(*c.write(id, ByteView(big).subspan(*n)), 1000u);
}

TEST(YamuxTest, PeerExceedingWindowFailsSession) {
  Session s(false);  // the spec's 256 KiB window
  ASSERT_TRUE(s.feed(frame(FrameType::kWindowUpdate, kSyn, 1, 0)).ok());
  Bytes chunk(kInitialWindow, 1);
  ASSERT_TRUE(s.feed(frame(FrameType::kData, 0, 1, chunk.size(), chunk)).ok());
  Status st = s.feed(frame(FrameType::kData, 0, 1, 1, {1}));
  EXPECT_EQ(st.code(), Code::kPeerMisbehaved);
  EXPECT_TRUE(s.failed());
  Bytes out = s.take_output();
  ASSERT_GE(out.size(), kHeaderLen);
  EXPECT_EQ(out[out.size() - 11], static_cast<uint8_t>(FrameType::kGoAway));
}

TEST(YamuxTest, SynAndAckGrantTheConfiguredWindowWhichIsEnforced) {
  SessionLimits lim;
  lim.initial_window = 2 * kInitialWindow;
  lim.max_stream_window = 2 * kInitialWindow;
  Session c(true, lim), s(false, lim);
  auto id = *c.open_stream();
  ASSERT_TRUE(pump(c, s).ok());
  auto in = *s.accept();
  // Each side learned the other's raised window from the SYN / ACK delta.
  EXPECT_EQ(s.send_window(in), 2 * kInitialWindow);
  EXPECT_EQ(c.send_window(id), 2 * kInitialWindow);
  Bytes big(3 * kInitialWindow, 0xcd);
  EXPECT_EQ(*c.write(id, big), 2 * kInitialWindow);
  ASSERT_TRUE(pump(c, s).ok());
  EXPECT_EQ(s.readable(in), 2 * kInitialWindow);
  // A peer that ignores the window past the raised credit still fails the session.
  Status st = s.feed(frame(FrameType::kData, 0, id, 1, {1}));
  EXPECT_EQ(st.code(), Code::kPeerMisbehaved);
}

TEST(YamuxTest, OversizedFrameRefusedBeforeBuffering) {
  Session s(false);
  Bytes hdr = frame(FrameType::kData, kSyn, 1, 16 * 1024 * 1024);
  EXPECT_EQ(s.feed(hdr).code(), Code::kPeerMisbehaved);
  // A frame within the largest window we ever grant but beyond the stream's current credit
  // is refused at its header too: nothing of it is held waiting for the rest.
  Session s2(false);
  ASSERT_TRUE(s2.feed(frame(FrameType::kWindowUpdate, kSyn, 1, 0)).ok());
  EXPECT_EQ(s2.feed(frame(FrameType::kData, 0, 1, kInitialWindow + 1)).code(),
            Code::kPeerMisbehaved);
}

// Writes as much as the window allows on `id`, delivers it, and has the receiver read it all.
size_t send_window_full(Session& c, uint32_t id, Session& s, uint32_t in) {
  static const Bytes big(8 * 1024 * 1024, 0x5a);
  static std::vector<uint8_t> sink(big.size());
  size_t n = *c.write(id, big);
  EXPECT_TRUE(pump(c, s).ok());
  size_t got = 0, r;
  while ((r = s.read(in, std::span<uint8_t>(sink).subspan(got))) > 0) got += r;
  EXPECT_EQ(got, n);
  EXPECT_TRUE(pump(c, s).ok());
  return n;
}

TEST(YamuxTest, WindowStartsAtSpecAndGrowsWhileReaderKeepsUpWithWindowLimitedSender) {
  Session c(true), s(false);
  auto id = *c.open_stream();
  ASSERT_TRUE(pump(c, s).ok());
  auto in = *s.accept();
  EXPECT_EQ(s.recv_window(in), kInitialWindow);
  EXPECT_EQ(c.send_window(id), kInitialWindow);
  // The sender fills the window every time: it doubles until the 4 MiB cap.
  uint32_t last = kInitialWindow;
  for (int round = 0; round < 12; ++round) {
    send_window_full(c, id, s, in);
    EXPECT_GE(s.recv_window(in), last);
    last = s.recv_window(in);
  }
  EXPECT_EQ(last, defaults::kYamuxMaxStreamWindow);
  EXPECT_EQ(c.send_window(id), defaults::kYamuxMaxStreamWindow);
  EXPECT_EQ(s.total_recv_window(), defaults::kYamuxMaxStreamWindow);
}

// A clock the test moves by hand.
struct FakeClock {
  std::shared_ptr<std::chrono::steady_clock::time_point> now =
      std::make_shared<std::chrono::steady_clock::time_point>();
  Session::Clock fn() const {
    return [n = now] { return *n; };
  }
  void advance(std::chrono::microseconds d) const { *now += d; }
};

// `n` 16 KiB messages from `tx` to `rx`, one per `step` of the clock, each read on arrival.
void lockstep(Session& tx, uint32_t id, Session& rx, uint32_t in, const FakeClock& clock,
              std::chrono::microseconds step, int n) {
  Bytes chunk(16 * 1024, 1);
  uint8_t buf[16 * 1024];
  for (int i = 0; i < n; ++i) {
    clock.advance(step);
    ASSERT_EQ(*tx.write(id, chunk), chunk.size());
    ASSERT_TRUE(pump(tx, rx).ok());
    ASSERT_EQ(rx.read(in, buf), chunk.size());
    ASSERT_TRUE(pump(tx, rx).ok());
  }
}

TEST(YamuxTest, WindowDoesNotGrowForASenderThatNeverRunsItDry) {
  FakeClock clock;
  Session c(true), s(false, {}, clock.fn());
  auto id = *c.open_stream();
  ASSERT_TRUE(pump(c, s).ok());
  auto in = *s.accept();
  // 3.2 MiB in 16 KiB messages, one per 2 ms, each read at once.
  ASSERT_NO_FATAL_FAILURE(lockstep(c, id, s, in, clock, std::chrono::milliseconds(2), 200));
  EXPECT_EQ(s.recv_window(in), kInitialWindow);
}

TEST(YamuxTest, WindowGrowsForAReaderThatGetsThePayloadStraightAndGrantsMidBurst) {
  // The bulk case that the "ran dry" rule misses: the reader lends its buffer, every frame is
  // consumed on arrival and the grant goes out while the sender's burst is still arriving, so
  // the peer's credit never looks exhausted. The pace does: a 64 KiB frame per 50 us (1.3 GB/s)
  // consumes half of even a 2 MiB window within the 1 ms rule.
  FakeClock clock;
  Session c(true), s(false, {}, clock.fn());
  auto id = *c.open_stream();
  ASSERT_TRUE(pump(c, s).ok());
  auto in = *s.accept();
  static const Bytes big(8 * 1024 * 1024, 0x5a);
  std::vector<uint8_t> sink(defaults::kYamuxSendFrame);
  uint64_t moved = 0;
  while (moved < 64ull * 1024 * 1024) {
    clock.advance(std::chrono::microseconds(50));
    size_t n = *c.write(id, std::span(big).first(c.max_send_frame()));
    if (n == 0) {  // window exhausted: deliver the grants
      ASSERT_TRUE(pump(c, s).ok());
      continue;
    }
    s.set_read_target(in, sink);
    ASSERT_TRUE(s.feed(c.take_output()).ok());
    ASSERT_EQ(s.take_read_target(in), n);
    moved += n;
    ASSERT_TRUE(c.feed(s.take_output()).ok());
  }
  EXPECT_EQ(s.recv_window(in), defaults::kYamuxMaxStreamWindow);
  EXPECT_EQ(s.total_recv_window(), defaults::kYamuxMaxStreamWindow);
}

TEST(YamuxTest, RttProbeMeasuresTheRoundTripAndWidensTheGrowthRule) {
  FakeClock clock;
  Session c(true, {}, clock.fn()), s(false);
  c.probe_rtt();
  EXPECT_FALSE(c.rtt().has_value());
  ASSERT_TRUE(s.feed(c.take_output()).ok());
  clock.advance(std::chrono::milliseconds(30));
  ASSERT_TRUE(c.feed(s.take_output()).ok());
  ASSERT_TRUE(c.rtt().has_value());
  EXPECT_EQ(*c.rtt(), std::chrono::milliseconds(30));
  EXPECT_TRUE(c.take_pongs().empty());  // the probe's echo is the session's own
  // A 30 ms link: 16 KiB every 10 ms (half the window in 80 ms < 4 x 30 ms) is as fast as the
  // window lets a sender go there, so the window grows; the same pace never grew it above.
  auto id = *s.open_stream();
  ASSERT_TRUE(pump(s, c).ok());
  auto in = *c.accept();
  ASSERT_NO_FATAL_FAILURE(lockstep(s, id, c, in, clock, std::chrono::milliseconds(10), 64));
  EXPECT_GT(c.recv_window(in), kInitialWindow);
}

TEST(YamuxTest, WindowGrowthStopsAtTheConnectionBudgetAndIsReturnedWhenStreamsEnd) {
  SessionLimits lim;
  lim.max_stream_window = 1024 * 1024;
  lim.window_growth_budget = 1024 * 1024;  // room for one and a third grown streams
  Session c(true), s(false, lim);
  std::vector<std::pair<uint32_t, uint32_t>> ids;
  for (int i = 0; i < 3; ++i) {
    auto id = *c.open_stream();
    ASSERT_TRUE(pump(c, s).ok());
    ids.emplace_back(id, *s.accept());
  }
  for (int round = 0; round < 6; ++round) {
    for (auto [id, in] : ids) send_window_full(c, id, s, in);
  }
  uint64_t sum = 0;
  for (auto [id, in] : ids) sum += s.recv_window(in);
  EXPECT_EQ(sum, 3 * kInitialWindow + lim.window_growth_budget);
  EXPECT_EQ(s.total_recv_window(), sum);
  // A finished stream gives its growth back; a new stream can then grow into it.
  auto [id0, in0] = ids[0];
  const uint64_t w0 = s.recv_window(in0);
  ASSERT_GT(w0, kInitialWindow);
  c.reset(id0);
  ASSERT_TRUE(pump(c, s).ok());
  s.release(in0);
  EXPECT_EQ(s.total_recv_window(), sum - w0);
  auto id = *c.open_stream();
  ASSERT_TRUE(pump(c, s).ok());
  auto in = *s.accept();
  for (int round = 0; round < 6; ++round) send_window_full(c, id, s, in);
  EXPECT_GT(s.recv_window(in), kInitialWindow);
}

TEST(YamuxTest, StreamFloodCannotMakeAConnectionBufferMoreThanTheDocumentedBound) {
  // The peer first gets a few streams' windows grown as far as the budget allows (we read
  // them), then opens every stream it may and fills every window without us reading.
  Session c(true), s(false);
  const SessionLimits lim;
  ASSERT_EQ(lim.max_buffered(), defaults::kYamuxMaxBufferedPerConnection);
  ASSERT_LE(defaults::kYamuxMaxBufferedPerConnection, 80ull * 1024 * 1024);
  std::vector<std::pair<uint32_t, uint32_t>> ids;
  for (size_t i = 0; i < lim.max_streams; ++i) {
    auto id = c.open_stream();
    ASSERT_TRUE(id.ok());
    ASSERT_TRUE(pump(c, s).ok());
    ids.emplace_back(*id, *s.accept());
  }
  for (int round = 0; round < 8; ++round) {
    for (size_t i = 0; i < 8; ++i) send_window_full(c, ids[i].first, s, ids[i].second);
  }
  EXPECT_EQ(s.total_recv_window(), lim.max_buffered());
  Bytes big(8 * 1024 * 1024, 0x77);
  for (auto [id, in] : ids) ASSERT_TRUE(c.write(id, big).ok());
  ASSERT_TRUE(pump(c, s).ok());
  // The peer used all the credit it had (the grown streams hold back up to half a window of
  // credit we owe but have not granted yet).
  EXPECT_LE(s.bytes_buffered(), lim.max_buffered());
  EXPECT_GT(s.bytes_buffered(), lim.max_buffered() - lim.window_growth_budget);
  EXPECT_FALSE(s.failed());
  // One byte more on any stream breaks the window and fails the session.
  EXPECT_EQ(s.feed(frame(FrameType::kData, 0, ids[100].first, 1, {1})).code(),
            Code::kPeerMisbehaved);
  EXPECT_TRUE(s.failed());
}

TEST(YamuxTest, PayloadGoesStraightIntoAWaitingReadersBuffer) {
  Session c(true), s(false);
  auto id = *c.open_stream();
  ASSERT_TRUE(pump(c, s).ok());
  auto in = *s.accept();
  std::vector<uint8_t> target(10);
  s.set_read_target(in, target);
  ASSERT_TRUE(c.write(id, as_bytes("hello, yamux")).ok());  // 12 bytes: 2 left buffered
  ASSERT_TRUE(pump(c, s).ok());
  EXPECT_EQ(s.readable(in), 2u);
  EXPECT_EQ(s.bytes_buffered(), 2u);
  EXPECT_EQ(s.take_read_target(in), 10u);
  EXPECT_EQ(std::string(target.begin(), target.end()), "hello, yam");
  uint8_t rest[8];
  ASSERT_EQ(s.read(in, rest), 2u);
  EXPECT_EQ(std::string(rest, rest + 2), "ux");
  // With bytes already buffered, new payload queues behind them (order is kept).
  ASSERT_TRUE(c.write(id, as_bytes("ab")).ok());
  ASSERT_TRUE(pump(c, s).ok());
  s.set_read_target(in, target);
  ASSERT_TRUE(c.write(id, as_bytes("cd")).ok());
  ASSERT_TRUE(pump(c, s).ok());
  EXPECT_EQ(s.take_read_target(in), 0u);
  ASSERT_EQ(s.read(in, rest), 4u);
  EXPECT_EQ(std::string(rest, rest + 4), "abcd");
  // Bytes delivered straight to the reader count as consumed: the sender gets its credit back.
  std::vector<uint8_t> big_target(kInitialWindow);
  s.set_read_target(in, big_target);
  Bytes big(kInitialWindow, 3);
  EXPECT_EQ(*c.write(id, big), kInitialWindow - 16);
  ASSERT_TRUE(pump(c, s).ok());
  EXPECT_EQ(s.take_read_target(in), kInitialWindow - 16);
  EXPECT_GE(c.send_window(id), kInitialWindow / 2);
}

TEST(YamuxTest, StreamFloodFailsSession) {
  SessionLimits lim;
  lim.max_streams = 4;
  Session s(false, lim);
  for (uint32_t i = 0; i < 4; ++i) {
    ASSERT_TRUE(s.feed(frame(FrameType::kWindowUpdate, kSyn, 2 * i + 1, 0)).ok());
  }
  EXPECT_EQ(s.feed(frame(FrameType::kWindowUpdate, kSyn, 9, 0)).code(), Code::kLimitExceeded);
}

TEST(YamuxTest, WrongParityAndDuplicateSynAreProtocolErrors) {
  Session s(false);
  EXPECT_EQ(s.feed(frame(FrameType::kWindowUpdate, kSyn, 2, 0)).code(), Code::kPeerMisbehaved);
  Session s2(false);
  ASSERT_TRUE(s2.feed(frame(FrameType::kWindowUpdate, kSyn, 1, 0)).ok());
  EXPECT_EQ(s2.feed(frame(FrameType::kWindowUpdate, kSyn, 1, 0)).code(), Code::kPeerMisbehaved);
}

TEST(YamuxTest, PingIsEchoedAndPongReported) {
  Session c(true), s(false);
  c.ping(77);
  ASSERT_TRUE(pump(c, s).ok());
  EXPECT_EQ(c.take_pongs(), std::vector<uint32_t>{77});
}

TEST(YamuxTest, ResetIsSeenByPeerAndWritesFail) {
  Session c(true), s(false);
  auto id = *c.open_stream();
  ASSERT_TRUE(pump(c, s).ok());
  auto in = *s.accept();
  c.reset(id);
  ASSERT_TRUE(pump(c, s).ok());
  EXPECT_TRUE(s.is_reset(in));
  EXPECT_FALSE(s.write(in, as_bytes("x")).ok());
}

TEST(YamuxTest, GoAwayStopsNewStreams) {
  Session c(true), s(false);
  s.go_away(GoAwayCode::kNormal);
  ASSERT_TRUE(pump(c, s).ok());
  EXPECT_TRUE(c.remote_went_away());
  EXPECT_EQ(c.open_stream().status().code(), Code::kUnavailable);
}

TEST(YamuxTest, FramesSplitAcrossFeedsReassemble) {
  Session c(true), s(false);
  auto id = *c.open_stream();
  ASSERT_TRUE(c.write(id, as_bytes("abcdef")).ok());
  Bytes out = c.take_output();
  for (uint8_t b : out) ASSERT_TRUE(s.feed(ByteView(&b, 1)).ok());
  auto in = *s.accept();
  EXPECT_EQ(s.readable(in), 6u);
}

}  // namespace
}  // namespace idn::p2p::yamux
