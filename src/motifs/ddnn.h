// DDNN (dissertation ch. 4): one network whose sections run on end devices, a local aggregator,
// an optional edge and the cloud (Fig. 4.1 (a)-(f)), joined by MP / AP / CC aggregation (§4.2),
// and its package (every section's weights plus each device's packed on-device form). A Ddnn is
// a torch module: one thread at a time. Free functions are reentrant.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "core/status.h"
#include "nn/binary_blocks.h"
#include "nn/binary_export.h"
#include "ondevice/ddnn_config.h"
#include "ondevice/section.h"

namespace idn::motifs {

// The configuration and ddnn.json's constants are torch-free (ondevice/ddnn_config.h).
using ondevice::Aggregation;
using ondevice::aggregation_name;
using ondevice::ddnn_config;
using ondevice::ddnn_config_from_json;
using ondevice::DdnnConfig;
using ondevice::device_feature_shape;
using ondevice::kDdnnManifestFile;
using ondevice::parse_aggregation;
using ondevice::to_json;
using ondevice::validate;

// Aggregates K inputs per sample. x: [N, K, D, ...]; present: [N, K] bool. Absent inputs are
// missing, not zeros: MP is the max and AP the mean over the present inputs only (a sample with
// none present gets 0); CC concatenates along D ([N, K*D, ...]) with an absent input's block
// 0 (the only value a fixed-width concatenation can hold; for binary features it is "neither
// +1 nor -1"). Differentiable (MP passes the gradient to the maximum).
torch::Tensor aggregate(Aggregation op, const torch::Tensor& x, const torch::Tensor& present);

// Every exit's class scores for a batch (undefined tensors for the exits a configuration lacks).
struct DdnnOutput {
  std::vector<torch::Tensor> device_scores;    // per device [N, classes] ((a): none)
  std::vector<torch::Tensor> device_features;  // per device [N, f, h, w] in {-1, 0, +1}
  torch::Tensor present;                       // [N, devices] bool: who took part
  torch::Tensor local, edge, cloud;            // [N, classes]
};

class DdnnImpl : public torch::nn::Module {
 public:
  explicit DdnnImpl(DdnnConfig config);

  // views: [N, devices, C, H, W], pixel values 0..255 as floats (so the packed device section
  // computes the same integers); present: [N, devices] bool (a failed device is absent too).
  // With mask_absent, devices run on their present rows only (batch norm sees real views).
  DdnnOutput forward(const torch::Tensor& views, const torch::Tensor& present);

  // The sections on their own, as each node would run them (eval or train mode alike).
  struct DeviceOut {
    torch::Tensor features, scores;  // scores undefined for (a)
  };
  DeviceOut device_forward(int64_t d, const torch::Tensor& view);  // [N, C, H, W]
  // scores: [N, devices, classes] -> local exit [N, classes].
  torch::Tensor local_forward(const torch::Tensor& scores, const torch::Tensor& present);
  struct EdgeOut {
    torch::Tensor features, scores;
  };
  // features of edge g's devices: [N, k, f, h, w].
  EdgeOut edge_forward(int64_t g, const torch::Tensor& features, const torch::Tensor& present);
  // Edges' scores [N, edges, classes] -> edge exit.
  torch::Tensor edge_exit(const torch::Tensor& scores, const torch::Tensor& present);
  // Device features ((a)-(c)) or edge features ((d)-(f)): [N, K, c, h, w] -> cloud exit.
  torch::Tensor cloud_forward(const torch::Tensor& features, const torch::Tensor& present);

  void clip_weights();  // every binary block's WeightClip, after each optimizer step
  const DdnnConfig& config() const { return config_; }
  // The device section's blocks, in order (ConvPs, then the FC scores block; (a): none).
  std::vector<nn::SectionBlock> device_blocks(int64_t d) const;

 private:
  DeviceOut device_rows(int64_t d, const torch::Tensor& view, const torch::Tensor& rows);

  DdnnConfig config_;
  std::vector<std::vector<nn::ConvP>> device_convs_;
  std::vector<nn::Fc> device_fc_;
  nn::Fc local_map_{nullptr};  // CC's linear map back to `classes`
  std::vector<std::vector<nn::ConvP>> edge_convs_;
  std::vector<nn::Fc> edge_fc_;
  nn::Fc edge_map_{nullptr};
  std::vector<nn::ConvP> cloud_convs_;
  nn::Fc cloud_fc_{nullptr};
};
TORCH_MODULE(Ddnn);

// Exit thresholds on normalized entropy (§4.4): a sample exits at an exit when η ≤ T there, and
// falls back to the next level when η > T; the cloud always classifies. T >= 1 exits every
// sample, T <= 0 none (§4.5.5: "a threshold of 0 would mean that no samples will exit").
struct DdnnThresholds {
  double local = 0.8, edge = 0.8;
};
bool exits_at(double normalized_entropy, double threshold);

// The package (a directory):
//   ddnn.json            {"format": "idn-ddnn", "version": 1, "name", "motif": "ddnn",
//                         "config": {...to_json(DdnnConfig)}, "thresholds": {"local", "edge"},
//                         "labels": [...], "sections": [{"name": "device0" | "local" |
//                         "edge0" | "edge" | "cloud", "role", "weights_prefix", "inputs",
//                         "output", "ondevice": "device0.idnb" (devices)}, ...],
//                         "training": {...}, "evaluation": {...}}  (the last two free-form)
//   weights.safetensors  every parameter and batch-norm statistic, named by module path
//                        ("device0.conv0.weight", "cloud.fc.bn.running_var", ...): a section's
//                        weights are those under its prefix
//   device<d>.idnb       device d's section as ondevice::Section bytes (pixels in, the FC's
//                        scores out), exported from the same weights
// model::ModelSpec (model.json) has no binary weights or sign activation, so a DDNN package has
// no model.json: the engine and `idn publish` do not serve it yet.
struct DdnnPackage {
  std::string name = "ddnn";
  Ddnn model{nullptr};
  DdnnThresholds thresholds;
  std::vector<std::string> labels;
  nlohmann::json training = nlohmann::json::object(), evaluation = nlohmann::json::object();
};

// Exports every device section (nn::export_section) and writes the files above; ddnn.json last,
// through a temporary file, so a reader never sees a half-written package.
Status save_ddnn(const DdnnPackage& package, const std::filesystem::path& dir);
// Validates ddnn.json, loads weights with their exact names and shapes, and checks every
// device blob against a fresh export of the loaded weights (Corruption when they differ).
// The model is in eval mode.
Result<DdnnPackage> load_ddnn(const std::filesystem::path& dir);

}  // namespace idn::motifs
