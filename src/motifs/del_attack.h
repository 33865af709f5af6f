// The inverse-mapping attack on a DEL function (dissertation §6.4): an attacker trains an MLP
// f^-1: R^n -> Q^m (n -> hidden -> m*C, one-hot targets, squared error, Adam) on pairs
// (f(x), x) and decodes f^-1(y_t). With x drawn near x_t (GENERATEINVERSEDATANEARBY) it finds
// x_t; with random x (GENERATEINVERSEDATARANDOM) it does not. Not thread-safe per Del.
#pragma once

#include <functional>
#include <span>
#include <vector>

#include "core/status.h"
#include "daimon/labels.h"
#include "motifs/del.h"

namespace idn::motifs {

enum class InverseData { kRandom, kNearby };

struct InverseAttackOptions {
  InverseData data = InverseData::kRandom;
  int epochs = 40;
  int64_t samples_per_epoch = 1024;
  int64_t batch = 64;
  int64_t hidden = 1024;
  double lr = 1e-3;
  uint64_t seed = 1;
};

// Trains f^-1 against `del` and returns, per epoch, e(f^-1(y_t), x_t): the share of test
// labels the attacker still gets wrong. `xt` is used only to draw nearby samples and to score.
Result<std::vector<double>> inverse_attack(Del& del, std::span<const daimon::Label> xt,
                                           const InverseAttackOptions& options,
                                           const std::function<void(int, double)>& progress = {});

}  // namespace idn::motifs
