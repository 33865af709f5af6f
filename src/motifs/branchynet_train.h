// Joint training of a BranchyNet (dissertation §3.2): every exit's softmax cross-entropy,
// combined with per-exit weights or the exponentially weighted loss (§3.2.1); SGD with
// momentum or Adam, optionally SGDR (cosine annealing with warm restarts); progress per exit;
// a checkpoint after every epoch that `resume` continues from. Deterministic for a seed on one
// machine and thread count: initialisation (fit_branchynet), batch order, dropout and
// augmentation are all seeded from TrainOptions::seed; only LibTorch's intra-op parallelism
// (reduction order in GEMM/conv backward) changes results when torch::set_num_threads changes.
// One training at a time per process (it reseeds LibTorch's global generator).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "core/status.h"
#include "nn/graph.h"

namespace idn::motifs {

struct TrainOptions {
  int epochs = 3;
  int64_t batch_size = 64;
  std::string optimizer = "sgd";  // "sgd" (with momentum) | "adam"
  double lr = 0.05;
  double momentum = 0.9;
  double weight_decay = 5e-4;
  bool sgdr = true;        // cosine annealing with warm restarts, restarting every sgdr_t0
  double sgdr_t0 = 1.0;    // epochs in the first cycle
  double sgdr_mult = 2.0;  // each cycle this many times longer
  double lr_min = 1e-4;
  std::vector<double> exit_weights;  // w_n; empty = equal weights (1 each)
  std::optional<double> alpha;       // use the exponentially weighted loss instead
  uint64_t seed = 1;
  // Called on every training mini-batch [B,C,H,W] before the forward pass (augmentation,
  // normalisation); deterministic given batch_seed.
  std::function<void(torch::Tensor& batch, uint64_t batch_seed)> transform;
  // Called before each training step's forward pass with the step's index over the whole run
  // (epoch x steps per epoch + step; the same after a resume), and before each epoch's
  // validation pass: ParallelNet draws the sub-network to train here (Fig. 5.2).
  std::function<void(int64_t step)> before_step;
  std::function<void()> before_eval;
  bool augment = false;  // fit_branchynet: pad-4 random crop + horizontal flip (§3.5)
  std::filesystem::path checkpoint_dir;  // empty = no checkpoints
  bool resume = false;
  bool progress = true;  // a progress line on stderr
};

struct ExitMetrics {
  double loss = 0;
  double accuracy = 0;  // fraction
};

struct EpochReport {
  int epoch = 0;
  double train_loss = 0;
  std::vector<ExitMetrics> train, val;
  double seconds = 0;
};

// The recipe that trains `arch` (a name from branchynet_arch.h) in a few epochs: the defaults,
// except for the AlexNet-style trunks (no batch norm, five convs), which barely move under SGD
// at lr 0.05 (loss 2.29 after an epoch) and train well with Adam at 1e-3.
TrainOptions recommended_train_options(const std::string& arch);

// Weight of each exit's loss: the given weights, equal weights, or for the exponential scheme
// L_1 = L(exit 1), L_n = (1-α) L_{n-1} + α L(exit n), i.e. w_1 = (1-α)^{N-1},
// w_n = α (1-α)^{N-n} for n > 1 (weights sum to 1).
std::vector<double> exit_loss_weights(int num_exits, const TrainOptions& opts);

// Trains `graph` on (x, y); evaluates each exit on (x_val, y_val) after every epoch.
Result<std::vector<EpochReport>> train_branchynet(nn::Graph& graph, const torch::Tensor& x,
                                                  const torch::Tensor& y,
                                                  const torch::Tensor& x_val,
                                                  const torch::Tensor& y_val,
                                                  const TrainOptions& opts);

// Per-exit loss and accuracy of `graph` (eval mode, no grad), batched.
std::vector<ExitMetrics> evaluate_exits(nn::Graph& graph, const torch::Tensor& x,
                                        const torch::Tensor& y, int64_t batch = 1000);

// All exits' logits for every sample of x: result[e] is [N, classes]. Eval mode, no grad.
std::vector<torch::Tensor> exit_logits(nn::Graph& graph, const torch::Tensor& x,
                                       int64_t batch = 1000);

}  // namespace idn::motifs
