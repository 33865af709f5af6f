#include "motifs/branchynet.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <optional>

#include "model/package.h"
#include "motifs/branchynet_arch.h"

namespace idn::motifs {
namespace {

double median_of(std::vector<double> v) {
  if (v.empty()) return 0;
  std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
  return v[v.size() / 2];
}

}  // namespace

ComponentCosts measure_component_costs(nn::Graph& graph, const torch::Tensor& samples, int reps) {
  torch::NoGradGuard ng;
  torch::InferenceMode im;
  graph->eval();
  const auto& spec = graph->spec();
  std::vector<std::vector<double>> st(spec.stages.size()), ex(spec.exits.size());
  using Clock = std::chrono::steady_clock;
  for (int r = 0; r < reps; ++r) {
    for (int64_t i = 0; i < samples.size(0); ++i) {
      auto acts = graph->begin({samples.slice(0, i, i + 1)});
      for (int s = 0; s < graph->num_stages(); ++s) {
        auto t0 = Clock::now();
        graph->run_stage(s, acts);
        st[s].push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
        for (int e = 0; e < graph->num_exits(); ++e) {
          if (spec.exits[e].stage != s) continue;
          auto t1 = Clock::now();
          auto z = graph->run_exit(e, acts).contiguous();
          // The engine's per-exit work after the head: softmax and criterion on C floats.
          volatile float sink = z.data_ptr<float>()[0];
          (void)sink;
          ex[e].push_back(std::chrono::duration<double, std::micro>(Clock::now() - t1).count());
        }
      }
    }
  }
  graph->reset_stage_runs();
  ComponentCosts c;
  for (size_t s = 0; s < st.size(); ++s) {
    c.stage_us.push_back(median_of(st[s]));
    c.stage_flops.push_back(spec.stages[s].flops);
  }
  for (size_t e = 0; e < ex.size(); ++e) {
    c.exit_us.push_back(median_of(ex[e]));
    c.exit_flops.push_back(spec.exits[e].flops);
  }
  return c;
}

std::vector<ExitScores> exit_scores(const std::vector<torch::Tensor>& logits,
                                    const std::vector<double>& temperatures) {
  std::vector<ExitScores> out;
  for (size_t e = 0; e < logits.size(); ++e) {
    auto p = torch::softmax(logits[e].to(torch::kFloat64) / temperatures[e], 1)
                 .to(torch::kFloat32)
                 .contiguous();
    ExitScores s;
    s.classes = static_cast<int>(p.size(1));
    s.probs.resize(p.numel());
    std::memcpy(s.probs.data(), p.data_ptr<float>(), p.numel() * sizeof(float));
    out.push_back(std::move(s));
  }
  return out;
}

BranchyNetProfile profile_branchynet(nn::Graph& graph, const torch::Tensor& x_val,
                                     const torch::Tensor& y_val, const OperatingPointOptions& opts,
                                     const Reference* baseline) {
  BranchyNetProfile prof;
  prof.spec = graph->spec();
  auto logits = exit_logits(graph, x_val);
  std::vector<double> temps;
  for (auto& z : logits) {
    prof.calibration.push_back(fit_temperature(z, y_val));
    temps.push_back(prof.calibration.back().temperature);
  }
  auto scores = exit_scores(logits, temps);
  std::vector<int64_t> labels(y_val.data_ptr<int64_t>(), y_val.data_ptr<int64_t>() + y_val.numel());
  auto final_ok = logits.back().argmax(1).eq(y_val).to(torch::kUInt8).contiguous();
  Reference own{"final exit",
                {final_ok.data_ptr<uint8_t>(), final_ok.data_ptr<uint8_t>() + final_ok.numel()},
                opts.confidence};
  Reference ref = baseline ? *baseline : own;
  ref.confidence = opts.confidence;
  int64_t k = std::min<int64_t>(opts.timing_samples, x_val.size(0));
  prof.costs = measure_component_costs(graph, x_val.slice(0, 0, k), opts.timing_reps);
  prof.profile = sweep_thresholds(prof.spec, scores, labels, prof.costs, opts.grid, &ref);
  prof.final_accuracy = final_ok.to(torch::kFloat64).mean().item<double>();
  prof.reference = ref.name;
  prof.reference_accuracy = ref.correct.empty()
                                ? 0
                                : std::count(ref.correct.begin(), ref.correct.end(), 1) /
                                      static_cast<double>(ref.correct.size());
  prof.chosen = choose_operating_point(prof.profile, opts.max_accuracy_drop, &prof.budget_met);
  for (size_t e = 0; e < prof.spec.exits.size(); ++e) {
    auto& ex = prof.spec.exits[e];
    ex.temperature = temps[e];
    // Thresholds are stored within [0, 1]; "never exit" becomes the strictest legal value.
    ex.threshold = std::clamp(prof.chosen.thresholds[e], 0.0, 1.0);
  }
  char rule[256];
  std::snprintf(rule, sizeof rule,
                "fastest point (modelled mean batch-1 time) whose accuracy loss against %s, "
                "bounded at %g%% one-sided confidence (paired per validation sample), is <= "
                "%g points",
                ref.name.c_str(), 100 * opts.confidence, 100 * opts.max_accuracy_drop);
  auto point = to_json(prof.chosen);
  point["rule"] = rule;
  point["reference"] = {{"name", ref.name},
                        {"accuracy", prof.reference_accuracy},
                        {"budget", opts.max_accuracy_drop},
                        {"confidence", opts.confidence},
                        {"loss", prof.chosen.loss},
                        {"loss_upper_bound", prof.chosen.loss_upper},
                        {"budget_met", prof.budget_met},
                        {"validation_samples", x_val.size(0)}};
  point["final_exit_accuracy"] = prof.final_accuracy;
  point["validation_samples"] = x_val.size(0);
  point["stage_us"] = prof.costs.stage_us;
  point["exit_us"] = prof.costs.exit_us;
  nlohmann::json cal = nlohmann::json::array();
  for (auto& c : prof.calibration)
    cal.push_back(
        {{"temperature", c.temperature}, {"nll_before", c.nll_before}, {"nll_after", c.nll_after}});
  point["calibration"] = cal;
  prof.spec.operating_point = point;
  return prof;
}

Result<Reference> package_reference(const std::filesystem::path& dir, const torch::Tensor& x,
                                    const torch::Tensor& y, double confidence) {
  IDN_ASSIGN_OR_RETURN(auto pkg, model::load_package(dir));
  const auto& spec = pkg.spec;
  if (spec.inputs.size() != 1 || x.dim() != 4 ||
      std::vector<int64_t>(x.sizes().begin() + 1, x.sizes().end()) != spec.inputs[0].shape)
    return Status::invalid_argument("baseline " + dir.string() +
                                    " does not take this data set's images");
  nn::Graph g(spec);
  IDN_RETURN_IF_ERROR(g->load_weights(pkg.weights).with_context("baseline " + dir.string()));
  auto logits = exit_logits(g, normalize(x, spec.preprocess_mean, spec.preprocess_std));
  if (y.numel() > 0 && logits.back().size(1) <= y.max().item<int64_t>())
    return Status::invalid_argument("baseline " + dir.string() +
                                    " has fewer classes than the data");
  std::vector<double> temps;
  std::vector<double> thresholds;
  for (auto& e : spec.exits) {
    temps.push_back(e.temperature);
    thresholds.push_back(e.threshold);
  }
  auto yc = y.contiguous();
  std::vector<int64_t> labels(yc.data_ptr<int64_t>(), yc.data_ptr<int64_t>() + yc.numel());
  return Reference{spec.name,
                   correct_per_sample(spec, exit_scores(logits, temps), labels, thresholds),
                   confidence};
}

namespace {

// Records in the operating point what it was chosen against (see profile_branchynet).
void note_baseline(nlohmann::json& point, const std::filesystem::path& baseline,
                   uint64_t split_seed) {
  auto& r = point["reference"];
  r["package"] = baseline.string();
  // A baseline trained on another split has seen some of these validation images, which
  // flatters it: the bound is then conservative, not wrong. Say so.
  auto base = model::load_package(baseline);
  auto seed = base.ok() ? base->spec.operating_point.value("training", nlohmann::json::object())
                              .value("data_split_seed", int64_t(-1))
                        : int64_t(-1);
  r["same_validation_split"] = seed == static_cast<int64_t>(split_seed);
  if (seed != static_cast<int64_t>(split_seed))
    std::fprintf(stderr,
                 "note: baseline %s was not trained with data split seed %llu (it may have "
                 "trained on some of these validation images; the bound is conservative)\n",
                 baseline.c_str(), static_cast<unsigned long long>(split_seed));
}

}  // namespace

Result<BranchyNetProfile> rechoose_operating_point(const std::filesystem::path& dir,
                                                   const LabeledData& data,
                                                   const OperatingPointOptions& op) {
  IDN_ASSIGN_OR_RETURN(auto pkg, model::load_package(dir));
  nn::Graph graph(pkg.spec);
  IDN_RETURN_IF_ERROR(graph->load_weights(pkg.weights));
  std::optional<Reference> baseline;
  if (!op.baseline.empty()) {
    IDN_ASSIGN_OR_RETURN(baseline,
                         package_reference(op.baseline, data.val.x, data.val.y, op.confidence));
  }
  auto x_val = normalize(data.val.x, pkg.spec.preprocess_mean, pkg.spec.preprocess_std);
  auto prof = profile_branchynet(graph, x_val, data.val.y, op, baseline ? &*baseline : nullptr);
  if (pkg.spec.operating_point.contains("training"))
    prof.spec.operating_point["training"] = pkg.spec.operating_point["training"];
  if (baseline) note_baseline(prof.spec.operating_point, op.baseline, data.split_seed);
  pkg.spec = prof.spec;
  IDN_RETURN_IF_ERROR(model::save_package(pkg, dir));
  return prof;
}

Result<FitResult> fit_branchynet(const std::string& arch, const LabeledData& data,
                                 const TrainOptions& train, const OperatingPointOptions& op,
                                 const std::filesystem::path& out_dir) {
  IDN_ASSIGN_OR_RETURN(auto spec, branchynet_arch(arch, static_cast<int>(data.class_names.size())));
  spec.labels = data.class_names;
  spec.preprocess_mean = data.mean;
  spec.preprocess_std = data.std;
  torch::manual_seed(train.seed);
  nn::Graph graph(spec);
  TrainOptions t = train;
  if (t.checkpoint_dir.empty()) t.checkpoint_dir = out_dir / "checkpoint";
  t.transform = [&](torch::Tensor& batch, uint64_t seed) {
    if (train.augment) batch = augment_batch(batch, /*pad=*/4, seed);
    batch = normalize(batch, data.mean, data.std);
  };
  auto x_val = normalize(data.val.x, data.mean, data.std);
  std::optional<Reference> baseline;
  if (!op.baseline.empty()) {
    IDN_ASSIGN_OR_RETURN(baseline,
                         package_reference(op.baseline, data.val.x, data.val.y, op.confidence));
  }
  FitResult res;
  IDN_ASSIGN_OR_RETURN(res.epochs,
                       train_branchynet(graph, data.train.x, data.train.y, x_val, data.val.y, t));
  res.profile = profile_branchynet(graph, x_val, data.val.y, op, baseline ? &*baseline : nullptr);
  // What reproduces these weights: the same seed, data split and thread count (see
  // train_branchynet on determinism).
  res.profile.spec.operating_point["training"] = {{"seed", train.seed},
                                                  {"data_split_seed", data.split_seed},
                                                  {"train_samples", data.train.size()},
                                                  {"epochs", train.epochs},
                                                  {"batch_size", train.batch_size},
                                                  {"optimizer", train.optimizer},
                                                  {"lr", train.lr},
                                                  {"augment", train.augment},
                                                  {"threads", torch::get_num_threads()}};
  if (baseline) note_baseline(res.profile.spec.operating_point, op.baseline, data.split_seed);
  if (data.test.size() > 0)
    res.test = evaluate_exits(graph, normalize(data.test.x, data.mean, data.std), data.test.y);
  model::Package pkg{res.profile.spec, graph->export_weights()};
  IDN_RETURN_IF_ERROR(model::save_package(pkg, out_dir));
  return res;
}

}  // namespace idn::motifs
