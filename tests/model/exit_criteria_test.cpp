#include "model/exit_criteria.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace idn::model {
namespace {

TEST(ExitCriteriaTest, SoftmaxSumsToOneAndTemperatureSoftens) {
  std::vector<float> z{2.f, 1.f, 0.f}, p(3), soft(3);
  softmax_with_temperature(z, 1.0, p);
  EXPECT_NEAR(p[0] + p[1] + p[2], 1.0, 1e-6);
  EXPECT_NEAR(p[0], std::exp(2.0) / (std::exp(2.0) + std::exp(1.0) + 1.0), 1e-6);
  softmax_with_temperature(z, 4.0, soft);
  EXPECT_LT(confidence(soft), confidence(p));
  EXPECT_GT(normalized_entropy(soft), normalized_entropy(p));
}

TEST(ExitCriteriaTest, SoftmaxIsStableForHugeLogits) {
  std::vector<float> z{1000.f, 999.f}, p(2);
  softmax_with_temperature(z, 1.0, p);
  EXPECT_TRUE(std::isfinite(p[0]));
  EXPECT_NEAR(p[0], 1.0 / (1.0 + std::exp(-1.0)), 1e-6);
}

TEST(ExitCriteriaTest, NormalizedEntropyBounds) {
  std::vector<float> uniform(10, 0.1f), onehot(10, 0.f);
  onehot[3] = 1.f;
  EXPECT_NEAR(normalized_entropy(uniform), 1.0, 1e-6);
  EXPECT_DOUBLE_EQ(normalized_entropy(onehot), 0.0);
  std::vector<float> half{0.5f, 0.5f, 0.f, 0.f};  // log 2 / log 4
  EXPECT_NEAR(normalized_entropy(half), 0.5, 1e-6);
}

TEST(ExitCriteriaTest, ConfidenceExitsAtOrAboveThresholdEntropyAtOrBelow) {
  std::vector<float> p{0.7f, 0.2f, 0.1f};
  EXPECT_TRUE(should_exit(ExitCriterion::kConfidence, 0.7f, p));
  EXPECT_FALSE(should_exit(ExitCriterion::kConfidence, 0.71, p));
  double eta = normalized_entropy(p);
  EXPECT_TRUE(should_exit(ExitCriterion::kEntropy, eta, p));
  EXPECT_FALSE(should_exit(ExitCriterion::kEntropy, eta - 1e-3, p));
  EXPECT_EQ(argmax(p), 0);
}

}  // namespace
}  // namespace idn::model
