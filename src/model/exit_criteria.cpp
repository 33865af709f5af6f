#include "model/exit_criteria.h"

#include <algorithm>
#include <cassert>
#include <cmath>

namespace idn::model {

void softmax_with_temperature(std::span<const float> logits, double temperature,
                              std::span<float> out) {
  assert(logits.size() == out.size() && temperature > 0);
  if (logits.empty()) return;
  const double inv_t = 1.0 / temperature;
  const float mx = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (size_t i = 0; i < logits.size(); ++i) {
    double e = std::exp((static_cast<double>(logits[i]) - mx) * inv_t);
    out[i] = static_cast<float>(e);
    sum += e;
  }
  for (float& v : out) v = static_cast<float>(v / sum);
}

double confidence(std::span<const float> probs) {
  return probs.empty() ? 0.0 : *std::max_element(probs.begin(), probs.end());
}

double normalized_entropy(std::span<const float> probs) {
  if (probs.size() < 2) return 0.0;
  double h = 0;
  for (float p : probs)
    if (p > 0) h -= static_cast<double>(p) * std::log(static_cast<double>(p));
  return std::clamp(h / std::log(static_cast<double>(probs.size())), 0.0, 1.0);
}

bool should_exit(ExitCriterion criterion, double threshold, std::span<const float> probs) {
  if (criterion == ExitCriterion::kConfidence) return confidence(probs) >= threshold;
  return normalized_entropy(probs) <= threshold;
}

int argmax(std::span<const float> v) {
  return v.empty() ? -1 : static_cast<int>(std::max_element(v.begin(), v.end()) - v.begin());
}

}  // namespace idn::model
