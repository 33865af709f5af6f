// Datasets as LibTorch tensors for training and evaluation: FashionMNIST from data/ split into
// train / validation / test, raw pixels in [0, 1]; the normalisation a model was trained with
// travels in its package (ModelSpec::preprocess_*), so inputs stay raw everywhere else.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "core/status.h"
#include "core/tensor.h"

namespace idn::motifs {

struct TensorSplit {
  torch::Tensor x;  // [N, C, H, W] float32 in [0, 1]
  torch::Tensor y;  // [N] int64
  int64_t size() const { return y.defined() ? y.size(0) : 0; }
};

struct LabeledData {
  TensorSplit train, val, test;
  std::vector<std::string> class_names;
  std::vector<float> mean, std;  // per channel, of the training split
  uint64_t split_seed = 1;       // DataOptions::seed that chose the validation split
};

struct DataOptions {
  std::filesystem::path dir;  // empty = where dataset-fashion-mnist installs it
  int64_t validation = 5000;  // held out of the 60000 training images
  int64_t limit_train = 0;    // 0 = all; otherwise a seeded random subset (tests, quick runs)
  int64_t limit_test = 0;
  uint64_t seed = 1;
};

Result<LabeledData> load_fashion_mnist_tensors(const DataOptions& opts);

// (x - mean) / std per channel.
torch::Tensor normalize(const torch::Tensor& x, const std::vector<float>& mean,
                        const std::vector<float>& std);

// Standard augmentation (§3.5) of a raw batch via data/: zero-pad by `pad` pixels, random crop
// back to H x W, random horizontal flip; deterministic given seed.
torch::Tensor augment_batch(const torch::Tensor& batch, int pad, uint64_t seed);

// One core::Tensor per sample of x ([N, ...] -> N x [...]), for the engine's batch-1 API.
std::vector<core::Tensor> to_samples(const torch::Tensor& x);
std::vector<int64_t> to_labels(const torch::Tensor& y);

}  // namespace idn::motifs
