#include "core/multibase.h"

#include <gtest/gtest.h>

#include <random>

namespace idn::core {
namespace {

Bytes h(std::string_view hex) {
  Bytes b;
  EXPECT_TRUE(hex_decode(hex, b)) << hex;
  return b;
}

// Vectors from the multibase spec's tests/ directory ("yes mani !" with 0, 1, 2 leading zeros).
TEST(MultibaseTest, SpecVectorsEncode) {
  Bytes msg = to_bytes("yes mani !");
  EXPECT_EQ(multibase_encode(Multibase::kBase16, msg), "f796573206d616e692021");
  EXPECT_EQ(multibase_encode(Multibase::kBase16Upper, msg), "F796573206D616E692021");
  EXPECT_EQ(multibase_encode(Multibase::kBase32, msg), "bpfsxgidnmfxgsibb");
  EXPECT_EQ(multibase_encode(Multibase::kBase32Upper, msg), "BPFSXGIDNMFXGSIBB");
  EXPECT_EQ(multibase_encode(Multibase::kBase58Btc, msg), "z7paNL19xttacUY");
  EXPECT_EQ(multibase_encode(Multibase::kBase64, msg), "meWVzIG1hbmkgIQ");
  EXPECT_EQ(multibase_encode(Multibase::kBase64Url, msg), "ueWVzIG1hbmkgIQ");
}

TEST(MultibaseTest, LeadingZeroBytesSurvive) {
  Bytes one = h("00796573206d616e692021");
  Bytes two = h("0000796573206d616e692021");
  EXPECT_EQ(multibase_encode(Multibase::kBase58Btc, one), "z17paNL19xttacUY");
  EXPECT_EQ(multibase_encode(Multibase::kBase58Btc, two), "z117paNL19xttacUY");
  EXPECT_EQ(multibase_encode(Multibase::kBase32, one), "bab4wk4zanvqw42jaee");
  EXPECT_EQ(multibase_encode(Multibase::kBase32, two), "baaahszltebwwc3tjeaqq");
  EXPECT_EQ(*multibase_decode("z117paNL19xttacUY"), two);
  EXPECT_EQ(*multibase_decode("baaahszltebwwc3tjeaqq"), two);
  EXPECT_EQ(*base58btc_decode("111"), Bytes(3, 0));
  EXPECT_EQ(base58btc_encode(Bytes(3, 0)), "111");
}

TEST(MultibaseTest, DecodesSpecVectorsAndMixedCase) {
  for (const char* s :
       {"f796573206d616e692021", "F796573206D616E692021", "bpfsxgidnmfxgsibb", "BPFSXGIDNMFXGSIBB",
        "z7paNL19xttacUY", "meWVzIG1hbmkgIQ", "ueWVzIG1hbmkgIQ"}) {
    auto d = multibase_decode(s);
    ASSERT_TRUE(d.ok()) << s << ": " << d.status().to_string();
    EXPECT_EQ(to_string(*d), "yes mani !") << s;
  }
  // The spec's case-insensitivity vectors for "hello world".
  EXPECT_EQ(to_string(*multibase_decode("f68656c6c6f20776F726C64")), "hello world");
  EXPECT_EQ(to_string(*multibase_decode("bnbswy3dpeB3W64TMMQ")), "hello world");
  EXPECT_EQ(to_string(*multibase_decode("Bnbswy3dpeB3W64TMMQ")), "hello world");
}

TEST(MultibaseTest, Base58KnownVectors) {
  EXPECT_EQ(base58btc_encode(to_bytes("Hello World!")), "2NEpo7TZRRrLZSi2U");
  EXPECT_EQ(hex_encode(*base58btc_decode("11233QC4")), "0000287fb4cd");
  EXPECT_EQ(base58btc_encode({}), "");
  EXPECT_TRUE(base58btc_decode("")->empty());
}

TEST(MultibaseTest, RoundTripsRandomBytesInEveryBase) {
  std::mt19937 rng(1);
  for (int n = 0; n < 200; ++n) {
    Bytes b(n % 70);
    for (auto& x : b) x = static_cast<uint8_t>(rng() % (n % 3 ? 256 : 2));  // many zeros too
    for (Multibase base :
         {Multibase::kBase16, Multibase::kBase16Upper, Multibase::kBase32, Multibase::kBase32Upper,
          Multibase::kBase58Btc, Multibase::kBase64, Multibase::kBase64Url}) {
      std::string s = multibase_encode(base, b);
      auto d = multibase_decode(s);
      ASSERT_TRUE(d.ok()) << s;
      EXPECT_EQ(*d, b) << s;
    }
  }
}

TEST(MultibaseTest, RejectsMalformedText) {
  EXPECT_FALSE(multibase_decode("").ok());
  EXPECT_FALSE(multibase_decode("q123").ok());   // unknown prefix
  EXPECT_FALSE(multibase_decode("z0OIl").ok());  // not in the bitcoin alphabet
  EXPECT_FALSE(multibase_decode("bpfsxgidnmfxgsib1").ok());
  EXPECT_FALSE(multibase_decode("fabc").ok());  // odd hex
  EXPECT_FALSE(multibase_decode("ba").ok());    // one base32 digit cannot hold a byte
  EXPECT_FALSE(multibase_decode("bab").ok());   // trailing bits set
  EXPECT_FALSE(multibase_decode("u+/").ok());   // standard alphabet under base64url
  EXPECT_FALSE(multibase_decode("m-_").ok());
  EXPECT_FALSE(multibase_decode("cpfsxgidnmfxgsibb").ok());  // padded base32: not supported
  auto st = multibase_decode("z12\x01").status();
  EXPECT_EQ(st.code(), Code::kInvalidArgument);
  EXPECT_NE(st.message().find("position"), std::string::npos) << st.message();
}

}  // namespace
}  // namespace idn::core
