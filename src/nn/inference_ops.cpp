#include "nn/inference_ops.h"

#include <limits>
#include <vector>

#include <ATen/Context.h>

namespace idn::nn {
namespace {

// Max over each window of `kernel` elements, `stride` apart, along `dim`.
torch::Tensor pool_along(const torch::Tensor& x, int64_t dim, int64_t kernel, int64_t stride) {
  const int64_t out = (x.size(dim) - kernel) / stride + 1;
  const int64_t span = (out - 1) * stride + 1;  // first to last window start, inclusive
  torch::Tensor y = x.slice(dim, 0, span, stride);
  for (int64_t j = 1; j < kernel; ++j) y = torch::maximum(y, x.slice(dim, j, j + span, stride));
  return y;
}

// Measured with `idn bench`-style medians on a 2-vCPU VM (LibTorch 1.13, one thread): strided
// maxima win from about 8k elements without padding (1x20x24x24: 7.6 vs 13.1 us) and 16k with
// it (1x32x28x28, k3 s2 p1: 35 vs 84 us; 1x64x14x14 loses, 29 vs 23 us); at batch 8 they win
// 6x (8x32x28x28: 221 vs 1362 us). Below that, padding and per-op overhead dominate.
bool strided_pays(const torch::Tensor& x, int64_t padding) {
  return x.numel() >= (padding > 0 ? 16384 : 8192);
}

// Measured like the pooling sizes above (one thread, medians): a 1x800 -> 500 layer 75.8 us as
// GEMM vs 14.8 us as GEMV; batch 4: 145 vs 55 us; batch 8: 187 vs 112 us; batch 16: 147 vs
// 231 us. Small layers (720 -> 10) win only up to batch 2 (4.2 vs 2.6 us; batch 4: 4.1 vs 5.0).
bool rows_pay(int64_t batch, const torch::Tensor& weight) {
  return batch <= 2 || (batch <= 8 && weight.numel() >= 65536);
}

}  // namespace

torch::Tensor max_pool2d_strided(const torch::Tensor& x, int64_t kernel, int64_t stride,
                                 int64_t padding) {
  TORCH_CHECK(x.dim() == 4, "max_pool2d_strided: expected NCHW, got ", x.dim(), " dims");
  TORCH_CHECK(kernel >= 1 && stride >= 1 && padding >= 0 && padding <= kernel / 2,
              "max_pool2d_strided: bad kernel/stride/padding ", kernel, "/", stride, "/", padding);
  torch::Tensor xp = x;
  if (padding > 0) {
    xp = torch::constant_pad_nd(x, {padding, padding, padding, padding},
                                -std::numeric_limits<double>::infinity());
  }
  TORCH_CHECK(xp.size(2) >= kernel && xp.size(3) >= kernel,
              "max_pool2d_strided: the window does not fit the input");
  return pool_along(pool_along(xp, 3, kernel, stride), 2, kernel, stride);
}

torch::Tensor max_pool2d(const torch::Tensor& x, int64_t kernel, int64_t stride, int64_t padding) {
  const bool eligible = !torch::GradMode::is_enabled() && x.dim() == 4 && x.is_floating_point() &&
                        kernel >= 1 && stride >= 1 && padding >= 0 && padding <= kernel / 2 &&
                        x.size(2) + 2 * padding >= kernel && x.size(3) + 2 * padding >= kernel &&
                        strided_pays(x, padding);
  if (eligible) return max_pool2d_strided(x, kernel, stride, padding);
  return torch::max_pool2d(x, kernel, stride, padding);
}

torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& weight,
                     const torch::Tensor& bias) {
  const bool eligible = !torch::GradMode::is_enabled() && x.dim() == 2 && weight.dim() == 2 &&
                        x.size(0) >= 1 && x.size(1) == weight.size(1) &&
                        x.scalar_type() == weight.scalar_type() && rows_pay(x.size(0), weight);
  if (!eligible) return torch::linear(x, weight, bias);
  torch::Tensor y = torch::empty({x.size(0), weight.size(0)}, x.options());
  for (int64_t r = 0; r < x.size(0); ++r) {
    torch::Tensor row = y[r];
    if (bias.defined())
      torch::addmv_out(row, bias, weight, x[r]);
    else
      torch::mv_out(row, weight, x[r]);
  }
  return y;
}

bool PackedConv2d::blocked_layout_eligible(const torch::nn::Conv2dImpl& conv) {
  const auto& o = conv.options;
  return !torch::GradMode::is_enabled() && at::hasMKLDNN() &&
         conv.weight.scalar_type() == torch::kFloat && !conv.weight.is_inference() &&
         o.groups() == 1 && c10::get_if<torch::ExpandingArray<2>>(&o.padding()) &&
         c10::holds_alternative<torch::enumtype::kZeros>(o.padding_mode());
}

torch::Tensor PackedConv2d::forward(torch::nn::Conv2dImpl& conv, const torch::Tensor& x,
                                    bool blocked_out) {
  const torch::Tensor& w = conv.weight;
  const auto& o = conv.options;
  const bool eligible =
      blocked_layout_eligible(conv) && x.dim() == 4 && x.scalar_type() == torch::kFloat;
  if (!eligible) return conv.forward(x.is_mkldnn() ? x.to_dense() : x);
  const auto* padding = c10::get_if<torch::ExpandingArray<2>>(&o.padding());
  const std::vector<int64_t> pad((*padding)->begin(), (*padding)->end()),
      str(o.stride()->begin(), o.stride()->end()), dil(o.dilation()->begin(), o.dilation()->end());
  if (!packed_.defined() || source_ != w.data_ptr() || version_ != w._version()) {
    packed_ = at::mkldnn_reorder_conv2d_weight(w.contiguous().to_mkldnn(), pad, str, dil, 1);
    source_ = w.data_ptr();
    version_ = w._version();
  }
  const auto& b = conv.bias;
  // A blocked output needs a blocked input (oneDNN answers in its input's layout).
  torch::Tensor in = x.is_mkldnn() ? x : blocked_out ? x.contiguous().to_mkldnn() : x.contiguous();
  torch::Tensor y = at::mkldnn_convolution(
      in, packed_, b.defined() ? c10::optional<torch::Tensor>(b) : c10::nullopt, pad, str, dil, 1);
  return y.is_mkldnn() && !blocked_out ? y.to_dense() : y;
}

torch::Tensor relu_inference(const torch::Tensor& x, bool in_place, bool dense_out) {
  torch::Tensor y = x;
  if (in_place)
    y.relu_();
  else
    y = torch::relu(x);
  return dense_out && y.is_mkldnn() ? y.to_dense() : y;
}

torch::Tensor max_pool2d_inference(const torch::Tensor& x, int64_t kernel, int64_t stride,
                                   int64_t padding, bool dense_out) {
  if (!x.is_mkldnn()) return max_pool2d(x, kernel, stride, padding);
  torch::Tensor y = torch::max_pool2d(x, kernel, stride, padding);
  return dense_out ? y.to_dense() : y;
}

}  // namespace idn::nn
