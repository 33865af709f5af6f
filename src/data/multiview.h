// Multi-view, multi-camera samples (DDNN §4.5.2, MVMC's structure): per sample one item seen by
// several cameras, each view an 8-bit image, absent views blank with label -1. Generated from
// FashionMNIST or read from a directory (format below). Plain values: share read-only freely.
//
// On-disk format (a directory; `write_multiview` writes it, `read_multiview` reads it):
//   manifest.json  {"format": "idn-multiview", "version": 1, "samples": N, "views": V,
//                   "channels": C, "height": H, "width": W, "classes": ["name", ...],
//                   "pixels": "pixels.u8", "sample_labels": "sample_labels.i8",
//                   "view_labels": "view_labels.i8"}
//   pixels.u8          N x V x C x H x W bytes, row-major (pixel 0..255)
//   sample_labels.i8   N signed bytes: the item's class, 0 <= label < classes
//   view_labels.i8     N x V signed bytes: the item's class where camera v sees it, else -1
// File names in the manifest are plain names inside the directory. Limits: V <= 64,
// C <= 16, H, W <= 1024, at most 128 classes.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "data/dataset.h"

namespace idn::data {

struct MultiViewDataset {
  int64_t n = 0, views = 0, c = 0, h = 0, w = 0;
  std::vector<std::string> class_names;  // label k names class_names[k]
  std::vector<uint8_t> pixels;           // n x views x c x h x w
  std::vector<int64_t> labels;           // n: the item's class
  std::vector<int64_t> view_labels;      // n x views: labels[i] where seen, else -1

  int64_t classes() const { return static_cast<int64_t>(class_names.size()); }
  int64_t view_size() const { return c * h * w; }
  std::span<const uint8_t> view(int64_t i, int64_t v) const {
    return {pixels.data() + (i * views + v) * view_size(), static_cast<size_t>(view_size())};
  }
  bool present(int64_t i, int64_t v) const { return view_labels[i * views + v] >= 0; }
  // Camera v's images as a Dataset (pixels / 255, labels -1 where absent), e.g. to train or
  // measure one device on its own ("individual accuracy", §4.5.3).
  Dataset camera(int64_t v) const;
};

// One camera's fixed viewpoint. The item (a 28x28 FashionMNIST image, centred) is scaled,
// rotated about its centre and shifted, then sampled bilinearly into the H x W view.
struct CameraSpec {
  float shift_x = 0, shift_y = 0;  // pixels, in the view
  float scale = 1;                 // > 0; 32/28 fills a 32x32 view
  float rotation_deg = 0;          // counter-clockwise
  float jitter = 1;                // per-sample uniform shift in [-jitter, jitter] pixels
  // An occluder fixed in the view (a post in front of the lens): a box of grey value
  // `occluder_value`, in view pixels; empty when w or h is 0.
  int occluder_x = 0, occluder_y = 0, occluder_w = 0, occluder_h = 0;
  float occluder_value = 0.5f;
  float noise_std = 0;  // Gaussian noise on [0, 1] pixels, per pixel and sample
  float gain[3] = {1, 1,
                   1};  // per colour channel (camera white balance); channel c uses gain[c % 3]
  // Probability that the camera sees an item of class k: presence * class_bias[k] (clamped to
  // [0, 1]); class_bias empty means 1 for every class. Unequal biases give each camera its
  // own class mix (MVMC's Fig. 4.6).
  float presence = 1;
  std::vector<float> class_bias;

  float see_probability(int64_t cls) const;
};

// Pullover, Coat and Sandal: two classes that look alike and one that does not, as MVMC's
// car, bus and person.
std::vector<int64_t> default_multiview_classes();
// Six cameras with different viewpoints, presence and class mixes (documented in the .cpp);
// `classes` sets the length of each class_bias.
std::vector<CameraSpec> default_cameras(int64_t classes);

struct MultiViewOptions {
  int64_t samples = 1000;
  int64_t size = 32;     // views are size x size
  int64_t channels = 3;  // 1 (grey) or 3 (the item's grey scaled by each camera's gains)
  std::vector<int64_t> source_classes = default_multiview_classes();  // label k = source class
  std::vector<CameraSpec> cameras;  // empty: default_cameras(source_classes.size())
  uint64_t seed = 1;
};

// Samples `options.samples` items, uniformly over the classes, from `source` (e.g.
// FashionMNIST train for training data, test for test data) and renders every camera's view.
// A draw in which no camera sees the item is drawn again (every sample is seen at least once),
// so camera v sees class k with probability p_vk / (1 - prod_j (1 - p_jk)).
// Deterministic for (source, options) on one platform: sample i depends only on the seed and i.
Result<MultiViewDataset> generate_multiview(const Dataset& source, const MultiViewOptions& options);

// Writes `d` into `dir` (created if needed) in the format above; the manifest is written last
// (through a temporary file and a rename), so a reader never sees a half-written set.
Status write_multiview(const MultiViewDataset& d, const std::filesystem::path& dir);
// Reads and validates a directory in the format above: sizes must match the manifest exactly,
// labels must be in range and each view label must be -1 or the sample's label.
Result<MultiViewDataset> read_multiview(const std::filesystem::path& dir);

}  // namespace idn::data
