// DDNN sections (dissertation ch. 4, §4.4) as hosted services (serve/handler.h): a device
// section on the peer that owns its camera, run in its packed on-device form (ondevice::Section,
// no LibTorch), and the cloud section (LibTorch: serve_torch/ddnn_cloud.cpp). Also what the rest of
// IDN needs to know about a DDNN package (ddnn.json) and the section descriptors (§7.4) it is
// published under. Torch-free header: node/ and the CLI include it.
//
// Wire use (proto/idn_infer.proto):
//   device d  request: sample_ref = i (the frame at time i of its camera), no input.
//             answer:  exit 0, F32 [classes] scores, no confidence or entropy (left 0: the
//                      local aggregator judges the aggregate of the devices' scores, never one
//                      device's alone); with stop_after_stage = 0 the last ConvP's bits
//                      instead, U8 [ceil(f*h*w / 8)] packed. A frame with nothing in view (the
//                      replay's view label -1) is answered kInvalidRequest "not in view": the view
//                      is absent.
//   cloud     request: inputs = the present devices' packed features, input_views = their
//                      device indices (strictly increasing), no input.
//             answer:  exit 0, F32 [classes] cloud scores, confidence, normalized entropy.
// Threading: handlers are called by InferServer on its io executor, one call at a time.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "data/multiview.h"
#include "ise/service_descriptor.h"
#include "ondevice/section.h"
#include "serve/handler.h"

namespace idn::serve {

// ddnn.json as the network reads it.
struct DdnnInfo {
  std::string name;
  char letter = 'c';
  int64_t devices = 0, classes = 0, channels = 0, size = 0;
  std::vector<int64_t> views;  // the dataset view (camera) device d reads
  std::string local;           // the local aggregation: "MP" | "AP" | "CC"
  double local_threshold = 0.8;
  ondevice::Shape features;   // one device's feature shape
  std::string manifest_hash;  // sha2-256 multihash (base58) of ddnn.json's bytes
  std::vector<std::string> labels;
  int64_t feature_bits() const { return features.size(); }
  int64_t feature_bytes() const { return (features.size() + 7) / 8; }
};
// Reads and checks ddnn.json (its config through ondevice/ddnn_config.h). The network deploys
// configurations with a local exit and no edge, (b) and (c): others are Unsupported.
Result<DdnnInfo> read_ddnn_info(const std::filesystem::path& package_dir);

// The descriptor a section is published under (motif "ddnn", model.cid = the package's CID,
// model.hash = ddnn.json's hash); `section` is "device<d>" or "cloud", and the descriptor's name
// is "<package name>.<section>", so every section has its own service ID.
Result<ise::ServiceDescriptor> ddnn_section_descriptor(const DdnnInfo& info,
                                                       const std::string& section,
                                                       const std::string& package_cid);

// Device d of the package, on a camera replay: frame i is camera->view(i, info.views[d]).
// The section is device<d>.idnb, parsed as a sensor would (no LibTorch, no weights file).
Result<std::shared_ptr<Handler>> ddnn_device_handler(
    const std::filesystem::path& package_dir, int64_t device,
    std::shared_ptr<const data::MultiViewDataset> camera);
// The cloud section of the package (loads the whole package with motifs::load_ddnn): on LibTorch,
// registered by idn_serve_torch; Unsupported in a program built without it.
Result<std::shared_ptr<Handler>> ddnn_cloud_handler(const std::filesystem::path& package_dir);
using DdnnCloudFactory = std::function<Result<std::shared_ptr<Handler>>(
    DdnnInfo info, const std::filesystem::path& package_dir)>;
// Called once by idn_serve_torch's static initializer.
void register_ddnn_cloud(DdnnCloudFactory factory);

}  // namespace idn::serve
