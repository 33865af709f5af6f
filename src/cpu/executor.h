// A torch-free executor of a model package's stages and exit heads for small batches on one
// CPU thread: batch norm folded into the preceding conv/linear and ReLU fused into its producer
// at load, weights prepacked and every buffer allocated at load, so a call allocates nothing.
// LibTorch (engine::Engine) stays the reference; tests/cpu checks this against it.
//
// Thread-safety: an Executor is used from one thread at a time (it owns its activations);
// any number of Executors, even of the same package, run in parallel on different threads.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "model/model_spec.h"
#include "model/package.h"

namespace idn::cpu {

struct ExecutorOptions {
  int max_batch = 1;  // buffers are sized for this many samples per call
};

class Executor {
 public:
  // Errors: a layer type or shape it cannot run, weights that do not match the spec, a CPU
  // without AVX2/FMA.
  static Result<std::unique_ptr<Executor>> load(const model::Package& package,
                                                ExecutorOptions opts = {});
  static Result<std::unique_ptr<Executor>> load(const std::filesystem::path& dir,
                                                ExecutorOptions opts = {});
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  const model::ModelSpec& spec() const;
  int max_batch() const;

  // Starts a pass: `values` holds `batch` samples of model input `index`, each of the
  // input's per-sample shape, contiguous; input 0 gets the package's preprocessing (mean/std)
  // as engine::Engine applies it. Layer values of the previous pass are dropped.
  Status set_input(std::span<const float> values, int batch, int index = 0);
  // Starts a pass from stage s's output computed elsewhere (split execution).
  Status set_stage_output(int s, std::span<const float> values, int batch);

  // Runs stage s (the stages before it must have run in this pass, or set_stage_output) and
  // returns its output, [batch, per-sample shape], valid until the next set_input.
  Result<std::span<const float>> run_stage(int s);
  // Runs exit head e (its stage must have run); returns its logits [batch, classes].
  Result<std::span<const float>> run_exit(int e);

  // The executed plan, one line per layer ("conv1: conv2d+relu", "relu1: fused"), for tests
  // and `idn bench engine`.
  std::string plan() const;

  struct Impl;

 private:
  explicit Executor(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace idn::cpu
