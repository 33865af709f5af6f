#include "p2p/noise.h"

#include <gtest/gtest.h>

namespace idn::p2p::noise {
namespace {

Bytes H(std::string_view s) {
  Bytes b;
  EXPECT_TRUE(hex_decode(s, b)) << s;
  return b;
}

DhKeyPair key(std::string_view hex) {
  auto kp = DhKeyPair::from_private(H(hex));
  EXPECT_TRUE(kp.ok());
  return *kp;
}

// Noise_XX_25519_ChaChaPoly_SHA256 vector from the cacophony test suite.
struct Msg {
  const char* payload;
  const char* ciphertext;
};
constexpr Msg kMessages[] = {
    {"4c756477696720766f6e204d69736573",
     "ca35def5ae56cec33dc2036731ab14896bc4c75dbb07a61f879f8e3afa4c79444c756477696720766f6e204d6973"
     "6573"},
    {"4d757272617920526f746862617264",
     "95ebc60d2b1fa672c1f46a8aa265ef51bfe38e7ccb39ec5be34069f14480884381cbad1f276e038c48378ffce2b6"
     "5285e08d6b68aaa3629a5a8639392490e5b9bd5269c2f1e4f488ed8831161f19b7815528f8982ffe09be9b5c412f"
     "8a0db50f8814c7194e83f23dbd8d162c9326ad"},
    {"462e20412e20486179656b",
     "c7195ffacac1307ff99046f219750fc47693e23c3cb08b89c2af808b444850a80ae475b9df0f169ae80a89be0865"
     "b57f58c9fea0d4ec82a286427402f113e4b6ae769a1d95941d49b25030"},
    {"4361726c204d656e676572", "96763ed773f8e47bb3712f0e29b3060ffc956ffc146cee53d5e1df"},
    {"4a65616e2d426170746973746520536179",
     "3e40f15f6f3a46ae446b253bf8b1d9ffb6ed9b174d272328ff91a7e2e5c79c07f5"},
    {"457567656e2042f6686d20766f6e2042617765726b",
     "eb3f3515110702e047a6c9da4478b6ead94873c11c0f2d710ddb3f09fce024b3a58502ae3f"},
};

TEST(NoiseTest, XXMatchesCacophonyVectorByteForByte) {
  Bytes prologue = H("4a6f686e2047616c74");
  XXHandshake init(true, key("e61ef9919cde45dd5f82166404bd08e38bceb5dfdfded0a34c8df7ed542214d1"),
                   prologue,
                   key("893e28b9dc6ca8d611ab664754b8ceb7bac5117349a4439a6b0569da977c464a"));
  XXHandshake resp(false, key("4a3acbfdb163dec651dfa3194dece676d437029c62a408b4c5ea9114246e4893"),
                   prologue,
                   key("bbdb4cdbd309f1a1f2e1456967fe288cadd6f712d65dc7b7793d5e63da6b375b"));
  for (int i = 0; i < 3; ++i) {
    XXHandshake& w = i % 2 == 0 ? init : resp;
    XXHandshake& r = i % 2 == 0 ? resp : init;
    auto ct = w.write_message(H(kMessages[i].payload));
    ASSERT_TRUE(ct.ok()) << ct.status().to_string();
    EXPECT_EQ(hex_encode(*ct), kMessages[i].ciphertext) << "message " << i;
    auto pt = r.read_message(*ct);
    ASSERT_TRUE(pt.ok()) << pt.status().to_string();
    EXPECT_EQ(hex_encode(*pt), kMessages[i].payload);
  }
  ASSERT_TRUE(init.complete());
  ASSERT_TRUE(resp.complete());
  EXPECT_EQ(hex_encode(init.handshake_hash()),
            "c8e5f64e846193be2a834104c2a009868d6c9f3bd3c186299888b488b2f1f58e");
  EXPECT_EQ(init.remote_static(), resp.local_static().public_key);
  auto ik = init.split();
  auto rk = resp.split();
  ASSERT_TRUE(ik.ok() && rk.ok());
  for (int i = 3; i < 6; ++i) {
    CipherState& send = i % 2 == 0 ? ik->send : rk->send;
    CipherState& recv = i % 2 == 0 ? rk->recv : ik->recv;
    auto ct = send.encrypt_with_ad({}, H(kMessages[i].payload));
    ASSERT_TRUE(ct.ok());
    EXPECT_EQ(hex_encode(*ct), kMessages[i].ciphertext) << "message " << i;
    auto pt = recv.decrypt_with_ad({}, *ct);
    ASSERT_TRUE(pt.ok());
    EXPECT_EQ(hex_encode(*pt), kMessages[i].payload);
  }
}

TEST(NoiseTest, TamperedSecondMessageFailsAndPoisonsHandshake) {
  auto s1 = DhKeyPair::generate(), s2 = DhKeyPair::generate();
  ASSERT_TRUE(s1.ok() && s2.ok());
  XXHandshake init(true, *s1, {});
  XXHandshake resp(false, *s2, {});
  auto m1 = init.write_message({});
  ASSERT_TRUE(resp.read_message(*m1).ok());
  auto m2 = resp.write_message(as_bytes("hi"));
  ASSERT_TRUE(m2.ok());
  Bytes bad = *m2;
  bad[40] ^= 1;
  auto r = init.read_message(bad);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kPeerMisbehaved);
  EXPECT_FALSE(init.read_message(*m2).ok());
  EXPECT_FALSE(init.complete());
}

TEST(NoiseTest, TruncatedAndOutOfTurnMessagesAreErrors) {
  auto s = DhKeyPair::generate();
  XXHandshake resp(false, *s, {});
  EXPECT_FALSE(resp.write_message({}).ok());
  XXHandshake resp2(false, *s, {});
  auto r = resp2.read_message(Bytes(31, 7));
  EXPECT_EQ(r.status().code(), Code::kPeerMisbehaved);
}

TEST(NoiseTest, FailedDecryptDoesNotConsumeNonce) {
  Key32 k{};
  k.fill(7);
  CipherState a(k), b(k);
  auto c1 = a.encrypt_with_ad({}, as_bytes("first"));
  auto c2 = a.encrypt_with_ad({}, as_bytes("second"));
  EXPECT_FALSE(b.decrypt_with_ad({}, *c2).ok());
  EXPECT_FALSE(b.decrypt_with_ad({}, Bytes(5)).ok());
  EXPECT_EQ(to_string(*b.decrypt_with_ad({}, *c1)), "first");
  EXPECT_EQ(to_string(*b.decrypt_with_ad({}, *c2)), "second");
}

TEST(NoiseTest, TwoPartEncryptionEqualsEncryptingTheJoinedPlaintext) {
  // Header || payload encrypted in two pieces (any split, including ones inside a ChaCha20
  // block) must give the same message as the joined plaintext.
  Key32 k{};
  k.fill(3);
  Bytes plain(70000 - 12 - 16);
  for (size_t i = 0; i < plain.size(); ++i) plain[i] = static_cast<uint8_t>(i * 7 + 1);
  for (size_t head : {size_t{0}, size_t{1}, size_t{12}, size_t{63}, size_t{64}, size_t{65}}) {
    for (size_t len : {size_t{0}, size_t{5}, size_t{100}, plain.size() - head}) {
      CipherState a(k), b(k), r(k);
      ByteView whole = ByteView(plain).subspan(0, head + len);
      Bytes one(whole.size() + kTagLen), two(whole.size() + kTagLen);
      ASSERT_TRUE(a.encrypt_into({}, whole, one).is_ok());
      ASSERT_TRUE(b.encrypt_into({}, whole.subspan(0, head), whole.subspan(head), two).is_ok());
      EXPECT_EQ(one, two) << "head " << head << " len " << len;
      auto back = r.decrypt_with_ad({}, two);
      ASSERT_TRUE(back.ok());
      EXPECT_TRUE(std::equal(back->begin(), back->end(), whole.begin(), whole.end()));
    }
  }
}

}  // namespace
}  // namespace idn::p2p::noise
