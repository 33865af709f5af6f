// The model package's description (model.json): a DAG of named layers grouped into stages,
// exit heads attached to stages, FLOPs per stage and exit, and the chosen operating point.
// Pure data and validation: no LibTorch here, so the network layers can read a package.
// The torch-side graph that executes it lives in nn/.
//
// model.json (format "idn-model", version 1):
// {
//   "format": "idn-model", "version": 1, "name": "b-lenet", "motif": "branchynet",
//   "inputs": [{"name": "image", "dtype": "F32", "shape": [1, 28, 28]}],   // per sample
//   "preprocess": {"mean": [0.2860], "std": [0.3530]},                     // optional
//   "labels": ["T-shirt/top", ...],                                        // optional
//   "layers": [
//     {"name": "conv1", "type": "conv2d", "inputs": ["image"],
//      "params": {"in_channels": 1, "out_channels": 5, "kernel": 5, "stride": 1, "padding": 2,
//      "bias": true}},
//     {"name": "relu1", "type": "relu", "inputs": ["conv1"]}, ...
//   ],
//   "stages": [{"name": "stage0", "layers": ["conv1", "relu1", "pool1"], "output": "pool1"}, ...],
//   "exits": [{"name": "exit0", "stage": 0, "layers": ["b0_fc"], "output": "b0_fc",
//              "criterion": "confidence", "threshold": 0.9, "temperature": 1.3}, ...],
//   "operating_point": {...free-form JSON object written by the threshold search...}
// }
// "flops" (per stage and per exit) are computed from the graph and written on save; on load
// they are recomputed and a stored value that disagrees is an error.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "core/tensor.h"

namespace idn::model {

// Append-only.
enum class LayerType {
  kConv2d,  // params: in_channels, out_channels, kernel, stride=1, padding=0, bias=true
  kLinear,  // params: in_features, out_features, bias=true
  kReLU,
  kMaxPool2d,  // params: kernel, stride=kernel, padding=0
  kAvgPool2d,  // params: kernel, stride=kernel, padding=0
  kBatchNorm,  // params: num_features, eps=1e-5, momentum=0.1; 1d on [C] / 2d on [C,H,W]
  kDropout,    // params: p=0.5 (identity at inference)
  kFlatten,    // [C,H,W] -> [C*H*W]
  kLRN,        // local response norm; params: size, alpha=1e-4, beta=0.75, k=1.0
  kSoftmax,    // over the last dimension
  kAggregate,  // params: op = "max" | "avg" | "concat"; several inputs (DDNN views)
};

// "conv2d", "linear", "relu", "maxpool2d", "avgpool2d", "batchnorm", "dropout", "flatten",
// "lrn", "softmax", "aggregate"
std::string_view layer_type_name(LayerType t);
Result<LayerType> parse_layer_type(std::string_view name);

enum class ExitCriterion { kConfidence, kEntropy };  // §3.4: max ŷ ≥ T, or η(ŷ) ≤ T
std::string_view criterion_name(ExitCriterion c);    // "confidence" | "entropy"
Result<ExitCriterion> parse_criterion(std::string_view name);

struct InputSpec {
  std::string name;
  core::DType dtype = core::DType::kF32;
  std::vector<int64_t> shape;  // per sample, without the batch dimension
};

struct LayerSpec {
  std::string name;
  LayerType type = LayerType::kReLU;
  std::vector<std::string> inputs;  // names of model inputs or earlier layers
  nlohmann::json params = nlohmann::json::object();
  // Filled by validation (shape inference), per sample:
  std::vector<int64_t> out_shape;
  int64_t flops = 0;  // 2 x multiply-accumulates for conv/linear; one per output element otherwise
};

struct StageSpec {
  std::string name;
  std::vector<std::string> layers;  // in execution order
  std::string output;               // the layer whose value is handed to the next stage
  int64_t flops = 0;                // filled by validation
};

struct ExitSpec {
  std::string name;
  int stage = 0;                    // the exit is computed after this stage
  std::vector<std::string> layers;  // the branch head, in execution order (may be empty: the
                                    // stage output itself are the logits)
  std::string output;               // layer producing logits [num_classes]
  ExitCriterion criterion = ExitCriterion::kConfidence;
  double threshold = 1.0;    // the last exit always exits regardless
  double temperature = 1.0;  // softmax(z / temperature), §3.4.3
  int64_t flops = 0;         // the head's own cost, filled by validation
};

// A weight the graph needs: "<layer>.weight", "<layer>.bias", "<layer>.running_mean",
// "<layer>.running_var" (batch norm), all F32.
struct WeightSpec {
  std::string name;
  std::vector<int64_t> shape;
};

struct ModelSpec {
  std::string name;
  std::string motif;  // "branchynet" | "ddnn" | "parallelnet" | "plain"
  std::vector<InputSpec> inputs;
  std::vector<float> preprocess_mean, preprocess_std;  // per channel; empty = none
  std::vector<std::string> labels;
  std::vector<LayerSpec> layers;
  std::vector<StageSpec> stages;
  std::vector<ExitSpec> exits;
  nlohmann::json operating_point = nlohmann::json::object();

  const LayerSpec* layer(std::string_view name) const;
  int num_classes() const;  // size of the last exit's logits
  // Cost of running stages [0, stage] plus exit heads of exits at stages <= stage... callers
  // use stage/exit flops directly; this is the full-trunk cost (all stages, last exit head).
  int64_t trunk_flops() const;
  // Weights the graph needs, in layer order; computed from the (validated) layers.
  std::vector<WeightSpec> required_weights() const;
};

// Parses and validates: unknown layer types, missing/extra params, undefined or forward
// references, cycles, a layer in no stage/exit or in two, shape mismatches (e.g. a linear whose
// in_features differs from its input size), exits whose stage does not exist, bad criteria or
// thresholds. Every error message names the layer/stage/exit and says what was expected.
Result<ModelSpec> parse_model_spec(const nlohmann::json& j);
Result<ModelSpec> parse_model_spec_text(std::string_view text);
// Re-validates and fills out_shape/flops for a spec built in code.
Status validate_model_spec(ModelSpec& spec);
nlohmann::json to_json(const ModelSpec& spec);
// to_json pretty-printed (2-space indent, keys sorted, trailing newline): model.json's bytes.
std::string to_json_text(const ModelSpec& spec);

// Checks a set of named tensors (from weights.safetensors) against required_weights():
// every required name present, F32, with the exact shape; no unexpected names.
Status check_weights(const ModelSpec& spec, const std::map<std::string, core::Tensor>& weights);

}  // namespace idn::model
