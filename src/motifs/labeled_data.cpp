#include "motifs/labeled_data.h"

#include <cstring>
#include <random>

#include "data/augment.h"
#include "data/dataset.h"
#include "data/normalize.h"

namespace idn::motifs {
namespace {

TensorSplit to_tensors(const data::Dataset& d) {
  TensorSplit s;
  s.x = torch::from_blob(const_cast<float*>(d.images.data()), {d.n, d.c, d.h, d.w}, torch::kFloat32)
            .clone();
  s.y = torch::from_blob(const_cast<int64_t*>(d.labels.data()), {d.n}, torch::kLong).clone();
  return s;
}

}  // namespace

Result<LabeledData> load_fashion_mnist_tensors(const DataOptions& o) {
  auto dir = o.dir.empty() ? data::default_fashion_mnist_dir() : o.dir;
  IDN_ASSIGN_OR_RETURN(auto train_all, data::load_fashion_mnist(dir, data::Split::kTrain));
  IDN_ASSIGN_OR_RETURN(auto test, data::load_fashion_mnist(dir, data::Split::kTest));
  if (o.validation < 0 || o.validation >= train_all.n)
    return Status::invalid_argument("validation count must be in [0, " +
                                    std::to_string(train_all.n) + ")");
  IDN_ASSIGN_OR_RETURN(auto split, data::split_train_validation(train_all, o.validation, o.seed));
  if (o.limit_train > 0 && o.limit_train < split.train.n) {
    IDN_ASSIGN_OR_RETURN(split.train, data::take_random(split.train, o.limit_train, o.seed + 1));
  }
  if (o.limit_test > 0 && o.limit_test < test.n) {
    IDN_ASSIGN_OR_RETURN(test, data::take_random(test, o.limit_test, o.seed + 2));
  }
  LabeledData out;
  out.train = to_tensors(split.train);
  out.val = to_tensors(split.validation);
  out.test = to_tensors(test);
  for (auto name : data::fashion_mnist_class_names()) out.class_names.emplace_back(name);
  auto stats = data::compute_channel_stats(split.train);
  out.mean = stats.mean;
  out.std = stats.std;
  out.split_seed = o.seed;
  return out;
}

torch::Tensor normalize(const torch::Tensor& x, const std::vector<float>& mean,
                        const std::vector<float>& std) {
  if (mean.empty()) return x;
  std::vector<int64_t> shape{1, static_cast<int64_t>(mean.size())};
  while (static_cast<int64_t>(shape.size()) < x.dim()) shape.push_back(1);
  auto m = torch::tensor(mean).reshape(shape);
  auto s = torch::tensor(std).reshape(shape);
  return (x - m) / s;
}

torch::Tensor augment_batch(const torch::Tensor& batch, int pad, uint64_t seed) {
  auto src = batch.contiguous();
  const int64_t n = src.size(0), c = src.size(1), h = src.size(2), w = src.size(3);
  auto dst = torch::empty_like(src);
  data::AugmentOptions opts;
  opts.pad = pad;
  opts.hflip = true;
  std::mt19937_64 rng(seed);
  const int64_t per = c * h * w;
  const float* in = src.data_ptr<float>();
  float* out = dst.data_ptr<float>();
  for (int64_t i = 0; i < n; ++i)
    data::augment_image({in + i * per, static_cast<size_t>(per)}, c, h, w, opts, rng,
                        {out + i * per, static_cast<size_t>(per)});
  return dst;
}

std::vector<core::Tensor> to_samples(const torch::Tensor& x) {
  auto c = x.contiguous().to(torch::kFloat32);
  std::vector<int64_t> shape(c.sizes().begin() + 1, c.sizes().end());
  const int64_t per = c.numel() / std::max<int64_t>(c.size(0), 1);
  std::vector<core::Tensor> out;
  out.reserve(c.size(0));
  const float* p = c.data_ptr<float>();
  for (int64_t i = 0; i < c.size(0); ++i)
    out.push_back(core::Tensor::f32(shape, {p + i * per, static_cast<size_t>(per)}));
  return out;
}

std::vector<int64_t> to_labels(const torch::Tensor& y) {
  auto c = y.contiguous().to(torch::kLong);
  return {c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel()};
}

}  // namespace idn::motifs
