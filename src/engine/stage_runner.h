// The seam between the engine (calibration, exit rule, flops, counters: engine.cpp, torch-free)
// and a backend that runs a package's stages and exit heads. The cpu runner is built in; the
// LibTorch runner lives in idn_engine_torch and registers itself here when a program links it,
// so a program built without LibTorch has none. Thread-safety: a runner is used by one Engine,
// one thread at a time; the registry is written by static initializers and read after main.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "model/package.h"

namespace idn::engine {

// The backend's half of the engine: one pass of a batch through stages and exit heads. Rows
// are the samples still in the pass, in order; everything that decides (calibration, the exit
// rule, flops, counters, which rows go on) is Engine's, above this seam.
class StageRunner {
 public:
  virtual ~StageRunner() = default;
  // Starts a pass on `x` [N, ...]: the model's input (resume_after < 0; the runner applies the
  // package's preprocessing) or the output of stage resume_after (split execution). `x` must
  // outlive the pass.
  virtual Status begin(const core::Tensor& x, int resume_after) = 0;
  // Runs stage s on the rows left; the stages before it ran in this pass.
  virtual Status run_stage(int s) = 0;
  // The output of the stage that ran last, [rows, ...].
  virtual core::Tensor stage_output() = 0;
  // Runs exit head e (of the stage that ran last) on the rows left: logits [rows, classes],
  // valid until the next call.
  virtual Result<std::span<const float>> run_exit(int e) = 0;
  // Keeps the rows at these positions (increasing, at least one) of the current rows.
  virtual void keep_rows(const std::vector<int64_t>& rows) = 0;
};

// The error a runner returns when an activation does not fit the package.
Status does_not_fit(const std::string& why);

// LibTorch's runner, as idn_engine_torch registers it.
struct TorchRunnerFactory {
  // Sets LibTorch's intra-op threads (and its BLAS's); called by every load with threads > 0.
  std::function<void(int threads)> set_threads;
  // The package (loaded from `dir`, named in errors) on LibTorch.
  std::function<Result<std::unique_ptr<StageRunner>>(const model::Package& pkg,
                                                     const std::filesystem::path& dir)>
      load;
};
// Called once by idn_engine_torch's static initializer.
void register_torch_runner(TorchRunnerFactory factory);
// Null when the program was built without LibTorch.
const TorchRunnerFactory* registered_torch_runner();

}  // namespace idn::engine
