// Max pooling for inference that stays fast at every batch size: LibTorch 1.13's CPU
// max_pool2d also computes argmax indices and takes 6-10x longer on batched or larger inputs.
// Results are identical to torch::max_pool2d (floor mode, implicit -inf padding).
#pragma once

#include <cstdint>

#include <torch/torch.h>

namespace idn::nn {

// torch::max_pool2d(x, kernel, stride, padding) for an NCHW tensor; uses strided maxima when
// that is faster (no autograd needed and the input is big enough), torch's kernel otherwise.
torch::Tensor max_pool2d(const torch::Tensor& x, int64_t kernel, int64_t stride, int64_t padding);

// The strided-maxima form alone (tests and benchmarks compare it with torch's). Requires a 4-D
// input, kernel >= 1, stride >= 1, 0 <= padding <= kernel / 2 and a window that fits.
torch::Tensor max_pool2d_strided(const torch::Tensor& x, int64_t kernel, int64_t stride,
                                 int64_t padding);

}  // namespace idn::nn
