// ONNX export of a model package: each stage and each exit head becomes one ONNX graph (opset
// 13, IR version 7, batch dimension "N"), described by manifest.json, so that other runtimes
// (onnxruntime, onnxruntime-web in a browser) run a package stage by stage with early exit as
// IDN's engine does. Torch-free: the package is read through model/. Functions are reentrant.
//
// What each graph computes, per sample, is what engine::Engine computes:
// - stage_<i>.onnx: the stage's layers; stage 0 also applies the package's preprocessing
//   ((x - mean) * (1 / std) per channel), so it takes the raw input. Input: the model input
//   or the previous stage's output; output: the stage's output, each named as in model.json.
// - exit_<j>.onnx: the exit head on its stage's values; outputs "logits" (the head's raw
//   output) and "probs" = softmax(logits / temperature), the engine's ExitEvent::probs, to
//   which the package's exit rule applies (manifest.json says which rule and threshold).
//
// manifest.json (format "idn-onnx", version 1, keys sorted):
// {"format": "idn-onnx", "version": 1, "opset": 13, "ir_version": 7,
//  "model": {"name": "b-lenet", "motif": "branchynet", "hash": "Qm...", "classes": 10},
//  "input": {"name": "image", "dtype": "F32", "shape": ["N", 1, 28, 28]},
//  "preprocess": {"mean": [...], "std": [...]},          // applied inside stage_0.onnx
//  "labels": [...],
//  "stages": [{"index": 0, "name": "stage0", "file": "stage_0.onnx", "sha256": "<hex>",
//              "bytes": 10404, "flops": 600000,
//              "inputs": [{"name": "image", "from": "input", "shape": ["N", 1, 28, 28]}],
//              "outputs": [{"name": "pool1", "shape": ["N", 5, 14, 14]}]}, ...],
//  "exits": [{"index": 0, "name": "exit0", "stage": 0, "file": "exit_0.onnx", ...,
//             "criterion": "confidence", "threshold": 0.9, "temperature": 1.3,
//             "inputs": [{"name": "pool1", "from": "stage_0", ...}],
//             "outputs": [{"name": "logits", ...}, {"name": "probs", ...}]}, ...],
//  "exit_rule": "..."}                                    // the rule, in words
// "model.hash" is the sha2-256 multihash (base58) of the package's canonical model.json, the
// value a service descriptor's model.hash holds. Export is deterministic: the same package
// gives the same bytes (and so the same CID when published).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/status.h"
#include "model/package.h"

namespace idn::onnx {

inline constexpr int64_t kOpsetVersion = 13;
inline constexpr int64_t kIrVersion = 7;
inline constexpr const char* kManifestFile = "manifest.json";
inline constexpr const char* kManifestFormat = "idn-onnx";
inline constexpr int kManifestVersion = 1;
inline constexpr const char* kBatchDim = "N";

// One input or output of an exported graph.
struct GraphValue {
  std::string name;
  std::vector<int64_t> shape;  // per sample, without the batch dimension
  std::string from;            // inputs: "input" (the model input) or "stage_<i>"
  std::string dtype = {};      // DDNN graphs (ddnn_export.h): "F32" or "U8"; empty: F32
};

struct GraphFile {
  bool is_exit = false;
  int index = 0;     // stage or exit index in model.json
  std::string name;  // the stage's or exit's name in model.json
  std::string file;  // "stage_<i>.onnx" or "exit_<j>.onnx"
  std::vector<GraphValue> inputs, outputs;
  std::string bytes;  // the serialised ONNX ModelProto
};

struct OnnxExport {
  std::vector<GraphFile> graphs;  // every stage in order, then every exit in order
  std::string manifest;           // manifest.json's bytes
};

// Builds every graph and the manifest from a loaded (validated) package. Errors: Unsupported
// saying what ONNX cannot express as the engine computes it (a model with several inputs or a
// non-F32 input, a graph that reads values model.json keeps inside another stage);
// InvalidArgument when a weight is missing or misshapen.
Result<OnnxExport> export_package(const model::Package& package);

// Loads the package in `model_dir`, exports it and writes every graph and manifest.json into
// `out_dir` (created if needed). `out_dir` must be new, empty, or hold only files this export
// writes (a previous export of the same package): anything else there is refused rather than
// mixed in. Errors: the package's own (naming model_dir), Unsupported as above (prefixed with
// model_dir), InvalidArgument (out_dir not a directory or not empty), IOError.
Result<OnnxExport> export_onnx(const std::filesystem::path& model_dir,
                               const std::filesystem::path& out_dir);

// Writes an export's graphs and manifest.json into `out_dir` under the rules above (shared
// with the DDNN export). Errors: InvalidArgument, IOError.
Status write_export(const OnnxExport& ex, const std::filesystem::path& out_dir);

}  // namespace idn::onnx
