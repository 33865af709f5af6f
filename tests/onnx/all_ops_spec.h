// A small package that uses every layer type of model_spec.h in each form the exporter maps
// differently (LRN of odd and even size, batch norm on [C, H, W] and [C], pooling with
// padding, every aggregation, an exit head without layers, softmax), with seeded random weights:
// for the ONNX export tests.
#pragma once

#include <random>
#include <string>

#include "core/status.h"
#include "core/tensor.h"
#include "model/package.h"

namespace idn::testing {

inline constexpr const char* kAllOpsSpec = R"({
  "format": "idn-model", "version": 1, "name": "all-ops", "motif": "plain",
  "inputs": [{"name": "image", "dtype": "F32", "shape": [3, 12, 12]}],
  "preprocess": {"mean": [0.25, 0.5, 0.75], "std": [0.5, 0.25, 2.0]},
  "labels": ["a", "b", "c", "d"],
  "layers": [
    {"name": "conv1", "type": "conv2d", "inputs": ["image"],
     "params": {"in_channels": 3, "out_channels": 6, "kernel": 3, "stride": 1, "padding": 1}},
    {"name": "bn1", "type": "batchnorm", "inputs": ["conv1"], "params": {"num_features": 6}},
    {"name": "relu1", "type": "relu", "inputs": ["bn1"]},
    {"name": "lrn1", "type": "lrn", "inputs": ["relu1"],
     "params": {"size": 5, "alpha": 0.01, "beta": 0.75, "k": 2.0}},
    {"name": "pool1", "type": "maxpool2d", "inputs": ["lrn1"], "params": {"kernel": 2}},
    {"name": "e0_pool", "type": "avgpool2d", "inputs": ["pool1"],
     "params": {"kernel": 3, "stride": 2, "padding": 1}},
    {"name": "e0_flat", "type": "flatten", "inputs": ["e0_pool"]},
    {"name": "e0_fc", "type": "linear", "inputs": ["e0_flat"],
     "params": {"in_features": 54, "out_features": 4}},
    {"name": "e0_sm", "type": "softmax", "inputs": ["e0_fc"]},
    {"name": "conv2", "type": "conv2d", "inputs": ["pool1"],
     "params": {"in_channels": 6, "out_channels": 8, "kernel": 3, "stride": 2, "padding": 1}},
    {"name": "lrn2", "type": "lrn", "inputs": ["conv2"],
     "params": {"size": 4, "alpha": 0.1, "beta": 0.5, "k": 1.0}},
    {"name": "mp2", "type": "maxpool2d", "inputs": ["lrn2"],
     "params": {"kernel": 3, "stride": 1, "padding": 1}},
    {"name": "conv3a", "type": "conv2d", "inputs": ["pool1"],
     "params": {"in_channels": 6, "out_channels": 4, "kernel": 1}},
    {"name": "conv3b", "type": "conv2d", "inputs": ["pool1"],
     "params": {"in_channels": 6, "out_channels": 4, "kernel": 1, "bias": false}},
    {"name": "agg_max", "type": "aggregate", "inputs": ["conv3a", "conv3b"], "params": {"op": "max"}},
    {"name": "agg_avg", "type": "aggregate", "inputs": ["conv3a", "conv3b"], "params": {"op": "avg"}},
    {"name": "agg_cat", "type": "aggregate", "inputs": ["agg_max", "agg_avg"],
     "params": {"op": "concat"}},
    {"name": "apool", "type": "avgpool2d", "inputs": ["agg_cat"], "params": {"kernel": 2}},
    {"name": "cat2", "type": "aggregate", "inputs": ["mp2", "apool"], "params": {"op": "concat"}},
    {"name": "flat1", "type": "flatten", "inputs": ["cat2"]},
    {"name": "bn2", "type": "batchnorm", "inputs": ["flat1"],
     "params": {"num_features": 144, "eps": 0.001}},
    {"name": "drop", "type": "dropout", "inputs": ["bn2"], "params": {"p": 0.5}},
    {"name": "fc1", "type": "linear", "inputs": ["drop"],
     "params": {"in_features": 144, "out_features": 16, "bias": false}},
    {"name": "relu2", "type": "relu", "inputs": ["fc1"]},
    {"name": "fc2", "type": "linear", "inputs": ["relu2"],
     "params": {"in_features": 16, "out_features": 4}}
  ],
  "stages": [
    {"name": "stage0", "layers": ["conv1", "bn1", "relu1", "lrn1", "pool1"], "output": "pool1"},
    {"name": "stage1", "layers": ["conv2", "lrn2", "mp2", "conv3a", "conv3b", "agg_max", "agg_avg",
                                  "agg_cat", "apool", "cat2", "flat1", "bn2", "drop", "fc1",
                                  "relu2", "fc2"], "output": "fc2"}
  ],
  "exits": [
    {"name": "exit0", "stage": 0, "layers": ["e0_pool", "e0_flat", "e0_fc", "e0_sm"],
     "output": "e0_sm", "criterion": "confidence", "threshold": 0.3, "temperature": 0.5},
    {"name": "exit1", "stage": 1, "layers": [], "output": "fc2", "criterion": "entropy",
     "threshold": 0.5, "temperature": 1.5}
  ]
})";

// The all-ops spec with weights drawn from a seeded uniform distribution (running variances
// positive).
inline Result<model::Package> all_ops_package(uint32_t seed = 1) {
  IDN_ASSIGN_OR_RETURN(auto spec, model::parse_model_spec_text(kAllOpsSpec));
  model::Package pkg{std::move(spec), {}};
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-0.5f, 0.5f);
  for (const auto& w : pkg.spec.required_weights()) {
    int64_t n = 1;
    for (int64_t d : w.shape) n *= d;
    std::vector<float> v(n);
    const bool var = w.name.ends_with(".running_var");
    for (float& x : v) x = var ? 1.0f + u(rng) : u(rng);
    pkg.weights[w.name] = core::Tensor::f32(w.shape, v);
  }
  return pkg;
}

}  // namespace idn::testing
