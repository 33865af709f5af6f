#include "routing/record.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/varint.h"
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

identity::PeerId id_of(const identity::KeyPair& k) {
  return identity::PeerId::from_public_key(k.public_key());
}

core::Multiaddr ma(const std::string& text) {
  return core::Multiaddr::parse(text).value();
}

// `/ip4/127.0.0.1/tcp/4001/p2p/RELAY/p2p-circuit` followed by `tail`.
core::Multiaddr circuit(const identity::PeerId& relay, const std::string& tail = "") {
  return ma("/ip4/127.0.0.1/tcp/4001/p2p/" + relay.to_string() + "/p2p-circuit" + tail);
}

TEST(Record, RelayedPeersRoundTripInASignedRecord) {
  auto relay = key_from(1);
  auto r = id_of(relay), p = id_of(key_from(2)), q = id_of(key_from(3));
  std::vector<RelayedPeer> peers{{p, {circuit(r, "/p2p/" + p.to_string()), circuit(r)}},
                                 {q,
                                  {ma("/ip4/127.0.0.1/tcp/4002/ws/p2p/" + r.to_string() +
                                      "/p2p-circuit/p2p/" + q.to_string())}}};
  ASSERT_TRUE(check_relayed(r, peers).is_ok()) << check_relayed(r, peers).to_string();
  auto value = encode_relayed(peers);
  ASSERT_TRUE(value.ok()) << value.status().to_string();
  auto rec = sign_record(relay, RecordKind::kRelayed, as_bytes("service"), *value, 3, kNow + 1h);
  ASSERT_TRUE(rec.ok()) << rec.status().to_string();
  auto d = decode_record(encode_record(*rec));
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  EXPECT_EQ(d->kind, RecordKind::kRelayed);
  EXPECT_EQ(verify_record(*d, kNow, 2h), Verdict::kValid);
  auto back = decode_relayed(d->value);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  // Every address comes back ending at its peer, whether or not it was given so.
  peers[0].addrs[1] = circuit(r, "/p2p/" + p.to_string());
  EXPECT_EQ(*back, peers);
  auto none = decode_relayed(encode_relayed({}).value());
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST(Record, ARelayMayClaimOnlyCircuitsThroughItself) {
  auto r = id_of(key_from(1)), p = id_of(key_from(2)), other = id_of(key_from(3));
  auto refused = [&](core::Multiaddr a) {
    Status s = check_relayed(r, {{p, {circuit(r), std::move(a)}}});
    return s.code() == Code::kPeerMisbehaved;
  };
  EXPECT_TRUE(refused(ma("/ip4/127.0.0.1/tcp/4001")));                 // a direct address
  EXPECT_TRUE(refused(circuit(other, "/p2p/" + p.to_string())));       // through another relay
  EXPECT_TRUE(refused(circuit(r, "/p2p/" + other.to_string())));       // ends at another peer
  EXPECT_TRUE(refused(ma("/p2p/" + r.to_string() + "/p2p-circuit")));  // no transport
  EXPECT_TRUE(refused(ma("/ip4/127.0.0.1/tcp/1/p2p/" + other.to_string() + "/p2p-circuit/p2p/" +
                         r.to_string() + "/p2p-circuit")));  // two hops
  EXPECT_TRUE(
      refused(ma("/ip4/127.0.0.1/tcp/1/p2p/" + other.to_string() + "/ip4/127.0.0.1/tcp/2/p2p/" +
                 r.to_string() + "/p2p-circuit")));  // another /p2p before the relay's
  // The relay naming itself as a relayed peer.
  EXPECT_EQ(check_relayed(r, {{r, {circuit(r)}}}).code(), Code::kPeerMisbehaved);
}

TEST(Record, RelayedValuesAreBounded) {
  auto r = id_of(key_from(1));
  std::vector<RelayedPeer> many;
  for (size_t i = 0; i <= defaults::kMaxRelayedPeers; ++i) {
    auto p = id_of(key_from(static_cast<uint8_t>(10 + i)));
    many.push_back({p, {circuit(r, "/p2p/" + p.to_string())}});
  }
  EXPECT_EQ(encode_relayed(many).status().code(), Code::kInvalidArgument);
  many.pop_back();
  for (auto& p : many)
    while (p.addrs.size() < defaults::kMaxRelayedAddrs) p.addrs.push_back(p.addrs.front());
  auto full = encode_relayed(many);
  ASSERT_TRUE(full.ok()) << "the bounds must fit a record: " << full.status().to_string();
  EXPECT_TRUE(
      sign_record(key_from(1), RecordKind::kRelayed, as_bytes("s"), *full, 1, kNow + 1h).ok());
  many[0].addrs.push_back(many[0].addrs.front());
  EXPECT_EQ(encode_relayed(many).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(encode_relayed({{r, {}}}).status().code(), Code::kInvalidArgument);
  // A hand-built value over the bounds does not parse.
  Bytes over;
  core::append_uvarint(defaults::kMaxRelayedPeers + 1, over);
  EXPECT_EQ(decode_relayed(over).status().code(), Code::kCorruption);
  // Decoding is total on truncations and trailing bytes.
  for (size_t n = 0; n < full->size(); ++n)
    EXPECT_FALSE(decode_relayed(ByteView(*full).first(n)).ok()) << "prefix of " << n;
  Bytes extra = *full;
  extra.push_back(0);
  EXPECT_FALSE(decode_relayed(extra).ok());
}

TEST(Record, FuzzSeedsDecode) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(IDN_SOURCE_DIR) / "fuzz/corpus/routing_record";
  size_t n = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    std::ifstream f(e.path(), std::ios::binary);
    Bytes b((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    const std::string name = e.path().filename().string();
    if (name == "relayed_value") {
      auto v = decode_relayed(b);
      ASSERT_TRUE(v.ok()) << v.status().to_string();
      EXPECT_EQ(v->size(), 2u);
      // /ip4/../tcp/../p2p/RELAY/p2p-circuit/p2p/PEER: the relay is the third component.
      auto relay = identity::PeerId::from_bytes(v->front().addrs.front().components()[2].value);
      ASSERT_TRUE(relay.ok());
      EXPECT_TRUE(check_relayed(*relay, *v).is_ok()) << check_relayed(*relay, *v).to_string();
    } else {
      auto r = decode_record(b);
      ASSERT_TRUE(r.ok()) << name << ": " << r.status().to_string();
      if (r->kind == RecordKind::kRelayed && !r->withdrawn) {
        auto v = decode_relayed(r->value);
        ASSERT_TRUE(v.ok()) << v.status().to_string();
        auto relay = identity::PeerId::from_bytes(r->peer_id).value();
        EXPECT_TRUE(check_relayed(relay, *v).is_ok()) << check_relayed(relay, *v).to_string();
      }
    }
    ++n;
  }
  EXPECT_GE(n, 4u);
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
