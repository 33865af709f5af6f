// A small trained B-LeNet shared by the ML tests: trained for a few seconds on a FashionMNIST
// subset the first time and cached inside the build tree (each process that finds it missing
// trains into a private directory and renames it into place, so parallel tests never see a
// half-written package).
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

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

inline const motifs::LabeledData& tiny_data() {
  static const motifs::LabeledData data = [] {
    auto r = motifs::load_fashion_mnist_tensors(tiny_data_options());
    if (!r.ok()) throw std::runtime_error(r.status().to_string());
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
