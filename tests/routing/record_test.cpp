#include "routing/record.h"

#include <gtest/gtest.h>

#include "routing/defaults.h"
#include "routing/rate_limiter.h"

namespace idn::routing {
namespace {

using namespace std::chrono_literals;

identity::KeyPair key_from(uint8_t b) {
  Bytes seed(32, b);
  return identity::KeyPair::from_seed(seed).value();
}

const Clock::time_point kNow = Clock::time_point(std::chrono::seconds(1'800'000'000));

Record make(const identity::KeyPair& k, ByteView value = as_bytes("v")) {
  return sign_record(k, RecordKind::kValue, as_bytes("key"), value, 7, kNow + 1h).value();
}

TEST(Record, RoundTripsAndVerifies) {
  auto k = key_from(1);
  Record r = make(k);
  auto d = decode_record(encode_record(r));
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  EXPECT_EQ(d->key, r.key);
  EXPECT_EQ(d->value, r.value);
  EXPECT_EQ(d->seq, 7u);
  EXPECT_EQ(d->peer_id, identity::PeerId::from_public_key(k.public_key()).bytes());
  EXPECT_EQ(verify_record(*d, kNow, 2h), Verdict::kValid);
}

TEST(Record, TamperedValueIsForged) {
  Record r = make(key_from(1));
  r.value = to_bytes("w");
  EXPECT_EQ(verify_record(r, kNow, 2h), Verdict::kForged);
}

TEST(Record, SignedByAnotherKeyClaimingAPeerIdIsForged) {
  auto victim = key_from(1), attacker = key_from(2);
  Record r = make(attacker);
  r.peer_id = identity::PeerId::from_public_key(victim.public_key()).bytes();
  r.signature = attacker.sign(r.signing_bytes());
  EXPECT_EQ(verify_record(r, kNow, 2h), Verdict::kForged);
  // Claiming the victim's public key too does not help: the signature is the attacker's.
  r.public_key = victim.public_key().to_protobuf();
  r.signature = attacker.sign(r.signing_bytes());
  EXPECT_EQ(verify_record(r, kNow, 2h), Verdict::kForged);
}

TEST(Record, ExpiredAndFarFutureExpiryAreRefused) {
  Record r = make(key_from(1));
  EXPECT_EQ(verify_record(r, kNow + 2h, 2h), Verdict::kExpired);
  EXPECT_EQ(verify_record(r, kNow, 30min), Verdict::kForged);
}

TEST(Record, PeerRecordMustBeSignedByThePeerItNames) {
  auto a = key_from(1), b = key_from(2);
  Bytes a_id = identity::PeerId::from_public_key(a.public_key()).bytes();
  auto r = sign_record(b, RecordKind::kPeer, a_id, {}, 1, kNow + 1h).value();
  EXPECT_EQ(verify_record(r, kNow, 2h), Verdict::kForged);
  auto own = sign_record(a, RecordKind::kPeer, a_id, {}, 1, kNow + 1h).value();
  EXPECT_EQ(verify_record(own, kNow, 2h), Verdict::kValid);
}

TEST(Record, DecodingIsTotalOnTruncationsAndGarbage) {
  Bytes enc = encode_record(make(key_from(3)));
  for (size_t n = 0; n < enc.size(); ++n) {
    auto d = decode_record(ByteView(enc).first(n));
    EXPECT_FALSE(d.ok()) << "prefix of " << n << " bytes parsed";
  }
  Bytes extra = enc;
  extra.push_back(0);
  EXPECT_FALSE(decode_record(extra).ok());
  for (size_t i = 0; i < enc.size(); ++i) {
    Bytes m = enc;
    m[i] ^= 0xff;
    auto d = decode_record(m);
    if (d.ok()) EXPECT_NE(verify_record(*d, kNow, 2h), Verdict::kValid) << "flip at " << i;
  }
}

TEST(Record, SignRefusesOversizedValues) {
  Bytes big(defaults::kMaxValueSize + 1, 0);
  EXPECT_EQ(sign_record(key_from(1), RecordKind::kValue, as_bytes("k"), big, 1, kNow + 1h)
                .status()
                .code(),
            Code::kInvalidArgument);
}

TEST(RateLimiter, AllowsBurstThenRefillsAtRate) {
  RateLimiter rl(2.0, 3.0, 10);
  auto t = RateLimiter::Clock::time_point{} + 1h;
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(rl.allow("a", t));
  EXPECT_FALSE(rl.allow("a", t));
  EXPECT_TRUE(rl.allow("b", t)) << "buckets are per peer";
  EXPECT_TRUE(rl.allow("a", t + 500ms));
  EXPECT_FALSE(rl.allow("a", t + 500ms));
}

TEST(RateLimiter, TracksABoundedNumberOfPeers) {
  RateLimiter rl(1.0, 1.0, 4);
  for (int i = 0; i < 100; ++i) rl.allow("p" + std::to_string(i));
  EXPECT_EQ(rl.tracked_peers(), 4u);
}

}  // namespace
}  // namespace idn::routing
