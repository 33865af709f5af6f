#include "data/dataset.h"

#include <algorithm>
#include <string>

#include "data/sampling.h"

namespace idn::data {

std::filesystem::path default_fashion_mnist_dir() {
  return "/usr/share/datasets/fashion-mnist";
}

const std::array<std::string_view, 10>& fashion_mnist_class_names() {
  static const std::array<std::string_view, 10> k = {
      "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
      "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return k;
}

Result<Dataset> dataset_from_idx(const IdxArray& images, const IdxArray& labels) {
  if (images.dims.size() != 3)
    return Status::invalid_argument("images IDX has " + std::to_string(images.dims.size()) +
                                    " dims; expected 3 (count, rows, cols)");
  if (labels.dims.size() != 1)
    return Status::invalid_argument("labels IDX has " + std::to_string(labels.dims.size()) +
                                    " dims; expected 1 (count)");
  if (images.dims[0] != labels.dims[0])
    return Status::corruption("images file has " + std::to_string(images.dims[0]) +
                              " images but labels file has " + std::to_string(labels.dims[0]) +
                              " labels");
  Dataset d;
  d.n = images.dims[0];
  d.c = 1;
  d.h = images.dims[1];
  d.w = images.dims[2];
  d.images.resize(images.data.size());
  std::transform(images.data.begin(), images.data.end(), d.images.begin(),
                 [](uint8_t v) { return static_cast<float>(v) / 255.0f; });
  d.labels.assign(labels.data.begin(), labels.data.end());
  return d;
}

Result<Dataset> load_fashion_mnist(const std::filesystem::path& dir, Split split) {
  const bool train = split == Split::kTrain;
  const std::filesystem::path images_path =
      dir / (train ? "train-images-idx3-ubyte.gz" : "t10k-images-idx3-ubyte.gz");
  const std::filesystem::path labels_path =
      dir / (train ? "train-labels-idx1-ubyte.gz" : "t10k-labels-idx1-ubyte.gz");
  auto hint = [&](const Status& st) {
    if (st.code() == Code::kNotFound && dir == default_fashion_mnist_dir())
      return Status(st.code(), st.message() +
                                   " (FashionMNIST is not installed; run: apt-get install "
                                   "dataset-fashion-mnist)");
    return st;
  };
  auto images = read_idx(images_path, kIdxImagesMagic);
  if (!images.ok()) return hint(images.status());
  auto labels = read_idx(labels_path, kIdxLabelsMagic);
  if (!labels.ok()) return hint(labels.status());
  auto d = dataset_from_idx(*images, *labels);
  if (!d.ok()) return d.status().with_context(dir.string());
  const int64_t classes = static_cast<int64_t>(fashion_mnist_class_names().size());
  for (int64_t i = 0; i < d->n; ++i)
    if (d->labels[i] >= classes)
      return Status::corruption(labels_path.string() + ": label " + std::to_string(d->labels[i]) +
                                " of sample " + std::to_string(i) + " is outside 0.." +
                                std::to_string(classes - 1));
  return d;
}

Result<Dataset> select(const Dataset& d, std::span<const int64_t> indices) {
  Dataset out;
  out.c = d.c;
  out.h = d.h;
  out.w = d.w;
  out.n = static_cast<int64_t>(indices.size());
  const int64_t size = d.image_size();
  out.images.reserve(static_cast<size_t>(out.n * size));
  out.labels.reserve(indices.size());
  for (int64_t i : indices) {
    if (i < 0 || i >= d.n)
      return Status::invalid_argument("sample index " + std::to_string(i) + " is outside [0, " +
                                      std::to_string(d.n) + ")");
    auto img = d.image(i);
    out.images.insert(out.images.end(), img.begin(), img.end());
    out.labels.push_back(d.labels[i]);
  }
  return out;
}

Dataset take_first(const Dataset& d, int64_t count) {
  std::vector<int64_t> idx(static_cast<size_t>(std::clamp<int64_t>(count, 0, d.n)));
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<int64_t>(i);
  return select(d, idx).value();
}

Result<Dataset> take_random(const Dataset& d, int64_t count, uint64_t seed) {
  if (count < 0 || count > d.n)
    return Status::invalid_argument("cannot take " + std::to_string(count) +
                                    " random samples from a set of " + std::to_string(d.n));
  std::mt19937_64 rng(seed);
  std::vector<int64_t> p = permutation(d.n, rng);
  p.resize(static_cast<size_t>(count));
  std::sort(p.begin(), p.end());
  return select(d, p);
}

Result<TrainValidation> split_train_validation(const Dataset& d, int64_t validation_count,
                                               uint64_t seed) {
  if (validation_count < 0 || validation_count > d.n)
    return Status::invalid_argument("validation count " + std::to_string(validation_count) +
                                    " is outside [0, " + std::to_string(d.n) + "]");
  std::mt19937_64 rng(seed);
  std::vector<int64_t> p = permutation(d.n, rng);
  std::vector<int64_t> val(p.begin(), p.begin() + validation_count);
  std::vector<int64_t> train(p.begin() + validation_count, p.end());
  std::sort(val.begin(), val.end());
  std::sort(train.begin(), train.end());
  TrainValidation out;
  IDN_ASSIGN_OR_RETURN(out.train, select(d, train));
  IDN_ASSIGN_OR_RETURN(out.validation, select(d, val));
  return out;
}

}  // namespace idn::data
