#include "data/normalize.h"

#include <cmath>
#include <string>

namespace idn::data {

ChannelStats compute_channel_stats(const Dataset& d) {
  ChannelStats s;
  const int64_t plane = d.h * d.w;
  for (int64_t c = 0; c < d.c; ++c) {
    double sum = 0, sq = 0;
    for (int64_t i = 0; i < d.n; ++i) {
      const float* p = d.images.data() + i * d.image_size() + c * plane;
      for (int64_t k = 0; k < plane; ++k) {
        sum += p[k];
        sq += static_cast<double>(p[k]) * p[k];
      }
    }
    const double count = static_cast<double>(d.n * plane);
    const double mean = count > 0 ? sum / count : 0;
    const double var = count > 0 ? std::max(0.0, sq / count - mean * mean) : 0;
    s.mean.push_back(static_cast<float>(mean));
    s.std.push_back(static_cast<float>(std::sqrt(var)));
  }
  return s;
}

Status normalize(Dataset& d, const ChannelStats& stats) {
  if (static_cast<int64_t>(stats.mean.size()) != d.c ||
      static_cast<int64_t>(stats.std.size()) != d.c)
    return Status::invalid_argument(
        "normalisation stats have " + std::to_string(stats.mean.size()) + " means and " +
        std::to_string(stats.std.size()) + " stds for " + std::to_string(d.c) + " channels");
  for (int64_t c = 0; c < d.c; ++c)
    if (!(stats.std[c] > 0))
      return Status::invalid_argument("std of channel " + std::to_string(c) +
                                      " is not > 0 (constant images?)");
  const int64_t plane = d.h * d.w;
  for (int64_t i = 0; i < d.n; ++i)
    for (int64_t c = 0; c < d.c; ++c) {
      float* p = d.images.data() + i * d.image_size() + c * plane;
      const float m = stats.mean[c], inv = 1.0f / stats.std[c];
      for (int64_t k = 0; k < plane; ++k) p[k] = (p[k] - m) * inv;
    }
  return Status::ok();
}

}  // namespace idn::data
