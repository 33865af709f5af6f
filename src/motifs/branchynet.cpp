#include "motifs/branchynet.h"

#include <algorithm>
#include <chrono>
#include <cstring>

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
                                     const torch::Tensor& y_val,
                                     const OperatingPointOptions& opts) {
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
  int64_t k = std::min<int64_t>(opts.timing_samples, x_val.size(0));
  prof.costs = measure_component_costs(graph, x_val.slice(0, 0, k), opts.timing_reps);
  prof.profile = sweep_thresholds(prof.spec, scores, labels, prof.costs, opts.grid);
  prof.final_accuracy = logits.back().argmax(1).eq(y_val).to(torch::kFloat64).mean().item<double>();
  prof.chosen = choose_operating_point(prof.profile, prof.final_accuracy, opts.max_accuracy_drop);
  for (size_t e = 0; e < prof.spec.exits.size(); ++e) {
    auto& ex = prof.spec.exits[e];
    ex.temperature = temps[e];
    // Thresholds are stored within [0, 1]; "never exit" becomes the strictest legal value.
    ex.threshold = std::clamp(prof.chosen.thresholds[e], 0.0, 1.0);
  }
  auto point = to_json(prof.chosen);
  point["rule"] =
      "fastest point (modelled mean batch-1 time) with validation accuracy >= final-exit accuracy "
      "- " +
      std::to_string(opts.max_accuracy_drop * 100).substr(0, 4) + " points";
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
  FitResult res;
  IDN_ASSIGN_OR_RETURN(res.epochs,
                       train_branchynet(graph, data.train.x, data.train.y, x_val, data.val.y, t));
  res.profile = profile_branchynet(graph, x_val, data.val.y, op);
  if (data.test.size() > 0)
    res.test = evaluate_exits(graph, normalize(data.test.x, data.mean, data.std), data.test.y);
  model::Package pkg{res.profile.spec, graph->export_weights()};
  IDN_RETURN_IF_ERROR(model::save_package(pkg, out_dir));
  return res;
}

}  // namespace idn::motifs
