// Test fixtures for DDNN on the network: six-camera views generated from FashionMNIST's test
// images (data/multiview.h), and a config (c) MP-CC package trained on them for a few epochs
// (seconds), cached in the build tree like support/tiny_model.h's packages.
#pragma once

#include <torch/torch.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>

#include "data/dataset.h"
#include "data/multiview.h"
#include "motifs/ddnn.h"
#include "motifs/ddnn_train.h"

namespace idn::testing {

// `samples` six-camera samples drawn from FashionMNIST's test images with `seed`.
inline data::MultiViewDataset tiny_ddnn_views(int64_t samples, uint64_t seed) {
  static const data::Dataset source = [] {
    auto d = data::load_fashion_mnist(data::default_fashion_mnist_dir(), data::Split::kTest);
    if (!d.ok()) throw std::runtime_error(d.status().to_string());
    return std::move(*d);
  }();
  data::MultiViewOptions o;
  o.samples = samples;
  o.seed = seed;
  auto v = data::generate_multiview(source, o);
  if (!v.ok()) throw std::runtime_error(v.status().to_string());
  return std::move(*v);
}

// Config (c), six devices, MP local, CC cloud, 4 device filters: 400 samples, 4 epochs.
inline std::filesystem::path tiny_ddnn_package() {
  namespace fs = std::filesystem;
  fs::path dir = fs::path(IDN_BINARY_DIR) / "fixtures" / "tiny-ddnn-c";
  if (motifs::load_ddnn(dir).ok()) return dir;
  auto config = motifs::ddnn_config('c', 6);
  if (!config.ok()) throw std::runtime_error(config.status().to_string());
  torch::manual_seed(7);
  motifs::DdnnPackage p;
  p.name = "tiny-ddnn";
  p.model = motifs::Ddnn(*config);
  auto train = motifs::multiview_tensors(tiny_ddnn_views(400, 5), *config);
  if (!train.ok()) throw std::runtime_error(train.status().to_string());
  motifs::DdnnTrainOptions o;
  o.epochs = 4;
  auto r = motifs::train_ddnn(p.model, *train, o);
  if (!r.ok()) throw std::runtime_error(r.status().to_string());
  p.labels = {"pullover", "coat", "sandal"};
  fs::path tmp = dir.string() + ".tmp" + std::to_string(::getpid());
  if (Status st = motifs::save_ddnn(p, tmp); !st.is_ok()) throw std::runtime_error(st.to_string());
  std::error_code ec;
  fs::create_directories(dir.parent_path(), ec);
  fs::rename(tmp, dir, ec);
  if (ec) fs::remove_all(tmp);  // another process won the race; its package is equivalent
  return dir;
}

}  // namespace idn::testing
