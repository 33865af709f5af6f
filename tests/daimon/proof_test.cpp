#include "daimon/proof.h"

#include <gtest/gtest.h>

#include "identity/peer_id.h"

namespace idn::daimon {
namespace {

identity::KeyPair key(uint8_t b) {
  return *identity::KeyPair::from_seed(Bytes(32, b));
}

Proof sample_proof() {
  Proof p;
  p.problem = std::string(64, 'a');
  p.model = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi";
  p.y = {0.6f, -0.8f, 0.0f, 1e-7f};
  sign(p, key(1));
  return p;
}

TEST(DaimonProof, SignedJsonRoundTripsAndVerifies) {
  Proof p = sample_proof();
  EXPECT_TRUE(check_signature(p).is_ok());
  auto text = to_json(p).dump();
  auto back = proof_from_json(nlohmann::json::parse(text));
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(back->y, p.y);  // 9 significant digits give every float32 back exactly
  EXPECT_EQ(back->model, p.model);
  EXPECT_TRUE(check_signature(*back).is_ok());
  EXPECT_EQ(digest(*back), digest(p));
  EXPECT_EQ(to_json(p)["prover"],
            identity::PeerId::from_public_key(key(1).public_key()).to_string());
}

TEST(DaimonProof, AnyTamperingBreaksTheSignature) {
  Proof p = sample_proof();
  Proof y = p;
  y.y[1] = -0.79f;
  EXPECT_EQ(check_signature(y).code(), Code::kPeerMisbehaved);
  Proof model = p;
  model.model[10] ^= 1;
  EXPECT_FALSE(check_signature(model).is_ok());
  Proof problem = p;
  problem.problem[0] = 'b';
  EXPECT_FALSE(check_signature(problem).is_ok());
  Proof other_key = p;  // someone else's key under the prover's signature
  other_key.public_key = key(2).public_key().to_protobuf();
  EXPECT_FALSE(check_signature(other_key).is_ok());
  Proof bit = p;
  bit.signature[5] ^= 0x10;
  EXPECT_FALSE(check_signature(bit).is_ok());
  Proof garbage_key = p;
  garbage_key.public_key = {1, 2, 3};
  auto st = check_signature(garbage_key);
  EXPECT_NE(st.message().find("public key"), std::string::npos) << st.to_string();
}

TEST(DaimonProof, StrictJsonNamesWhatIsWrong) {
  auto j = to_json(sample_proof());
  auto err = [](nlohmann::json x) { return proof_from_json(x).status().message(); };
  auto extra = j;
  extra["bonus"] = 1;
  EXPECT_NE(err(extra).find("unknown field \"bonus\""), std::string::npos);
  auto version = j;
  version["version"] = 2;
  EXPECT_NE(err(version).find("version must be 1"), std::string::npos);
  auto y = j;
  y["y"] = nlohmann::json::array({1, "x"});
  EXPECT_NE(err(y).find("non-number"), std::string::npos);
  auto hex = j;
  hex["signature"] = "zz";
  EXPECT_NE(err(hex).find("not hex"), std::string::npos);
  EXPECT_FALSE(proof_from_json(nlohmann::json::array()).ok());
  auto prover = j;
  prover["prover"] = "12D3KooWsomeoneelse";
  EXPECT_NE(err(prover).find("not the peer ID"), std::string::npos);
  auto fmt = j;
  fmt["format"] = "idn-daimon-verification";
  EXPECT_FALSE(proof_from_json(fmt).ok());
}

TEST(DaimonVerification, SignedVerdictRoundTripsAndResistsTampering) {
  Proof p = sample_proof();
  Verification v;
  v.proof_digest = digest(p);
  v.model = p.model;
  v.distance = 0.1234;
  v.d_c = 0.2;
  v.delta = 0.01;
  v.holds = true;
  sign(v, key(3));
  auto back = verification_from_json(nlohmann::json::parse(to_json(v).dump()));
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_TRUE(check_signature(*back).is_ok());
  back->holds = false;
  EXPECT_FALSE(check_signature(*back).is_ok());
  Verification d = v;
  d.distance = 0.1233;
  EXPECT_FALSE(check_signature(d).is_ok());
}

}  // namespace
}  // namespace idn::daimon
