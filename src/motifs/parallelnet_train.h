// Training a ParallelNet genesis model (Fig. 5.2): every mini-batch trains the sub-network of a
// fresh Bernoulli(p) mask over filters and neurons, run physically thin (only the kept units are
// computed: a step costs the sub-network's FLOPs), through the BranchyNet trainer's loop
// (optimizer, SGDR, checkpoints, determinism for a seed), then the package records p_train and
// how well models drawn at p_train do on the validation split. One training per process.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "motifs/branchynet_train.h"
#include "motifs/labeled_data.h"
#include "motifs/parallelnet.h"

namespace idn::motifs {

struct ParallelNetTrainOptions {
  TrainOptions train;  // step i trains the mask draw_mask(spec, p_train, train.seed, i)
  Density p_train;
  // kInverted: a kept unit's output x 1/p_train of its layer at each step (inverted dropout);
  // kNone: β only. Recorded in the package; generation scales to match.
  Scaling scaling = Scaling::kInverted;
  int eval_masks = 8;  // models drawn at p_train scored on the validation split afterwards
};

struct ParallelNetFit {
  std::vector<EpochReport> epochs;   // validation per epoch: one fixed mask at p_train
  std::vector<double> val_accuracy;  // each of eval_masks models (mask seeds 1..K) alone
  double val_ensemble_accuracy = 0;  // those K models, logits averaged (Fig. 5.4)
  double val_genesis_accuracy = 0;   // the genesis model without a mask (p_test = 1)
};

// Builds `arch` (parallelnet_arch), trains it on data (train split; normalised as the package
// records), evaluates, and saves the genesis package to out_dir with
// operating_point.parallelnet = {role: "genesis", p_train, scaling ("inverted" or "none"),
// scaling_rule, thinned layers, validation results} and operating_point.training (what reproduces
// the weights).
Result<ParallelNetFit> fit_parallelnet(const std::string& arch, const LabeledData& data,
                                       const ParallelNetTrainOptions& opts,
                                       const std::filesystem::path& out_dir);

// Logits [N, classes] of a single-exit graph under `mask` (no layers: unmasked) on preprocessed
// x, batched, eval mode; the graph is left unmasked.
Result<torch::Tensor> masked_logits(nn::Graph& graph, const Mask& mask, const torch::Tensor& x,
                                    int64_t batch = 1000);

// A generated model checked before it is published: the best of `candidates` masks by accuracy
// on `val`, images the genesis never trained on. Candidate j is drawn with mask seed
// opts.seed + j * kCandidateSeedStride, so candidate 0 is generate_parallelnet(opts)'s draw and
// candidates = 1 is that draw unchanged; the chosen seed reproduces the weights byte for byte
// through generate_parallelnet, and operating_point.parallelnet.selection records how it was
// chosen (candidates, first seed, validation accuracy, samples). Random masks vary widely (one of
// 40 drawn at p 0.45 scored 65.5 % where the others scored 78-86 %), and an ensemble is only as
// good as its members. Errors: as generate_parallelnet; InvalidArgument for candidates
// outside 1..64 or an empty `val`.
inline constexpr uint64_t kCandidateSeedStride = 1'000'000;
struct CheckedGeneration {
  Generated generated;
  uint64_t seed = 0;                // the chosen candidate's mask seed
  double validation_accuracy = -1;  // its accuracy on `val` (-1 when candidates = 1)
};
Result<CheckedGeneration> generate_checked_parallelnet(const std::filesystem::path& genesis_dir,
                                                       const GenerateOptions& opts, int candidates,
                                                       const TensorSplit& val);

// OK when `data`'s validation images are held out of the split `genesis` was trained on (its
// operating_point.training names the split seed and training-image count); InvalidArgument
// saying why otherwise (another split, or no record of one).
Status check_held_out(const model::ModelSpec& genesis, const LabeledData& data);

}  // namespace idn::motifs
