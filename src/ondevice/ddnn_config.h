// A DDNN's configuration (Fig. 4.1 (a)-(f), §4.2's aggregations) as ddnn.json stores it, and
// what follows from it without LibTorch (the device features' shape): the network reads DDNN
// packages with this (serve/, onnx/), training builds the model from it (motifs/ddnn.h).
// Plain values and reentrant functions.
#pragma once

#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "ondevice/section.h"

namespace idn::ondevice {

inline constexpr const char* kDdnnManifestFile = "ddnn.json";

// §4.2. Append-only (stored in ddnn.json by name).
enum class Aggregation { kMax, kAverage, kConcat };
std::string_view aggregation_name(Aggregation a);         // "MP" | "AP" | "CC"
Result<Aggregation> parse_aggregation(std::string_view);  // MP, AP, CC (any case)

// Fig. 4.1's configurations. (a) one view sent raw to the cloud, which runs everything (the
// device blocks included) and has the only exit; (b) one device with its local exit, then the
// cloud; (c) several devices, a local aggregator of their exits, then the cloud (Fig. 4.4);
// (d) = (b) + an edge between device and cloud; (e) = (c) + one edge; (f) = (e) with the
// devices split over several edges (contiguous groups), each with its own section, the edge
// exit aggregating the edges' scores as the local aggregator does the devices'.
struct DdnnConfig {
  char letter = 'c';
  std::vector<int64_t> views;  // dataset view read by each device; size 1 for (a), (b), (d)
  int64_t edges = 0;           // 0 for (a)-(c), 1 for (d), (e), >= 2 for (f)
  int64_t channels = 3, size = 32, classes = 3;
  int64_t device_filters = 4, device_blocks = 1;  // ConvP blocks per device
  int64_t edge_filters = 8, edge_blocks = 1;
  int64_t cloud_filters = 16, cloud_blocks = 1;
  Aggregation local = Aggregation::kMax;     // device scores -> local exit (and edges' scores)
  Aggregation edge = Aggregation::kConcat;   // device features -> each edge
  Aggregation cloud = Aggregation::kConcat;  // device (or edge) features -> cloud
  // True: a view labelled -1 (the item not in sight) is left out of its device's loss and out
  // of every aggregation, and its device sends nothing. False: the reference code's way: the
  // device runs on the blank view and takes part in aggregation like any other.
  bool mask_absent = true;

  int64_t devices() const { return static_cast<int64_t>(views.size()); }
  bool has_local() const { return letter != 'a'; }
  bool has_edge() const { return edges > 0; }
  // The devices edge g aggregates: [first, last).
  std::pair<int64_t, int64_t> edge_devices(int64_t g) const;
};

// The configuration `letter` ('a'..'f') with `views` cameras for the multi-device ones (c, e,
// f: views 0..views-1; f: two edges) and view 0 for the single-device ones.
Result<DdnnConfig> ddnn_config(char letter, int64_t views = 6);
// Sizes positive, views distinct and < 64, letter and structure consistent.
Status validate(const DdnnConfig& c);
nlohmann::json to_json(const DdnnConfig& c);
Result<DdnnConfig> ddnn_config_from_json(const nlohmann::json& j);  // untrusted input

// The device's features after its ConvP blocks (a device section's output to the next level).
Shape device_feature_shape(const DdnnConfig& c);

}  // namespace idn::ondevice
