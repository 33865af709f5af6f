#include "swap/strategy.h"

#include <algorithm>
#include <boost/math/special_functions/beta.hpp>
#include <cmath>
#include <string>

namespace idn::swap {

double debt_ratio(uint64_t debt, uint64_t credit, uint64_t grace) {
  return double(debt) / (double(credit) + double(std::max<uint64_t>(grace, 1)));
}

double need_weight(uint64_t credit, uint64_t debt, uint64_t grace) {
  return 1.0 + debt_ratio(credit, debt, grace);
}

Status validate(const StrategyParams& p) {
  if (!std::isfinite(p.m) || p.m <= 1.0) {
    return Status::invalid_argument(
        "m must be a number > 1 (the debt ratio where p(r) "
        "reaches 0), got " +
        std::to_string(p.m));
  }
  if (!std::isfinite(p.n) || p.n <= 0.0) {
    return Status::invalid_argument("n must be a number > 0, got " + std::to_string(p.n));
  }
  return Status::ok();
}

double service_probability(double r, const StrategyParams& p) {
  if (std::isnan(r)) return 0.0;
  if (r <= 1.0) return 1.0;
  if (r >= p.m) return 0.0;
  double x = (r - 1.0) / (p.m - 1.0);
  double v = 1.0 - boost::math::ibeta(p.n, 1.0 / p.n, x);
  return std::clamp(v, 0.0, 1.0);
}

}  // namespace idn::swap
