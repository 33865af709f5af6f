#include "p2p/secure_channel.h"

#include <gtest/gtest.h>

namespace idn::p2p {
namespace {

identity::KeyPair key() {
  return *identity::KeyPair::generate();
}

TEST(SecureChannelTest, HandshakeAuthenticatesBothPeerIds) {
  auto a = key(), b = key();
  auto b_id = identity::PeerId::from_public_key(b.public_key());
  NoiseSecurity init(a, true, b_id);
  NoiseSecurity resp(b, false);
  auto m1 = init.start();
  ASSERT_TRUE(m1.ok());
  EXPECT_EQ(m1->size(), 32u);  // just the ephemeral key
  auto m2 = resp.on_message(*m1);
  ASSERT_TRUE(m2.ok() && m2->has_value());
  auto m3 = init.on_message(**m2);
  ASSERT_TRUE(m3.ok() && m3->has_value()) << m3.status().to_string();
  EXPECT_TRUE(init.complete());
  auto done = resp.on_message(**m3);
  ASSERT_TRUE(done.ok()) << done.status().to_string();
  EXPECT_FALSE(done->has_value());
  ASSERT_TRUE(resp.complete());
  EXPECT_EQ(init.remote_peer(), b_id);
  EXPECT_EQ(resp.remote_peer(), identity::PeerId::from_public_key(a.public_key()));
  auto ki = init.keys(), kr = resp.keys();
  auto ct = ki->send.encrypt_with_ad({}, as_bytes("hello"));
  EXPECT_EQ(to_string(*kr->recv.decrypt_with_ad({}, *ct)), "hello");
}

TEST(SecureChannelTest, WrongExpectedPeerIdIsRefused) {
  auto a = key(), b = key(), c = key();
  NoiseSecurity init(a, true, identity::PeerId::from_public_key(c.public_key()));
  NoiseSecurity resp(b, false);
  auto m2 = resp.on_message(*init.start());
  auto m3 = init.on_message(**m2);
  ASSERT_FALSE(m3.ok());
  EXPECT_EQ(m3.status().code(), Code::kPeerMisbehaved);
  EXPECT_NE(m3.status().message().find("dialled peer"), std::string::npos);
}

TEST(SecureChannelTest, GarbageHandshakeMessagesAreErrorsNotCrashes) {
  auto a = key();
  for (size_t len : {0, 1, 31, 32, 33, 200}) {
    NoiseSecurity resp(a, false);
    Bytes junk(len, 0x5a);
    auto r = resp.on_message(junk);
    if (r.ok()) {
      // 32+ bytes parse as an ephemeral key; the third message must then fail.
      EXPECT_FALSE(resp.on_message(junk).ok());
    }
    NoiseSecurity init(a, true);
    ASSERT_TRUE(init.start().ok());
    EXPECT_FALSE(init.on_message(junk).ok());
  }
}

TEST(SecureChannelTest, PayloadRoundTripsAndRejectsMissingFields) {
  NoisePayload p{Bytes{1, 2, 3}, Bytes{4, 5}};
  auto d = decode_noise_payload(encode_noise_payload(p));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->identity_key, p.identity_key);
  EXPECT_EQ(d->identity_sig, p.identity_sig);
  EXPECT_FALSE(decode_noise_payload(Bytes{0x0a, 0x01, 0x01}).ok());
  EXPECT_FALSE(decode_noise_payload(Bytes{0x0a, 0x05, 0x01}).ok());
}

}  // namespace
}  // namespace idn::p2p
