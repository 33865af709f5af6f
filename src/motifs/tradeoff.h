// The accuracy–time trade-off profile of a BranchyNet (dissertation §3.5, Figs. 3.6–3.9):
// sweep exit thresholds over cached per-exit probabilities, cost each sample by the stages and
// exit heads it actually runs (Fig. 3.2), and choose an operating point by a stated rule.
// Torch-free: inputs are plain per-sample probabilities and measured component costs.
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
};

// Which exit each sample takes for these thresholds (Fig. 3.2).
std::vector<int> simulate_exits(const model::ModelSpec& spec, const std::vector<ExitScores>& scores,
                                const std::vector<double>& thresholds);

ProfilePoint evaluate_point(const model::ModelSpec& spec, const std::vector<ExitScores>& scores,
                            const std::vector<int64_t>& labels, const ComponentCosts& costs,
                            const std::vector<double>& thresholds);

// Every combination of per-exit candidate thresholds (quantiles of each exit's own score, plus
// "never exit here"), `grid` candidates per exit.
std::vector<ProfilePoint> sweep_thresholds(const model::ModelSpec& spec,
                                           const std::vector<ExitScores>& scores,
                                           const std::vector<int64_t>& labels,
                                           const ComponentCosts& costs, int grid = 41);

// The rule: the fastest point (mean time) whose accuracy is at least the final exit's accuracy
// minus `max_drop` (a fraction: 0.005 = 0.5 points); ties go to the more accurate point.
ProfilePoint choose_operating_point(const std::vector<ProfilePoint>& profile, double final_accuracy,
                                    double max_drop);

// Pareto front (no other point both faster and at least as accurate), sorted by time.
std::vector<ProfilePoint> pareto_front(std::vector<ProfilePoint> profile);

nlohmann::json to_json(const ProfilePoint& p);

}  // namespace idn::motifs
