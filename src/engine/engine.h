// "Run this model package (or one stage of it) on this input": the only bridge from the
// network layers to the model's arithmetic. Inputs and outputs are core::Tensor; no torch type
// appears here. BranchyNet fast inference (Fig. 3.2): later stages never run for a sample that
// exits. Stages and exit heads run on a backend (LibTorch, the reference, or cpu::Executor);
// calibration, the exit rule, flops and stage counters are the same code above either.
//
// Thread-safety: an Engine may be used from one thread at a time; serve concurrency with one
// Engine per worker (they can share nothing but the package files).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "model/model_spec.h"

namespace idn::engine {

// What runs the stages and exit heads. kTorch: LibTorch (nn::Graph), the reference. kCpu:
// cpu::Executor (torch-free, one thread, prepacked weights); an error at load when it cannot run
// the package. kAuto: the faster backend that agrees with the reference: kTorch unless the
// executor loads the package and every exit of a seeded probe input agrees with LibTorch within
// 1e-4; then both run the probe pass a few times and the faster is kept (the reason says the
// times; a choice of torch is logged once).
// A program built without LibTorch (without idn_engine_torch): kAuto is kCpu, kTorch an error.
enum class Backend { kAuto, kTorch, kCpu };
std::string_view backend_name(Backend b);  // "auto" | "torch" | "cpu"
Result<Backend> parse_backend(std::string_view name);

struct EngineOptions {
  int threads = 1;  // LibTorch intra-op threads (process-wide setting)
  Backend backend = Backend::kAuto;
  // Backend kCpu: samples per executor call (its buffers are sized for this at load); larger
  // batches run in chunks of this size. Below 1 the executor refuses the package.
  int cpu_max_batch = 32;
  // kAuto, when the backends agree: probe passes (one sample through every stage and exit) timed
  // per backend, alternating, median kept; fewer once 10 ms went into them. 0: cpu untimed.
  int auto_time_rounds = 5;
  // Tests: stands in for the time of one probe pass on a backend (µs), so that a test of the
  // choice does not depend on this machine's timing.
  std::function<double(Backend)> probe_time_us = nullptr;
};

// Overrides of the package's exit rule for one request.
struct ExitRule {
  std::optional<model::ExitCriterion> criterion;
  std::optional<double> threshold;  // applies to every early exit
};

struct ExitEvent {
  int exit_index = 0;
  int stage = 0;
  int predicted = -1;
  double confidence = 0;
  double entropy = 0;
  bool exited = false;       // the exit rule was met here (always true at the last exit)
  std::vector<float> probs;  // calibrated softmax of this exit
  int64_t flops = 0;         // operations spent so far on this sample
};

class Engine {
 public:
  // Loads and validates a package directory (model.json + weights.safetensors).
  static Result<std::unique_ptr<Engine>> load(const std::filesystem::path& dir,
                                              EngineOptions opts = {});
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  const model::ModelSpec& spec() const;
  // The backend that runs (kTorch or kCpu, never kAuto) and one line saying why it was chosen.
  Backend backend() const;
  const std::string& backend_reason() const;

  // Checks dtype, shape (per-sample shape, optionally with a leading batch dim of 1 for
  // `infer`), size and finiteness against the model's first input.
  Status check_input(const core::Tensor& input, bool batched) const;

  // Fast early-exit inference of one sample; returns the exit that answered.
  Result<ExitEvent> infer(const core::Tensor& input, const ExitRule& rule = {});
  // Progressive: calls on_exit for every exit reached, in order; stops when the rule is met
  // or on_exit returns false (the caller cancelled: no further stage runs).
  Result<ExitEvent> infer_progressive(const core::Tensor& input, const ExitRule& rule,
                                      const std::function<bool(const ExitEvent&)>& on_exit);
  // Batch fast inference: input [N, ...]; samples that exit leave the batch before the next
  // stage. Returns one event per sample, in input order.
  Result<std::vector<ExitEvent>> infer_batch(const core::Tensor& inputs, const ExitRule& rule = {});

  // Progressive batch inference for a server that batches independent requests. `inputs` is
  // [N, ...]: model inputs when resume_after = -1, else activations produced by stage
  // `resume_after` (split execution). `rules` holds one rule for all samples or one per
  // sample. Before each stage, `keep_going(sample, stage)` (optional) is asked for every
  // sample still in the batch, and after each exit `on_exit(sample, event)` (optional) is
  // called for every sample still in the batch; either returning false drops that sample
  // (cancelled, deadline passed), and a sample whose rule is met at an exit leaves the batch.
  // Later stages only run for the samples left. Returns, per sample in input order, the last
  // event reported for it (predicted = -1 when it was dropped before reaching any exit).
  Result<std::vector<ExitEvent>> infer_batch_progressive(
      const core::Tensor& inputs, int resume_after, std::span<const ExitRule> rules,
      const std::function<bool(size_t sample, const ExitEvent&)>& on_exit,
      const std::function<bool(size_t sample, int stage)>& keep_going = {});
  Result<std::vector<ExitEvent>> infer_batch_progressive(
      const core::Tensor& inputs, const ExitRule& rule,
      const std::function<bool(size_t sample, const ExitEvent&)>& on_exit) {
    return infer_batch_progressive(inputs, -1, std::span<const ExitRule>(&rule, 1), on_exit);
  }

  // Split execution: run stages [0, last_stage] on the input and return that stage's output
  // (the activation another peer continues from), and the events of exits on the way.
  // `resume_after` >= 0 continues from an activation produced by stage `resume_after`.
  Result<core::Tensor> run_stages(const core::Tensor& input, int resume_after, int last_stage);
  Result<ExitEvent> run_from(const core::Tensor& activation, int resume_after, const ExitRule& rule,
                             const std::function<bool(const ExitEvent&)>& on_exit = {});

  // Split execution, requester side (§3.8): runs stages [0, last_stage] of one sample and the
  // exits on the way. `exit` is the last exit reached (none when the prefix has no exit);
  // when it met the rule the sample is done, else `activation` (stage last_stage's output)
  // goes to a peer that resumes after last_stage.
  struct Prefix {
    std::optional<ExitEvent> exit;
    core::Tensor activation;
  };
  Result<Prefix> run_prefix(const core::Tensor& input, int last_stage, const ExitRule& rule = {});

  // Per-stage execution counts (batches) since load; tests use them to prove early exit and
  // cancellation really skip later stages.
  std::vector<int64_t> stage_runs() const;

  struct Impl;

 private:
  explicit Engine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace idn::engine
