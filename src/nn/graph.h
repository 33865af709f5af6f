// The executable form of a model package: one LibTorch module per layer of a ModelSpec, run
// stage by stage with exit heads, for training (all exits at once) and for inference (one
// stage or exit at a time). Only nn/, motifs/ and engine/ see this header.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "core/status.h"
#include "core/tensor.h"
#include "model/model_spec.h"
#include "nn/inference_ops.h"

namespace idn::nn {

// Values of the graph's nodes while a batch flows through it: slot i holds model input i
// (i < inputs) or layer i - inputs. Stages and exits read and fill it.
using Activations = std::vector<torch::Tensor>;

class GraphImpl : public torch::nn::Module {
 public:
  // Builds fresh (randomly initialised) layers for a validated spec.
  explicit GraphImpl(model::ModelSpec spec);

  const model::ModelSpec& spec() const { return spec_; }
  int num_stages() const { return static_cast<int>(spec_.stages.size()); }
  int num_exits() const { return static_cast<int>(spec_.exits.size()); }

  // Copies named weights (already checked by model::check_weights) into the layers.
  Status load_weights(const std::map<std::string, core::Tensor>& weights);
  // The layers' parameters and batch-norm statistics under the names of required_weights().
  std::map<std::string, core::Tensor> export_weights() const;

  // Starts a pass: slot for each input filled, the rest empty.
  Activations begin(const std::vector<torch::Tensor>& inputs) const;
  // Runs the layers of stage `s`; returns the stage's output (also stored in `acts`). With
  // autograd off, run_stage and run_exit flush denormals to zero (DenormalsAreZero).
  torch::Tensor run_stage(int s, Activations& acts);
  // Runs exit head `e` (its stage must have run); returns logits [B, classes].
  torch::Tensor run_exit(int e, Activations& acts);
  // Places a stage output computed elsewhere (split execution) so stage s+1 can run.
  void set_stage_output(int s, Activations& acts, torch::Tensor value) const;

  // ParallelNet (Fig. 5.2): multiplies each named layer's output by a 0/1 vector over its units
  // (dim 1 of [B, C, ...]: conv filters, linear neurons), so a thinned sub-network runs without
  // changing any shape. Replaces the masks set before; an empty map removes them. Errors: an
  // unknown layer, or a mask that is not 1-D F32 of the layer's unit count.
  Status set_unit_masks(const std::map<std::string, torch::Tensor>& masks);

  // ParallelNet's sub-network run physically (Fig. 5.2 trained for real): each named conv or
  // linear layer computes only its `kept` units (sorted, distinct), times `scale`, and every
  // layer reading them uses only the matching slices of its weights, so a step costs the thin
  // network's FLOPs. Gradients reach exactly the slices used. Outputs equal set_unit_masks with
  // `scale` at the kept units (to float rounding); activations of thinned layers are narrower.
  // Replaces masks and selections set before; an empty map removes them. Errors: an unknown or
  // unweighted layer, bad indices, or a layer other than relu, pooling, dropout and flatten
  // between a thinned layer and the next conv or linear.
  struct UnitSelection {
    std::vector<int64_t> kept;
    double scale = 1;
  };
  Status set_unit_selection(const std::map<std::string, UnitSelection>& selection);

  // Module::train/eval; a switch drops the conv layers' packed inference weights, since
  // optimizer steps change the weights behind their version counters (see PackedConv2d).
  void train(bool on = true) override;

  // Inference (autograd off, eval mode, no unit masks or selections) keeps each chain of conv2d,
  // relu and max-pooling layers in oneDNN's blocked layout (see inference_ops.h) and runs a relu
  // in place where it is its input's only reader; stage and exit outputs are always dense. On by
  // default; off, every layer runs on dense tensors (the reference the tests compare with).
  void set_blocked_layout(bool on) { blocked_on_ = on; }
  bool blocked_layout() const { return blocked_on_; }
  // The layers whose outputs stay blocked at inference, in layer order (for tests).
  std::vector<std::string> blocked_layers() const;

  // Training/evaluation forward of every stage and exit: logits of each exit, in exit order.
  std::vector<torch::Tensor> forward_all(const torch::Tensor& x);

  // Executions per stage since construction (or reset), for tests that check early exit
  // really skips later stages.
  const std::vector<int64_t>& stage_runs() const { return stage_runs_; }
  void reset_stage_runs();

 private:
  torch::Tensor run_layer(int idx, Activations& acts);

  model::ModelSpec spec_;
  int num_inputs_ = 0;
  std::vector<torch::nn::AnyModule> modules_;   // per layer; empty for functional layers
  std::vector<PackedConv2d> packed_conv_;       // per layer; used by Conv2d layers only
  std::vector<std::vector<int>> layer_inputs_;  // slot indices
  std::vector<std::vector<int>> stage_layers_;  // layer indices
  std::vector<std::vector<int>> exit_layers_;
  std::vector<int> stage_output_slot_, exit_output_slot_;
  std::vector<int64_t> stage_runs_;
  std::vector<torch::Tensor> unit_mask_;  // per layer, shaped to broadcast; empty: none
  // set_unit_selection, per layer (empty: none): the kept outputs and inputs (undefined: all)
  // as index tensors, and the factor on the outputs.
  struct Slice {
    torch::Tensor out, in;
    double scale = 1;
  };
  std::vector<Slice> slice_;
  // The inference plan (see set_blocked_layout), per layer: its output may stay blocked; a relu
  // may overwrite its input.
  std::vector<char> blocked_out_, relu_in_place_;
  bool blocked_on_ = true;
  void plan_inference();
};
TORCH_MODULE(Graph);

// core::Tensor (F32) <-> torch::Tensor. to_torch copies unless `borrow` is set, in which case
// the torch tensor aliases the core tensor's bytes (the caller keeps them alive).
torch::Tensor to_torch(const core::Tensor& t, bool borrow = false);
core::Tensor from_torch(const torch::Tensor& t);

}  // namespace idn::nn
