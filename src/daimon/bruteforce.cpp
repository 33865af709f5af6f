#include "daimon/bruteforce.h"

#include <cmath>

#include <fmt/format.h>
#include <boost/math/special_functions/beta.hpp>

namespace idn::daimon {
namespace {

// log10 I(x; a, b) where I underflows even a long double (large a): I(x; a, b) =
// x^a (1-x)^b / (a B(a, b)) * sum_k (a+b)_k / (a+1)_k x^k (DLMF 8.17.8 with 15.1.2), whose
// terms fall by about x each: few are needed for the small x where this is used.
double log10_ibeta_small(long double a, long double b, long double x) {
  long double sum = 1, term = 1;
  for (int k = 0; k < 1'000'000; ++k) {
    term *= (a + b + k) / (a + 1 + k) * x;
    sum += term;
    if (term < sum * 1e-19L) break;
  }
  long double ln = a * std::log(x) + b * std::log1p(-x) - std::log(a) -
                   (std::lgamma(a) + std::lgamma(b) - std::lgamma(a + b)) + std::log(sum);
  return static_cast<double>(ln / std::log(10.0L));
}

}  // namespace

Result<BruteForce> bruteforce(double eps, int n) {
  if (!(eps > 0 && eps <= 1)) {
    return Status::invalid_argument(fmt::format("eps {} is outside (0, 1]", eps));
  }
  if (n < 2 || n > 65536)
    return Status::invalid_argument(fmt::format("n {} is outside 2..65536", n));
  BruteForce b;
  b.eps = eps;
  b.n = n;
  b.beta = std::acos(1.0 - eps);
  // sin^2(beta) = 1 - (1 - eps)^2 = eps (2 - eps), without the cancellation of 1 - cos^2.
  const long double s2 = static_cast<long double>(eps) * (2.0L - static_cast<long double>(eps));
  b.p = boost::math::ibeta((static_cast<long double>(n) - 1) / 2, 0.5L, s2);
  const long double a = (static_cast<long double>(n) - 1) / 2;
  b.log10_p = b.p > 0 ? static_cast<double>(std::log10(b.p)) : log10_ibeta_small(a, 0.5L, s2);
  b.log10_trials = -b.log10_p;
  return b;
}

}  // namespace idn::daimon
