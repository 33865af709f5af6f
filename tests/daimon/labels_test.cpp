#include "daimon/labels.h"

#include <cmath>
#include <random>
#include <vector>

#include <gtest/gtest.h>

namespace idn::daimon {
namespace {

TEST(DaimonError, CountsMismatchedLabelsOverM) {
  std::vector<Label> xt = {0, 1, 2, 3, 4, 5, 6, 7};
  std::vector<Label> x = {0, 1, 9, 3, 4, 0, 6, 7};  // positions 2 and 5 differ: 2/8
  EXPECT_DOUBLE_EQ(*error(x, xt), 0.25);
  EXPECT_DOUBLE_EQ(*error(xt, xt), 0.0);
  std::vector<Label> all_wrong = {1, 2, 3, 4, 5, 6, 7, 8};
  EXPECT_DOUBLE_EQ(*error(all_wrong, xt), 1.0);
}

TEST(DaimonError, RejectsVectorsOfDifferentOrZeroSize) {
  std::vector<Label> a = {1, 2}, b = {1};
  EXPECT_FALSE(error(a, b).ok());
  EXPECT_FALSE(error(std::vector<Label>{}, std::vector<Label>{}).ok());
}

TEST(DaimonDistance, IsOneMinusCosineOrOneForObtuseAngles) {
  std::vector<float> x = {1, 0}, y = {0, 1}, xy = {1, 1}, neg = {-1, 0.5f};
  EXPECT_NEAR(*distance(x, x), 0.0, 1e-12);
  EXPECT_NEAR(*distance(x, y), 1.0, 1e-12);                         // right angle
  EXPECT_NEAR(*distance(x, xy), 1.0 - 1.0 / std::sqrt(2.0), 1e-7);  // 45 degrees: 0.29289
  // (3, 4) . (4, 3) = 24, norms 5 and 5: 1 - 24/25.
  std::vector<float> a = {3, 4}, b = {4, 3};
  EXPECT_NEAR(*distance(a, b), 0.04, 1e-7);
  EXPECT_DOUBLE_EQ(*distance(x, neg), 1.0);  // dot < 0: 1 by definition, not 1 - cos
  // Scale does not matter: a cosine.
  std::vector<float> a10 = {30, 40};
  EXPECT_NEAR(*distance(a10, b), 0.04, 1e-7);
}

TEST(DaimonDistance, RejectsZeroMismatchedAndNonFiniteVectors) {
  std::vector<float> z = {0, 0}, x = {1, 0}, three = {1, 0, 0}, nan = {NAN, 1};
  EXPECT_FALSE(distance(z, x).ok());
  EXPECT_FALSE(distance(x, three).ok());
  EXPECT_FALSE(distance(nan, x).ok());
}

// GENERATEDATA: v is uniform in 1..m, exactly v positions may change, each to a uniform class;
// so the error is at most v/m and averages (m+1)/(2m) * (C-1)/C.
TEST(DaimonGenerateData, SwitchesVUniformPositionsToUniformClasses) {
  const size_t m = 200;
  const uint32_t C = 10;
  std::mt19937_64 rng(7);
  std::vector<Label> xt(m);
  for (size_t i = 0; i < m; ++i) xt[i] = static_cast<Label>(i % C);
  const int trials = 4000;
  double sum_err = 0, sum_v = 0, sum_v2 = 0;
  std::vector<int> class_count(C, 0);
  size_t v_min = m, v_max = 0;
  for (int t = 0; t < trials; ++t) {
    size_t v = 0;
    auto x = generate_data(xt, C, rng, &v);
    ASSERT_TRUE(x.ok());
    double e = *error(*x, xt);
    EXPECT_LE(e, double(v) / m + 1e-12);  // only the v chosen positions may differ
    sum_err += e;
    sum_v += double(v);
    sum_v2 += double(v) * double(v);
    v_min = std::min(v_min, v);
    v_max = std::max(v_max, v);
    for (size_t i = 0; i < m; ++i) {
      if ((*x)[i] != xt[i]) class_count[(*x)[i]]++;
    }
  }
  // v ~ U{1..m}: mean (m+1)/2 = 100.5, sd sqrt((m^2-1)/12) = 57.7; the mean of 4000 draws is
  // within 4 sd / sqrt(4000) = 3.7 of it.
  EXPECT_NEAR(sum_v / trials, (m + 1) / 2.0, 3.7);
  EXPECT_NEAR(std::sqrt(sum_v2 / trials - (sum_v / trials) * (sum_v / trials)),
              std::sqrt((m * m - 1) / 12.0), 3.0);
  EXPECT_EQ(v_min, 1u);  // P(never 1 in 4000) = (199/200)^4000 ~ 2e-9
  EXPECT_EQ(v_max, m);
  const double expected_err = (m + 1) / (2.0 * m) * (C - 1) / C;  // 0.45225
  EXPECT_NEAR(sum_err / trials, expected_err, 0.01);
  // Changed labels land on every class alike (each class gets ~1/C of the changes... except
  // that a change to a position's own class is no change: all classes are equally often some
  // position's own class here, so the changed labels stay uniform).
  int changed = 0;
  for (int c : class_count) changed += c;
  for (uint32_t c = 0; c < C; ++c) EXPECT_NEAR(double(class_count[c]) / changed, 0.1, 0.005);
}

TEST(DaimonGenerateData, IsDeterministicForASeedAndChecksItsInput) {
  std::vector<Label> xt(100, 3);
  std::mt19937_64 a(42), b(42);
  EXPECT_EQ(*generate_data(xt, 10, a), *generate_data(xt, 10, b));
  std::mt19937_64 r(1);
  EXPECT_FALSE(generate_data(std::vector<Label>{}, 10, r).ok());
  EXPECT_FALSE(generate_data(xt, 1, r).ok());
}

}  // namespace
}  // namespace idn::daimon
