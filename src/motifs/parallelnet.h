// ParallelNet (dissertation ch. 5): a genesis model whose conv filters and linear neurons are
// each kept with probability p (β ~ Bern(p)), and the generator that cuts a physically thinner
// model from it for any p_test (Fig. 5.3). §5 multiplies each unit by β ∈ {0,1}; taken
// literally (Scaling::kNone) the signal shrinks by about p per thinned layer, and a deep net
// (the AlexNet-style arch, seven thinned layers) does not learn at p = 0.45. So by default
// (Scaling::kInverted) a kept unit's output is also multiplied by 1/p of its layer, as inverted
// dropout does: 1/p_train at each training step, and 1/p_test at generation, where the factor is
// folded into the kept units' weights and biases. A Mask carries those factors, so a generated
// model computes exactly what the genesis model computes with the same (scaled) mask applied,
// whatever p_train and p_test are. Functions are reentrant; a Graph serves one thread at a time.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "model/package.h"
#include "nn/graph.h"

namespace idn::motifs {

// How likely each filter or neuron is kept: one network-wide p, per-layer overrides, and (for
// training) an optional schedule, e.g. §5.2's "0.1 for iterations ending with 1 and 0.5
// otherwise" is cycle = {0.5, 0.1, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5}.
struct Density {
  double p = 1.0;
  std::map<std::string, double> per_layer;  // overrides p (and the cycle) for these layers
  std::vector<double> cycle;                // network-wide p at step i: cycle[i % size]

  double at(const std::string& layer, int64_t step = 0) const;
  // Every p in (0, 1], a finite number. InvalidArgument naming the offending value.
  Status validate() const;
  bool operator==(const Density&) const = default;
};
// {"p": 0.45} plus "per_layer" and "cycle" when set.
nlohmann::json to_json(const Density& d);
// Parses and validates (untrusted: model.json). InvalidArgument saying what is wrong.
Result<Density> density_from_json(const nlohmann::json& j);

// "alexnet" (Fig. 5.6 at a quarter of its width, for 28x28x1 images), "tiny" (for tests).
std::vector<std::string> parallelnet_arch_names();
Result<model::ModelSpec> parallelnet_arch(const std::string& name, int classes = 10);

// A layer ParallelNet thins: every conv2d and linear layer except those producing an exit's
// logits (the classes must stay).
struct ThinnedLayer {
  std::string name;
  int64_t units = 0;  // out_channels or out_features
};
// In spec order. InvalidArgument when a layer that does not commute with removing units
// (batchnorm: BN(0) != 0; lrn: mixes neighbouring channels; softmax; aggregate) reads a thinned
// layer's output, directly or through relu, pooling, dropout and flatten.
Result<std::vector<ThinnedLayer>> thinned_layers(const model::ModelSpec& spec);

// How a kept unit's output is scaled. kNone: by 1 (β only, as §5 words it). kInverted: by 1/p of
// its layer (inverted dropout), so every thinned layer passes on, in expectation over masks, what
// the unmasked layer would: the next layer sees inputs of the size the unmasked network gives.
enum class Scaling { kNone, kInverted };
std::string scaling_name(Scaling s);  // "none", "inverted"
// "none" or "inverted"; InvalidArgument otherwise.
Result<Scaling> scaling_from_name(const std::string& name);

// The kept units (sorted, distinct indices) of every thinned layer, and the factor each layer's
// kept units' outputs are multiplied by (absent: 1).
struct Mask {
  std::map<std::string, std::vector<int64_t>> kept;
  std::map<std::string, double> scale;
  int64_t kept_units() const;
  bool operator==(const Mask&) const = default;
};
// The kept units, {layer: [indices]} (the scale is not included).
nlohmann::json to_json(const Mask& m);

// Sets the factor of every layer of `m` for `scaling` at `density` (step: a cycle's position):
// kInverted gives 1/p of the layer (no entry where p is 1), kNone clears the factors.
void set_scale(Mask& m, Scaling scaling, const Density& density, int64_t step = 0);

// Draws β per unit, layers in spec order, units in order, from SplitMix64 started at a state
// mixed from (seed, step): a unit is kept when its uniform draw u < p. The same (spec, density,
// seed, step) gives the same mask on every machine. A layer whose draw keeps nothing keeps its unit
// with the smallest u: a model needs a path through every layer.
Result<Mask> draw_mask(const model::ModelSpec& spec, const Density& density, uint64_t seed,
                       int64_t step = 0);

// Every thinned layer of `spec` present, indices sorted, distinct, in range, at least one; every
// factor names a thinned layer and is finite and positive.
Status check_mask(const model::ModelSpec& spec, const Mask& mask);

// Multiplies the genesis graph's units by β times their layer's factor
// (nn::GraphImpl::set_unit_masks); an empty mask (no layers) removes the masks.
Status apply_mask(nn::Graph& graph, const Mask& mask);
// The same sub-network run physically (GraphImpl::set_unit_selection): only the kept units are
// computed, so a training step costs the thin network's FLOPs; outputs equal apply_mask's.
// An empty mask removes it.
Status apply_thinned(nn::Graph& graph, const Mask& mask);

// Fig. 5.3: the thinner package. Removed units leave their layer's weight and bias and the
// input dimension of the layers that read them (through flatten: each channel's H x W block);
// the spec is revalidated, so its FLOPs are the thinner model's. A layer's factor multiplies its
// kept units' weights and bias: (sW)x + sb = s(Wx + b), and relu, pooling, dropout and flatten
// commute with a positive factor, so the result equals the masked genesis. The operating point is
// copied unchanged (generate_parallelnet rewrites it).
Result<model::Package> thin_package(const model::Package& genesis, const Mask& mask);

// Weight elements of a (validated) spec.
int64_t parameter_count(const model::ModelSpec& spec);

// Expected FLOPs per sample (trunk_flops) of a model drawn at `density` (step 0). Exact for
// the draw above: a layer's FLOPs are bilinear in its input and output widths, layers draw
// independently, and a layer keeps n·p + (1-p)^n units on average (the keep-one rule).
Result<double> expected_flops(const model::ModelSpec& spec, const Density& density);

// The largest network-wide p (to 1e-6, per-layer overrides kept) whose expected FLOPs fit
// `budget_flops`; 1 when the genesis fits. InvalidArgument when even p -> 0 does not fit.
Result<double> density_for_budget(const model::ModelSpec& spec, const Density& base,
                                  double budget_flops);

struct GenerateOptions {
  Density p_test;                      // its p is ignored when budget_flops is set
  std::optional<double> budget_flops;  // pick p from a peer's capacity instead
  uint64_t seed = 1;
};

struct Generated {
  model::Package package;    // spec name "<genesis>-p<p>-s<seed>", motif "parallelnet"
  Mask mask;                 // with the factors folded into the package
  Density p_test;            // what the mask was drawn with (p chosen from the budget, if any)
  std::string genesis_hash;  // sha2-256 multihash (base58) of the genesis model.json bytes
  int64_t genesis_parameters = 0, parameters = 0;
  int64_t genesis_flops = 0, flops = 0;  // trunk FLOPs per sample
  double expected_flops = 0;             // at p_test, over all seeds
};

// Loads the genesis package at `genesis_dir` (a ParallelNet genesis: motif "parallelnet", not
// itself generated), draws the mask and thins it. The package's operating_point.parallelnet
// records role "generated", the genesis (name, model hash as in service descriptors, SHA-256 of
// its weights file, parameters, FLOPs), p_train, p_test, the mask seed, the budget, the kept
// units, the genesis's scaling and the factors folded in: (genesis, p_test, seed) reproduce it
// byte for byte. The factors follow the genesis's operating_point.parallelnet.scaling ("none"
// when absent, as in packages written before scaling was recorded): "inverted" folds 1/p_test of
// each layer. Why p_test and not p_train: training with 1/p_train makes each thinned layer's
// output, averaged over masks, equal the unmasked layer's, which is what the layers after it
// learned to read; a model cut at p_test keeps about p_test of the units, so 1/p_test restores
// that expected size (p_test = p_train is exactly a training step's sub-network, and p_test = 1
// is the unscaled genesis, as in inverted dropout's evaluation). Does not write anything.
// Errors: NotFound (no package), Corruption/InvalidArgument (a bad package, not a genesis, a
// bad p or budget).
Result<Generated> generate_parallelnet(const std::filesystem::path& genesis_dir,
                                       const GenerateOptions& opts);

}  // namespace idn::motifs
