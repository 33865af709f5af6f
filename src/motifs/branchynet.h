// BranchyNet after training: calibrate each exit's temperature (§3.4.3), measure what each
// stage and exit head costs at batch 1 (§3.6.2), sweep thresholds into the accuracy–time
// profile and write the chosen operating point into the model spec.
#pragma once

#include <vector>

#include <torch/torch.h>

#include "motifs/branchynet_train.h"
#include "motifs/calibration.h"
#include "motifs/labeled_data.h"
#include "motifs/tradeoff.h"
#include "nn/graph.h"

namespace idn::motifs {

struct OperatingPointOptions {
  // The rule: the fastest point within 0.25 points of the final exit on the validation split.
  // The target is 0.5 points on the test split; validation accuracy on 5,000 images has a
  // standard error of ~0.4 points, so choosing at 0.5 lands above it about half the time.
  double max_accuracy_drop = 0.0025;
  int grid = 41;            // candidate thresholds per early exit
  int timing_samples = 64;  // batch-1 samples timed per component
  int timing_reps = 5;      // passes over them; the median is kept
};

struct BranchyNetProfile {
  std::vector<Calibration> calibration;  // per exit
  ComponentCosts costs;
  std::vector<ProfilePoint> profile;  // every threshold combination tried
  ProfilePoint chosen;
  double final_accuracy = 0;  // the last exit alone
  model::ModelSpec spec;      // the input spec with temperatures, thresholds and
                              // "operating_point" filled in
};

// Median batch-1 wall time of each stage and exit head over `samples` ([K, ...], already
// preprocessed), plus their FLOPs from the spec.
ComponentCosts measure_component_costs(nn::Graph& graph, const torch::Tensor& samples, int reps);

// Runs calibration, timing and the threshold sweep on validation data (x_val preprocessed).
BranchyNetProfile profile_branchynet(nn::Graph& graph, const torch::Tensor& x_val,
                                     const torch::Tensor& y_val, const OperatingPointOptions& opts);

// Per-exit calibrated probabilities for tradeoff functions.
std::vector<ExitScores> exit_scores(const std::vector<torch::Tensor>& logits,
                                    const std::vector<double>& temperatures);

// The whole recipe behind `idn train branchynet`: build the architecture, train jointly
// (checkpointing into out_dir/checkpoint), calibrate, choose the operating point on the
// validation split and save the package (model.json + weights.safetensors) to out_dir.
struct FitResult {
  std::vector<EpochReport> epochs;
  BranchyNetProfile profile;
  std::vector<ExitMetrics> test;  // each exit alone on the test split
};
Result<FitResult> fit_branchynet(const std::string& arch, const LabeledData& data,
                                 const TrainOptions& train, const OperatingPointOptions& op,
                                 const std::filesystem::path& out_dir);

}  // namespace idn::motifs
