#include "identity/peer_id.h"

#include <gtest/gtest.h>

#include <random>

namespace idn::identity {
namespace {

Bytes h(std::string_view hex) {
  Bytes b;
  EXPECT_TRUE(hex_decode(hex, b)) << hex;
  return b;
}

PublicKey spec_key() {
  return *PublicKey::from_raw(
      h("1ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e"));
}

TEST(PeerIdTest, Ed25519KeyGivesInlinedIdentityPeerId) {
  PeerId id = PeerId::from_public_key(spec_key());
  EXPECT_EQ(id.multihash().code(), 0u);
  EXPECT_EQ(hex_encode(id.bytes()),
            "0024080112201ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e");
  EXPECT_EQ(id.to_base58(), "12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq");
  EXPECT_EQ(id.to_cid_string(),
            "bafzaajaiaejcahwr5d5ofrfbis4l5d6uwr57hu5tjodrypfm6yaq6dsc2r2pzyt6");
  EXPECT_TRUE(id.matches(spec_key()));
  auto key = id.extract_public_key();
  ASSERT_TRUE(key.ok());
  EXPECT_EQ(*key, spec_key());
}

TEST(PeerIdTest, ParsesBothTextForms) {
  PeerId id = PeerId::from_public_key(spec_key());
  EXPECT_EQ(*PeerId::parse("12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq"), id);
  EXPECT_EQ(*PeerId::parse(id.to_cid_string()), id);
  // The peer-id spec's sha2-256 example, in base58 and as a CIDv1.
  auto q = PeerId::parse("QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N");
  ASSERT_TRUE(q.ok()) << q.status().to_string();
  EXPECT_EQ(q->to_cid_string(), "bafzbeie5745rpv2m6tjyuugywy4d5ewrqgqqhfnf445he3omzpjbx5xqxe");
  EXPECT_EQ(*PeerId::parse("bafzbeie5745rpv2m6tjyuugywy4d5ewrqgqqhfnf445he3omzpjbx5xqxe"), *q);
  EXPECT_EQ(q->extract_public_key().status().code(), Code::kNotFound);
}

TEST(PeerIdTest, RejectsMalformedText) {
  for (const char* bad :
       {"", "12D3KooW", "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5", "Qm0000",
        "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", "bafzbe", "hello"}) {
    auto p = PeerId::parse(bad);
    EXPECT_FALSE(p.ok()) << bad;
    if (!p.ok()) {
      EXPECT_EQ(p.status().code(), Code::kInvalidArgument) << bad;
    }
  }
  // sha3-256 multihashes are not peer IDs.
  auto mh = core::Multihash::compute(core::HashCode::kSha3_256, as_bytes("x"));
  EXPECT_FALSE(PeerId::from_bytes(mh->bytes()).ok());
}

TEST(PeerIdTest, TravelsInMultiaddrs) {
  PeerId id = PeerId::from_public_key(spec_key());
  auto base = core::Multiaddr::parse("/ip4/127.0.0.1/tcp/4001");
  ASSERT_TRUE(base.ok());
  core::Multiaddr full = with_peer_id(*base, id);
  EXPECT_EQ(full.to_string(),
            "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq");
  auto back = peer_id_of(*core::Multiaddr::parse(full.to_string()));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, id);
  EXPECT_EQ(peer_id_of(*base).status().code(), Code::kNotFound);
}

TEST(PeerIdTest, LeadingZeroBitsCountsFromTheMostSignificantBit) {
  EXPECT_EQ(leading_zero_bits(h("80")), 0);
  EXPECT_EQ(leading_zero_bits(h("01")), 7);
  EXPECT_EQ(leading_zero_bits(h("00ff")), 8);
  EXPECT_EQ(leading_zero_bits(h("000010")), 19);
  EXPECT_EQ(leading_zero_bits(h("0000")), 16);
  EXPECT_EQ(leading_zero_bits({}), 0);
}

TEST(PeerIdTest, DifficultyIsLeadingZerosOfSha256OfIdBytes) {
  PeerId id = PeerId::from_public_key(spec_key());
  // sha256(0024080112201ed1...) starts with 0xdf: no leading zero bits.
  EXPECT_EQ(id.difficulty(), leading_zero_bits(core::sha256(id.bytes())));
  EXPECT_EQ(id.difficulty(), 0);
}

TEST(PeerIdTest, GeneratedIdentityMeetsDifficulty) {
  std::mt19937_64 rng(2024);
  GenerateOptions o;
  o.difficulty = 8;
  o.seed_source = [&](std::span<uint8_t, kEd25519SeedSize> s) {
    for (auto& b : s) b = static_cast<uint8_t>(rng());
    return Status::ok();
  };
  uint64_t progress_calls = 0;
  o.progress_every = 16;
  o.progress = [&](uint64_t, int) { return ++progress_calls > 0; };
  auto g = generate_with_difficulty(o);
  ASSERT_TRUE(g.ok()) << g.status().to_string();
  EXPECT_GE(g->id.difficulty(), 8);
  EXPECT_GE(leading_zero_bits(core::sha256(g->id.bytes())), 8);
  EXPECT_EQ(g->id, PeerId::from_public_key(g->key.public_key()));
  EXPECT_GE(g->attempts, 1u);
  EXPECT_EQ(progress_calls, g->attempts / 16);
  EXPECT_TRUE(verify_peer(g->id, g->key.public_key().to_protobuf(), 8).is_ok());
}

TEST(PeerIdTest, GenerationCanBeCancelledOrBounded) {
  GenerateOptions o;
  o.difficulty = 40;
  o.progress_every = 4;
  o.progress = [](uint64_t attempts, int) { return attempts < 8; };
  EXPECT_EQ(generate_with_difficulty(o).status().code(), Code::kCancelled);
  GenerateOptions b;
  b.difficulty = 40;
  b.max_attempts = 5;
  EXPECT_EQ(generate_with_difficulty(b).status().code(), Code::kLimitExceeded);
  GenerateOptions bad;
  bad.difficulty = 65;
  EXPECT_EQ(generate_with_difficulty(bad).status().code(), Code::kInvalidArgument);
  GenerateOptions zero;
  auto z = generate_with_difficulty(zero);
  ASSERT_TRUE(z.ok());
  EXPECT_EQ(z->attempts, 1u);
}

TEST(PeerIdTest, VerifyPeerRefusesMismatchedKeysAndLowDifficulty) {
  auto a = KeyPair::generate();
  auto b = KeyPair::generate();
  PeerId ida = PeerId::from_public_key(a->public_key());
  EXPECT_TRUE(verify_peer(ida, a->public_key().to_protobuf(), 0).is_ok());
  Status mismatch = verify_peer(ida, b->public_key().to_protobuf(), 0);
  EXPECT_EQ(mismatch.code(), Code::kPeerMisbehaved);
  EXPECT_NE(mismatch.message().find(ida.to_base58()), std::string::npos);
  Status garbage = verify_peer(ida, to_bytes("not a key"), 0);
  EXPECT_EQ(garbage.code(), Code::kPeerMisbehaved);
  int d = ida.difficulty();
  EXPECT_TRUE(verify_peer(ida, a->public_key().to_protobuf(), d).is_ok());
  EXPECT_EQ(verify_peer(ida, a->public_key().to_protobuf(), d + 1).code(), Code::kPeerMisbehaved);
}

}  // namespace
}  // namespace idn::identity
