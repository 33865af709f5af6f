// The accuracy–time trade-off profile of a BranchyNet (dissertation §3.5, Figs. 3.6–3.9):
// sweep exit thresholds over cached per-exit probabilities, cost each sample by the stages and
// exit heads it actually runs (Fig. 3.2), and choose an operating point by a stated rule: the
// fastest point whose accuracy loss against a reference classifier (the plain trunk, or the
// model's own final exit) is within budget at a one-sided confidence bound, paired per sample.
// Torch-free: inputs are plain per-sample probabilities and measured component costs. Pure
// functions; safe to call from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/model_spec.h"

namespace idn::motifs {

struct ExitScores {
  std::vector<float> probs;  // N x C, row-major, at the exit's calibrated temperature
  int classes = 0;
};

struct ComponentCosts {
  std::vector<double> stage_us, exit_us;  // measured batch-1 time of each stage / exit head
  std::vector<int64_t> stage_flops, exit_flops;
};

struct ProfilePoint {
  std::vector<double> thresholds;  // one per exit (the last is unused: it always exits)
  double accuracy = 0;
  double mean_us = 0, median_us = 0;  // modelled from component costs
  double mean_flops = 0;
  std::vector<double> exit_fraction;  // share of samples leaving at each exit
  // Against the reference given to the sweep (fractions; > 0 means worse than the reference):
  // the mean paired difference and its one-sided upper confidence bound. Zero without one.
  double loss = 0, loss_upper = 0;
};

// Who the operating point must not fall behind, sample by sample on the same split.
struct Reference {
  std::string name;              // "final exit" or the baseline package's name
  std::vector<uint8_t> correct;  // 1 where the reference classifies sample i correctly
  double confidence = 0.95;      // one-sided level of the bound on the loss
};

// Paired comparison of `correct` with `ref` on the same samples: d_i = ref_i - correct_i in
// {-1, 0, 1}; loss = mean(d), upper = loss + z * sd(d) / sqrt(n) with z the standard normal
// quantile at `confidence` (the normal approximation to McNemar's paired test).
struct PairedLoss {
  double loss = 0, sd = 0, upper = 0;
  int64_t n = 0;
  int64_t ref_only = 0, point_only = 0;  // discordant samples: only one of the two is right
};
PairedLoss paired_loss(const std::vector<uint8_t>& ref, const std::vector<uint8_t>& correct,
                       double confidence);

// Standard normal quantile: P(Z <= z) = p, p in (0, 1).
double normal_quantile(double p);

// 1 where the point's answer (the exit each sample takes) is right.
std::vector<uint8_t> correct_per_sample(const model::ModelSpec& spec,
                                        const std::vector<ExitScores>& scores,
                                        const std::vector<int64_t>& labels,
                                        const std::vector<double>& thresholds);

// Which exit each sample takes for these thresholds (Fig. 3.2).
std::vector<int> simulate_exits(const model::ModelSpec& spec, const std::vector<ExitScores>& scores,
                                const std::vector<double>& thresholds);

// `ref` (optional, same samples as labels) fills loss and loss_upper.
ProfilePoint evaluate_point(const model::ModelSpec& spec, const std::vector<ExitScores>& scores,
                            const std::vector<int64_t>& labels, const ComponentCosts& costs,
                            const std::vector<double>& thresholds, const Reference* ref = nullptr);

// Every combination of per-exit candidate thresholds (quantiles of each exit's own score, plus
// "never exit here"), `grid` candidates per exit.
std::vector<ProfilePoint> sweep_thresholds(const model::ModelSpec& spec,
                                           const std::vector<ExitScores>& scores,
                                           const std::vector<int64_t>& labels,
                                           const ComponentCosts& costs, int grid = 41,
                                           const Reference* ref = nullptr);

// The rule: the fastest point (mean time) whose upper confidence bound on the loss against the
// reference (loss_upper) is at most `max_loss` (a fraction: 0.005 = 0.5 points); ties go to
// the more accurate point. When no point qualifies, the one with the smallest bound (then the
// fastest), and *met is false.
ProfilePoint choose_operating_point(const std::vector<ProfilePoint>& profile, double max_loss,
                                    bool* met = nullptr);

// Pareto front (no other point both faster and at least as accurate), sorted by time.
std::vector<ProfilePoint> pareto_front(std::vector<ProfilePoint> profile);

nlohmann::json to_json(const ProfilePoint& p);

}  // namespace idn::motifs
