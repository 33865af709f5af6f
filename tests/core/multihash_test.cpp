#include "core/multihash.h"

#include <gtest/gtest.h>

namespace idn::core {
namespace {

Bytes h(std::string_view hex) {
  Bytes b;
  EXPECT_TRUE(hex_decode(hex, b)) << hex;
  return b;
}

// The multihash spec's example: sha2-256("multihash").
TEST(MultihashTest, Sha256OfMultihashMatchesSpecExample) {
  Multihash m = Multihash::sha2_256(as_bytes("multihash"));
  EXPECT_EQ(m.to_hex(), "12209cbc07c3f991725836a3aa2a581ca2029198aa420b9d99bc0e131d9f3e2cbe47");
  EXPECT_EQ(m.to_base58(), "QmYtUc4iTCbbfVSDNKvtQqrfyezPPnFvE33wFmutw9PBBk");
  EXPECT_EQ(m.code(), 0x12u);
  EXPECT_EQ(m.digest().size(), 32u);
  EXPECT_TRUE(m.matches(as_bytes("multihash")));
  EXPECT_FALSE(m.matches(as_bytes("multihash!")));
}

TEST(MultihashTest, ComputesSha3AndSha512AndIdentity) {
  auto s3 = Multihash::compute(HashCode::kSha3_256, as_bytes("multihash"));
  ASSERT_TRUE(s3.ok());
  EXPECT_EQ(s3->to_hex(), "162008c3792b2a4deed1bd7ea2328fb5de5531eccf0fbfa04a7d800cdc267137c635");
  auto s512 = Multihash::compute(HashCode::kSha2_512, as_bytes("multihash"));
  ASSERT_TRUE(s512.ok());
  EXPECT_EQ(s512->to_hex().substr(0, 24), "1340fad58a76f927d3b5bbdb");
  Multihash id = Multihash::identity(as_bytes("content"));
  EXPECT_EQ(id.to_hex(), "0007636f6e74656e74");
  EXPECT_TRUE(id.matches(as_bytes("content")));
  EXPECT_FALSE(id.matches(as_bytes("conten")));
  EXPECT_EQ(hex_encode(sha256({})),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(MultihashTest, ParsesBinaryAndTextForms) {
  Multihash m = Multihash::sha2_256(as_bytes("multihash"));
  EXPECT_EQ(*Multihash::from_bytes(m.bytes()), m);
  EXPECT_EQ(*Multihash::parse("QmYtUc4iTCbbfVSDNKvtQqrfyezPPnFvE33wFmutw9PBBk"), m);
  EXPECT_EQ(*Multihash::parse(m.to_string(Multibase::kBase32)), m);
  EXPECT_EQ(*Multihash::parse(m.to_string(Multibase::kBase58Btc)), m);
  EXPECT_EQ(*Multihash::parse(m.to_string(Multibase::kBase16)), m);
  size_t used = 0;
  Bytes with_tail = m.bytes();
  with_tail.push_back(0x42);
  auto p = Multihash::read_prefix(with_tail, used);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(used, m.bytes().size());
}

TEST(MultihashTest, UnknownCodesRoundTripButDoNotMatch) {
  auto m = Multihash::from_bytes(h("b24003deadbeef"));  // code 0xb240 (blake3), 3-byte digest
  ASSERT_FALSE(m.ok());                                 // declares 3 bytes, 4 follow
  auto ok = Multihash::from_bytes(h("b24004deadbeef"));
  ASSERT_TRUE(ok.ok()) << ok.status().to_string();
  EXPECT_EQ(ok->code(), 0x2032u);
  EXPECT_EQ(hex_encode(ok->digest()), "deadbeef");
  EXPECT_FALSE(ok->matches(as_bytes("x")));
}

TEST(MultihashTest, RejectsMalformedBytes) {
  for (const char* bad :
       {"", "12", "1220", "12209cbc", "122100", "80", "1200ff", "12ffffffffffffffffff01"}) {
    auto m = Multihash::from_bytes(h(bad));
    EXPECT_FALSE(m.ok()) << bad;
    if (!m.ok()) {
      EXPECT_EQ(m.status().code(), Code::kCorruption) << bad;
    }
  }
  // sha2-256 digests cannot be longer than 32 bytes.
  Bytes too_long = h("1221");
  too_long.resize(2 + 33, 1);
  EXPECT_FALSE(Multihash::from_bytes(too_long).ok());
  // Truncated digests of known functions are refused: an empty one would "verify" anything.
  auto digest = sha256(as_bytes("x"));
  EXPECT_FALSE(Multihash::wrap(0x12, ByteView(digest).first(20)).ok());
  EXPECT_FALSE(Multihash::from_bytes(h("1200")).ok());
  EXPECT_FALSE(Multihash::parse("Qm").ok());
  EXPECT_FALSE(Multihash::parse("").ok());
  EXPECT_FALSE(Multihash::parse("not a hash").ok());
}

}  // namespace
}  // namespace idn::core
