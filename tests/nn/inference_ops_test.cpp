#include "nn/inference_ops.h"

#include <gtest/gtest.h>

#include <limits>
#include <tuple>
#include <vector>

namespace idn::nn {
namespace {

// Same shape, same values, NaN exactly where torch has NaN.
void expect_same(const torch::Tensor& got, const torch::Tensor& want) {
  ASSERT_EQ(got.sizes(), want.sizes());
  EXPECT_TRUE(torch::equal(torch::isnan(got), torch::isnan(want)));
  EXPECT_TRUE(torch::equal(torch::nan_to_num(got, 0.0), torch::nan_to_num(want, 0.0)));
}

TEST(InferenceOpsTest, StridedMaximaEqualTorchMaxPoolForEveryWindowShape) {
  torch::manual_seed(7);
  // {N, C, H, W, kernel, stride, padding}: odd sizes (floor mode drops the tail), overlapping
  // and gapped windows, padding up to kernel / 2, batches.
  const std::vector<std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t>>
      cases = {{1, 20, 24, 24, 2, 2, 0}, {1, 20, 25, 23, 2, 2, 0}, {3, 4, 28, 28, 3, 2, 1},
               {2, 5, 9, 7, 3, 2, 1},    {1, 1, 5, 5, 5, 1, 2},    {2, 3, 11, 13, 2, 3, 1},
               {1, 2, 7, 7, 1, 1, 0},    {4, 8, 6, 10, 4, 4, 2}};
  for (const auto& [n, c, h, w, k, s, p] : cases) {
    SCOPED_TRACE(testing::Message()
                 << n << "x" << c << "x" << h << "x" << w << " k" << k << " s" << s << " p" << p);
    torch::NoGradGuard ng;
    auto x = torch::randn({n, c, h, w});
    expect_same(max_pool2d_strided(x, k, s, p), torch::max_pool2d(x, k, s, p));
    expect_same(max_pool2d(x, k, s, p), torch::max_pool2d(x, k, s, p));
  }
}

TEST(InferenceOpsTest, NegativeInfinityAndNanPoolAsTorchDoes) {
  torch::NoGradGuard ng;
  auto x = torch::randn({2, 3, 8, 8});
  x.index_put_({0, 0, 0, 0}, -std::numeric_limits<float>::infinity());  // a padded corner
  x.index_put_({0, 1, 3, 3}, std::numeric_limits<float>::quiet_NaN());
  x.index_put_({1, 2}, -std::numeric_limits<float>::infinity());  // a whole plane
  expect_same(max_pool2d_strided(x, 3, 2, 1), torch::max_pool2d(x, 3, 2, 1));
  expect_same(max_pool2d_strided(x, 2, 2, 0), torch::max_pool2d(x, 2, 2, 0));
}

TEST(InferenceOpsTest, TrainingKeepsTorchsGradientOfOneWinnerPerWindow) {
  // All-equal input: every window is a tie. torch's max_pool2d sends each window's gradient to
  // one element; strided maxima would spread it over the whole window. Training must not change.
  auto x = torch::zeros({8, 32, 28, 28}, torch::requires_grad());
  auto y = max_pool2d(x, 3, 2, 1);
  ASSERT_TRUE(y.requires_grad());
  y.sum().backward();
  EXPECT_LE((x.grad() != 0).sum().item<int64_t>(), y.numel());
  EXPECT_DOUBLE_EQ(x.grad().sum().item<double>(), double(y.numel()));
}

TEST(InferenceOpsTest, RejectsWhatTorchWouldReject) {
  torch::NoGradGuard ng;
  auto x = torch::randn({1, 1, 4, 4});
  EXPECT_THROW(max_pool2d_strided(x, 2, 2, 2), c10::Error);  // padding > kernel / 2
  EXPECT_THROW(max_pool2d_strided(x, 5, 1, 0), c10::Error);  // window larger than the input
  EXPECT_THROW(max_pool2d_strided(torch::randn({4, 4}), 2, 2, 0), c10::Error);
  EXPECT_THROW(max_pool2d(x, 2, 2, 2), c10::Error);  // falls back to torch, which refuses
}

TEST(InferenceOpsTest, SmallBatchLinearMatchesTorchUpToRounding) {
  torch::manual_seed(11);
  for (auto [batch, in, out] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{
           {1, 800, 500}, {2, 720, 10}, {5, 800, 500}, {8, 300, 300}, {32, 64, 10}}) {
    SCOPED_TRACE(testing::Message() << batch << "x" << in << " -> " << out);
    auto w = torch::randn({out, in}), b = torch::randn({out}), x = torch::randn({batch, in});
    torch::NoGradGuard ng;
    auto want = torch::linear(x, w, b);
    auto got = linear(x, w, b);
    ASSERT_EQ(got.sizes(), want.sizes());
    EXPECT_TRUE(torch::allclose(got, want, /*rtol=*/1e-4, /*atol=*/1e-4));
    EXPECT_TRUE(torch::allclose(linear(x, w, torch::Tensor()), torch::linear(x, w), 1e-4, 1e-4));
  }
}

TEST(InferenceOpsTest, TrainingLinearIsExactlyTorchs) {
  // With autograd on, the layer must be torch's own op, bit for bit (a GEMV sums in another
  // order and would differ in the last bits), and carry its gradient.
  torch::manual_seed(12);
  auto w = torch::randn({500, 800}, torch::requires_grad()), b = torch::randn({500});
  auto x = torch::randn({1, 800});
  auto y = linear(x, w, b);
  ASSERT_TRUE(y.requires_grad());
  EXPECT_TRUE(torch::equal(y, torch::linear(x, w, b)));
}

TEST(InferenceOpsTest, PackedConvMatchesTheLayerAndFollowsWeightChanges) {
  torch::manual_seed(13);
  torch::nn::Conv2d conv(torch::nn::Conv2dOptions(8, 16, 5).stride(1).padding(2));
  PackedConv2d packed;
  auto x = torch::randn({2, 8, 14, 14});
  {
    torch::NoGradGuard ng;
    EXPECT_TRUE(torch::allclose(packed.forward(*conv, x), conv->forward(x), 1e-5, 1e-5));
    // An in-place update (an optimizer step, load_weights) must not leave stale packed weights.
    conv->weight.mul_(-2.0);
    conv->bias.add_(1.0);
    EXPECT_TRUE(torch::allclose(packed.forward(*conv, x), conv->forward(x), 1e-5, 1e-5));
    // So must a whole new tensor.
    conv->weight.set_data(torch::randn({16, 8, 5, 5}));
    EXPECT_TRUE(torch::allclose(packed.forward(*conv, x), conv->forward(x), 1e-5, 1e-5));
  }
  // With autograd on it is the layer's own forward, gradient included.
  auto y = packed.forward(*conv, x);
  ASSERT_TRUE(y.requires_grad());
  EXPECT_TRUE(torch::equal(y, conv->forward(x)));
}

TEST(InferenceOpsTest, DenormalsAreZeroWhileTheGuardLives) {
  const auto x = torch::full({64}, 1e-40f);  // denormal
  ASSERT_GT((x * 4.0f).max().item<float>(), 0.0f);
  {
    DenormalsAreZero daz;
    EXPECT_EQ((x * 4.0f).max().item<float>(), 0.0f);   // DAZ: the input reads as zero
    EXPECT_EQ((x * 1e30f).max().item<float>(), 0.0f);  // not 1e-10
    EXPECT_EQ((torch::full({64}, 1e-30f) * 1e-10f).max().item<float>(), 0.0f);  // FTZ
    { DenormalsAreZero nested; }
    EXPECT_EQ((x * 4.0f).max().item<float>(), 0.0f);  // the nested guard restored "on"
  }
  EXPECT_GT((x * 4.0f).max().item<float>(), 0.0f);  // and this one "off"
}

}  // namespace
}  // namespace idn::nn
