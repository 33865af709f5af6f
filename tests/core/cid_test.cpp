#include "core/cid.h"

#include <gtest/gtest.h>

namespace idn::core {
namespace {

// The CID spec's example: one dag-pb block as CIDv0 and as CIDv1.
TEST(CidTest, SpecExampleV0AndV1) {
  auto v0 = Cid::parse("QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n");
  ASSERT_TRUE(v0.ok()) << v0.status().to_string();
  EXPECT_EQ(v0->version(), 0);
  EXPECT_EQ(v0->codec(), uint64_t(Multicodec::kDagPb));
  EXPECT_EQ(v0->to_string(), "QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n");
  EXPECT_EQ(hex_encode(v0->to_bytes()),
            "1220e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  Cid v1 = v0->to_v1();
  EXPECT_EQ(v1.to_string(), "bafybeihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku");
  EXPECT_EQ(*Cid::parse(v1.to_string()), v1);
  EXPECT_FALSE(v1 == *v0);  // same hash, different version
  EXPECT_EQ(*Cid::from_bytes(v0->to_bytes()), *v0);
  EXPECT_EQ(*Cid::from_bytes(v1.to_bytes()), v1);
}

TEST(CidTest, OfComputesSha256RawCid) {
  Cid c = Cid::of(Multicodec::kRaw, as_bytes("hello world"));
  EXPECT_EQ(c.to_string(), "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e");
  EXPECT_EQ(c.version(), 1);
  EXPECT_EQ(c.codec(), 0x55u);
  EXPECT_TRUE(c.verifies(as_bytes("hello world")));
  EXPECT_FALSE(c.verifies(as_bytes("hello world!")));
  EXPECT_EQ(Cid::of(Multicodec::kRaw, {}).to_string(),
            "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku");
}

TEST(CidTest, OtherBasesParseToTheSameCid) {
  Cid c = Cid::of(Multicodec::kDagPb, as_bytes("x"));
  for (Multibase b : {Multibase::kBase32, Multibase::kBase32Upper, Multibase::kBase58Btc,
                      Multibase::kBase16, Multibase::kBase64Url}) {
    auto p = Cid::parse(c.to_string(b));
    ASSERT_TRUE(p.ok()) << c.to_string(b);
    EXPECT_EQ(*p, c);
  }
}

TEST(CidTest, ReadPrefixStopsAtTheEndOfTheCid) {
  Cid c = Cid::of(Multicodec::kRaw, as_bytes("block"));
  Bytes b = c.to_bytes();
  size_t n = b.size();
  b.push_back(0xff);
  size_t used = 0;
  auto r = Cid::read_prefix(b, used);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(used, n);
  EXPECT_EQ(Cid::from_bytes(b).status().code(), Code::kCorruption);
}

TEST(CidTest, RejectsMalformedInput) {
  for (const char* bad :
       {"", "Qm", "QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1", "bafy",
        "bafybeihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyk", "zzzz", "bciqa", "hello"}) {
    auto c = Cid::parse(bad);
    EXPECT_FALSE(c.ok()) << bad;
    if (!c.ok()) {
      EXPECT_EQ(c.status().code(), Code::kInvalidArgument) << bad;
    }
  }
  Bytes v2 = {0x02, 0x55, 0x12, 0x20};
  v2.resize(36, 0);
  EXPECT_EQ(Cid::from_bytes(v2).status().code(), Code::kUnsupported);
  Bytes v0_prefixed = {0x00, 0x70, 0x12, 0x20};
  v0_prefixed.resize(36, 0);
  EXPECT_EQ(Cid::from_bytes(v0_prefixed).status().code(), Code::kCorruption);
  EXPECT_FALSE(Cid::v0(*Multihash::compute(HashCode::kSha3_256, as_bytes("x"))).ok());
  // A CIDv0 written in a multibase other than bare base58btc is not a valid CID string.
  auto v0 = Cid::parse("QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n");
  EXPECT_FALSE(Cid::parse(multibase_encode(Multibase::kBase32, v0->to_bytes())).ok());
}

}  // namespace
}  // namespace idn::core
