// BranchyNet's exit criteria (dissertation §3.4): temperature softmax, confidence (max ŷ ≥ T)
// and normalized entropy (η(ŷ) ≤ T). Plain float math, shared by the engine that runs a model
// and the client that judges answers arriving from peers.
#pragma once

#include <span>

#include "model/model_spec.h"

namespace idn::model {

// out = softmax(logits / temperature), numerically stable. Sizes must match; temperature > 0.
void softmax_with_temperature(std::span<const float> logits, double temperature,
                              std::span<float> out);
// max_c ŷ_c (§3.4.1).
double confidence(std::span<const float> probs);
// η(ŷ) = -Σ ŷ_c log ŷ_c / log |C|, in [0, 1] (§3.4.2); 0·log 0 = 0.
double normalized_entropy(std::span<const float> probs);
// SHOULDEXITWITHCONFIDENCE / SHOULDEXITWITHENTROPY (Figs. 3.3, 3.4).
bool should_exit(ExitCriterion criterion, double threshold, std::span<const float> probs);
// Index of the largest probability (first one on ties).
int argmax(std::span<const float> v);

}  // namespace idn::model
