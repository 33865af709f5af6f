#include "identity/keys.h"

#include <gtest/gtest.h>

namespace idn::identity {
namespace {

Bytes h(std::string_view hex) {
  Bytes b;
  EXPECT_TRUE(hex_decode(hex, b)) << hex;
  return b;
}

// libp2p peer-id spec test vector (Ed25519 PrivateKey / PublicKey protobufs).
constexpr const char* kSpecPrivateProto =
    "080112407e0830617c4a7de83925dfb2694556b12936c477a0e1feb2e148ec9da60fee7d1ed1e8fae2c4a144b8"
    "be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e";
constexpr const char* kSpecPublicProto =
    "080112201ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e";

TEST(KeysTest, SpecVectorSeedDerivesSpecPublicKey) {
  auto kp = KeyPair::from_protobuf(h(kSpecPrivateProto));
  ASSERT_TRUE(kp.ok()) << kp.status().to_string();
  EXPECT_EQ(hex_encode(kp->public_key().to_protobuf()), kSpecPublicProto);
  EXPECT_EQ(hex_encode(kp->to_protobuf()), kSpecPrivateProto);
  auto from_seed =
      KeyPair::from_seed(h("7e0830617c4a7de83925dfb2694556b12936c477a0e1feb2e148ec9da60fee7d"));
  ASSERT_TRUE(from_seed.ok());
  EXPECT_EQ(from_seed->public_key(), kp->public_key());
  auto pub = PublicKey::from_protobuf(h(kSpecPublicProto));
  ASSERT_TRUE(pub.ok());
  EXPECT_EQ(*pub, kp->public_key());
  EXPECT_EQ(pub->to_protobuf().size(), 36u);
}

// RFC 8032 section 7.1, TEST 1 (empty message) and TEST 2 (one byte 0x72).
TEST(KeysTest, Rfc8032SignaturesAreExact) {
  auto k1 =
      KeyPair::from_seed(h("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"));
  ASSERT_TRUE(k1.ok());
  EXPECT_EQ(hex_encode(k1->public_key().raw()),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
  Bytes sig = k1->sign({});
  EXPECT_EQ(hex_encode(sig),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
            "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b");
  EXPECT_TRUE(k1->public_key().verify({}, sig));

  auto k2 =
      KeyPair::from_seed(h("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb"));
  ASSERT_TRUE(k2.ok());
  EXPECT_EQ(hex_encode(k2->public_key().raw()),
            "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c");
  Bytes msg = h("72");
  EXPECT_EQ(hex_encode(k2->sign(msg)),
            "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
            "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00");
}

TEST(KeysTest, VerifyRejectsWrongMessageKeyOrMangledSignature) {
  auto a = KeyPair::generate();
  auto b = KeyPair::generate();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_FALSE(a->public_key() == b->public_key());
  Bytes msg = to_bytes("open ledger 42");
  Bytes sig = a->sign(msg);
  ASSERT_EQ(sig.size(), 64u);
  EXPECT_TRUE(a->public_key().verify(msg, sig));
  EXPECT_FALSE(b->public_key().verify(msg, sig));
  EXPECT_FALSE(a->public_key().verify(to_bytes("open ledger 43"), sig));
  Bytes bad = sig;
  bad[10] ^= 1;
  EXPECT_FALSE(a->public_key().verify(msg, bad));
  EXPECT_FALSE(a->public_key().verify(msg, ByteView(sig).first(63)));
  EXPECT_FALSE(a->public_key().verify(msg, {}));
}

TEST(KeysTest, SeedRoundTrips) {
  auto a = KeyPair::generate();
  ASSERT_TRUE(a.ok());
  auto s = a->seed();
  auto b = KeyPair::from_seed(s);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(a->public_key(), b->public_key());
  auto c = KeyPair::from_protobuf(a->to_protobuf());
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->public_key(), a->public_key());
}

TEST(KeysTest, LegacyNinetySixBytePrivateKeyAcceptedOnlyWhenCopiesAgree) {
  Bytes legacy = h(kSpecPrivateProto);
  legacy[3] = 96;  // Data length
  Bytes pub = h("1ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e");
  legacy.insert(legacy.end(), pub.begin(), pub.end());
  EXPECT_TRUE(KeyPair::from_protobuf(legacy).ok());
  legacy.back() ^= 1;
  EXPECT_EQ(KeyPair::from_protobuf(legacy).status().code(), Code::kCorruption);
}

TEST(KeysTest, RejectsMalformedOrNonCanonicalProtobufs) {
  const char* bad[] = {
      "",
      "0801",                                                                        // no Data
      "12201ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e",        // no Type
      "0801121f1ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fc",        // 31-byte key
      "080112211ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e",    // short
      "080112201ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e00",  // trailing
      "08810012201ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e",  // 2-byte 1
      "12200801",
  };
  for (const char* b : bad) {
    auto k = PublicKey::from_protobuf(h(b));
    EXPECT_FALSE(k.ok()) << b;
    if (!k.ok()) {
      EXPECT_EQ(k.status().code(), Code::kCorruption) << b;
    }
  }
  // A well-formed secp256k1 key is understood but not supported.
  auto secp = PublicKey::from_protobuf(
      h("08021221037777e994e452c21604f91de093ce415f5432f701dd8cd1a7a6fea0e630bfca99"));
  EXPECT_EQ(secp.status().code(), Code::kUnsupported);
  EXPECT_FALSE(PublicKey::from_raw(Bytes(31, 1)).ok());
  EXPECT_FALSE(KeyPair::from_seed(Bytes(33, 1)).ok());
}

}  // namespace
}  // namespace idn::identity
