// DDNN's fused blocks (§4.5.1, Fig. 4.3, as in the reference code's BinaryConvPoolBNBST and
// BinaryLinearBNBST): ConvP = conv 3x3 s1 p1, max-pool 3x3 s2 p1, batch norm, binary activation;
// FC = linear, batch norm, binary activation (or none: class scores). Binary weights are
// sign(W) (W >= 0 -> +1) without scaling; the real W is trained through a straight-through
// estimator (identity gradient; clip_weights() keeps it in [-1, 1], the reference's WeightClip).
// Float variants keep real weights. Modules, like any torch module: one thread at a time.
#pragma once

#include <cstdint>

#include <torch/torch.h>

namespace idn::nn {

// sign(x) (x >= 0 -> +1, so -0 -> +1) forward; backward passes the gradient where |x| <= 1 and
// zeroes it elsewhere (the reference's BST).
torch::Tensor binary_activation(const torch::Tensor& x);
// sign(w) forward, identity backward: the weights' straight-through estimator.
torch::Tensor binarize_weights(const torch::Tensor& w);

enum class Activation { kSign, kNone };

// Batch norm that, in evaluation, computes ((y - mean) / std) * gamma + beta as four separate
// elementwise operations with std = sqrt(running_var + eps): the exact float arithmetic the
// on-device form reproduces. Training uses torch's batch norm (batch statistics, running
// averages with `momentum`).
class BlockNormImpl : public torch::nn::Module {
 public:
  BlockNormImpl(int64_t features, double eps = 1e-5, double momentum = 0.1);
  // x: [N, C] or [N, C, H, W].
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor stddev() const;  // [C]: sqrt(running_var + eps)

  torch::Tensor weight, bias, running_mean, running_var;  // gamma, beta and the statistics
  double eps, momentum;
};
TORCH_MODULE(BlockNorm);

struct ConvPOptions {
  int64_t in_channels = 1, out_channels = 1;
  bool binary_weights = true;
  double bn_eps = 1e-5;
};

// Fig. 4.3's ConvP block. No conv bias: batch norm's shift subsumes it.
class ConvPImpl : public torch::nn::Module {
 public:
  explicit ConvPImpl(const ConvPOptions& options);
  // [N, in, H, W] -> [N, out, (H - 1) / 2 + 1, (W - 1) / 2 + 1] in {-1, +1}.
  torch::Tensor forward(const torch::Tensor& x);
  // Conv and pool only: the integer pre-activation on +-1 or integer-valued inputs.
  torch::Tensor pool(const torch::Tensor& x);
  // The weights the convolution uses (sign(W) for the binary block).
  torch::Tensor effective_weight() const;
  void clip_weights();

  ConvPOptions options;
  torch::Tensor weight;  // [out, in, 3, 3]
  BlockNorm bn{nullptr};
};
TORCH_MODULE(ConvP);

struct FcOptions {
  int64_t in_features = 1, out_features = 1;
  bool binary_weights = true;
  Activation activation = Activation::kSign;  // kNone: batch norm's output (class scores)
  double bn_eps = 1e-5;
};

// Fig. 4.3's FC block. Flattens its input ([N, ...] -> [N, in]). No bias, as ConvP.
class FcImpl : public torch::nn::Module {
 public:
  explicit FcImpl(const FcOptions& options);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor linear(const torch::Tensor& x);  // before batch norm
  torch::Tensor effective_weight() const;
  void clip_weights();

  FcOptions options;
  torch::Tensor weight;  // [out, in]
  BlockNorm bn{nullptr};
};
TORCH_MODULE(Fc);

}  // namespace idn::nn
