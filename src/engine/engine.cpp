#include "engine/engine.h"

#include <cmath>

#include <torch/torch.h>

#include "model/exit_criteria.h"
#include "model/package.h"
#include "nn/graph.h"

// OpenBLAS's thread-count control, when the BLAS LibTorch loaded is OpenBLAS (weak: absent
// with another BLAS).
extern "C" void openblas_set_num_threads(int) __attribute__((weak));

namespace idn::engine {
namespace {

// Keeps rows `index` of every activation; one in oneDNN's blocked layout (nn::Graph keeps a
// stage's inner conv-relu-pool activations so) is made dense first: layers read either layout.
void select_rows(nn::Activations& acts, const torch::Tensor& index) {
  for (auto& a : acts)
    if (a.defined()) a = (a.is_mkldnn() ? a.to_dense() : a).index_select(0, index);
}

}  // namespace

struct Engine::Impl {
  // Activations to run from: the preprocessed model input (resume_after < 0), or `x` as the
  // output of stage `resume_after` (split execution).
  nn::Activations begin(const torch::Tensor& x, int resume_after) {
    if (resume_after < 0) return graph->begin({preprocess(x)});
    nn::Activations acts = graph->begin({});
    graph->set_stage_output(resume_after, acts, x);
    return acts;
  }

  nn::Graph graph{nullptr};
  torch::Tensor mean, inv_std;  // [1, C, 1, 1] or undefined
  std::vector<std::vector<int>> exits_at_stage;
  std::vector<int64_t> stage_flops_prefix;  // flops of stages [0, s]

  torch::Tensor preprocess(torch::Tensor x) const {
    if (!mean.defined()) return x;
    return (x - mean) * inv_std;
  }

  ExitEvent make_event(int e, const torch::Tensor& logits_row, const ExitRule& rule,
                       int64_t flops) const {
    const auto& spec = graph->spec();
    const auto& ex = spec.exits[e];
    auto z = logits_row.contiguous();
    std::span<const float> zs(z.data_ptr<float>(), z.numel());
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
};

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::~Engine() = default;

Result<std::unique_ptr<Engine>> Engine::load(const std::filesystem::path& dir, EngineOptions opts) {
  IDN_ASSIGN_OR_RETURN(auto pkg, model::load_package(dir));
  if (pkg.spec.inputs.size() != 1)
    return Status::unsupported("engine runs single-input models; " + dir.string() + " has " +
                               std::to_string(pkg.spec.inputs.size()) + " inputs");
  if (opts.threads > 0) {
    torch::set_num_threads(opts.threads);
    // LibTorch on Debian runs Linear layers through OpenBLAS, whose own thread pool spins in
    // sched_yield between calls: on a small machine those spinners take the cores that the
    // node's io threads need (perf: 16% of a serving run in sched_yield; gone with this).
    if (openblas_set_num_threads) openblas_set_num_threads(opts.threads);
  }
  auto impl = std::make_unique<Impl>();
  try {
    impl->graph = nn::Graph(pkg.spec);
  } catch (const std::exception& e) {
    return Status::invalid_argument(dir.string() + ": cannot build graph: " + e.what());
  }
  IDN_RETURN_IF_ERROR(impl->graph->load_weights(pkg.weights).with_context(dir.string()));
  impl->graph->eval();
  const auto& spec = impl->graph->spec();
  if (!spec.preprocess_mean.empty()) {
    int64_t c = spec.inputs[0].shape.empty() ? 1 : spec.inputs[0].shape[0];
    if (static_cast<int64_t>(spec.preprocess_mean.size()) != c ||
        spec.preprocess_std.size() != spec.preprocess_mean.size())
      return Status::invalid_argument(dir.string() +
                                      ": preprocess mean/std must have one value per channel (" +
                                      std::to_string(c) + ")");
    std::vector<int64_t> shape{1, c};
    while (shape.size() < spec.inputs[0].shape.size() + 1) shape.push_back(1);
    impl->mean = torch::tensor(spec.preprocess_mean).reshape(shape);
    impl->inv_std = 1.0 / torch::tensor(spec.preprocess_std).reshape(shape);
  }
  impl->exits_at_stage.resize(spec.stages.size());
  for (size_t e = 0; e < spec.exits.size(); ++e)
    impl->exits_at_stage[spec.exits[e].stage].push_back(e);
  int64_t acc = 0;
  for (const auto& s : spec.stages) impl->stage_flops_prefix.push_back(acc += s.flops);
  return std::unique_ptr<Engine>(new Engine(std::move(impl)));
}

const model::ModelSpec& Engine::spec() const {
  return impl_->graph->spec();
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
  auto& g = impl_->graph;
  const int n_stages = g->num_stages();
  if (resume_after < -1 || resume_after >= n_stages - 1)
    return Status::invalid_argument("cannot resume after stage " + std::to_string(resume_after) +
                                    " of a " + std::to_string(n_stages) + "-stage model");
  if (activation.dtype != core::DType::kF32)
    return Status::invalid_argument("activation must be F32");
  IDN_RETURN_IF_ERROR(activation.validate());
  torch::NoGradGuard ng;
  torch::InferenceMode im;
  auto x = nn::to_torch(activation, /*borrow=*/true);
  nn::Activations acts = impl_->begin(x, resume_after);
  int64_t flops = 0;
  ExitEvent last;
  try {
    for (int s = resume_after + 1; s < n_stages; ++s) {
      g->run_stage(s, acts);
      flops += spec().stages[s].flops;
      for (int e : impl_->exits_at_stage[s]) {
        auto logits = g->run_exit(e, acts);
        flops += spec().exits[e].flops;
        last = impl_->make_event(e, logits[0], rule, flops);
        if (on_exit && !on_exit(last)) return last;
        if (last.exited) return last;
      }
    }
  } catch (const std::exception& e) {
    return Status::invalid_argument(std::string("activation does not fit the model: ") + e.what());
  }
  return last;
}

Result<std::vector<ExitEvent>> Engine::infer_batch(const core::Tensor& inputs,
                                                   const ExitRule& rule) {
  IDN_RETURN_IF_ERROR(check_input(inputs, true));
  auto& g = impl_->graph;
  torch::NoGradGuard ng;
  torch::InferenceMode im;
  const int64_t n = inputs.shape[0];
  std::vector<ExitEvent> events(n);
  auto acts = g->begin({impl_->preprocess(nn::to_torch(inputs, true))});
  std::vector<int64_t> remaining(n);
  for (int64_t i = 0; i < n; ++i) remaining[i] = i;
  int64_t flops = 0;
  for (int s = 0; s < g->num_stages() && !remaining.empty(); ++s) {
    g->run_stage(s, acts);
    flops += spec().stages[s].flops;
    for (int e : impl_->exits_at_stage[s]) {
      auto logits = g->run_exit(e, acts);
      flops += spec().exits[e].flops;
      std::vector<int64_t> keep_rows, keep_ids;
      for (size_t r = 0; r < remaining.size(); ++r) {
        auto ev = impl_->make_event(e, logits[r], rule, flops);
        if (ev.exited)
          events[remaining[r]] = std::move(ev);
        else
          keep_rows.push_back(r), keep_ids.push_back(remaining[r]);
      }
      if (keep_rows.size() != remaining.size()) {
        // Samples that exited leave the batch: later stages only see the rest.
        auto keep = torch::tensor(keep_rows, torch::kLong);
        select_rows(acts, keep);
        remaining = std::move(keep_ids);
      }
      if (remaining.empty()) break;
    }
  }
  return events;
}

Result<std::vector<ExitEvent>> Engine::infer_batch_progressive(
    const core::Tensor& inputs, int resume_after, std::span<const ExitRule> rules,
    const std::function<bool(size_t, const ExitEvent&)>& on_exit,
    const std::function<bool(size_t, int)>& keep_going) {
  auto& g = impl_->graph;
  const int n_stages = g->num_stages();
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
  torch::NoGradGuard ng;
  torch::InferenceMode im;
  std::vector<ExitEvent> events(n);
  for (auto& ev : events) ev.predicted = -1;
  auto x = nn::to_torch(inputs, /*borrow=*/true);
  nn::Activations acts = impl_->begin(x, resume_after);
  std::vector<int64_t> remaining(n);
  for (int64_t i = 0; i < n; ++i) remaining[i] = i;
  // Keeps the rows of `acts` whose flag is set; `remaining` follows.
  auto keep_rows = [&](const std::vector<char>& keep) {
    std::vector<int64_t> rows, ids;
    for (size_t r = 0; r < remaining.size(); ++r)
      if (keep[r]) rows.push_back(static_cast<int64_t>(r)), ids.push_back(remaining[r]);
    if (ids.size() == remaining.size()) return;
    if (!ids.empty()) {
      select_rows(acts, torch::tensor(rows, torch::kLong));
    }
    remaining = std::move(ids);
  };
  int64_t flops = 0;
  try {
    for (int s = resume_after + 1; s < n_stages && !remaining.empty(); ++s) {
      if (keep_going) {
        std::vector<char> keep(remaining.size());
        for (size_t r = 0; r < remaining.size(); ++r) keep[r] = keep_going(remaining[r], s);
        keep_rows(keep);
        if (remaining.empty()) break;
      }
      g->run_stage(s, acts);
      flops += spec().stages[s].flops;
      for (int e : impl_->exits_at_stage[s]) {
        auto logits = g->run_exit(e, acts);
        flops += spec().exits[e].flops;
        std::vector<char> keep(remaining.size());
        for (size_t r = 0; r < remaining.size(); ++r) {
          const int64_t i = remaining[r];
          events[i] = impl_->make_event(e, logits[r], rule_of(i), flops);
          bool go_on = !on_exit || on_exit(static_cast<size_t>(i), events[i]);
          keep[r] = go_on && !events[i].exited;
        }
        keep_rows(keep);
        if (remaining.empty()) break;
      }
    }
  } catch (const std::exception& e) {
    return Status::invalid_argument(std::string("activation does not fit the model: ") + e.what());
  }
  return events;
}

Result<core::Tensor> Engine::run_stages(const core::Tensor& input, int resume_after,
                                        int last_stage) {
  auto& g = impl_->graph;
  if (last_stage <= resume_after || last_stage >= g->num_stages())
    return Status::invalid_argument("stage range (" + std::to_string(resume_after) + ", " +
                                    std::to_string(last_stage) + "] is not within the model's " +
                                    std::to_string(g->num_stages()) + " stages");
  torch::NoGradGuard ng;
  torch::InferenceMode im;
  nn::Activations acts;
  core::Tensor x = input;
  if (resume_after < 0) {
    IDN_RETURN_IF_ERROR(check_input(input, false));
    if (x.shape.size() == spec().inputs[0].shape.size()) x.shape.insert(x.shape.begin(), 1);
    acts = g->begin({impl_->preprocess(nn::to_torch(x, true))});
  } else {
    IDN_RETURN_IF_ERROR(x.validate());
    acts = g->begin({});
    g->set_stage_output(resume_after, acts, nn::to_torch(x, true));
  }
  torch::Tensor out;
  try {
    for (int s = resume_after + 1; s <= last_stage; ++s) out = g->run_stage(s, acts);
  } catch (const std::exception& e) {
    return Status::invalid_argument(std::string("activation does not fit the model: ") + e.what());
  }
  return nn::from_torch(out);
}

Result<Engine::Prefix> Engine::run_prefix(const core::Tensor& input, int last_stage,
                                          const ExitRule& rule) {
  auto& g = impl_->graph;
  if (last_stage < 0 || last_stage >= g->num_stages() - 1)
    return Status::invalid_argument("a local prefix must end before the last of the model's " +
                                    std::to_string(g->num_stages()) + " stages");
  IDN_RETURN_IF_ERROR(check_input(input, false));
  core::Tensor x = input;
  if (x.shape.size() == spec().inputs[0].shape.size()) x.shape.insert(x.shape.begin(), 1);
  torch::NoGradGuard ng;
  torch::InferenceMode im;
  auto acts = g->begin({impl_->preprocess(nn::to_torch(x, true))});
  Prefix out;
  int64_t flops = 0;
  torch::Tensor last_out;
  for (int s = 0; s <= last_stage; ++s) {
    last_out = g->run_stage(s, acts);
    flops += spec().stages[s].flops;
    for (int e : impl_->exits_at_stage[s]) {
      auto logits = g->run_exit(e, acts);
      flops += spec().exits[e].flops;
      out.exit = impl_->make_event(e, logits[0], rule, flops);
      if (out.exit->exited) return out;
    }
  }
  out.activation = nn::from_torch(last_out);
  return out;
}

std::vector<int64_t> Engine::stage_runs() const {
  return impl_->graph->stage_runs();
}

}  // namespace idn::engine
