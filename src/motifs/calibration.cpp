#include "motifs/calibration.h"

#include <cmath>

namespace idn::motifs {

double nll_at(const torch::Tensor& logits, const torch::Tensor& labels, double temperature) {
  torch::NoGradGuard ng;
  return torch::nn::functional::cross_entropy(logits.to(torch::kFloat64) / temperature, labels)
      .item<double>();
}

Calibration fit_temperature(const torch::Tensor& logits, const torch::Tensor& labels) {
  Calibration c;
  c.nll_before = nll_at(logits, labels, 1.0);
  double lo = std::log(1.0 / 20), hi = std::log(20.0);
  const double phi = (std::sqrt(5.0) - 1) / 2;
  double a = hi - phi * (hi - lo), b = lo + phi * (hi - lo);
  double fa = nll_at(logits, labels, std::exp(a)), fb = nll_at(logits, labels, std::exp(b));
  for (int it = 0; it < 60 && hi - lo > 1e-5; ++it) {
    if (fa < fb) {
      hi = b, b = a, fb = fa;
      a = hi - phi * (hi - lo);
      fa = nll_at(logits, labels, std::exp(a));
    } else {
      lo = a, a = b, fa = fb;
      b = lo + phi * (hi - lo);
      fb = nll_at(logits, labels, std::exp(b));
    }
  }
  c.temperature = std::exp((lo + hi) / 2);
  c.nll_after = nll_at(logits, labels, c.temperature);
  // Never make things worse than the uncalibrated softmax.
  if (c.nll_after > c.nll_before) c.temperature = 1.0, c.nll_after = c.nll_before;
  return c;
}

}  // namespace idn::motifs
