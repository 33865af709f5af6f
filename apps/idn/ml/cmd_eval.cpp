// idn eval: the accuracy-time trade-off of a package on the test split (LibTorch).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <memory>

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "../cli.h"
#include "backend_option.h"
#include "cpu/executor.h"
#include "engine/engine.h"
#include "engine/latency.h"
#include "model/package.h"
#include "motifs/branchynet.h"
#include "plot.h"

namespace idn::cli {
namespace {

struct EvalArgs {
  std::string dir;
  motifs::DataOptions data;
  bool json = false;
  std::string csv, plot;
  int threads = 1;
  std::string backend = "auto";
};

std::string join(const std::vector<double>& v, const char* fmt, const char* sep = "/") {
  std::string s;
  char buf[64];
  for (size_t i = 0; i < v.size(); ++i) {
    std::snprintf(buf, sizeof buf, fmt, v[i]);
    s += (i ? sep : "") + std::string(buf);
  }
  return s;
}

// measure_component_costs for the cpu backend: the batch-1 median time of each stage and exit
// head on cpu::Executor, over `samples` (model inputs, not preprocessed) `reps` times.
Result<motifs::ComponentCosts> cpu_component_costs(const model::Package& pkg,
                                                   const torch::Tensor& samples, int reps) {
  IDN_ASSIGN_OR_RETURN(auto ex, cpu::Executor::load(pkg));
  const auto& spec = pkg.spec;
  std::vector<std::vector<double>> st(spec.stages.size()), et(spec.exits.size());
  using Clock = std::chrono::steady_clock;
  auto us = [](Clock::time_point t0) {
    return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
  };
  for (int r = 0; r < reps; ++r)
    for (int64_t i = 0; i < samples.size(0); ++i) {
      auto x = samples[i].contiguous();
      IDN_RETURN_IF_ERROR(ex->set_input({x.data_ptr<float>(), static_cast<size_t>(x.numel())}, 1));
      for (size_t s = 0; s < spec.stages.size(); ++s) {
        auto t0 = Clock::now();
        IDN_RETURN_IF_ERROR(ex->run_stage(static_cast<int>(s)).status());
        st[s].push_back(us(t0));
        for (size_t e = 0; e < spec.exits.size(); ++e) {
          if (spec.exits[e].stage != static_cast<int>(s)) continue;
          auto t1 = Clock::now();
          IDN_RETURN_IF_ERROR(ex->run_exit(static_cast<int>(e)).status());
          et[e].push_back(us(t1));
        }
      }
    }
  auto median = [](std::vector<double> v) {
    std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
    return v[v.size() / 2];
  };
  motifs::ComponentCosts c;
  for (size_t s = 0; s < st.size(); ++s) {
    c.stage_us.push_back(median(st[s]));
    c.stage_flops.push_back(spec.stages[s].flops);
  }
  for (size_t e = 0; e < et.size(); ++e) {
    c.exit_us.push_back(median(et[e]));
    c.exit_flops.push_back(spec.exits[e].flops);
  }
  return c;
}

int run_eval(EvalArgs& a) {
  torch::set_num_threads(a.threads);
  auto pkg = model::load_package(a.dir);
  if (!pkg.ok()) return report(pkg.status());
  auto engine =
      engine::Engine::load(a.dir, {.threads = a.threads, .backend = backend_of(a.backend)});
  if (!engine.ok()) return report(engine.status());
  a.data.validation = 0;
  auto data = motifs::load_fashion_mnist_tensors(a.data);
  if (!data.ok()) return report(data.status());
  const auto& spec = pkg->spec;
  if (static_cast<int>(data->class_names.size()) != spec.num_classes())
    return report(Status::invalid_argument("model has " + std::to_string(spec.num_classes()) +
                                           " classes, the data set " +
                                           std::to_string(data->class_names.size())));
  // Profile on the test split: every exit's calibrated probabilities, component costs.
  nn::Graph graph(spec);
  if (auto st = graph->load_weights(pkg->weights); !st) return report(st);
  graph->eval();
  auto x = data->test.x;
  if (!spec.preprocess_mean.empty())
    x = motifs::normalize(x, spec.preprocess_mean, spec.preprocess_std);
  auto logits = motifs::exit_logits(graph, x);
  std::vector<double> temps;
  for (auto& e : spec.exits) temps.push_back(e.temperature);
  auto scores = motifs::exit_scores(logits, temps);
  auto labels = motifs::to_labels(data->test.y);
  // Part costs on the backend that runs (the profile's times are modelled from them).
  motifs::ComponentCosts costs;
  if ((*engine)->backend() == engine::Backend::kCpu) {
    auto c = cpu_component_costs(*pkg, data->test.x.slice(0, 0, 64), 5);
    if (!c.ok()) return report(c.status());
    costs = std::move(*c);
  } else {
    costs = motifs::measure_component_costs(graph, x.slice(0, 0, 64), 5);
  }
  auto profile = motifs::sweep_thresholds(spec, scores, labels, costs);
  auto front = motifs::pareto_front(profile);
  std::vector<double> current;
  for (auto& e : spec.exits) current.push_back(e.threshold);
  auto modelled = motifs::evaluate_point(spec, scores, labels, costs, current);
  // Measured: the engine's batch-1 fast inference at the package's thresholds.
  auto samples = motifs::to_samples(data->test.x);
  auto run = engine::run_labelled(**engine, samples, labels);
  if (!run.ok()) return report(run.status());

  nlohmann::json j;
  j["model"] = spec.name;
  j["package"] = a.dir;
  j["test_samples"] = samples.size();
  j["threads"] = a.threads;
  j["backend"] = engine::backend_name((*engine)->backend());
  j["backend_reason"] = (*engine)->backend_reason();
  j["measured"] = {{"accuracy", run->accuracy},           {"mean_us", run->latency.mean_us},
                   {"median_us", run->latency.median_us}, {"p99_us", run->latency.p99_us},
                   {"mean_flops", run->mean_flops},       {"exit_fraction", run->exit_fraction}};
  j["modelled_at_thresholds"] = motifs::to_json(modelled);
  j["exits"] = nlohmann::json::array();
  for (size_t e = 0; e < spec.exits.size(); ++e) {
    double acc = logits[e].argmax(1).eq(data->test.y).to(torch::kFloat64).mean().item<double>();
    j["exits"].push_back({{"name", spec.exits[e].name},
                          {"stage", spec.exits[e].stage},
                          {"criterion", model::criterion_name(spec.exits[e].criterion)},
                          {"threshold", spec.exits[e].threshold},
                          {"temperature", spec.exits[e].temperature},
                          {"head_flops", spec.exits[e].flops},
                          {"head_us", costs.exit_us[e]},
                          {"accuracy_alone", acc}});
  }
  j["stages"] = nlohmann::json::array();
  for (size_t s = 0; s < spec.stages.size(); ++s)
    j["stages"].push_back({{"name", spec.stages[s].name},
                           {"flops", spec.stages[s].flops},
                           {"us", costs.stage_us[s]}});
  j["pareto_front"] = nlohmann::json::array();
  for (auto& p : front) j["pareto_front"].push_back(motifs::to_json(p));

  if (!a.csv.empty()) {
    std::ofstream f(a.csv);
    f << "thresholds,accuracy,mean_us_modelled,median_us_modelled,mean_flops,exit_fraction,"
         "pareto\n";
    for (auto& p : profile) {
      bool on_front = false;
      for (auto& q : front) on_front |= q.thresholds == p.thresholds;
      f << join(p.thresholds, "%.6g", ";") << "," << p.accuracy << "," << p.mean_us << ","
        << p.median_us << "," << p.mean_flops << "," << join(p.exit_fraction, "%.4f", ";") << ","
        << on_front << "\n";
    }
    if (!f) return report(Status::io_error("cannot write " + a.csv));
  }
  if (!a.plot.empty()) {
    PlotSpec ps;
    ps.title = spec.name + ": accuracy vs batch-1 time (FashionMNIST test)";
    ps.xlabel = "mean time per sample (us, modelled from measured stage costs)";
    ps.ylabel = "accuracy (%)";
    PlotSeries curve{"Pareto front of exit thresholds", {}, {}, true};
    for (auto& p : front) curve.x.push_back(p.mean_us), curve.y.push_back(100 * p.accuracy);
    PlotSeries op{
        "operating point (measured)", {run->latency.mean_us}, {100 * run->accuracy}, false};
    ps.series = {curve, op};
    if (auto st = plot_png(ps, a.plot); !st) return report(st);
  }
  if (a.json) {
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf("model %s (%s): %zu stages, %zu exits; %zu test samples; %d thread(s)\n",
              spec.name.c_str(), spec.motif.c_str(), spec.stages.size(), spec.exits.size(),
              samples.size(), a.threads);
  std::printf("engine backend %s\n\n", (*engine)->backend_reason().c_str());
  std::printf(
      "| part | MFLOPs | median us (batch 1) | criterion | threshold | T | accuracy alone |\n");
  std::printf("|---|---:|---:|---|---:|---:|---:|\n");
  for (size_t s = 0; s < spec.stages.size(); ++s) {
    std::printf("| %s | %.3f | %.1f | | | | |\n", spec.stages[s].name.c_str(),
                spec.stages[s].flops / 1e6, costs.stage_us[s]);
    for (size_t e = 0; e < spec.exits.size(); ++e) {
      if (spec.exits[e].stage != static_cast<int>(s)) continue;
      auto& ej = j["exits"][e];
      std::printf("| %s head | %.3f | %.1f | %s | %.4f | %.3f | %.2f%% |\n",
                  spec.exits[e].name.c_str(), spec.exits[e].flops / 1e6, costs.exit_us[e],
                  std::string(model::criterion_name(spec.exits[e].criterion)).c_str(),
                  spec.exits[e].threshold, spec.exits[e].temperature,
                  100 * ej["accuracy_alone"].get<double>());
    }
  }
  std::printf("\nmeasured at the package's thresholds (batch 1, %zu samples):\n", samples.size());
  std::printf("  accuracy %.2f%%  mean %.1f us  median %.1f us  p99 %.1f us  mean %.3f MFLOPs\n",
              100 * run->accuracy, run->latency.mean_us, run->latency.median_us,
              run->latency.p99_us, run->mean_flops / 1e6);
  std::vector<double> exit_pct;
  for (double f : run->exit_fraction) exit_pct.push_back(100 * f);
  std::printf("  exit mix %s %% (per exit)\n", join(exit_pct, "%.1f").c_str());
  std::printf(
      "\ntrade-off profile on the test split (Pareto front; time modelled from the part costs "
      "above):\n");
  std::printf(
      "| thresholds | accuracy | mean us | median us | MFLOPs | exit %% "
      "|\n|---|---:|---:|---:|---:|---|\n");
  size_t step = std::max<size_t>(1, front.size() / 15);
  for (size_t i = 0; i < front.size(); i += step) {
    auto& p = front[i];
    std::vector<double> early(p.thresholds.begin(), p.thresholds.end() - 1);
    std::vector<double> pct;
    for (double f : p.exit_fraction) pct.push_back(100 * f);
    std::printf("| %s | %.2f%% | %.1f | %.1f | %.3f | %s |\n", join(early, "%.4f", ",").c_str(),
                100 * p.accuracy, p.mean_us, p.median_us, p.mean_flops / 1e6,
                join(pct, "%.0f").c_str());
  }
  if (!a.csv.empty()) std::printf("\nprofile written to %s\n", a.csv.c_str());
  if (!a.plot.empty()) std::printf("plot written to %s\n", a.plot.c_str());
  return 0;
}

}  // namespace

void register_eval(CLI::App& app) {
  auto ea = std::make_shared<EvalArgs>();
  auto* eval = app.add_subcommand(
      "eval",
      "Evaluate a model package on the FashionMNIST test split: per-exit accuracy and "
      "cost, measured batch-1 latency at its thresholds, and the accuracy-time profile");
  eval->add_option("dir", ea->dir, "Model package directory")->required();
  eval->add_option("--data", ea->data.dir,
                   "Directory with FashionMNIST IDX files (default: Debian's)");
  eval->add_option("--limit", ea->data.limit_test,
                   "Evaluate on a random subset of this many test images");
  eval->add_flag("--json", ea->json, "Print JSON instead of tables");
  eval->add_option("--csv", ea->csv, "Write every threshold combination tried to this CSV file");
  eval->add_option("--plot", ea->plot, "Write the trade-off curve to this PNG file");
  eval->add_option("--threads", ea->threads, "LibTorch threads")->capture_default_str();
  add_backend_option(eval, ea->backend);
  eval->callback([ea] { run_or_exit(run_eval(*ea)); });
}

}  // namespace idn::cli
