// Test fixtures for ParallelNet: a tiny genesis model (p_train 0.5, five epochs on the tiny
// FashionMNIST subset), trained once and cached in the build tree like support/tiny_model.h's
// packages, and generated members of it written as package directories.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <stdexcept>
#include <string>

#include "model/package.h"
#include "motifs/parallelnet.h"
#include "motifs/parallelnet_train.h"
#include "support/tiny_model.h"

namespace idn::testing {

inline constexpr double kTinyParallelNetPTrain = 0.5;

inline std::filesystem::path tiny_parallelnet_genesis() {
  namespace fs = std::filesystem;
  fs::path dir = fs::path(IDN_BINARY_DIR) / "fixtures" / "tiny-parallelnet";
  if (model::load_package(dir).ok()) return dir;
  fs::path tmp = dir.string() + ".tmp" + std::to_string(::getpid());
  motifs::ParallelNetTrainOptions o;
  o.train = motifs::recommended_train_options("alexnet");  // Adam
  o.train.lr = 2e-3;
  o.train.epochs = 5;
  o.train.batch_size = 32;
  o.train.progress = false;
  o.train.checkpoint_dir = tmp / "checkpoint";
  o.p_train.p = kTinyParallelNetPTrain;
  o.eval_masks = 4;
  auto r = motifs::fit_parallelnet("tiny", tiny_data(), o, tmp);
  if (!r.ok()) throw std::runtime_error(r.status().to_string());
  fs::remove_all(tmp / "checkpoint");
  std::error_code ec;
  fs::create_directories(dir.parent_path(), ec);
  fs::rename(tmp, dir, ec);
  if (ec) fs::remove_all(tmp);  // another process won the race; its package is equivalent
  return dir;
}

// The member of the tiny genesis drawn at density `p` with `seed`, as a package directory in
// the build tree (written once).
inline std::filesystem::path tiny_parallelnet_member(double p, uint64_t seed) {
  namespace fs = std::filesystem;
  fs::path dir =
      fs::path(IDN_BINARY_DIR) / "fixtures" /
      ("tiny-parallelnet-p" + std::to_string(int(p * 100)) + "-s" + std::to_string(seed));
  if (model::load_package(dir).ok()) return dir;
  motifs::GenerateOptions g;
  g.p_test.p = p;
  g.seed = seed;
  auto m = motifs::generate_parallelnet(tiny_parallelnet_genesis(), g);
  if (!m.ok()) throw std::runtime_error(m.status().to_string());
  fs::path tmp = dir.string() + ".tmp" + std::to_string(::getpid());
  if (Status st = model::save_package(m->package, tmp); !st.is_ok())
    throw std::runtime_error(st.to_string());
  std::error_code ec;
  fs::rename(tmp, dir, ec);
  if (ec) fs::remove_all(tmp);
  return dir;
}

}  // namespace idn::testing
