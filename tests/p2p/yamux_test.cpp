#include "p2p/yamux.h"

#include <gtest/gtest.h>

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
  SessionLimits lim;
  lim.recv_window = kInitialWindow;  // the spec's window, no bonus
  Session s(false, lim);
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
  lim.recv_window = 2 * kInitialWindow;
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
