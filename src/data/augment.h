// Training-time augmentation: pad-and-random-crop and random horizontal flip, driven by a
// caller-owned seeded generator so a run is reproducible.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "data/dataset.h"

namespace idn::data {

struct AugmentOptions {
  int pad = 0;         // pad each side by this many pixels, then crop back to H x W
  bool hflip = false;  // mirror left-right with probability 1/2
  float fill = 0.0f;   // value of the padding (0 = black before normalisation)
};

// The H x W window at offset (dy, dx), 0 <= dy, dx <= 2 * pad, of the image padded by `pad`
// on every side with `fill`. dy = dx = pad reproduces the image. src and dst are C x H x W.
void crop_padded(std::span<const float> src, int64_t c, int64_t h, int64_t w, int pad, int dy,
                 int dx, float fill, std::span<float> dst);
// Mirrors each row in place.
void flip_horizontal(std::span<float> img, int64_t c, int64_t h, int64_t w);
// One random crop offset and flip draw per image, in that order.
void augment_image(std::span<const float> src, int64_t c, int64_t h, int64_t w,
                   const AugmentOptions& options, std::mt19937_64& rng, std::span<float> dst);

// Gathers the samples at `indices` into a batch (N x C x H x W floats and labels), augmenting
// each image. Indices must be in range (as produced by shuffled_batches).
void make_batch(const Dataset& d, std::span<const int64_t> indices, const AugmentOptions& options,
                std::mt19937_64& rng, std::vector<float>& images, std::vector<int64_t>& labels);

}  // namespace idn::data
