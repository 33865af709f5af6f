// Softmax temperature calibration (dissertation §3.4.3): for each exit, the temperature τ that
// minimises the negative log-likelihood of softmax(z/τ) on held-out (validation) samples.
#pragma once

#include <torch/torch.h>

namespace idn::motifs {

struct Calibration {
  double temperature = 1.0;
  double nll_before = 0;  // at τ = 1
  double nll_after = 0;   // at the fitted τ
};

// Golden-section search over log τ in [1/20, 20]; NLL is unimodal in τ for fixed logits.
// logits [N, C] (float), labels [N] (int64).
Calibration fit_temperature(const torch::Tensor& logits, const torch::Tensor& labels);
double nll_at(const torch::Tensor& logits, const torch::Tensor& labels, double temperature);

}  // namespace idn::motifs
