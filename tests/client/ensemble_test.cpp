#include "client/ensemble.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

namespace idn::client {
namespace {

// An honest thinned model: the true class ahead by `margin`, small noise elsewhere.
Answer honest(std::string source, int cls, float margin, uint32_t seed, size_t classes = 10) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> noise(0.0f, 0.5f);
  Answer a{std::move(source), std::vector<float>(classes)};
  for (auto& v : a.logits) v = noise(rng);
  a.logits[cls] += margin;
  return a;
}

std::vector<double> softmax(const std::vector<double>& z) {
  double m = *std::max_element(z.begin(), z.end()), s = 0;
  std::vector<double> p(z.size());
  for (size_t i = 0; i < z.size(); ++i) s += p[i] = std::exp(z[i] - m);
  for (auto& v : p) v /= s;
  return p;
}

TEST(EnsembleTest, AveragesLogitsThenSoftmax) {
  std::vector<Answer> in{{"a", {1, 2, 0}}, {"b", {3, -1, 0.5f}}, {"c", {0, 0, 4}}};
  auto c = combine(in);
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  auto want = softmax({4.0 / 3, 1.0 / 3, 4.5 / 3});
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(c->probs[i], want[i], 1e-6);
  EXPECT_EQ(c->predicted, 2);
  EXPECT_FLOAT_EQ(c->confidence, c->probs[2]);
  EXPECT_EQ(c->used, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_TRUE(c->excluded.empty());
  double h = 0;
  for (double p : want) h -= p * std::log(p);
  EXPECT_NEAR(c->entropy, h / std::log(3.0), 1e-6);

  EnsembleOptions t;
  t.temperature = 2;
  auto warm = combine(in, t);
  auto want_t = softmax({4.0 / 6, 1.0 / 6, 4.5 / 6});
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(warm->probs[i], want_t[i], 1e-6);
}

TEST(EnsembleTest, GeometricMeanIsTheNormalisedProductOfProbabilities) {
  std::vector<Answer> in{{"a", {1, 2, 0}}, {"b", {3, -1, 0.5f}}};
  EnsembleOptions o;
  o.rule = CombineRule::kGeometricMean;
  auto c = combine(in, o);
  ASSERT_TRUE(c.ok());
  auto pa = softmax({1, 2, 0}), pb = softmax({3, -1, 0.5});
  std::vector<double> g(3);
  double s = 0;
  for (int i = 0; i < 3; ++i) s += g[i] = std::sqrt(pa[i] * pb[i]);
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(c->probs[i], g[i] / s, 1e-6);
}

TEST(EnsembleTest, MeanOfProbabilitiesIsTheAverageAndBoundsAnUncaughtLiar) {
  std::vector<Answer> in{{"a", {1, 2, 0}}, {"b", {3, -1, 0.5f}}};
  EnsembleOptions o;
  o.rule = CombineRule::kMeanProbabilities;
  auto c = combine(in, o);
  ASSERT_TRUE(c.ok());
  auto pa = softmax({1, 2, 0}), pb = softmax({3, -1, 0.5});
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(c->probs[i], (pa[i] + pb[i]) / 2, 1e-6);
  // Two honest answers for class 0 and a liar with huge logits for class 2, detection off:
  // the mean of logits follows the liar, the mean of probabilities the honest pair.
  std::vector<Answer> lied{{"h1", {2, 0, 0}}, {"h2", {2, 0.5f, 0}}, {"liar", {-40, -40, 40}}};
  o.exclude_outliers = false;
  EXPECT_EQ(combine(lied, o)->predicted, 0);
  o.rule = CombineRule::kMeanLogits;
  EXPECT_EQ(combine(lied, o)->predicted, 2);
}

TEST(EnsembleTest, ProgressiveFinalAnswerDoesNotDependOnArrivalOrder) {
  std::vector<Answer> in;
  for (uint32_t i = 0; i < 5; ++i)
    in.push_back(honest("peer" + std::to_string(i), i < 3 ? 4 : 6, 1.5f, i));
  in.push_back({"liar", std::vector<float>(10, 0.0f)});
  in.back().logits[9] = 50;
  std::vector<size_t> order(in.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::optional<Combined> first;
  int permutations = 0;
  do {
    ProgressiveEnsemble e({}, {});
    for (size_t i : order) ASSERT_TRUE(e.add(in[i]).is_ok());
    const Combined& c = e.current();
    if (!first) {
      first = c;
      ASSERT_FALSE(c.excluded.empty());
      EXPECT_EQ(c.excluded[0].source, "liar");
    } else {
      EXPECT_EQ(c.probs, first->probs);  // bit for bit
      EXPECT_EQ(c.scores, first->scores);
      EXPECT_EQ(c.used, first->used);
      ASSERT_EQ(c.excluded.size(), first->excluded.size());
      EXPECT_EQ(c.excluded[0].source, first->excluded[0].source);
    }
    ++permutations;
  } while (std::next_permutation(order.begin(), order.end()));
  EXPECT_EQ(permutations, 720);
}

TEST(EnsembleTest, ByzantineAnswerIsExcludedAndReported) {
  std::vector<Answer> in;
  for (uint32_t i = 0; i < 7; ++i) in.push_back(honest("peer" + std::to_string(i), 2, 2.0f, i));
  // Arbitrary output with huge logits: averaged in, it would decide the class on its own.
  Answer garbage{"byzantine", std::vector<float>(10, -100.0f)};
  garbage.logits[7] = 100;
  in.push_back(garbage);

  EnsembleOptions naive;
  naive.exclude_outliers = false;
  auto fooled = combine(in, naive);
  ASSERT_TRUE(fooled.ok());
  EXPECT_EQ(fooled->predicted, 7);

  auto c = combine(in);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->predicted, 2);
  ASSERT_EQ(c->excluded.size(), 1u);
  EXPECT_EQ(c->excluded[0].source, "byzantine");
  EXPECT_EQ(c->excluded[0].predicted, 7);
  EXPECT_EQ(c->excluded[0].others_predicted, 2);
  EXPECT_GT(c->excluded[0].distance, 0.9);
  EXPECT_EQ(c->used.size(), 7u);
  EXPECT_EQ(std::count(c->used.begin(), c->used.end(), "byzantine"), 0);
}

TEST(EnsembleTest, HonestDisagreementIsNotByzantine) {
  // Two of five unsure models lean to another class: a split, not an attack.
  std::vector<Answer> in;
  for (uint32_t i = 0; i < 3; ++i) in.push_back(honest("a" + std::to_string(i), 1, 1.0f, i));
  for (uint32_t i = 0; i < 2; ++i) in.push_back(honest("b" + std::to_string(i), 5, 0.6f, 10 + i));
  auto c = combine(in);
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->excluded.empty());
  EXPECT_EQ(c->used.size(), 5u);
}

TEST(EnsembleTest, NeverExcludesAMajorityOrJudgesTooFewAnswers) {
  Answer x{"x", {10, 0, 0}}, y{"y", {0, 10, 0}};
  auto two = combine({x, y});
  ASSERT_TRUE(two.ok());
  EXPECT_TRUE(two->excluded.empty());  // two answers: nobody can be outvoted

  // Three honest, three liars that agree with each other: at most (6 - 1) / 2 = 2 removed.
  std::vector<Answer> in;
  for (uint32_t i = 0; i < 3; ++i) in.push_back(honest("h" + std::to_string(i), 0, 3.0f, i));
  for (int i = 0; i < 3; ++i) {
    Answer l{"l" + std::to_string(i), std::vector<float>(10, 0.0f)};
    l.logits[9] = 20;
    in.push_back(l);
  }
  auto c = combine(in);
  ASSERT_TRUE(c.ok());
  EXPECT_LE(c->excluded.size(), 2u);
}

TEST(EnsembleTest, ExitsOnConfidenceAfterMinAnswersOrWhenAllAnswered) {
  EnsembleExit ex;
  ex.rule = {protocol::ExitCriterion::kConfidence, 0.9f};
  ex.min_answers = 2;
  ex.expected = 4;
  ProgressiveEnsemble e({}, ex);
  EXPECT_FALSE(e.should_exit());
  EXPECT_EQ(e.current().predicted, -1);
  ASSERT_TRUE(e.add({"a", {8, 0, 0}}).is_ok());
  EXPECT_GT(e.current().confidence, 0.9f);
  EXPECT_FALSE(e.should_exit());  // confident, but alone
  ASSERT_TRUE(e.add({"b", {7, 1, 0}}).is_ok());
  EXPECT_TRUE(e.should_exit());

  ProgressiveEnsemble unsure({}, ex);
  for (const char* s : {"a", "b", "c"}) {
    ASSERT_TRUE(unsure.add({s, {0.1f, 0, 0}}).is_ok());
    EXPECT_FALSE(unsure.should_exit());
  }
  ASSERT_TRUE(unsure.add({"d", {0.1f, 0, 0}}).is_ok());
  EXPECT_TRUE(unsure.should_exit());  // every model answered: Fig. 5.5's last return

  EnsembleExit by_entropy;
  by_entropy.rule = {protocol::ExitCriterion::kEntropy, 0.2f};
  ProgressiveEnsemble h({}, by_entropy);
  ASSERT_TRUE(h.add({"a", {1, 0, 0}}).is_ok());
  EXPECT_FALSE(h.should_exit());
  ASSERT_TRUE(h.add({"b", {20, 0, 0}}).is_ok());
  EXPECT_TRUE(h.should_exit());
}

TEST(EnsembleTest, MalformedAnswersAreRefusedAndLeaveTheStateAlone) {
  ProgressiveEnsemble e({}, {});
  ASSERT_TRUE(e.add({"a", {1, 2, 3}}).is_ok());
  const Combined before = e.current();
  EXPECT_EQ(e.add({"b", {1, 2}}).code(), Code::kInvalidArgument);  // other class count
  EXPECT_EQ(e.add({"b", {1, NAN, 3}}).code(), Code::kInvalidArgument);
  EXPECT_EQ(e.add({"b", {1, INFINITY, 3}}).code(), Code::kInvalidArgument);
  EXPECT_EQ(e.add({"a", {3, 2, 1}}).code(), Code::kInvalidArgument);  // a second answer
  EXPECT_EQ(e.add({"", {3, 2, 1}}).code(), Code::kInvalidArgument);
  EXPECT_EQ(e.add("b", core::Tensor::f32({2, 3}, std::vector<float>(6, 0))).code(),
            Code::kInvalidArgument);
  EXPECT_EQ(e.add("b", core::Tensor::zeros(core::DType::kI64, {3})).code(), Code::kInvalidArgument);
  EXPECT_EQ(e.answers(), 1u);
  EXPECT_EQ(e.current().probs, before.probs);
  // The wire carries probabilities: raw scores are refused, a distribution enters as log p.
  EXPECT_EQ(e.add("b", core::Tensor::f32({1, 3}, std::vector<float>{0, 0, 9})).code(),
            Code::kInvalidArgument);
  EXPECT_EQ(e.add("b", core::Tensor::f32({3}, std::vector<float>{0.5f, 0.5f, 0.5f})).code(),
            Code::kInvalidArgument);
  EXPECT_EQ(e.add("b", core::Tensor::f32({3}, std::vector<float>{1.5f, -0.5f, 0})).code(),
            Code::kInvalidArgument);
  EXPECT_TRUE(e.add("b", core::Tensor::f32({1, 3}, std::vector<float>{0, 0, 1})).is_ok());
  EXPECT_EQ(e.answers(), 2u);

  EXPECT_FALSE(combine({}).ok());
  EXPECT_FALSE(combine({{"a", {1}}, {"a", {2}}}).ok());
  EnsembleOptions bad;
  bad.temperature = 0;
  EXPECT_FALSE(combine({{"a", {1, 2}}}, bad).ok());
}

TEST(EnsembleTest, TemperatureFitCoolsAnOverconfidentEnsemble) {
  // Combined scores that name the right class only 60% of the time, with large margins.
  std::mt19937 rng(3);
  const size_t n = 2000, classes = 10;
  std::vector<float> scores(n * classes, 0.0f);
  std::vector<int> labels(n);
  for (size_t i = 0; i < n; ++i) {
    labels[i] = static_cast<int>(rng() % classes);
    int pred = (rng() % 10 < 6) ? labels[i] : static_cast<int>((labels[i] + 1 + rng() % 9) % 10);
    scores[i * classes + pred] = 12;
  }
  auto c = fit_ensemble_temperature(scores, classes, labels);
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_GT(c->temperature, 1.5);
  EXPECT_LT(c->nll_after, c->nll_before);

  EXPECT_FALSE(fit_ensemble_temperature(scores, classes, std::vector<int>(n - 1)).ok());
  std::vector<int> bad_labels(labels);
  bad_labels[0] = 10;
  EXPECT_FALSE(fit_ensemble_temperature(scores, classes, bad_labels).ok());
}

// Peers answer with probabilities (the exit's softmax); every rule must combine them exactly as
// it combines the models' logits.
TEST(EnsembleTest, WireProbabilitiesCombineLikeTheLogitsTheyCameFrom) {
  const std::vector<std::vector<float>> logits = {
      {2.0f, -1.0f, 0.5f, 0.0f}, {0.3f, 1.7f, -2.0f, 0.1f}, {1.1f, 0.9f, 0.2f, -0.4f}};
  for (CombineRule rule :
       {CombineRule::kMeanLogits, CombineRule::kGeometricMean, CombineRule::kMeanProbabilities}) {
    EnsembleOptions o;
    o.rule = rule;
    std::vector<Answer> answers;
    ProgressiveEnsemble wire(o, EnsembleExit{});
    for (size_t i = 0; i < logits.size(); ++i) {
      answers.push_back({"m" + std::to_string(i), logits[i]});
      std::vector<float> p(logits[i].size());
      float m = *std::max_element(logits[i].begin(), logits[i].end()), sum = 0;
      for (size_t c = 0; c < p.size(); ++c) sum += p[c] = std::exp(logits[i][c] - m);
      for (float& v : p) v /= sum;
      ASSERT_TRUE(wire.add("m" + std::to_string(i), core::Tensor::f32({4}, p)).is_ok());
    }
    auto want = combine(answers, o);
    ASSERT_TRUE(want.ok());
    const auto& got = wire.current();
    EXPECT_EQ(got.predicted, want->predicted);
    ASSERT_EQ(got.probs.size(), want->probs.size());
    for (size_t c = 0; c < got.probs.size(); ++c)
      EXPECT_NEAR(got.probs[c], want->probs[c], 1e-5) << "rule " << static_cast<int>(rule);
  }
}

}  // namespace
}  // namespace idn::client
