// DaiMoN's Distance Embedding for Labels (dissertation §6.1-6.2): an MLP f: Q^m -> R^n, one
// per test label vector x_t, trained on GENERATEDATA perturbations so that
// d(f(x), f(x_t)) ~ e(x, x_t). Saved as an ordinary model package (motif "plain": input
// "labels", fc1 -> relu -> fc2, one exit with the n-dimensional embedding) whose
// operating_point.del records m, C and the input encoding. Not thread-safe per object; LibTorch
// uses its own threads.
#pragma once

#include <filesystem>
#include <functional>
#include <span>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "daimon/labels.h"
#include "model/package.h"
#include "nn/graph.h"

namespace idn::motifs {

// How a label vector enters the MLP: its values scaled to [0, 1] (m inputs), or one-hot
// (m * C inputs: the first layer then adds one column of weights per label).
enum class DelEncoding { kValue, kOneHot };
std::string_view del_encoding_name(DelEncoding e);  // "value" | "one-hot"
Result<DelEncoding> parse_del_encoding(std::string_view s);

struct DelOptions {
  uint32_t classes = 10;
  int64_t n = 256;        // embedding dimension
  int64_t hidden = 1024;  // §6.2
  DelEncoding encoding = DelEncoding::kOneHot;
  int epochs = 20;
  int64_t samples_per_epoch = 4096;  // fresh GENERATEDATA samples each epoch
  int64_t batch = 64;
  int64_t test_samples = 512;  // a fixed held-out set, drawn once
  double lr = 1e-3;            // Adam, β 0.9/0.999
  uint64_t seed = 1;
};

struct DelEpoch {
  int epoch = 0;
  double train_loss = 0, test_loss = 0;  // mean |e - d| over the epoch / the held-out set
  double seconds = 0;
};

// A loaded (or freshly trained) DEL function.
class Del {
 public:
  // Reads a DEL package: InvalidArgument when it is not one (no operating_point.del, shapes
  // that do not match m, C, n).
  static Result<Del> load(const std::filesystem::path& dir);
  static Result<Del> from_package(model::Package package);

  int64_t m() const { return m_; }
  uint32_t classes() const { return classes_; }
  int64_t n() const { return n_; }
  DelEncoding encoding() const { return encoding_; }
  const model::Package& package() const { return package_; }

  // y = f(x) / |f(x)| for each label vector (each of size m, labels < C: InvalidArgument).
  Result<std::vector<std::vector<float>>> embed(const std::vector<std::vector<daimon::Label>>& xs);
  Result<std::vector<float>> embed(std::span<const daimon::Label> x);

 private:
  Del() = default;
  model::Package package_;
  nn::Graph graph_{nullptr};
  int64_t m_ = 0, n_ = 0;
  uint32_t classes_ = 0;
  DelEncoding encoding_ = DelEncoding::kOneHot;
};

// Trains f for `xt` (labels < classes). `progress` gets each epoch. Errors: invalid options,
// labels out of range.
Result<Del> train_del(std::span<const daimon::Label> xt, const DelOptions& options,
                      const std::function<void(const DelEpoch&)>& progress = {});

}  // namespace idn::motifs
