#include "data/augment.h"

#include <algorithm>
#include <cassert>

#include "data/sampling.h"

namespace idn::data {

void crop_padded(std::span<const float> src, int64_t c, int64_t h, int64_t w, int pad, int dy,
                 int dx, float fill, std::span<float> dst) {
  assert(src.size() == static_cast<size_t>(c * h * w) && dst.size() == src.size());
  for (int64_t ch = 0; ch < c; ++ch)
    for (int64_t y = 0; y < h; ++y) {
      const int64_t sy = y + dy - pad;
      float* out = dst.data() + (ch * h + y) * w;
      if (sy < 0 || sy >= h) {
        std::fill(out, out + w, fill);
        continue;
      }
      const float* in = src.data() + (ch * h + sy) * w;
      for (int64_t x = 0; x < w; ++x) {
        const int64_t sx = x + dx - pad;
        out[x] = sx >= 0 && sx < w ? in[sx] : fill;
      }
    }
}

void flip_horizontal(std::span<float> img, int64_t c, int64_t h, int64_t w) {
  for (int64_t row = 0; row < c * h; ++row)
    std::reverse(img.data() + row * w, img.data() + (row + 1) * w);
}

void augment_image(std::span<const float> src, int64_t c, int64_t h, int64_t w,
                   const AugmentOptions& options, std::mt19937_64& rng, std::span<float> dst) {
  int dy = options.pad, dx = options.pad;
  if (options.pad > 0) {
    const uint64_t span = 2 * static_cast<uint64_t>(options.pad) + 1;
    dy = static_cast<int>(uniform_below(rng, span));
    dx = static_cast<int>(uniform_below(rng, span));
  }
  crop_padded(src, c, h, w, options.pad, dy, dx, options.fill, dst);
  if (options.hflip && uniform_below(rng, 2) == 1) flip_horizontal(dst, c, h, w);
}

void make_batch(const Dataset& d, std::span<const int64_t> indices, const AugmentOptions& options,
                std::mt19937_64& rng, std::vector<float>& images, std::vector<int64_t>& labels) {
  const int64_t size = d.image_size();
  images.resize(indices.size() * static_cast<size_t>(size));
  labels.resize(indices.size());
  for (size_t b = 0; b < indices.size(); ++b) {
    const int64_t i = indices[b];
    assert(i >= 0 && i < d.n);
    std::span<float> dst(images.data() + b * size, static_cast<size_t>(size));
    augment_image(d.image(i), d.c, d.h, d.w, options, rng, dst);
    labels[b] = d.labels[i];
  }
}

}  // namespace idn::data
