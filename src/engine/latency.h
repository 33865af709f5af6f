// Measures what a user of the engine sees: batch-1 fast inference over a labelled set, per
// sample wall time, accuracy and the exit mix. The time distribution of an early-exit model
// is bimodal, so the mean (what the BranchyNet paper reports) comes with median and p99.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/engine.h"

namespace idn::engine {

struct LatencyStats {
  double mean_us = 0, median_us = 0, p99_us = 0;
};
LatencyStats latency_stats(std::vector<double> samples_us);

struct EngineRun {
  double accuracy = 0;
  LatencyStats latency;
  std::vector<double> exit_fraction;  // per exit
  double mean_flops = 0;
  std::vector<double> times_us;
  std::vector<uint8_t> correct;  // per sample: 1 where the prediction matched the label
};

// Runs Engine::infer on every sample (each [C,H,W]); `warmup` untimed passes over the first
// samples first.
Result<EngineRun> run_labelled(Engine& engine, const std::vector<core::Tensor>& samples,
                               const std::vector<int64_t>& labels, const ExitRule& rule = {},
                               int warmup = 50);

}  // namespace idn::engine
