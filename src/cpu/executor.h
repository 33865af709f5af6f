// A torch-free executor of a model package's stages and exit heads for small batches on one
// CPU thread: batch norm folded into the preceding conv/linear and ReLU fused into its producer
// at load, weights prepacked, each conv/linear layer's kernel chosen at load by measurement (our
// gemm per sample or batched, or oneDNN), every buffer allocated at load, so a call allocates
// nothing (on our own kernels; oneDNN's execute builds small argument maps on the heap).
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

// The kernels a conv or linear layer can run on (append-only).
enum class Kernel {
  kAuto,     // options only: chosen at load (see ExecutorOptions)
  kGemm,     // conv: im2col + gemm per sample; linear: dot products, 4 samples per pass
  kBatched,  // conv: several samples' im2col side by side in one gemm; linear: one gemm over
             // the transposed batch (each weight read once per call)
  kOneDnn,   // conv: oneDNN's convolution per sample (OneDnnConv; builds with libdnnl-dev)
};
const char* kernel_name(Kernel k);

// Measured at load, a kernel other than kGemm replaces it only when faster by this factor: it is
// timed alone with warm caches, and in a pass oneDNN's reorders and call overhead cost more
// (LeNet's conv2 at batch 1: 11 % faster on oneDNN alone, B-LeNet's stage 1 6 % slower with it).
inline constexpr double kOtherKernelHandicap = 1.25;

struct ExecutorOptions {
  int max_batch = 1;  // buffers are sized for this many samples per call
  // kAuto: each conv/linear layer gets one kernel for calls of 1 sample and one for 2 to
  // max_batch: with `measure`, the fastest candidate timed at load on the layer's own shape (at
  // batch 1 and at max_batch; kOtherKernelHandicap) whose output agrees with kGemm's within
  // 1e-4 of its largest value; without, a fixed rule (deterministic). Another value forces that
  // kernel on every layer that has it (the rest follow the rule): tests run each kernel against
  // LibTorch so.
  Kernel kernel = Kernel::kAuto;
  bool measure = true;
};

// What load() chose for one conv or linear layer, and why.
struct LayerKernel {
  std::string layer;
  Kernel one = Kernel::kGemm, many = Kernel::kGemm;  // for 1 sample, for 2..max_batch
  // Measured µs per call at batch 1 and at max_batch, per candidate (kGemm, kBatched, kOneDnn
  // in order; -1: not a candidate, or its output disagreed); empty when nothing was timed.
  std::vector<double> us_one, us_many;
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
  // Each conv and linear layer's kernels (plan() shows them as "[gemm | onednn]"), layer order.
  std::vector<LayerKernel> kernels() const;
  // Load time spent timing kernel candidates, µs (0 without measurement).
  double measure_us() const;

  struct Impl;

 private:
  explicit Executor(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace idn::cpu
