#include "daimon/labels.h"

#include <cmath>
#include <numeric>

#include <fmt/format.h>

namespace idn::daimon {

Result<double> error(std::span<const Label> x, std::span<const Label> xt) {
  if (x.size() != xt.size() || x.empty()) {
    return Status::invalid_argument(
        fmt::format("label vectors of {} and {} labels: need two of the same, non-zero size",
                    x.size(), xt.size()));
  }
  size_t wrong = 0;
  for (size_t i = 0; i < x.size(); ++i) wrong += x[i] != xt[i];
  return double(wrong) / double(x.size());
}

Result<double> distance(std::span<const float> y1, std::span<const float> y2) {
  if (y1.size() != y2.size() || y1.empty()) {
    return Status::invalid_argument(
        fmt::format("embeddings of {} and {} values: need two of the same, non-zero size",
                    y1.size(), y2.size()));
  }
  double dot = 0, n1 = 0, n2 = 0;
  for (size_t i = 0; i < y1.size(); ++i) {
    if (!std::isfinite(y1[i]) || !std::isfinite(y2[i])) {
      return Status::invalid_argument(fmt::format("embedding value {} is not finite", i));
    }
    dot += double(y1[i]) * y2[i];
    n1 += double(y1[i]) * y1[i];
    n2 += double(y2[i]) * y2[i];
  }
  if (n1 == 0 || n2 == 0) return Status::invalid_argument("an embedding is the zero vector");
  if (dot < 0) return 1.0;
  // Rounding may push the cosine of (nearly) equal vectors a hair over 1.
  return std::max(0.0, 1.0 - dot / (std::sqrt(n1) * std::sqrt(n2)));
}

Result<std::vector<Label>> generate_data(std::span<const Label> xt, uint32_t classes,
                                         std::mt19937_64& rng, size_t* switched) {
  if (xt.empty()) return Status::invalid_argument("empty test label vector");
  if (classes < 2 || classes > 65536) {
    return Status::invalid_argument(fmt::format("{} classes: need 2..65536", classes));
  }
  const size_t m = xt.size();
  std::vector<Label> x(xt.begin(), xt.end());
  const size_t v = std::uniform_int_distribution<size_t>(1, m)(rng);
  // The first v positions of a partial Fisher-Yates shuffle: v distinct, uniformly chosen.
  std::vector<uint32_t> pos(m);
  std::iota(pos.begin(), pos.end(), 0u);
  std::uniform_int_distribution<uint32_t> cls(0, classes - 1);
  for (size_t i = 0; i < v; ++i) {
    size_t j = std::uniform_int_distribution<size_t>(i, m - 1)(rng);
    std::swap(pos[i], pos[j]);
    x[pos[i]] = static_cast<Label>(cls(rng));
  }
  if (switched) *switched = v;
  return x;
}

std::vector<Label> random_labels(size_t m, uint32_t classes, std::mt19937_64& rng) {
  std::uniform_int_distribution<uint32_t> cls(0, classes - 1);
  std::vector<Label> x(m);
  for (auto& l : x) l = static_cast<Label>(cls(rng));
  return x;
}

}  // namespace idn::daimon
