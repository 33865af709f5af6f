// DDNN's joint training (§4.3, §4.5.1: Adam, equal exit weights), staged inference (§4.4) and
// the measures of §4.5 (local, edge, cloud, overall and individual accuracy, local-exit share,
// communication by eq. 4.1). Functions are reentrant; a Ddnn they are given is used by one
// thread at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "core/status.h"
#include "data/multiview.h"
#include "motifs/ddnn.h"

namespace idn::motifs {

// A multi-view set as the model reads it, for the configuration's views.
struct MultiViewTensors {
  torch::Tensor views;        // [N, devices, C, H, W] float, pixel values 0..255
  torch::Tensor view_labels;  // [N, devices] int64, -1 where the device does not see the item
  torch::Tensor labels;       // [N] int64
  int64_t size() const { return labels.defined() ? labels.size(0) : 0; }
};
// InvalidArgument when the set lacks a configured view or its shape / classes differ.
Result<MultiViewTensors> multiview_tensors(const data::MultiViewDataset& d, const DdnnConfig& c);
// Which devices take part: with mask_absent those whose view is present, otherwise all.
torch::Tensor presence(const DdnnConfig& c, const torch::Tensor& view_labels);

// Σ over exits of weight x cross-entropy; a device's exit counts only the samples it sees.
struct DdnnLossWeights {
  double device = 1, local = 1, edge = 1, cloud = 1;
};
struct DdnnLoss {
  torch::Tensor total;
  double device = 0, local = 0, edge = 0, cloud = 0;  // unweighted; device: summed over devices
};
DdnnLoss ddnn_loss(const DdnnOutput& out, const torch::Tensor& view_labels,
                   const torch::Tensor& labels, const DdnnLossWeights& w);

struct DdnnEpoch {
  int64_t epoch = 0;
  DdnnLoss loss;  // means over the epoch's batches (total undefined)
  double seconds = 0;
  int64_t dropped = 0;  // device views device_dropout treated as absent this epoch
};

struct DdnnTrainOptions {
  int64_t epochs = 20, batch_size = 32;
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // Adam, §4.5.1
  DdnnLossWeights weights;
  uint64_t seed = 1;  // batch order (and device dropout)
  // Device dropout, in [0, 1): every epoch, each present device of each training sample is
  // treated as absent with this probability (drop_devices below), so the aggregators learn not
  // to lean on one device (§4.5.8's failures). 0 (default): off, training exactly as without.
  double device_dropout = 0;
  std::function<void(const DdnnEpoch&)> on_epoch;  // e.g. printing
};

// Device dropout's presence mask: `present` [N, devices] bool with each true entry cleared with
// probability q, except that a sample keeps at least one of its present devices (when every
// one is drawn, one of them, chosen at random, stays). Never sets an entry. Deterministic for a
// seed; q = 0 returns `present` unchanged. InvalidArgument unless q is in [0, 1).
Result<torch::Tensor> drop_devices(const torch::Tensor& present, double q, uint64_t seed);

// Trains `model` in place (then leaves it in eval mode): shuffled mini-batches (a last batch of
// one sample joins the previous one: batch norm needs two), Adam, clip_weights() after every
// step. A device dropped by device_dropout is absent for that epoch as an absent view is: out
// of every aggregation and out of its own exit's loss. Deterministic for a seed, model
// initialisation and thread count.
Result<std::vector<DdnnEpoch>> train_ddnn(Ddnn& model, const MultiViewTensors& train,
                                          const DdnnTrainOptions& options);

// §4.4 on a batch: devices, then the local aggregator; samples whose local η ≤ T exit; the others'
// devices send their features to the edge, which runs only on them, and so on to the cloud.
// Bytes follow the chapter's accounting: a present device sends 4·|C| bytes of scores to the
// local aggregator for every sample and its ceil(f·o / 8) bytes of packed features upward for
// the samples that did not exit locally; an edge sends its packed features to the cloud. In
// (a) the device sends its raw view (C·H·W bytes).
struct StagedResult {
  std::vector<int> exit;  // per sample: 0 local, 1 edge, 2 cloud
  std::vector<int64_t> predicted;
  std::vector<float> entropy;  // η at the exit taken
  int64_t device_bytes = 0, edge_bytes = 0;
  int64_t edge_runs = 0, cloud_runs = 0;  // samples each ran
};
StagedResult infer_staged(Ddnn& model, const torch::Tensor& views, const torch::Tensor& present,
                          const DdnnThresholds& t);

// §4.5.3's measures on a set. Accuracies in [0, 1], NaN where the configuration has no such exit.
struct DdnnEvaluation {
  int64_t samples = 0;
  double local = 0, edge = 0, cloud = 0, overall = 0;
  std::vector<double> device;  // each device's own exit, on the samples it sees
  double local_exit = 0, edge_exit = 0, cloud_exit = 0;  // shares of samples (overall policy)
  double eq41_bytes = 0;               // eq. 4.1 for one end device, p = local_exit
  double device_bytes_per_sample = 0;  // every device's sends, measured as infer_staged counts
  double edge_bytes_per_sample = 0;    // edge -> cloud
  double raw_bytes_per_sample = 0;     // the present views sent raw (the cloud-only baseline)
  int64_t device_param_bytes = 0;      // the packed device section (0 for (a))
};
// `failed` devices are treated as absent for every sample (§4.5.8).
Result<DdnnEvaluation> evaluate_ddnn(Ddnn& model, const MultiViewTensors& test,
                                     const DdnnThresholds& t,
                                     const std::vector<int64_t>& failed = {});
nlohmann::json to_json(const DdnnEvaluation& e);

// §4.5.3's individual accuracy: a device section (ConvP blocks + FC, as `like`'s) trained on its
// own on camera `view` (MultiViewDataset::camera, the samples it sees), measured on the test
// set's camera `view`.
Result<double> individual_accuracy(const data::MultiViewDataset& train,
                                   const data::MultiViewDataset& test, int64_t view,
                                   const DdnnConfig& like, const DdnnTrainOptions& options);

}  // namespace idn::motifs
