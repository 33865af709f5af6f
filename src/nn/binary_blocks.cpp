#include "nn/binary_blocks.h"

#include <cmath>

namespace idn::nn {
namespace {

torch::Tensor sign_of(const torch::Tensor& x) {
  return torch::where(x >= 0, torch::ones_like(x), -torch::ones_like(x));
}

class BinaryActivationFn : public torch::autograd::Function<BinaryActivationFn> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x) {
    ctx->save_for_backward({x});
    return sign_of(x);
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grad) {
    const auto x = ctx->get_saved_variables()[0];
    return {grad[0] * (x.abs() <= 1).to(grad[0].scalar_type())};
  }
};

class BinarizeWeightsFn : public torch::autograd::Function<BinarizeWeightsFn> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext*, const torch::Tensor& w) {
    return sign_of(w);
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext*,
                                               torch::autograd::tensor_list grad) {
    return {grad[0]};
  }
};

torch::Tensor per_channel(const torch::Tensor& v, int64_t dim) {
  return dim == 4 ? v.view({1, -1, 1, 1}) : v.view({1, -1});
}

}  // namespace

torch::Tensor binary_activation(const torch::Tensor& x) {
  return BinaryActivationFn::apply(x);
}
torch::Tensor binarize_weights(const torch::Tensor& w) {
  return BinarizeWeightsFn::apply(w);
}

BlockNormImpl::BlockNormImpl(int64_t features, double eps, double momentum)
    : eps(eps), momentum(momentum) {
  weight = register_parameter("weight", torch::ones({features}));
  bias = register_parameter("bias", torch::zeros({features}));
  running_mean = register_buffer("running_mean", torch::zeros({features}));
  running_var = register_buffer("running_var", torch::ones({features}));
}

torch::Tensor BlockNormImpl::stddev() const {
  return (running_var + eps).sqrt();
}

torch::Tensor BlockNormImpl::forward(const torch::Tensor& x) {
  if (is_training())
    return torch::batch_norm(x, weight, bias, running_mean, running_var, /*training=*/true,
                             momentum, eps, /*cudnn_enabled=*/false);
  const int64_t d = x.dim();
  auto t = x - per_channel(running_mean, d);
  t = t / per_channel(stddev(), d);
  t = t * per_channel(weight, d);
  return t + per_channel(bias, d);
}

ConvPImpl::ConvPImpl(const ConvPOptions& o) : options(o) {
  // Kaiming-uniform bound as torch's Conv2d, so float and binary variants start alike.
  const double bound = 1.0 / std::sqrt(static_cast<double>(o.in_channels * 9));
  weight = register_parameter(
      "weight", torch::empty({o.out_channels, o.in_channels, 3, 3}).uniform_(-bound, bound));
  bn = register_module("bn", BlockNorm(o.out_channels, o.bn_eps));
}

torch::Tensor ConvPImpl::effective_weight() const {
  return options.binary_weights ? binarize_weights(weight) : weight;
}

torch::Tensor ConvPImpl::pool(const torch::Tensor& x) {
  auto y = torch::conv2d(x, effective_weight(), /*bias=*/{}, /*stride=*/1, /*padding=*/1);
  return torch::max_pool2d(y, /*kernel_size=*/3, /*stride=*/2, /*padding=*/1);
}

torch::Tensor ConvPImpl::forward(const torch::Tensor& x) {
  return binary_activation(bn->forward(pool(x)));
}

void ConvPImpl::clip_weights() {
  if (!options.binary_weights) return;
  torch::NoGradGuard no_grad;
  weight.clamp_(-1, 1);
}

FcImpl::FcImpl(const FcOptions& o) : options(o) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(o.in_features));
  weight = register_parameter(
      "weight", torch::empty({o.out_features, o.in_features}).uniform_(-bound, bound));
  bn = register_module("bn", BlockNorm(o.out_features, o.bn_eps));
}

torch::Tensor FcImpl::effective_weight() const {
  return options.binary_weights ? binarize_weights(weight) : weight;
}

torch::Tensor FcImpl::linear(const torch::Tensor& x) {
  return torch::matmul(x.flatten(1), effective_weight().t());
}

torch::Tensor FcImpl::forward(const torch::Tensor& x) {
  auto y = bn->forward(linear(x));
  return options.activation == Activation::kSign ? binary_activation(y) : y;
}

void FcImpl::clip_weights() {
  if (!options.binary_weights) return;
  torch::NoGradGuard no_grad;
  weight.clamp_(-1, 1);
}

}  // namespace idn::nn
