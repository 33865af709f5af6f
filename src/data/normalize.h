// Per-channel standardisation of a Dataset: statistics from the training set, applied to every
// split (and recorded in model.json's "preprocess" so inference applies the same).
#pragma once

#include <vector>

#include "core/status.h"
#include "data/dataset.h"

namespace idn::data {

struct ChannelStats {
  std::vector<float> mean, std;  // one per channel; std is the population standard deviation
};

// Mean and std of each channel over all samples and pixels (accumulated in double).
ChannelStats compute_channel_stats(const Dataset& d);
// x <- (x - mean[c]) / std[c]. Fails if the channel count differs or a std is not > 0.
Status normalize(Dataset& d, const ChannelStats& stats);

}  // namespace idn::data
