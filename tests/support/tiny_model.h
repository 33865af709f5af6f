// A small trained B-LeNet shared by the ML tests: trained for a few seconds on a FashionMNIST
// subset the first time and cached inside the build tree (each process that finds it missing
// trains into a private directory and renames it into place, so parallel tests never see a
// half-written package). The data subset is cached there too.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <optional>
#include <string>
#include <utility>

#include "model/package.h"
#include "motifs/branchynet.h"

namespace idn::testing {

inline motifs::DataOptions tiny_data_options() {
  motifs::DataOptions d;
  d.limit_train = 3000;
  d.validation = 1000;
  d.limit_test = 500;
  d.seed = 7;
  return d;
}

namespace detail {

// The tiny split is cached in the build tree: loading it from the full FashionMNIST files
// touches ~60 MB per test process (seconds of page faults on a small VM) for 4,500 images.
inline void save_tiny_data(const motifs::LabeledData& d, const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  torch::serialize::OutputArchive a;
  const std::pair<const char*, const motifs::TensorSplit*> splits[] = {
      {"train", &d.train}, {"val", &d.val}, {"test", &d.test}};
  for (const auto& [name, s] : splits) {
    a.write(std::string(name) + ".x", s->x);
    a.write(std::string(name) + ".y", s->y);
  }
  a.write("mean", torch::tensor(d.mean));
  a.write("std", torch::tensor(d.std));
  std::string names;
  for (const auto& n : d.class_names) names += n + "\n";
  a.write(
      "class_names",
      torch::from_blob(names.data(), {static_cast<int64_t>(names.size())}, torch::kUInt8).clone());
  std::error_code ec;
  fs::create_directories(path.parent_path(), ec);
  fs::path tmp = path.string() + ".tmp" + std::to_string(::getpid());
  a.save_to(tmp.string());
  fs::rename(tmp, path, ec);  // atomic: a concurrent test process sees all of it or nothing
  if (ec) fs::remove(tmp, ec);
}

inline std::optional<motifs::LabeledData> load_tiny_data(const std::filesystem::path& path) {
  if (!std::filesystem::exists(path)) return std::nullopt;
  try {
    torch::serialize::InputArchive a;
    a.load_from(path.string());
    motifs::LabeledData d;
    const std::pair<const char*, motifs::TensorSplit*> splits[] = {
        {"train", &d.train}, {"val", &d.val}, {"test", &d.test}};
    for (const auto& [name, s] : splits) {
      a.read(std::string(name) + ".x", s->x);
      a.read(std::string(name) + ".y", s->y);
    }
    torch::Tensor mean, std, names;
    a.read("mean", mean);
    a.read("std", std);
    a.read("class_names", names);
    d.mean.assign(mean.data_ptr<float>(), mean.data_ptr<float>() + mean.numel());
    d.std.assign(std.data_ptr<float>(), std.data_ptr<float>() + std.numel());
    std::string all(reinterpret_cast<const char*>(names.data_ptr<uint8_t>()),
                    static_cast<size_t>(names.numel()));
    for (size_t at = 0, nl; (nl = all.find('\n', at)) != std::string::npos; at = nl + 1)
      d.class_names.push_back(all.substr(at, nl - at));
    return d;
  } catch (const std::exception&) {
    return std::nullopt;  // unreadable (an older format): load and cache it again
  }
}

}  // namespace detail

inline const motifs::LabeledData& tiny_data() {
  static const motifs::LabeledData data = [] {
    const auto o = tiny_data_options();  // the file name says which subset it holds
    const auto cache =
        std::filesystem::path(IDN_BINARY_DIR) / "fixtures" /
        ("tiny-data-" + std::to_string(o.limit_train) + "-" + std::to_string(o.validation) + "-" +
         std::to_string(o.limit_test) + "-" + std::to_string(o.seed) + ".pt");
    if (auto d = detail::load_tiny_data(cache)) return std::move(*d);
    auto r = motifs::load_fashion_mnist_tensors(tiny_data_options());
    if (!r.ok()) throw std::runtime_error(r.status().to_string());
    detail::save_tiny_data(*r, cache);
    return std::move(r).value();
  }();
  return data;
}

// Returns the directory of the cached tiny package for `arch`, training it if needed.
inline std::filesystem::path tiny_package(const std::string& arch = "b-lenet") {
  namespace fs = std::filesystem;
  fs::path dir = fs::path(IDN_BINARY_DIR) / "fixtures" / ("tiny-" + arch);
  if (model::load_package(dir).ok()) return dir;
  fs::path tmp = dir.string() + ".tmp" + std::to_string(::getpid());
  motifs::TrainOptions t;
  t.epochs = 2;
  t.batch_size = 32;
  t.progress = false;
  t.checkpoint_dir = tmp / "checkpoint";
  motifs::OperatingPointOptions op;
  op.timing_samples = 8;
  op.timing_reps = 2;
  auto r = motifs::fit_branchynet(arch, tiny_data(), t, op, tmp);
  if (!r.ok()) throw std::runtime_error(r.status().to_string());
  fs::remove_all(tmp / "checkpoint");
  std::error_code ec;
  fs::create_directories(dir.parent_path(), ec);
  fs::rename(tmp, dir, ec);
  if (ec) fs::remove_all(tmp);  // another process won the race; its package is equivalent
  return dir;
}

}  // namespace idn::testing
