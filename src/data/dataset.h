// An in-memory image classification set as plain floats (N x C x H x W, row-major), loaded
// from FashionMNIST's IDX files, and the deterministic ways to cut it: validation split,
// subsets. No LibTorch here; nn/ wraps these buffers in tensors.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "data/idx.h"

namespace idn::data {

struct Dataset {
  std::vector<float> images;  // n x c x h x w; pixels scaled to [0, 1] when loaded
  std::vector<int64_t> labels;
  int64_t n = 0, c = 0, h = 0, w = 0;

  int64_t image_size() const { return c * h * w; }
  std::span<const float> image(int64_t i) const {
    return {images.data() + i * image_size(), static_cast<size_t>(image_size())};
  }
  std::span<float> image_mut(int64_t i) {
    return {images.data() + i * image_size(), static_cast<size_t>(image_size())};
  }
};

enum class Split { kTrain, kTest };

// Where Debian's dataset-fashion-mnist package installs the gzipped IDX files.
std::filesystem::path default_fashion_mnist_dir();
// "T-shirt/top", "Trouser", ..., "Ankle boot", indexed by label.
const std::array<std::string_view, 10>& fashion_mnist_class_names();

// Loads train (60000) or test (10000) images as [N, 1, 28, 28] floats in [0, 1]. A missing
// file names its path and, for the default directory, how to install the package.
Result<Dataset> load_fashion_mnist(const std::filesystem::path& dir, Split split);
// Pairs an images IDX (count, rows, cols) with a labels IDX (count); counts must agree.
Result<Dataset> dataset_from_idx(const IdxArray& images, const IdxArray& labels);

// The samples at `indices`, in that order. Indices must be in [0, n).
Result<Dataset> select(const Dataset& d, std::span<const int64_t> indices);
// The first min(count, n) samples.
Dataset take_first(const Dataset& d, int64_t count);
// `count` distinct samples chosen with `seed`, kept in their original order.
Result<Dataset> take_random(const Dataset& d, int64_t count, uint64_t seed);

struct TrainValidation {
  Dataset train, validation;
};
// A seeded random `validation_count` samples become the validation set, the rest training;
// both keep the original order. Disjoint, and together exactly the input.
Result<TrainValidation> split_train_validation(const Dataset& d, int64_t validation_count,
                                               uint64_t seed);

}  // namespace idn::data
