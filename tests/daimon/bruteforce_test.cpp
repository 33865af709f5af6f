#include "daimon/bruteforce.h"

#include <cmath>
#include <numbers>

#include <gtest/gtest.h>

namespace idn::daimon {
namespace {

// Expected values: mpmath 1.3 (betainc(a, b, 0, x, regularized=True) at 40 digits), and closed
// forms where the sphere is small enough to have one, never the code under test.
TEST(DaimonBruteForce, MatchesClosedFormsOnTheCircleAndTheSphere) {
  // n = 2 (a circle): the arc within beta of y_t over the half circle is beta / (pi/2).
  auto c = bruteforce(0.5, 2);
  ASSERT_TRUE(c.ok());
  EXPECT_NEAR(c->beta, std::numbers::pi / 3, 1e-12);  // acos(0.5)
  EXPECT_NEAR(double(c->p), 2.0 / 3.0, 1e-12);
  // n = 3 (Archimedes): cap area 2 pi (1 - cos beta) over the hemisphere 2 pi: exactly eps.
  for (double eps : {0.01, 0.1, 0.5, 1.0}) {
    auto s = bruteforce(eps, 3);
    ASSERT_TRUE(s.ok());
    EXPECT_NEAR(double(s->p), eps, 1e-12) << eps;
  }
}

TEST(DaimonBruteForce, MatchesAnIndependentIncompleteBeta) {
  struct Case {
    int n;
    double eps, log10_p;
  };
  // log10 of mpmath's I(eps (2 - eps); (n-1)/2, 1/2).
  const Case cases[] = {
      {32, 0.1, std::log10(1.03790670236e-12)},    {32, 0.3, std::log10(5.78347573834e-6)},
      {256, 0.1, std::log10(6.0910239943e-94)},    {256, 0.05, std::log10(6.5830433985e-131)},
      {1024, 0.2, std::log10(3.48575822299e-229)}, {16, 1.0, 0.0},
  };
  for (const Case& k : cases) {
    auto b = bruteforce(k.eps, k.n);
    ASSERT_TRUE(b.ok());
    EXPECT_NEAR(b->log10_p, k.log10_p, 1e-9) << "n " << k.n << " eps " << k.eps;
    EXPECT_NEAR(b->log10_trials, -k.log10_p, 1e-9);
  }
}

// Where p underflows even a long double, log10 p still comes out: continuous with the direct
// value where both exist, and falling linearly in n (each dimension multiplies p by ~sin beta).
TEST(DaimonBruteForce, Log10StaysFiniteBeyondLongDoubleRange) {
  auto small = bruteforce(0.001, 8192);
  ASSERT_TRUE(small.ok());
  EXPECT_TRUE(std::isfinite(small->log10_p));
  EXPECT_LT(small->log10_p, -5000);
  auto a = bruteforce(0.001, 16384), b = bruteforce(0.001, 32768);
  // Doubling n roughly doubles log10 p (the (n-1)/2 power of sin^2 beta dominates).
  EXPECT_NEAR(b->log10_p / a->log10_p, 2.0, 0.01);
  // Across the switch from the direct value to the series (p leaves long double's range near
  // n = 5810 at eps = 0.01), log10 p keeps falling by log10(sin^2 beta) per step of 2 in n.
  auto direct = bruteforce(0.01, 5790), series = bruteforce(0.01, 5830);
  ASSERT_GT(direct->p, 0);
  ASSERT_EQ(series->p, 0);
  EXPECT_NEAR(series->log10_p - direct->log10_p, 20 * std::log10(0.01 * 1.99), 0.01);
}

TEST(DaimonBruteForce, RejectsOutOfRangeArguments) {
  EXPECT_FALSE(bruteforce(0, 32).ok());
  EXPECT_FALSE(bruteforce(1.5, 32).ok());
  EXPECT_FALSE(bruteforce(std::nan(""), 32).ok());
  EXPECT_FALSE(bruteforce(0.1, 1).ok());
}

}  // namespace
}  // namespace idn::daimon
