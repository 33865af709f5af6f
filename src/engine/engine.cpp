#include "engine/engine.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <mutex>
#include <numeric>
#include <optional>
#include <random>
#include <set>

#include <spdlog/spdlog.h>

#include "cpu/executor.h"
#include "engine/stage_runner.h"
#include "model/exit_criteria.h"
#include "model/package.h"

namespace idn::engine {

std::string_view backend_name(Backend b) {
  switch (b) {
    case Backend::kAuto:
      return "auto";
    case Backend::kTorch:
      return "torch";
    case Backend::kCpu:
      return "cpu";
  }
  return "?";
}

Status does_not_fit(const std::string& why) {
  return Status::invalid_argument("activation does not fit the model: " + why);
}

namespace {
// Function-local: idn_engine_torch registers from another translation unit's static initializer.
std::optional<TorchRunnerFactory>& torch_factory() {
  static std::optional<TorchRunnerFactory> f;
  return f;
}
}  // namespace

void register_torch_runner(TorchRunnerFactory factory) {
  torch_factory() = std::move(factory);
}

const TorchRunnerFactory* registered_torch_runner() {
  return torch_factory() ? &*torch_factory() : nullptr;
}

Result<Backend> parse_backend(std::string_view name) {
  for (Backend b : {Backend::kAuto, Backend::kTorch, Backend::kCpu})
    if (name == backend_name(b)) return b;
  return Status::invalid_argument("unknown engine backend '" + std::string(name) +
                                  "' (auto, torch or cpu)");
}

namespace {

int64_t numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// cpu::Executor, which holds at most max_batch samples per call. Between stages the runner
// keeps where the value the next stage reads lives (the caller's input, the executor's last
// stage output, or a host copy after a chunked stage) and which of its rows are still in the
// pass (`sel_`): leaving the batch is bookkeeping, and the next stage gathers the rows left.
// When the rows fit one call a stage's output stays in the executor and its exit heads run
// when asked; a batch over max_batch runs in chunks, each stage with its exit heads per chunk
// (their inputs are gone with the next chunk). Buffers grow to the largest batch seen.
class CpuRunner final : public StageRunner {
 public:
  CpuRunner(std::unique_ptr<cpu::Executor> ex, const std::vector<std::vector<int>>& exits_at_stage)
      : ex_(std::move(ex)), exits_at_stage_(exits_at_stage) {
    const auto& spec = ex_->spec();
    for (const auto& st : spec.stages) stage_shape_.push_back(spec.layer(st.output)->out_shape);
    for (const auto& e : spec.exits) classes_.push_back(spec.layer(e.output)->out_shape.back());
    input_size_ = numel(spec.inputs[0].shape);
    exit_logits_.resize(spec.exits.size());
  }

  Status begin(const core::Tensor& x, int resume_after) override {
    const int64_t size = resume_after < 0 ? input_size_ : numel(stage_shape_[resume_after]);
    if (x.shape.empty() || x.shape[0] < 1 || x.numel() != x.shape[0] * size)
      return does_not_fit(core::shape_string(x.shape) + " is not [N, ...] of " +
                          std::to_string(size) + " values per sample, as stage " +
                          std::to_string(resume_after + 1) + " reads");
    phys_ = x.shape[0];
    set_identity();
    src_ = x.f32();
    row_size_ = size;
    where_ = Where::kHost;
    last_stage_ = resume_after;
    return Status::ok();
  }

  Status run_stage(int s) override {
    if (s != last_stage_ + 1)
      return Status::internal("cpu runner: stage " + std::to_string(s) + " out of order");
    const int64_t rows = static_cast<int64_t>(sel_.size());
    const int64_t out_size = numel(stage_shape_[s]);
    last_stage_ = s;
    if (where_ == Where::kExecutor && rows == phys_) {
      // The executor holds the previous stage's output for exactly these rows.
      IDN_ASSIGN_OR_RETURN(src_, ex_->run_stage(s));
      row_size_ = out_size;
      return Status::ok();
    }
    std::span<const float> in = src_.first(static_cast<size_t>(phys_ * row_size_));
    if (rows != phys_) {
      feed_.resize(static_cast<size_t>(rows * row_size_));
      for (int64_t r = 0; r < rows; ++r)
        std::copy_n(src_.begin() + sel_[r] * row_size_, row_size_, feed_.begin() + r * row_size_);
      in = feed_;
    }
    auto put = [&](int64_t first, int n) {
      auto part =
          in.subspan(static_cast<size_t>(first * row_size_), static_cast<size_t>(n * row_size_));
      return s == 0 ? ex_->set_input(part, n) : ex_->set_stage_output(s - 1, part, n);
    };
    const int mb = ex_->max_batch();
    phys_ = rows;
    set_identity();
    if (rows <= mb) {
      IDN_RETURN_IF_ERROR(put(0, static_cast<int>(rows)));
      IDN_ASSIGN_OR_RETURN(src_, ex_->run_stage(s));
      row_size_ = out_size;
      where_ = Where::kExecutor;
      return Status::ok();
    }
    out_.resize(static_cast<size_t>(rows * out_size));
    for (int e : exits_at_stage_[s])
      exit_logits_[e].resize(static_cast<size_t>(rows * classes_[e]));
    for (int64_t first = 0; first < rows; first += mb) {
      const int n = static_cast<int>(std::min<int64_t>(mb, rows - first));
      IDN_RETURN_IF_ERROR(put(first, n));
      IDN_ASSIGN_OR_RETURN(auto out, ex_->run_stage(s));
      std::copy(out.begin(), out.end(), out_.begin() + first * out_size);
      for (int e : exits_at_stage_[s]) {
        IDN_ASSIGN_OR_RETURN(auto z, ex_->run_exit(e));
        std::copy(z.begin(), z.end(), exit_logits_[e].begin() + first * classes_[e]);
      }
    }
    host_.swap(out_);  // `in` may point into the old host_: swapped only when done with it
    src_ = host_;
    row_size_ = out_size;
    where_ = Where::kChunked;
    return Status::ok();
  }

  core::Tensor stage_output() override {
    std::vector<int64_t> shape{static_cast<int64_t>(sel_.size())};
    shape.insert(shape.end(), stage_shape_[last_stage_].begin(), stage_shape_[last_stage_].end());
    auto t = core::Tensor::zeros(core::DType::kF32, std::move(shape));
    gather(src_, row_size_, t.f32_mut());
    return t;
  }

  Result<std::span<const float>> run_exit(int e) override {
    std::span<const float> z;
    if (where_ == Where::kChunked) {
      z = exit_logits_[e];
    } else {
      IDN_ASSIGN_OR_RETURN(z, ex_->run_exit(e));
    }
    const int64_t rows = static_cast<int64_t>(sel_.size());
    if (rows == phys_) return z.first(static_cast<size_t>(rows * classes_[e]));
    // Rows left since the stage ran; the head ran on all of them: pick the ones left.
    picked_.resize(static_cast<size_t>(rows * classes_[e]));
    gather(z, classes_[e], picked_);
    return std::span<const float>(picked_);
  }

  void keep_rows(const std::vector<int64_t>& rows) override {
    std::vector<int64_t> next(rows.size());
    for (size_t r = 0; r < rows.size(); ++r) next[r] = sel_[rows[r]];
    sel_ = std::move(next);
  }

 private:
  enum class Where { kHost, kExecutor, kChunked };

  void set_identity() {
    sel_.resize(static_cast<size_t>(phys_));
    std::iota(sel_.begin(), sel_.end(), 0);
  }
  // Rows sel_ of `from` (rows of `size` values) into `to`.
  void gather(std::span<const float> from, int64_t size, std::span<float> to) const {
    for (size_t r = 0; r < sel_.size(); ++r)
      std::copy_n(from.begin() + sel_[r] * size, size, to.begin() + r * size);
  }

  std::unique_ptr<cpu::Executor> ex_;
  std::vector<std::vector<int>> exits_at_stage_;
  std::vector<std::vector<int64_t>> stage_shape_;  // per sample
  std::vector<int64_t> classes_;                   // per exit
  int64_t input_size_ = 0;
  // The pass: the value the next stage reads (`phys_` rows of `row_size_` values at src_, in
  // the caller's input, the executor or host_), the rows of it still in the pass.
  Where where_ = Where::kHost;
  std::span<const float> src_;
  int64_t phys_ = 0, row_size_ = 0;
  std::vector<int64_t> sel_;
  int last_stage_ = -1;
  std::vector<float> host_, out_, feed_, picked_;
  std::vector<std::vector<float>> exit_logits_;  // per exit, a chunked stage's heads
};

// Logs each distinct line once per process (an engine per worker would repeat it).
void log_once(const std::string& line) {
  static std::mutex mu;
  static std::set<std::string> seen;
  std::lock_guard lk(mu);
  if (seen.insert(line).second) spdlog::info("{}", line);
}

}  // namespace

struct Engine::Impl {
  model::ModelSpec spec;
  std::unique_ptr<StageRunner> runner;
  Backend backend = Backend::kTorch;
  std::string reason;
  std::vector<std::vector<int>> exits_at_stage;
  std::vector<int64_t> stage_runs;

  Status run_stage(int s) {
    IDN_RETURN_IF_ERROR(runner->run_stage(s));
    ++stage_runs[s];
    return Status::ok();
  }

  ExitEvent make_event(int e, std::span<const float> zs, const ExitRule& rule,
                       int64_t flops) const {
    const auto& ex = spec.exits[e];
    ExitEvent ev;
    ev.exit_index = e;
    ev.stage = ex.stage;
    ev.probs.resize(zs.size());
    model::softmax_with_temperature(zs, ex.temperature, ev.probs);
    ev.predicted = model::argmax(ev.probs);
    ev.confidence = model::confidence(ev.probs);
    ev.entropy = model::normalized_entropy(ev.probs);
    ev.flops = flops;
    bool last = e + 1 == static_cast<int>(spec.exits.size());
    auto crit = rule.criterion.value_or(ex.criterion);
    double th = rule.threshold.value_or(ex.threshold);
    ev.exited = last || model::should_exit(crit, th, ev.probs);
    return ev;
  }

  // Row r of exit e's logits [rows, classes].
  std::span<const float> row(std::span<const float> logits, int e, size_t r) const {
    return logits.subspan(r * classes[e], classes[e]);
  }
  std::vector<size_t> classes;  // per exit
};

namespace {

// The calibrated probabilities of every exit of one seeded random sample, by `runner`.
Result<std::vector<std::vector<float>>> probe(StageRunner& runner, const model::ModelSpec& spec,
                                              const std::vector<std::vector<int>>& exits_at_stage,
                                              const core::Tensor& x) {
  std::vector<std::vector<float>> probs(spec.exits.size());
  IDN_RETURN_IF_ERROR(runner.begin(x, -1));
  for (size_t s = 0; s < spec.stages.size(); ++s) {
    IDN_RETURN_IF_ERROR(runner.run_stage(static_cast<int>(s)));
    for (int e : exits_at_stage[s]) {
      IDN_ASSIGN_OR_RETURN(auto z, runner.run_exit(e));
      probs[e].resize(z.size());
      model::softmax_with_temperature(z, spec.exits[e].temperature, probs[e]);
    }
  }
  return probs;
}

}  // namespace

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::~Engine() = default;

Result<std::unique_ptr<Engine>> Engine::load(const std::filesystem::path& dir, EngineOptions opts) {
  IDN_ASSIGN_OR_RETURN(auto pkg, model::load_package(dir));
  if (pkg.spec.inputs.size() != 1)
    return Status::unsupported("engine runs single-input models; " + dir.string() + " has " +
                               std::to_string(pkg.spec.inputs.size()) + " inputs");
  const TorchRunnerFactory* torch = registered_torch_runner();
  if (!torch && opts.backend == Backend::kTorch)
    return Status::unsupported(dir.string() +
                               ": backend torch: this idn was built without LibTorch (use cpu)");
  if (torch && opts.threads > 0) torch->set_threads(opts.threads);
  auto impl = std::make_unique<Impl>();
  impl->spec = pkg.spec;
  const auto& spec = impl->spec;
  impl->exits_at_stage.resize(spec.stages.size());
  for (size_t e = 0; e < spec.exits.size(); ++e)
    impl->exits_at_stage[spec.exits[e].stage].push_back(e);
  impl->stage_runs.assign(spec.stages.size(), 0);
  for (const auto& e : spec.exits)
    impl->classes.push_back(static_cast<size_t>(spec.layer(e.output)->out_shape.back()));

  std::unique_ptr<StageRunner> torch_runner;
  if (torch && opts.backend != Backend::kCpu) {
    IDN_ASSIGN_OR_RETURN(torch_runner, torch->load(pkg, dir));
  }
  std::unique_ptr<CpuRunner> cpu_runner;
  Status cpu_status = Status::ok();
  if (opts.backend != Backend::kTorch) {
    auto ex = cpu::Executor::load(pkg, {.max_batch = opts.cpu_max_batch});
    if (ex.ok())
      cpu_runner = std::make_unique<CpuRunner>(std::move(*ex), impl->exits_at_stage);
    else
      cpu_status = ex.status();
  }
  switch (opts.backend) {
    case Backend::kTorch:
      impl->backend = Backend::kTorch;
      impl->reason = "torch: asked for";
      break;
    case Backend::kCpu:
      if (!cpu_runner)
        return Status(cpu_status.code(), dir.string() + ": backend cpu cannot run this package: " +
                                             cpu_status.message());
      impl->backend = Backend::kCpu;
      impl->reason = "cpu: asked for";
      break;
    case Backend::kAuto: {
      if (!torch) {
        // No reference to check the executor against: cpu, or a clear error.
        if (!cpu_runner)
          return Status(cpu_status.code(),
                        dir.string() + ": backend cpu cannot run this package (" +
                            cpu_status.message() + ") and this idn was built without LibTorch");
        impl->backend = Backend::kCpu;
        impl->reason = "cpu: this idn was built without LibTorch";
        break;
      }
      impl->backend = Backend::kTorch;
      if (!cpu_runner) {
        impl->reason =
            "torch: the cpu executor cannot run this package (" + cpu_status.message() + ")";
        break;
      }
      // A deterministic probe: seeded uniform [0, 1) values, one sample.
      std::vector<int64_t> shape{1};
      shape.insert(shape.end(), spec.inputs[0].shape.begin(), spec.inputs[0].shape.end());
      auto x = core::Tensor::zeros(core::DType::kF32, shape);
      std::mt19937 rng(21);
      std::uniform_real_distribution<float> u(0.f, 1.f);
      for (float& v : x.f32_mut()) v = u(rng);
      auto want = probe(*torch_runner, spec, impl->exits_at_stage, x);
      auto got = probe(*cpu_runner, spec, impl->exits_at_stage, x);
      if (!want.ok()) return want.status().with_context(dir.string() + ": probe input");
      if (!got.ok()) {
        impl->reason =
            "torch: the cpu executor failed on a probe input (" + got.status().message() + ")";
        break;
      }
      double worst = 0;
      int worst_exit = 0;
      for (size_t e = 0; e < want->size(); ++e) {
        const auto& a = (*want)[e];
        const auto& b = (*got)[e];
        double d = a.size() == b.size() ? 0 : INFINITY;
        for (size_t i = 0; i < a.size() && i < b.size(); ++i)
          d = std::max(d, static_cast<double>(std::abs(a[i] - b[i])));
        if (!(d <= worst)) worst = d, worst_exit = static_cast<int>(e);
      }
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.1e", worst);
      if (worst <= 1e-4) {
        impl->backend = Backend::kCpu;
        impl->reason = std::string("cpu: agrees with LibTorch on a probe input (max |dp| ") + buf +
                       " <= 1e-4 over every exit)";
        if (opts.auto_time_rounds > 0) {
          // Both agree: keep the faster. Probe passes alternate between the backends (neither
          // always finds the caches warm); a few ms per load for the packages here.
          using Clock = std::chrono::steady_clock;
          std::vector<double> us[2];  // torch, cpu
          double spent = 0;
          for (int r = 0; r < opts.auto_time_rounds && (r == 0 || spent < 1e4); ++r)
            for (int b = 0; b < 2; ++b) {
              const int which = r % 2 == 0 ? b : 1 - b;
              const Backend backend = which == 0 ? Backend::kTorch : Backend::kCpu;
              StageRunner& runner = which == 0 ? static_cast<StageRunner&>(*torch_runner)
                                               : static_cast<StageRunner&>(*cpu_runner);
              const auto t0 = Clock::now();
              auto p = probe(runner, spec, impl->exits_at_stage, x);
              const double t = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
              if (!p.ok()) return p.status().with_context(dir.string() + ": timing probe");
              spent += t;
              us[which].push_back(opts.probe_time_us ? opts.probe_time_us(backend) : t);
            }
          for (auto& v : us) std::sort(v.begin(), v.end());
          const double torch_us = us[0][us[0].size() / 2], cpu_us = us[1][us[1].size() / 2];
          char times[160];
          std::snprintf(times, sizeof times,
                        "cpu %.1f us vs torch %.1f us per probe pass (median of %zu each)", cpu_us,
                        torch_us, us[0].size());
          if (torch_us < cpu_us) {
            impl->backend = Backend::kTorch;
            impl->reason = std::string("torch: faster on a probe input (") + times +
                           "); the cpu executor agrees with it (max |dp| " + buf + " <= 1e-4)";
          } else {
            impl->reason += std::string(" and is as fast or faster: ") + times;
          }
        }
      } else {
        impl->reason = "torch: the cpu executor disagrees with LibTorch at exit " +
                       std::to_string(worst_exit) + " on a probe input (max |dp| " + buf +
                       " > 1e-4)";
      }
      break;
    }
  }
  if (impl->backend == Backend::kCpu)
    impl->runner = std::move(cpu_runner);
  else
    impl->runner = std::move(torch_runner);
  if (opts.backend == Backend::kAuto && impl->backend == Backend::kTorch)
    log_once("engine " + dir.string() + ": backend " + impl->reason);
  return std::unique_ptr<Engine>(new Engine(std::move(impl)));
}

const model::ModelSpec& Engine::spec() const {
  return impl_->spec;
}

Backend Engine::backend() const {
  return impl_->backend;
}

const std::string& Engine::backend_reason() const {
  return impl_->reason;
}

Status Engine::check_input(const core::Tensor& input, bool batched) const {
  const auto& in = spec().inputs[0];
  if (input.dtype != in.dtype)
    return Status::invalid_argument("input dtype " + std::string(core::dtype_name(input.dtype)) +
                                    ", model '" + spec().name + "' expects " +
                                    std::string(core::dtype_name(in.dtype)));
  IDN_RETURN_IF_ERROR(input.validate());
  std::span<const int64_t> shape(input.shape);
  bool ok_shape;
  if (batched) {
    ok_shape = shape.size() == in.shape.size() + 1 && shape[0] >= 1 &&
               std::equal(in.shape.begin(), in.shape.end(), shape.begin() + 1);
  } else {
    ok_shape = (shape.size() == in.shape.size() &&
                std::equal(in.shape.begin(), in.shape.end(), shape.begin())) ||
               (shape.size() == in.shape.size() + 1 && shape[0] == 1 &&
                std::equal(in.shape.begin(), in.shape.end(), shape.begin() + 1));
  }
  if (!ok_shape)
    return Status::invalid_argument("input shape " + core::shape_string(input.shape) + ", model '" +
                                    spec().name + "' expects " + (batched ? "[N, " : "") +
                                    core::shape_string(in.shape).substr(batched ? 1 : 0));
  for (float v : input.f32())
    if (!std::isfinite(v)) return Status::invalid_argument("input contains NaN or infinity");
  return Status::ok();
}

Result<ExitEvent> Engine::infer(const core::Tensor& input, const ExitRule& rule) {
  return infer_progressive(input, rule, {});
}

Result<ExitEvent> Engine::infer_progressive(const core::Tensor& input, const ExitRule& rule,
                                            const std::function<bool(const ExitEvent&)>& on_exit) {
  IDN_RETURN_IF_ERROR(check_input(input, false));
  core::Tensor batched = input;
  if (batched.shape.size() == spec().inputs[0].shape.size())
    batched.shape.insert(batched.shape.begin(), 1);
  return run_from(batched, -1, rule, on_exit);
}

Result<ExitEvent> Engine::run_from(const core::Tensor& activation, int resume_after,
                                   const ExitRule& rule,
                                   const std::function<bool(const ExitEvent&)>& on_exit) {
  auto& m = *impl_;
  const int n_stages = static_cast<int>(spec().stages.size());
  if (resume_after < -1 || resume_after >= n_stages - 1)
    return Status::invalid_argument("cannot resume after stage " + std::to_string(resume_after) +
                                    " of a " + std::to_string(n_stages) + "-stage model");
  if (activation.dtype != core::DType::kF32)
    return Status::invalid_argument("activation must be F32");
  IDN_RETURN_IF_ERROR(activation.validate());
  IDN_RETURN_IF_ERROR(m.runner->begin(activation, resume_after));
  int64_t flops = 0;
  ExitEvent last;
  for (int s = resume_after + 1; s < n_stages; ++s) {
    IDN_RETURN_IF_ERROR(m.run_stage(s));
    flops += spec().stages[s].flops;
    for (int e : m.exits_at_stage[s]) {
      IDN_ASSIGN_OR_RETURN(auto logits, m.runner->run_exit(e));
      flops += spec().exits[e].flops;
      last = m.make_event(e, m.row(logits, e, 0), rule, flops);
      if (on_exit && !on_exit(last)) return last;
      if (last.exited) return last;
    }
  }
  return last;
}

Result<std::vector<ExitEvent>> Engine::infer_batch(const core::Tensor& inputs,
                                                   const ExitRule& rule) {
  IDN_RETURN_IF_ERROR(check_input(inputs, true));
  auto& m = *impl_;
  const int64_t n = inputs.shape[0];
  std::vector<ExitEvent> events(n);
  IDN_RETURN_IF_ERROR(m.runner->begin(inputs, -1));
  std::vector<int64_t> remaining(n);
  for (int64_t i = 0; i < n; ++i) remaining[i] = i;
  int64_t flops = 0;
  const int n_stages = static_cast<int>(spec().stages.size());
  for (int s = 0; s < n_stages && !remaining.empty(); ++s) {
    IDN_RETURN_IF_ERROR(m.run_stage(s));
    flops += spec().stages[s].flops;
    for (int e : m.exits_at_stage[s]) {
      IDN_ASSIGN_OR_RETURN(auto logits, m.runner->run_exit(e));
      flops += spec().exits[e].flops;
      std::vector<int64_t> keep_rows, keep_ids;
      for (size_t r = 0; r < remaining.size(); ++r) {
        auto ev = m.make_event(e, m.row(logits, e, r), rule, flops);
        if (ev.exited)
          events[remaining[r]] = std::move(ev);
        else
          keep_rows.push_back(r), keep_ids.push_back(remaining[r]);
      }
      // Samples that exited leave the batch: later stages only see the rest.
      if (!keep_rows.empty() && keep_rows.size() != remaining.size())
        m.runner->keep_rows(keep_rows);
      remaining = std::move(keep_ids);
      if (remaining.empty()) break;
    }
  }
  return events;
}

Result<std::vector<ExitEvent>> Engine::infer_batch_progressive(
    const core::Tensor& inputs, int resume_after, std::span<const ExitRule> rules,
    const std::function<bool(size_t, const ExitEvent&)>& on_exit,
    const std::function<bool(size_t, int)>& keep_going) {
  auto& m = *impl_;
  const int n_stages = static_cast<int>(spec().stages.size());
  if (resume_after < -1 || resume_after >= n_stages - 1)
    return Status::invalid_argument("cannot resume after stage " + std::to_string(resume_after) +
                                    " of a " + std::to_string(n_stages) + "-stage model");
  if (resume_after < 0) {
    IDN_RETURN_IF_ERROR(check_input(inputs, true));
  } else {
    if (inputs.dtype != core::DType::kF32)
      return Status::invalid_argument("activation must be F32");
    IDN_RETURN_IF_ERROR(inputs.validate());
    if (inputs.shape.empty() || inputs.shape[0] < 1)
      return Status::invalid_argument("activation batch " + core::shape_string(inputs.shape) +
                                      " has no leading batch dimension");
  }
  const int64_t n = inputs.shape[0];
  if (rules.size() != 1 && rules.size() != static_cast<size_t>(n))
    return Status::invalid_argument("batch of " + std::to_string(n) + " samples needs 1 or " +
                                    std::to_string(n) + " exit rules, got " +
                                    std::to_string(rules.size()));
  auto rule_of = [&](int64_t i) -> const ExitRule& { return rules[rules.size() == 1 ? 0 : i]; };
  std::vector<ExitEvent> events(n);
  for (auto& ev : events) ev.predicted = -1;
  IDN_RETURN_IF_ERROR(m.runner->begin(inputs, resume_after));
  std::vector<int64_t> remaining(n);
  for (int64_t i = 0; i < n; ++i) remaining[i] = i;
  // Keeps the rows whose flag is set; `remaining` follows.
  auto keep_rows = [&](const std::vector<char>& keep) {
    std::vector<int64_t> rows, ids;
    for (size_t r = 0; r < remaining.size(); ++r)
      if (keep[r]) rows.push_back(static_cast<int64_t>(r)), ids.push_back(remaining[r]);
    if (ids.size() == remaining.size()) return;
    if (!ids.empty()) m.runner->keep_rows(rows);
    remaining = std::move(ids);
  };
  int64_t flops = 0;
  for (int s = resume_after + 1; s < n_stages && !remaining.empty(); ++s) {
    if (keep_going) {
      std::vector<char> keep(remaining.size());
      for (size_t r = 0; r < remaining.size(); ++r) keep[r] = keep_going(remaining[r], s);
      keep_rows(keep);
      if (remaining.empty()) break;
    }
    IDN_RETURN_IF_ERROR(m.run_stage(s));
    flops += spec().stages[s].flops;
    for (int e : m.exits_at_stage[s]) {
      IDN_ASSIGN_OR_RETURN(auto logits, m.runner->run_exit(e));
      flops += spec().exits[e].flops;
      std::vector<char> keep(remaining.size());
      for (size_t r = 0; r < remaining.size(); ++r) {
        const int64_t i = remaining[r];
        events[i] = m.make_event(e, m.row(logits, e, r), rule_of(i), flops);
        bool go_on = !on_exit || on_exit(static_cast<size_t>(i), events[i]);
        keep[r] = go_on && !events[i].exited;
      }
      keep_rows(keep);
      if (remaining.empty()) break;
    }
  }
  return events;
}

Result<core::Tensor> Engine::run_stages(const core::Tensor& input, int resume_after,
                                        int last_stage) {
  auto& m = *impl_;
  const int n_stages = static_cast<int>(spec().stages.size());
  if (last_stage <= resume_after || last_stage >= n_stages)
    return Status::invalid_argument("stage range (" + std::to_string(resume_after) + ", " +
                                    std::to_string(last_stage) + "] is not within the model's " +
                                    std::to_string(n_stages) + " stages");
  core::Tensor x = input;
  if (resume_after < 0) {
    IDN_RETURN_IF_ERROR(check_input(input, false));
    if (x.shape.size() == spec().inputs[0].shape.size()) x.shape.insert(x.shape.begin(), 1);
  } else {
    IDN_RETURN_IF_ERROR(x.validate());
  }
  IDN_RETURN_IF_ERROR(m.runner->begin(x, resume_after));
  for (int s = resume_after + 1; s <= last_stage; ++s) IDN_RETURN_IF_ERROR(m.run_stage(s));
  return m.runner->stage_output();
}

Result<Engine::Prefix> Engine::run_prefix(const core::Tensor& input, int last_stage,
                                          const ExitRule& rule) {
  auto& m = *impl_;
  const int n_stages = static_cast<int>(spec().stages.size());
  if (last_stage < 0 || last_stage >= n_stages - 1)
    return Status::invalid_argument("a local prefix must end before the last of the model's " +
                                    std::to_string(n_stages) + " stages");
  IDN_RETURN_IF_ERROR(check_input(input, false));
  core::Tensor x = input;
  if (x.shape.size() == spec().inputs[0].shape.size()) x.shape.insert(x.shape.begin(), 1);
  IDN_RETURN_IF_ERROR(m.runner->begin(x, -1));
  Prefix out;
  int64_t flops = 0;
  for (int s = 0; s <= last_stage; ++s) {
    IDN_RETURN_IF_ERROR(m.run_stage(s));
    flops += spec().stages[s].flops;
    for (int e : m.exits_at_stage[s]) {
      IDN_ASSIGN_OR_RETURN(auto logits, m.runner->run_exit(e));
      flops += spec().exits[e].flops;
      out.exit = m.make_event(e, m.row(logits, e, 0), rule, flops);
      if (out.exit->exited) return out;
    }
  }
  out.activation = m.runner->stage_output();
  return out;
}

std::vector<int64_t> Engine::stage_runs() const {
  return impl_->stage_runs;
}

}  // namespace idn::engine
