// ONNX export of a DDNN package (ddnn.json, device<d>.idnb, weights.safetensors; motifs/ddnn.h),
// the form onnxruntime (and onnxruntime-web in a browser) runs a DDNN in, section by section as
// IDN's network does. Torch-free: device sections are read as ondevice::Section, the cloud's
// weights from weights.safetensors. Functions are reentrant.
//
// Graphs (opset 13, IR version 7, batch dimension "N"), each computing per sample exactly what
// its IDN counterpart computes:
// - device_<d>.onnx (ondevice::Section::run_device): input "view" U8 [N, C, H, W], the camera's
//   8-bit pixels unscaled (the section sums +-pixel). Binary conv / linear layers are float
//   Conv / MatMul with +-1 weights (integer-exact: every sum is an integer below 2^24), zero
//   padding 1, MaxPool 3x3 s2 p1, each folded threshold a GreaterOrEqual (y >= t) or
//   LessOrEqual (y <= t, a negative BN scale) then Where to +-1; the FC scores layer is
//   ((y - mean) / std) * gamma + beta as four ops in that order. Outputs "scores" F32
//   [N, classes] (what the device sends the local aggregator), "features" F32 [N, f, h, w] in
//   {-1, +1} (the last ConvP's bits) and "features_packed" U8 [N, ceil(f*h*w / 8)] (the same
//   bits as the wire carries them: ondevice::pack_bytes).
// - local.onnx (only for MP and AP, the fixed functions; CC's learned map is not deployed on
//   the network, client/ddnn_session.h): "scores" F32 [N, D, classes] and "present" F32 [N, D]
//   (1 present, 0 absent) -> "scores" F32 [N, classes], as motifs::aggregate.
// - cloud.onnx (motifs::Ddnn::cloud_forward, what serve/'s cloud section runs with LibTorch):
//   "features" F32 [N, D, f, h, w] (+-1; an absent device's rows are ignored, 0 by convention)
//   and "present" F32 [N, D] -> "scores" F32 [N, classes]: the cloud aggregation (MP / AP / CC
//   over present devices), its ConvP blocks (binary conv, max-pool, the four batch-norm ops,
//   sign with x >= 0 -> +1) and its FC scores block.
// manifest.json: format "idn-onnx-ddnn" (version 1), not "idn-onnx": its graphs are not a
// chain of stages and exits, so a reader of idn-onnx refuses it instead of misrunning it. It
// lists every graph (file, sha256, bytes, inputs and outputs with dtype and shape), the input's
// scaling, the local exit's aggregation, criterion and threshold, the cloud's aggregation, and
// "model.hash", the sha2-256 multihash (base58) of ddnn.json (the DDNN section descriptors'
// model.hash). Deterministic: the same package gives the same bytes.
#pragma once

#include <filesystem>
#include <map>
#include <string>

#include "core/bytes.h"
#include "core/status.h"
#include "onnx/onnx_export.h"

namespace idn::onnx {

inline constexpr const char* kDdnnManifestFormat = "idn-onnx-ddnn";
inline constexpr const char* kDdnnPackageFile = "ddnn.json";

// True when `dir` holds a ddnn.json (a DDNN package rather than a model package).
bool is_ddnn_package(const std::filesystem::path& dir);

// Builds every graph and the manifest. Errors: InvalidArgument / Corruption for a bad
// ddnn.json, device section or weight (naming the file); Unsupported for configurations the
// network does not deploy (edges, config (a)) or values ONNX float arithmetic cannot hold
// exactly (a threshold beyond 2^24).
Result<OnnxExport> export_ddnn(const std::filesystem::path& package_dir);

// The same from the package's files held in memory, by name ("ddnn.json", "device<d>.idnb",
// "weights.safetensors"; a missing one is NotFound). For tests and fuzzing.
Result<OnnxExport> export_ddnn_files(const std::map<std::string, Bytes>& files);

// export_ddnn, then writes the graphs and manifest.json into `out_dir` under the rules of
// onnx::export_onnx (new, empty, or a previous export's files only).
Result<OnnxExport> export_ddnn_onnx(const std::filesystem::path& package_dir,
                                    const std::filesystem::path& out_dir);

}  // namespace idn::onnx
