#include "client/answer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace idn::client {
namespace {

identity::PeerId peer(uint8_t seed) {
  Bytes s(32, seed);
  return identity::PeerId::from_public_key(identity::KeyPair::from_seed(s)->public_key());
}

protocol::InferProgress answer(std::vector<float> out, uint32_t exit = 0, float conf = 0.5f) {
  protocol::InferProgress p;
  p.request_id = 7;
  p.exit_index = exit;
  p.output = core::Tensor::f32({1, static_cast<int64_t>(out.size())}, out);
  p.confidence = conf;
  p.entropy = 0.3f;
  p.operations = 100;
  return p;
}

Event event(uint32_t exit, float conf) {
  return Event{
      peer(1), exit, core::Tensor::f32({1}, std::vector<float>{1}), conf, 0, 0, false, false,
      {},      0};
}

TEST(CheckAnswer, AcceptsAWellFormedAnswer) {
  std::vector<int64_t> shape{1, 3};
  EXPECT_TRUE(check_answer(answer({0.1f, 0.7f, 0.2f}), 7, shape, std::nullopt, 0).is_ok());
  EXPECT_TRUE(check_answer(answer({0.1f, 0.7f, 0.2f}, 2), 7, std::nullopt, 2, 100).is_ok());
}

TEST(CheckAnswer, RefusesWrongShapeNonFiniteValuesAndBadScores) {
  std::vector<int64_t> shape{1, 10};
  auto st = check_answer(answer({0.1f, 0.7f, 0.2f}), 7, shape, std::nullopt, 0);
  EXPECT_EQ(st.code(), Code::kPeerMisbehaved);
  EXPECT_NE(st.message().find("shape"), std::string::npos) << st.message();

  float nan = std::numeric_limits<float>::quiet_NaN();
  float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(check_answer(answer({0.1f, nan}), 7, std::nullopt, std::nullopt, 0).code(),
            Code::kPeerMisbehaved);
  EXPECT_EQ(check_answer(answer({inf, 0.0f}), 7, std::nullopt, std::nullopt, 0).code(),
            Code::kPeerMisbehaved);
  EXPECT_FALSE(check_answer(answer({1.0f}, 0, nan), 7, std::nullopt, std::nullopt, 0).is_ok());
  EXPECT_FALSE(check_answer(answer({1.0f}, 0, 1.5f), 7, std::nullopt, std::nullopt, 0).is_ok());
  auto neg_entropy = answer({1.0f});
  neg_entropy.entropy = -1.0f;
  EXPECT_FALSE(check_answer(neg_entropy, 7, std::nullopt, std::nullopt, 0).is_ok());
  EXPECT_FALSE(check_answer(answer({}), 7, std::nullopt, std::nullopt, 0).is_ok());
  auto f64 = answer({1.0f});
  f64.output = core::Tensor::zeros(core::DType::kF64, {1, 2});
  EXPECT_FALSE(check_answer(f64, 7, std::nullopt, std::nullopt, 0).is_ok());
}

TEST(CheckAnswer, RefusesOtherRequestsBackwardExitsAndShrinkingOperations) {
  EXPECT_FALSE(check_answer(answer({1.0f}), 8, std::nullopt, std::nullopt, 0).is_ok());
  auto st = check_answer(answer({1.0f}, 1), 7, std::nullopt, 2, 0);
  EXPECT_EQ(st.code(), Code::kPeerMisbehaved);
  EXPECT_NE(st.message().find("backwards"), std::string::npos);
  EXPECT_FALSE(check_answer(answer({1.0f}, 2), 7, std::nullopt, 1, 500).is_ok());
}

TEST(Improves, LaterExitWinsThenHigherConfidenceWithinAnExit) {
  EXPECT_TRUE(improves(0, 0.1f, std::nullopt));
  std::optional<Event> best = event(1, 0.8f);
  EXPECT_TRUE(improves(2, 0.3f, best));    // deeper exit, even if less confident
  EXPECT_FALSE(improves(0, 0.99f, best));  // earlier exit never improves
  EXPECT_TRUE(improves(1, 0.9f, best));
  EXPECT_FALSE(improves(1, 0.8f, best));  // equal is not better
}

TEST(ExitRule, ConfidenceAndEntropyAreJudgedModelDefaultIsLeftToThePeer) {
  using protocol::ExitCriterion;
  EXPECT_TRUE(meets_exit_rule({ExitCriterion::kConfidence, 0.9f}, 0.9f, 1.0f));
  EXPECT_FALSE(meets_exit_rule({ExitCriterion::kConfidence, 0.9f}, 0.89f, 0.0f));
  EXPECT_TRUE(meets_exit_rule({ExitCriterion::kEntropy, 0.2f}, 0.0f, 0.1f));
  EXPECT_FALSE(meets_exit_rule({ExitCriterion::kEntropy, 0.2f}, 1.0f, 0.2f));
  EXPECT_FALSE(meets_exit_rule({ExitCriterion::kModelDefault, 0.0f}, 1.0f, 0.0f));
  EXPECT_FALSE(meets_exit_rule({ExitCriterion::kLastExit, 0.0f}, 1.0f, 0.0f));
}

TEST(Argmax, FirstMaximumOfAnF32TensorAndMinusOneOtherwise) {
  EXPECT_EQ(argmax(core::Tensor::f32({1, 4}, std::vector<float>{0.1f, 0.5f, 0.5f, 0.2f})), 1);
  EXPECT_EQ(argmax(core::Tensor::zeros(core::DType::kI64, {3})), -1);
  EXPECT_EQ(argmax(core::Tensor::f32({0}, std::vector<float>{})), -1);
}

TEST(KnownAnswer, MatchesClassExitAndOutputWithinTolerance) {
  protocol::InferProgress p = answer({0.1f, 0.7f, 0.2f}, 2);
  KnownAnswer k;
  k.predicted = 1;
  EXPECT_TRUE(check_known_answer(p, k).is_ok());
  k.exit_index = 2;
  EXPECT_TRUE(check_known_answer(p, k).is_ok());
  // The known output may be stored without the batch dimension; values within tolerance pass.
  k.output = core::Tensor::f32({3}, std::vector<float>{0.1005f, 0.6995f, 0.2f});
  k.tolerance = 1e-3f;
  EXPECT_TRUE(check_known_answer(p, k).is_ok());
}

TEST(KnownAnswer, NamesWhatDiffers) {
  protocol::InferProgress p = answer({0.1f, 0.7f, 0.2f}, 1);
  KnownAnswer cls;
  cls.predicted = 2;
  Status st = check_known_answer(p, cls);
  EXPECT_EQ(st.code(), Code::kPeerMisbehaved);
  EXPECT_NE(st.message().find("class 1"), std::string::npos) << st.message();

  KnownAnswer exit;
  exit.exit_index = 2;
  st = check_known_answer(p, exit);
  EXPECT_EQ(st.code(), Code::kPeerMisbehaved);
  EXPECT_NE(st.message().find("exit 1"), std::string::npos) << st.message();

  KnownAnswer out;
  out.output = core::Tensor::f32({3}, std::vector<float>{0.1f, 0.69f, 0.2f});
  out.tolerance = 1e-3f;  // 0.01 away: too far
  st = check_known_answer(p, out);
  EXPECT_EQ(st.code(), Code::kPeerMisbehaved);
  EXPECT_NE(st.message().find("element 1"), std::string::npos) << st.message();
  out.tolerance = 0.02f;
  EXPECT_TRUE(check_known_answer(p, out).is_ok());

  KnownAnswer shape;
  shape.output = core::Tensor::f32({4}, std::vector<float>{0.1f, 0.7f, 0.2f, 0.0f});
  EXPECT_EQ(check_known_answer(p, shape).code(), Code::kPeerMisbehaved);
}

TEST(KnownAnswer, ACheckOfNothingOrABadToleranceIsInvalid) {
  protocol::InferProgress p = answer({0.1f, 0.7f, 0.2f});
  KnownAnswer nothing;
  EXPECT_EQ(nothing.validate().code(), Code::kInvalidArgument);
  EXPECT_EQ(check_known_answer(p, nothing).code(), Code::kInvalidArgument);
  KnownAnswer nan;
  nan.predicted = 1;
  nan.tolerance = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(check_known_answer(p, nan).code(), Code::kInvalidArgument);
  KnownAnswer negative;
  negative.predicted = 1;
  negative.tolerance = -1.0f;
  EXPECT_EQ(negative.validate().code(), Code::kInvalidArgument);
}

PeerReport voted(uint8_t seed, std::vector<PeerReport::Vote> votes) {
  PeerReport r{peer(seed), PeerReport::Outcome::kRunning, "", 0, 0, 0, std::nullopt, {}};
  r.votes = std::move(votes);
  return r;
}

TEST(DisagreeingPeers, TheOddOneOutAtAnExitAgainstAStrictMajority) {
  // Three peers answered exit 0; one named another class. Exit 1: only one peer got there.
  std::vector<PeerReport> peers{voted(1, {{0, 4}, {1, 4}}), voted(2, {{0, 4}}), voted(3, {{0, 6}})};
  EXPECT_EQ(disagreeing_peers(peers), std::vector<identity::PeerId>{peer(3)});
}

TEST(DisagreeingPeers, TwoPeersThatDifferOrDifferentExitsSayNothing) {
  EXPECT_TRUE(disagreeing_peers({voted(1, {{0, 4}}), voted(2, {{0, 6}})}).empty());
  // Classes at different exits may differ: an early exit is allowed to be less accurate.
  EXPECT_TRUE(
      disagreeing_peers({voted(1, {{0, 4}}), voted(2, {{1, 6}}), voted(3, {{1, 6}})}).empty());
  // 2 against 2: no majority.
  EXPECT_TRUE(disagreeing_peers(
                  {voted(1, {{0, 4}}), voted(2, {{0, 4}}), voted(3, {{0, 6}}), voted(4, {{0, 6}})})
                  .empty());
  EXPECT_TRUE(disagreeing_peers({}).empty());
}

TEST(DisagreeingPeers, APeerIsNamedOnceWhateverExitsItDisagreedAt) {
  std::vector<PeerReport> peers{voted(1, {{0, 4}, {1, 5}}), voted(2, {{0, 4}, {1, 5}}),
                                voted(3, {{0, 6}, {1, 7}}), voted(4, {})};
  EXPECT_EQ(disagreeing_peers(peers), std::vector<identity::PeerId>{peer(3)});
}

}  // namespace
}  // namespace idn::client
