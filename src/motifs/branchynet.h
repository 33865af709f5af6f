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
  // The rule: the fastest point whose accuracy loss against the reference, bounded from above
  // at `confidence` (one-sided, paired per validation sample), is at most max_accuracy_drop.
  // The reference is the baseline package when one is given (the plain trunk a user compares
  // with), else the model's own final exit.
  double max_accuracy_drop = 0.005;
  double confidence = 0.95;
  std::filesystem::path baseline;  // a trained package (e.g. `lenet` for `b-lenet`); empty = none
  int grid = 41;                   // candidate thresholds per early exit
  int timing_samples = 64;         // batch-1 samples timed per component
  int timing_reps = 5;             // passes over them; the median is kept
};

struct BranchyNetProfile {
  std::vector<Calibration> calibration;  // per exit
  ComponentCosts costs;
  std::vector<ProfilePoint> profile;  // every threshold combination tried
  ProfilePoint chosen;
  bool budget_met = false;  // some point's bound was within budget (else: the smallest bound)
  std::string reference;    // what the loss is measured against
  double reference_accuracy = 0;
  double final_accuracy = 0;  // the last exit alone
  model::ModelSpec spec;      // the input spec with temperatures, thresholds and
                              // "operating_point" filled in
};

// Median batch-1 wall time of each stage and exit head over `samples` ([K, ...], already
// preprocessed), plus their FLOPs from the spec.
ComponentCosts measure_component_costs(nn::Graph& graph, const torch::Tensor& samples, int reps);

// Runs calibration, timing and the threshold sweep on validation data (x_val preprocessed).
// `baseline` (optional): the reference classifier's correctness per validation sample; without
// it the model's own final exit is the reference.
BranchyNetProfile profile_branchynet(nn::Graph& graph, const torch::Tensor& x_val,
                                     const torch::Tensor& y_val, const OperatingPointOptions& opts,
                                     const Reference* baseline = nullptr);

// The reference a package gives on raw (unnormalised) images x with labels y: each sample
// answered as the package would answer it when deployed (its calibrated exits and thresholds;
// a plain model's only exit). Named after the package's architecture.
Result<Reference> package_reference(const std::filesystem::path& dir, const torch::Tensor& x,
                                    const torch::Tensor& y, double confidence);

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

// Chooses a saved package's operating point again (calibration, costs, thresholds) on data's
// validation split under `op`, without training; keeps its "training" record and rewrites its
// model.json. For packages whose operating point was chosen by another rule or baseline.
Result<BranchyNetProfile> rechoose_operating_point(const std::filesystem::path& dir,
                                                   const LabeledData& data,
                                                   const OperatingPointOptions& op);

}  // namespace idn::motifs
