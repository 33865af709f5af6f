// The §7.5.2 strategy: r = debt / (credit + 1) and p(r), checked against values computed
// here without Boost: I(x; a, b) for integer a by an exact series, and n = 1's closed form.
#include "swap/strategy.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace idn::swap {
namespace {

// I(x; a, 1/a) for a positive integer a, without Boost. Substituting u = (1 - t)^b (b = 1/a)
// turns B(x; a, b) into (1/b) * integral from (1 - x)^b to 1 of (1 - u^a)^(a - 1) du, a
// polynomial; expanding it binomially integrates it exactly:
//   I(x; a, b) = S((1 - x)^b) / S(0), S(L) = sum_k C(a-1, k) (-1)^k (1 - L^(ak+1)) / (ak + 1).
double reference_ibeta(int a, double x) {
  double b = 1.0 / a;
  double lower = std::pow(1.0 - x, b);
  auto s = [&](double l) {
    double sum = 0, binom = 1;  // C(a-1, k)
    for (int k = 0; k <= a - 1; ++k) {
      double e = double(a) * k + 1;
      sum += (k % 2 ? -1 : 1) * binom * (1.0 - std::pow(l, e)) / e;
      binom = binom * (a - 1 - k) / (k + 1);
    }
    return sum;
  };
  return s(lower) / s(0.0);
}

TEST(Strategy, DebtRatioIsDebtOverCreditPlusOne) {
  EXPECT_DOUBLE_EQ(debt_ratio(0, 0), 0.0);
  EXPECT_DOUBLE_EQ(debt_ratio(10, 0), 10.0);
  EXPECT_DOUBLE_EQ(debt_ratio(10, 4), 2.0);
  EXPECT_DOUBLE_EQ(debt_ratio(3, 2), 1.0);
  // Operation counts of real models are large; the ratio stays finite and exact enough.
  EXPECT_NEAR(debt_ratio(uint64_t(3e12), uint64_t(1e12)), 3.0, 1e-9);
}

TEST(Strategy, ThePeersWeOweWeighMoreInTheIseAndStrangersStillCount) {
  EXPECT_DOUBLE_EQ(need_weight(0, 0, 100), 1.0);      // a stranger
  EXPECT_DOUBLE_EQ(need_weight(300, 0, 100), 4.0);    // it served us 3 graces' worth
  EXPECT_DOUBLE_EQ(need_weight(300, 200, 100), 2.0);  // and we served it some back
  EXPECT_DOUBLE_EQ(need_weight(0, 500, 100), 1.0);    // it only took: no more than a stranger
}

TEST(Strategy, ProbabilityIsOneUpToRatioOneAndZeroFromM) {
  StrategyParams p{.m = 4, .n = 2};
  for (double r : {0.0, 0.5, 1.0}) EXPECT_EQ(service_probability(r, p), 1.0) << r;
  for (double r : {4.0, 4.1, 100.0, std::numeric_limits<double>::infinity()}) {
    EXPECT_EQ(service_probability(r, p), 0.0) << r;
  }
  EXPECT_EQ(service_probability(std::nan(""), p), 0.0);
}

TEST(Strategy, NEqualsOneFallsLinearly) {
  // I(x; 1, 1) = x, so p(r) = 1 - (r - 1)/(m - 1): a table anyone can check by hand.
  StrategyParams p{.m = 4, .n = 1};
  struct Row {
    double r, p;
  };
  for (Row row : {Row{1.3, 0.9}, Row{1.75, 0.75}, Row{2.5, 0.5}, Row{3.4, 0.2}, Row{3.97, 0.01}}) {
    EXPECT_NEAR(service_probability(row.r, p), row.p, 1e-12) << "r=" << row.r;
  }
}

TEST(Strategy, MatchesAnIndependentIncompleteBeta) {
  for (int n : {1, 2, 4, 8, 16}) {
    for (double m : {2.0, 4.0, 10.0}) {
      StrategyParams p{.m = m, .n = double(n)};
      for (double r = 1.05; r < m; r += 0.1) {
        double expected = 1.0 - reference_ibeta(n, (r - 1) / (m - 1));
        EXPECT_NEAR(service_probability(r, p), expected, 1e-9)
            << "n=" << n << " m=" << m << " r=" << r;
      }
    }
  }
}

TEST(Strategy, LargerNIsMoreLenientAndEveryCurveFalls) {
  // Fig. 7.1's shape: each curve is non-increasing in r, and a larger n serves more at the
  // same r (checked between the ends, where every curve is 1 or 0).
  double prev_n_p[40] = {};
  for (int n : {1, 2, 4, 8, 16}) {
    StrategyParams p{.m = 4, .n = double(n)};
    double prev = 1.0;
    for (int i = 0; i < 40; ++i) {
      double r = 1.0 + 3.0 * (i + 0.5) / 40;
      double v = service_probability(r, p);
      EXPECT_LE(v, prev + 1e-15) << "n=" << n << " r=" << r;
      if (n > 1) {
        EXPECT_GE(v, prev_n_p[i] - 1e-12) << "n=" << n << " r=" << r;
      }
      prev = v;
      prev_n_p[i] = v;
    }
  }
  // n = 16 has hardly begun to refuse at r = 2, n = 1 already refuses a third.
  EXPECT_GT(service_probability(2.0, {.m = 4, .n = 16}), 0.9);
  EXPECT_NEAR(service_probability(2.0, {.m = 4, .n = 1}), 2.0 / 3.0, 1e-12);
}

TEST(Strategy, RejectsParametersWithoutAMeaning) {
  EXPECT_TRUE(validate({.m = 4, .n = 2}).is_ok());
  EXPECT_EQ(validate({.m = 1, .n = 2}).code(), Code::kInvalidArgument);
  EXPECT_EQ(validate({.m = 0.5, .n = 2}).code(), Code::kInvalidArgument);
  EXPECT_EQ(validate({.m = 4, .n = 0}).code(), Code::kInvalidArgument);
  EXPECT_EQ(validate({.m = std::nan(""), .n = 2}).code(), Code::kInvalidArgument);
  EXPECT_NE(validate({.m = 1, .n = 2}).message().find("m"), std::string::npos);
}

}  // namespace
}  // namespace idn::swap
