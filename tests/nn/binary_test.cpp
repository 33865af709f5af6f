#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "nn/binary_blocks.h"
#include "nn/binary_export.h"

namespace idn::nn {
namespace {

using ::testing::HasSubstr;

torch::Tensor t1(std::vector<float> v) {
  return torch::tensor(v);
}

void expect_equal(const torch::Tensor& a, const torch::Tensor& b) {
  EXPECT_TRUE(torch::equal(a, b)) << a << "\nvs\n" << b;
}

// Batch norm in eval with eps 0, so std = sqrt(var) is exact for square variances.
void set_bn(BlockNormImpl& bn, std::vector<float> mean, std::vector<float> var,
            std::vector<float> gamma, std::vector<float> beta) {
  torch::NoGradGuard g;
  bn.running_mean.copy_(t1(mean));
  bn.running_var.copy_(t1(var));
  bn.weight.copy_(t1(gamma));
  bn.bias.copy_(t1(beta));
}

TEST(BinaryBlocksTest, ActivationIsSignForwardAndClippedIdentityBackward) {
  auto x = t1({-2, -1, -0.5f, -0.0f, 0, 0.5f, 1, 2}).requires_grad_();
  auto y = binary_activation(x);
  expect_equal(y, t1({-1, -1, -1, 1, 1, 1, 1, 1}));  // -0 >= 0: +1
  y.backward(t1({1, 2, 3, 4, 5, 6, 7, 8}));
  expect_equal(x.grad(), t1({0, 2, 3, 4, 5, 6, 7, 0}));  // passes where |x| <= 1
}

TEST(BinaryBlocksTest, WeightBinarisationPassesGradientsStraightThrough) {
  auto w = t1({-3, -0.1f, 0, 0.2f, 5}).requires_grad_();
  auto b = binarize_weights(w);
  expect_equal(b, t1({-1, -1, 1, 1, 1}));
  b.backward(t1({1, 2, 3, 4, 5}));
  expect_equal(w.grad(), t1({1, 2, 3, 4, 5}));  // no |w| <= 1 mask: clip_weights bounds w
}

TEST(BinaryBlocksTest, FcForwardAndBackwardByHand) {
  Fc fc(FcOptions{3, 2, true, Activation::kSign, /*bn_eps=*/0});
  {
    torch::NoGradGuard g;
    fc->weight.copy_(torch::tensor({{0.3f, -0.2f, 0.0f}, {-0.5f, 0.7f, -0.1f}}));  // +-+, -+-
  }
  set_bn(*fc->bn, {-1, 1}, {4, 4}, {1, -2}, {0.5f, 0});
  fc->eval();
  auto x = torch::tensor({{1.0f, 2.0f, -1.0f}}).requires_grad_();
  // y = (1 - 2 - 1, -1 + 2 + 1) = (-2, 2); BN: ((-2 + 1) / 2) * 1 + 0.5 = 0, ((2 - 1) / 2) * -2 =
  // -1.
  expect_equal(fc->linear(x).detach(), torch::tensor({{-2.0f, 2.0f}}));
  auto out = fc->forward(x);
  expect_equal(out.detach(), torch::tensor({{1.0f, -1.0f}}));
  out.sum().backward();
  // Both BN outputs are within [-1, 1]; dBN/dy = gamma / std = (0.5, -1).
  // dx = 0.5 * (+1, -1, +1) - 1 * (-1, +1, -1); dW = (0.5, -1)^T x.
  expect_equal(x.grad(), torch::tensor({{1.5f, -1.5f, 1.5f}}));
  expect_equal(fc->weight.grad(), torch::tensor({{0.5f, 1.0f, -0.5f}, {-1.0f, -2.0f, 1.0f}}));

  Fc scores(FcOptions{3, 2, true, Activation::kNone, 0});
  {
    torch::NoGradGuard g;
    scores->weight.copy_(fc->weight);
  }
  set_bn(*scores->bn, {-1, 1}, {4, 4}, {1, -2}, {0.5f, 0});
  scores->eval();
  expect_equal(scores->forward(x).detach(), torch::tensor({{0.0f, -1.0f}}));
}

TEST(BinaryBlocksTest, ConvPForwardAndBackwardByHand) {
  // A 2x2 input: conv 3x3 p1 gives 2x2, max-pool 3x3 s2 p1 one value over all four.
  ConvP block(ConvPOptions{1, 1, true, /*bn_eps=*/0});
  {
    torch::NoGradGuard g;
    block->weight.copy_(
        torch::tensor({{0.4f, -0.3f, 0.9f}, {-0.2f, 0.1f, 0.5f}, {0.7f, 0.6f, -0.8f}})
            .view({1, 1, 3, 3}));
  }
  set_bn(*block->bn, {9}, {4}, {3}, {-1});
  block->eval();
  auto x = torch::tensor({{1.0f, 2.0f}, {3.0f, -4.0f}}).view({1, 1, 2, 2}).requires_grad_();
  // sign(W) = [+ - +; - + +; + + -]. conv(0,0) = 1 + 2 + 3 + 4 = 10, conv(0,1) = -1 + 2 + 3 - 4
  // = 0, conv(1,0) = -1 + 2 + 3 - 4 = 0, conv(1,1) = 1 - 2 - 3 - 4 = -8; the pool takes 10.
  expect_equal(block->pool(x).detach(), torch::full({1, 1, 1, 1}, 10.0f));
  auto out = block->forward(x);  // ((10 - 9) / 2) * 3 - 1 = 0.5 -> +1
  expect_equal(out.detach(), torch::ones({1, 1, 1, 1}));
  out.sum().backward();
  // Gradient 3 / 2 = 1.5 reaches conv(0,0) only: dx[a][b] = 1.5 sign(W)[a + 1][b + 1],
  // dW[ky][kx] = 1.5 x[ky - 1][kx - 1] where that is inside the input.
  expect_equal(x.grad(), torch::tensor({{1.5f, 1.5f}, {1.5f, -1.5f}}).view({1, 1, 2, 2}));
  expect_equal(block->weight.grad(),
               torch::tensor({{0.0f, 0.0f, 0.0f}, {0.0f, 1.5f, 3.0f}, {0.0f, 4.5f, -6.0f}})
                   .view({1, 1, 3, 3}));

  // Beta +1: BN gives 2.5, outside [-1, 1]: no gradient at all.
  set_bn(*block->bn, {9}, {4}, {3}, {1});
  x.mutable_grad().zero_();
  block->weight.mutable_grad().zero_();
  block->forward(x).sum().backward();
  expect_equal(x.grad(), torch::zeros({1, 1, 2, 2}));
  expect_equal(block->weight.grad(), torch::zeros({1, 1, 3, 3}));
}

TEST(BinaryBlocksTest, FloatVariantsKeepRealWeightsAndClipOnlyBinaryOnes) {
  Fc real(FcOptions{3, 1, false, Activation::kNone, 0});
  {
    torch::NoGradGuard g;
    real->weight.copy_(torch::tensor({{0.5f, -0.25f, 2.0f}}));
  }
  auto x = torch::tensor({{1.0f, 2.0f, -1.0f}}).requires_grad_();
  expect_equal(real->linear(x).detach(), torch::tensor({{-2.0f}}));  // 0.5 - 0.5 - 2
  real->linear(x).sum().backward();
  expect_equal(x.grad(), torch::tensor({{0.5f, -0.25f, 2.0f}}));
  real->clip_weights();
  expect_equal(real->weight.detach(), torch::tensor({{0.5f, -0.25f, 2.0f}}));

  ConvP binary(ConvPOptions{1, 1});
  {
    torch::NoGradGuard g;
    binary->weight.fill_(3.0f);
  }
  binary->clip_weights();
  expect_equal(binary->weight.detach(), torch::ones({1, 1, 3, 3}));
  ConvP real_conv(ConvPOptions{1, 1, false});
  {
    torch::NoGradGuard g;
    real_conv->weight.fill_(0.5f);
  }
  expect_equal(real_conv->pool(torch::ones({1, 1, 1, 1})).detach(),
               torch::full({1, 1, 1, 1}, 0.5f));
}

TEST(BinaryBlocksTest, TrainingModeUsesBatchStatisticsAndUpdatesRunningOnes) {
  Fc fc(FcOptions{2, 1, true, Activation::kNone, 0});
  {
    torch::NoGradGuard g;
    fc->weight.copy_(torch::tensor({{1.0f, 1.0f}}));
  }
  fc->train();
  // y = (2, -2, 4, -4): mean 0, biased var 10 -> outputs y / sqrt(10).
  auto out =
      fc->forward(torch::tensor({{1.0f, 1.0f}, {-1.0f, -1.0f}, {2.0f, 2.0f}, {-2.0f, -2.0f}}));
  EXPECT_TRUE(
      torch::allclose(out, torch::tensor({{2.0f}, {-2.0f}, {4.0f}, {-4.0f}}) / std::sqrt(10.0f)));
  EXPECT_FLOAT_EQ(fc->bn->running_var.item<float>(), 0.9f + 0.1f * 40.0f / 3.0f);  // unbiased 40/3
}

// Random eval-mode batch norms with the edge cases the threshold folding must get right:
// integer means (outputs of exactly +-0), negative and zero scales, -0 shifts.
void randomise_bn(BlockNormImpl& bn, int64_t range, std::mt19937& rng) {
  const int64_t n = bn.weight.size(0);
  std::uniform_real_distribution<float> u(-1, 1);
  std::uniform_int_distribution<int> pick(0, 5);
  std::vector<float> mean, var, gamma, beta;
  for (int64_t i = 0; i < n; ++i) {
    mean.push_back(pick(rng) < 3 ? std::round(u(rng) * range * 0.3f) : u(rng) * range * 0.3f);
    var.push_back(0.1f + std::abs(u(rng)) * range);
    const int g = pick(rng);
    gamma.push_back(g == 0 ? 0.0f : (g < 3 ? -1.0f : 1.0f) * (0.1f + std::abs(u(rng))));
    const int b = pick(rng);
    beta.push_back(b == 0 ? 0.0f : (b == 1 ? -0.0f : u(rng)));
  }
  set_bn(bn, mean, var, gamma, beta);
}

std::vector<float> as_pm1(const ondevice::LayerOutput& out) {
  std::vector<float> v;
  for (int64_t i = 0; i < out.shape.size(); ++i)
    v.push_back((out.bits[i / 64] >> (i % 64)) & 1 ? 1.0f : -1.0f);
  return v;
}

void expect_bitwise(const torch::Tensor& t, const std::vector<float>& v, const std::string& what) {
  const auto c = t.detach().contiguous().flatten();
  ASSERT_EQ(c.numel(), static_cast<int64_t>(v.size())) << what;
  ASSERT_EQ(std::memcmp(c.data_ptr<float>(), v.data(), v.size() * 4), 0) << what;
}

TEST(BinaryExportTest, PackedSectionEqualsTheBlocksInEvalModeBitForBit) {
  // The dissertation's device (ConvP on a 32x32 RGB view, FC to 3 scores) and a deeper one.
  std::mt19937 rng(5);
  for (int variant = 0; variant < 2; ++variant) {
    torch::manual_seed(variant);
    std::vector<SectionBlock> blocks;
    if (variant == 0) {
      blocks = {ConvP(ConvPOptions{3, 4}), Fc(FcOptions{4 * 16 * 16, 3, true, Activation::kNone})};
    } else {
      blocks = {ConvP(ConvPOptions{3, 5}), ConvP(ConvPOptions{5, 6}), Fc(FcOptions{6 * 8 * 8, 70}),
                Fc(FcOptions{70, 3, true, Activation::kNone})};
    }
    for (size_t i = 0; i < blocks.size(); ++i) {
      std::visit(
          [&](auto& m) {
            const int64_t range = m->weight[0].numel() * (i == 0 ? 255 : 1);
            randomise_bn(*m->bn, range / 8 + 1, rng);
            m->eval();
          },
          blocks[i]);
    }
    auto section = export_section(blocks, ondevice::InputKind::kPixels, {3, 32, 32});
    ASSERT_TRUE(section.ok()) << section.status().to_string();
    std::uniform_int_distribution<int> pixel(0, 255);
    for (int sample = 0; sample < 8; ++sample) {
      std::vector<uint8_t> px(3 * 32 * 32);
      for (auto& p : px)
        p = sample == 0 ? 0 : (sample == 1 ? 255 : static_cast<uint8_t>(pixel(rng)));
      auto out = section->run_pixels(px);
      ASSERT_TRUE(out.ok()) << out.status().to_string();
      torch::NoGradGuard g;
      auto x = torch::tensor(std::vector<float>(px.begin(), px.end())).view({1, 3, 32, 32});
      for (size_t i = 0; i < blocks.size(); ++i) {
        x = std::visit([&](auto& m) { return m->forward(x); }, blocks[i]);
        const auto& o = (*out)[i];
        expect_bitwise(x, o.scores.empty() ? as_pm1(o) : o.scores,
                       "variant " + std::to_string(variant) + " sample " + std::to_string(sample) +
                           " block " + std::to_string(i));
      }
    }
  }
}

TEST(BinaryExportTest, RefusesFloatWeightsAndMismatchedShapes) {
  auto st =
      export_section({ConvP(ConvPOptions{3, 4, false})}, ondevice::InputKind::kPixels, {3, 8, 8});
  EXPECT_THAT(st.status().message(), HasSubstr("float weights"));
  st = export_section({ConvP(ConvPOptions{1, 4})}, ondevice::InputKind::kPixels, {3, 8, 8});
  EXPECT_THAT(st.status().message(), HasSubstr("reads 1 channels"));
  st = export_section({ConvP(ConvPOptions{3, 4}), Fc(FcOptions{100, 3})},
                      ondevice::InputKind::kPixels, {3, 8, 8});
  EXPECT_THAT(st.status().message(), HasSubstr("its input has 64"));
  st = export_section({Fc(FcOptions{192, 3, true, Activation::kNone}), Fc(FcOptions{3, 2})},
                      ondevice::InputKind::kPixels, {3, 8, 8});
  EXPECT_THAT(st.status().message(), HasSubstr("must be the last block"));
}

}  // namespace
}  // namespace idn::nn
