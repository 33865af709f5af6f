// Inference forms of three LibTorch 1.13 CPU ops that are slow at the small batches IDN serves:
// max_pool2d (also computes argmax indices: 2-6x slower), linear at batch 1-8 (OpenBLAS 0.3.21
// runs it as a GEMM that packs the weights on every call: up to 5x slower than GEMV) and conv2d
// (reorders its weights for oneDNN on every call), and conv-relu-pool chains kept in oneDNN's
// blocked layout between layers. With autograd on (training) all are exactly torch's.
#pragma once

#include <cstdint>

#include <torch/torch.h>

#include "core/denormals.h"

namespace idn::nn {

// torch::max_pool2d(x, kernel, stride, padding) for an NCHW tensor; uses strided maxima when
// that is faster (no autograd needed and the input is big enough), torch's kernel otherwise.
torch::Tensor max_pool2d(const torch::Tensor& x, int64_t kernel, int64_t stride, int64_t padding);

// torch::linear(x, weight, bias) for a [batch, in] input; small batches without autograd run
// as one matrix-vector product per row (same values up to float rounding, ~1e-5 relative).
torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& weight,
                     const torch::Tensor& bias);

// A Conv2d layer's weights reordered once into oneDNN's blocked layout, for inference: LibTorch
// 1.13 reorders them on every call (~15-20% of a batch-1 convolution here). Repacks when the
// weights' storage or version counter changes (in-place ops, load_weights) and after reset().
// torch::optim::SGD updates through Tensor::data(), which has a version counter of its own, so
// its steps are invisible here: Graph resets its packs whenever it switches between training and
// evaluation. One per layer; not thread-safe.
class PackedConv2d {
 public:
  // conv(x), with the layer's own stride, padding and dilation: the packed form with autograd
  // off and oneDNN available, conv->forward(x) otherwise. Results equal torch's oneDNN
  // convolution's. `x` may be dense or in oneDNN's blocked layout (an MKLDNN tensor, see
  // blocked_layout_eligible); with `blocked_out` the result stays blocked, else it is dense.
  torch::Tensor forward(torch::nn::Conv2dImpl& conv, const torch::Tensor& x,
                        bool blocked_out = false);
  // Whether forward() can take and give blocked tensors for this layer now (autograd off,
  // oneDNN present, float weights, one group, zero padding).
  static bool blocked_layout_eligible(const torch::nn::Conv2dImpl& conv);
  // Forgets the packed weights; the next forward packs the current ones.
  void reset() { packed_ = torch::Tensor(); }

 private:
  torch::Tensor packed_;
  const void* source_ = nullptr;  // the weight storage packed_ was made from
  int64_t version_ = -1;
};

// Inference in oneDNN's blocked layout: a chain of conv2d, relu and max-pooling layers can keep
// its activations as MKLDNN tensors (channels blocked by 8 or 16, padded), converted once at
// the chain's start and end. A dense chain reorders every convolution's input and output, and
// max pooling runs as strided maxima; blocked, oneDNN pools directly. On the ParallelNet
// AlexNet-style genesis (one thread, batch 32) its three poolings took 2.9 ms a batch dense and
// 0.3 ms blocked, its convolutions 5-50% less.
// relu(x) of a dense or blocked tensor, in place when `in_place` (the caller owns x's only
// use); the result keeps x's layout unless `dense_out`.
torch::Tensor relu_inference(const torch::Tensor& x, bool in_place, bool dense_out);
// max_pool2d of a blocked tensor by oneDNN (same values as torch's for finite inputs); of a
// dense one, nn::max_pool2d. The result keeps x's layout unless `dense_out`.
torch::Tensor max_pool2d_inference(const torch::Tensor& x, int64_t kernel, int64_t stride,
                                   int64_t padding, bool dense_out);

// Denormal floats flushed to zero on this thread while it lives (core/denormals.h).
using DenormalsAreZero = core::DenormalsAreZero;

// The strided-maxima form alone (tests and benchmarks compare it with torch's). Requires a 4-D
// input, kernel >= 1, stride >= 1, 0 <= padding <= kernel / 2 and a window that fits.
torch::Tensor max_pool2d_strided(const torch::Tensor& x, int64_t kernel, int64_t stride,
                                 int64_t padding);

}  // namespace idn::nn
