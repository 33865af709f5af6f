#include "core/multiaddr.h"

#include <gtest/gtest.h>

namespace idn::core {
namespace {

// Text <-> binary vectors from the multiaddr reference test suites (go/rust/js multiaddr).
TEST(MultiaddrTest, ReferenceVectorsRoundTrip) {
  struct {
    const char* text;
    const char* hex;
  } cases[] = {
      {"/ip4/1.2.3.4", "0401020304"},
      {"/ip4/0.0.0.0", "0400000000"},
      {"/ip4/127.0.0.1", "047f000001"},
      {"/udp/0", "91020000"},
      {"/tcp/0", "060000"},
      {"/udp/1234", "910204d2"},
      {"/tcp/1234", "0604d2"},
      {"/udp/65535", "9102ffff"},
      {"/tcp/65535", "06ffff"},
      {"/ip4/127.0.0.1/tcp/5000", "047f000001061388"},
      {"/ip4/127.0.0.1/tcp/4001", "047f000001060fa1"},
      {"/ip4/127.0.0.1/udp/1234", "047f000001910204d2"},
      {"/ip6/2001:8a0:7ac5:4201:3ac9:86ff:fe31:7095", "29200108a07ac542013ac986fffe317095"},
      {"/ip6/2001:8a0:7ac5:4201:3ac9:86ff:fe31:7095/tcp/5000",
       "29200108a07ac542013ac986fffe317095061388"},
      {"/p2p/QmcgpsyWgH8Y8ajJz1Cu72KnS5uo2Aa2LpzU7kinSupNKC",
       "a503221220d52ebb89d85b02a284948203a62ff28389c57c9f42beec4ec20db76a68911c0b"},
      {"/p2p/QmcgpsyWgH8Y8ajJz1Cu72KnS5uo2Aa2LpzU7kinSupNKC/tcp/1234",
       "a503221220d52ebb89d85b02a284948203a62ff28389c57c9f42beec4ec20db76a68911c0b0604d2"},
      {"/ip4/127.0.0.1/tcp/4001/ip4/192.168.2.1/tcp/5001", "047f000001060fa104c0a80201061389"},
      {"/ip4/127.0.0.1/tcp/2000/wss", "047f0000010607d0de03"},
      {"/ip4/127.0.0.1/tcp/2000/ws", "047f0000010607d0dd03"},
      {"/dns4/example.com/tcp/443/wss", "360b6578616d706c652e636f6d0601bbde03"},
      {"/dns6/example.com/tcp/443", "370b6578616d706c652e636f6d0601bb"},
      {"/ip6/::1/tcp/4001", "2900000000000000000000000000000001060fa1"},
  };
  for (const auto& c : cases) {
    auto m = Multiaddr::parse(c.text);
    ASSERT_TRUE(m.ok()) << c.text << ": " << m.status().to_string();
    EXPECT_EQ(hex_encode(m->to_bytes()), c.hex) << c.text;
    EXPECT_EQ(m->to_string(), c.text);
    Bytes bin;
    ASSERT_TRUE(hex_decode(c.hex, bin));
    auto b = Multiaddr::from_bytes(bin);
    ASSERT_TRUE(b.ok()) << c.hex << ": " << b.status().to_string();
    EXPECT_EQ(*b, *m);
    EXPECT_EQ(b->to_string(), c.text);
  }
  // quic-v1 is 461 = varint cd 03.
  EXPECT_EQ(hex_encode(Multiaddr::parse("/ip4/1.2.3.4/udp/443/quic-v1")->to_bytes()),
            "0401020304910201bbcd03");
}

TEST(MultiaddrTest, NormalisesEquivalentTextForms) {
  EXPECT_EQ(Multiaddr::parse("/ip4/127.0.0.1/udp/1234/")->to_string(), "/ip4/127.0.0.1/udp/1234");
  EXPECT_EQ(Multiaddr::parse("/ipfs/QmcgpsyWgH8Y8ajJz1Cu72KnS5uo2Aa2LpzU7kinSupNKC")->to_string(),
            "/p2p/QmcgpsyWgH8Y8ajJz1Cu72KnS5uo2Aa2LpzU7kinSupNKC");
  EXPECT_EQ(Multiaddr::parse("/ip6/0:0:0:0:0:0:0:1")->to_string(), "/ip6/::1");
  EXPECT_EQ(Multiaddr::parse("/ip6/2001:DB8::0:1")->to_string(), "/ip6/2001:db8::1");
  EXPECT_EQ(Multiaddr::parse("/ip6/::")->to_string(), "/ip6/::");
  EXPECT_EQ(Multiaddr::parse("/ip6/::ffff:1.2.3.4")->to_string(), "/ip6/::ffff:102:304");
  // A peer ID in CID form is stored as its multihash and printed in base58.
  EXPECT_EQ(Multiaddr::parse("/p2p/bafzbeie5745rpv2m6tjyuugywy4d5ewrqgqqhfnf445he3omzpjbx5xqxe")
                ->to_string(),
            "/p2p/QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N");
}

TEST(MultiaddrTest, Ip6FormattingFollowsRfc5952) {
  auto f = [](const char* in) { return Multiaddr::parse(std::string("/ip6/") + in)->to_string(); };
  EXPECT_EQ(f("2001:db8:0:0:1:0:0:1"), "/ip6/2001:db8::1:0:0:1");     // first of equal runs
  EXPECT_EQ(f("2001:db8:0:1:1:1:1:1"), "/ip6/2001:db8:0:1:1:1:1:1");  // single 0 not compressed
  EXPECT_EQ(f("1:0:0:2:0:0:0:3"), "/ip6/1:0:0:2::3");                 // longest run wins
  EXPECT_EQ(f("fe80::"), "/ip6/fe80::");
}

TEST(MultiaddrTest, RejectsMalformedText) {
  for (const char* bad : {"",
                          "/",
                          "ip4/127.0.0.1",
                          "/ip4",
                          "/ip4/::1",
                          "/ip4/fdpsofodsajfdoisa",
                          "/ip4/1.2.3.256",
                          "/ip4/01.2.3.4",
                          "/ip6",
                          "/ip6/1.2.3.4",
                          "/ip6/::1%eth0",
                          "/udp",
                          "/tcp",
                          "/udp/65536",
                          "/tcp/65536",
                          "/tcp/-1",
                          "/tcp/+1",
                          "/tcp/12a",
                          "/tcp/",
                          "/ip4/1.2.3.4//tcp/1",
                          "/p2p",
                          "/p2p/QmcgpsyWgH8Y8ajJz1Cu72KnS5uo2Aa2LpzU7kinSupNK0",
                          "/p2p/Qm",
                          "/p2p/bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e",
                          "/dns4",
                          "/dns4/",
                          "/sctp/1234",
                          "/ws/1",
                          "/quic"}) {
    auto m = Multiaddr::parse(bad);
    EXPECT_FALSE(m.ok()) << bad;
    if (!m.ok()) {
      EXPECT_EQ(m.status().code(), Code::kInvalidArgument) << bad << " " << m.status().to_string();
    }
  }
}

TEST(MultiaddrTest, RejectsMalformedBinary) {
  for (const char* bad :
       {"", "04", "047f0000", "06", "0600", "9102", "a503", "a50322",
        "a503221220d52ebb89d85b02a284948203a62ff28389c57c9f42beec4ec20db76a68911c",
        "a503041220d52e", "3600", "36022f2f", "80", "8000"}) {
    Bytes b;
    ASSERT_TRUE(hex_decode(bad, b));
    auto m = Multiaddr::from_bytes(b);
    EXPECT_FALSE(m.ok()) << bad;
  }
  // /p2p must hold a peer ID (identity or sha2-256 multihash), not any multihash.
  auto sha3 = *Multihash::compute(HashCode::kSha3_256, as_bytes("x"));
  Bytes p2p_sha3 = {0xa5, 0x03, static_cast<uint8_t>(sha3.bytes().size())};
  p2p_sha3.insert(p2p_sha3.end(), sha3.bytes().begin(), sha3.bytes().end());
  EXPECT_EQ(Multiaddr::from_bytes(p2p_sha3).status().code(), Code::kCorruption);
  EXPECT_FALSE(Multiaddr::parse("/p2p/" + sha3.to_base58()).ok());
  // Unknown protocol codes cannot be skipped (their value size is unknown).
  Bytes sctp;
  ASSERT_TRUE(hex_decode("840104d2", sctp));
  EXPECT_EQ(Multiaddr::from_bytes(sctp).status().code(), Code::kUnsupported);
  EXPECT_EQ(Multiaddr::from_bytes(Bytes(2000, 6)).status().code(), Code::kLimitExceeded);
}

TEST(MultiaddrTest, EncapsulateAndDecapsulate) {
  auto base = *Multiaddr::parse("/ip4/127.0.0.1/tcp/4001");
  auto peer = *Multiaddr::parse("/p2p/QmcgpsyWgH8Y8ajJz1Cu72KnS5uo2Aa2LpzU7kinSupNKC");
  Multiaddr full = base.encapsulate(peer);
  EXPECT_EQ(full.to_string(),
            "/ip4/127.0.0.1/tcp/4001/p2p/QmcgpsyWgH8Y8ajJz1Cu72KnS5uo2Aa2LpzU7kinSupNKC");
  EXPECT_EQ(full.decapsulate(peer), base);
  EXPECT_EQ(full.decapsulate(Protocol::kP2p), base);
  EXPECT_EQ(full.decapsulate(*Multiaddr::parse("/tcp/4001")).to_string(), "/ip4/127.0.0.1");
  EXPECT_EQ(full.decapsulate(*Multiaddr::parse("/tcp/9")), full);  // not present: unchanged
  auto twice = *Multiaddr::parse("/ip4/1.1.1.1/tcp/1/ip4/2.2.2.2/tcp/1");
  EXPECT_EQ(twice.decapsulate(*Multiaddr::parse("/tcp/1")).to_string(),
            "/ip4/1.1.1.1/tcp/1/ip4/2.2.2.2");
  EXPECT_EQ(twice.decapsulate(Protocol::kIp4).to_string(), "/ip4/1.1.1.1/tcp/1");
  EXPECT_TRUE(base.decapsulate(Protocol::kIp4).empty());
}

TEST(MultiaddrTest, Accessors) {
  auto m =
      *Multiaddr::parse("/ip6/::1/tcp/4001/ws/p2p/QmcgpsyWgH8Y8ajJz1Cu72KnS5uo2Aa2LpzU7kinSupNKC");
  EXPECT_EQ(m.tcp_port(), 4001);
  EXPECT_FALSE(m.udp_port().has_value());
  EXPECT_EQ(m.ip(), "::1");
  EXPECT_EQ(m.host(), "::1");
  ASSERT_TRUE(m.peer_multihash().has_value());
  EXPECT_EQ(m.peer_multihash()->to_base58(), "QmcgpsyWgH8Y8ajJz1Cu72KnS5uo2Aa2LpzU7kinSupNKC");
  EXPECT_NE(m.find(Protocol::kWs), nullptr);
  EXPECT_EQ(m.find(Protocol::kWss), nullptr);
  auto d = *Multiaddr::parse("/dns4/node.example/udp/9");
  EXPECT_EQ(d.udp_port(), 9);
  EXPECT_FALSE(d.ip().has_value());
  EXPECT_EQ(d.host(), "node.example");
  EXPECT_FALSE(d.peer_multihash().has_value());
  auto t = Multiaddr::from_tcp("10.0.0.1", 80);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->to_string(), "/ip4/10.0.0.1/tcp/80");
  EXPECT_EQ(Multiaddr::from_tcp("::", 1)->to_string(), "/ip6/::/tcp/1");
  EXPECT_FALSE(Multiaddr::from_tcp("host", 1).ok());
}

}  // namespace
}  // namespace idn::core
