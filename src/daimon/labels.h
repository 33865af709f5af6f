// DaiMoN's label arithmetic (dissertation §6.1-6.2): the error e between a label vector and
// the test label vector, the modified cosine distance d between two embeddings, and
// GENERATEDATA, the perturbations of the test labels a DEL function is trained on. Pure
// functions: any thread.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "core/status.h"

namespace idn::daimon {

// A class label, 0..C-1 (the dissertation's 1..C, minus one).
using Label = uint16_t;

// e(x, x_t) = (1/m) * #{i : x_i != x_t,i}. InvalidArgument when the sizes differ or are 0.
Result<double> error(std::span<const Label> x, std::span<const Label> xt);

// d(y1, y2) = 1 - cos(y1, y2) when y1 . y2 >= 0, else 1 (§6.1.1): in [0, 1]. InvalidArgument
// when the sizes differ, are 0, either vector is zero or a component is not finite.
Result<double> distance(std::span<const float> y1, std::span<const float> y2);

// GENERATEDATA(x_t): v uniform in 1..m, a uniformly random set K of v distinct positions,
// each set to a class uniform in 0..C-1 (which may be the old one). `switched` receives v.
// The expected error of the result is E[v]/m * (C-1)/C = (m+1)/(2m) * (C-1)/C. Requires a
// non-empty x_t and C >= 2 (checked: InvalidArgument).
Result<std::vector<Label>> generate_data(std::span<const Label> xt, uint32_t classes,
                                         std::mt19937_64& rng, size_t* switched = nullptr);

// A uniformly random label vector in {0..C-1}^m (GENERATEINVERSEDATARANDOM's x, §6.4).
std::vector<Label> random_labels(size_t m, uint32_t classes, std::mt19937_64& rng);

}  // namespace idn::daimon
