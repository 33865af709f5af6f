#include "p2p/multistream.h"

#include <gtest/gtest.h>

namespace idn::p2p::multistream {
namespace {

TEST(MultistreamTest, MessageEncodingMatchesSpec) {
  Bytes m = encode_message("/multistream/1.0.0");
  ASSERT_EQ(m.size(), 20u);
  EXPECT_EQ(m[0], 19);
  EXPECT_EQ(m.back(), '\n');
  auto p = parse_message(m);
  ASSERT_TRUE(p.ok() && p->has_value());
  EXPECT_EQ((*p)->message, "/multistream/1.0.0");
  EXPECT_EQ((*p)->consumed, 20u);
}

TEST(MultistreamTest, PartialMessageWaitsAndMalformedIsRefused) {
  Bytes m = encode_message("/noise");
  auto p = parse_message(ByteView(m).first(3));
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(p->has_value());
  Bytes no_newline = {3, 'a', 'b', 'c'};
  EXPECT_EQ(parse_message(no_newline).status().code(), Code::kPeerMisbehaved);
  Bytes huge = {0xff, 0xff, 0x03};
  EXPECT_EQ(parse_message(huge).status().code(), Code::kPeerMisbehaved);
  Bytes empty = {0};
  EXPECT_FALSE(parse_message(empty).ok());
}

// Runs a dialer against a listener, shuttling bytes until both settle.
void run(Dialer& d, Listener& l) {
  for (int i = 0; i < 10; ++i) {
    Bytes a = d.take_output();
    if (!a.empty()) {
      ASSERT_TRUE(l.feed(a).ok());
    }
    Bytes b = l.take_output();
    if (!b.empty()) {
      Status st = d.feed(b);
      if (!st.is_ok()) return;
    }
    if (a.empty() && b.empty()) return;
  }
}

TEST(MultistreamTest, DialerFallsBackAfterNa) {
  Dialer d({"/yamux/2.0.0", "/yamux/1.0.0"});
  Listener l([](std::string_view p) { return p == "/yamux/1.0.0"; });
  run(d, l);
  ASSERT_TRUE(d.done());
  ASSERT_TRUE(l.done());
  EXPECT_EQ(d.protocol(), "/yamux/1.0.0");
  EXPECT_EQ(l.protocol(), "/yamux/1.0.0");
}

TEST(MultistreamTest, UnsupportedEverywhereIsUnsupported) {
  Dialer d({"/a"});
  Listener l([](std::string_view) { return false; });
  l.feed(d.take_output()).is_ok();
  Status st = d.feed(l.take_output());
  EXPECT_EQ(st.code(), Code::kUnsupported);
  EXPECT_FALSE(d.done());
}

TEST(MultistreamTest, ListenerKeepsOptimisticDataAsLeftover) {
  Bytes in = encode_message(kHeader);
  append_message("/ipfs/ping/1.0.0", in);
  in.push_back(42);
  in.push_back(43);
  Listener l([](std::string_view p) { return p == "/ipfs/ping/1.0.0"; });
  ASSERT_TRUE(l.feed(in).ok());
  ASSERT_TRUE(l.done());
  EXPECT_EQ(l.take_leftover(), (Bytes{42, 43}));
  Bytes out = l.take_output();
  Bytes expect = encode_message(kHeader);
  append_message("/ipfs/ping/1.0.0", expect);
  EXPECT_EQ(out, expect);
}

TEST(MultistreamTest, ListenerRefusesMissingHeaderAndEndlessProposals) {
  Listener l([](std::string_view) { return false; });
  EXPECT_EQ(l.feed(encode_message("/noise")).code(), Code::kPeerMisbehaved);
  Listener l2([](std::string_view) { return false; });
  Bytes in = encode_message(kHeader);
  for (int i = 0; i <= kMaxProposals; ++i) append_message("/x", in);
  EXPECT_EQ(l2.feed(in).code(), Code::kPeerMisbehaved);
}

TEST(MultistreamTest, ListenerAnswersLsWithNa) {
  Listener l([](std::string_view) { return true; });
  Bytes in = encode_message(kHeader);
  append_message("ls", in);
  ASSERT_TRUE(l.feed(in).ok());
  EXPECT_FALSE(l.done());
  Bytes expect = encode_message(kHeader);
  append_message("na", expect);
  EXPECT_EQ(l.take_output(), expect);
}

}  // namespace
}  // namespace idn::p2p::multistream
