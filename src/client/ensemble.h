// Combining the answers of independent models (ParallelNet, dissertation §5.3-5.5): average the
// logits, then softmax (Fig. 5.4), or the geometric mean of the probabilities; a temperature for
// the combined scores fitted on held-out data (§5.4.5); progressive combination as answers
// arrive, with an exit criterion (Fig. 5.5); answers that disagree with the rest excluded from
// the average and reported (byzantine peers, §5.5.3). Torch-free. The free functions are pure
// and reentrant; a ProgressiveEnsemble belongs to one request and one thread at a time.
//
// Every result depends only on the set of answers, never on their order: answers are combined
// in the order of their source names, so the same answers give the same bits.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "protocol/messages.h"

namespace idn::client {

enum class CombineRule {
  kMeanLogits,     // softmax(mean_i z_i / T): Fig. 5.4, one softmax for the ensemble
  kGeometricMean,  // softmax(mean_i log softmax(z_i) / T): the normalised geometric mean
  // softmax(log(mean_i softmax(z_i)) / T): the mean of the probabilities (§5.3's alternative
  // ordering). Each answer moves at most 1/N of the mass, so one that was not caught as an
  // outlier cannot carry the combination with huge logits, as it can under the other two.
  kMeanProbabilities,
};

struct EnsembleOptions {
  CombineRule rule = CombineRule::kMeanLogits;
  double temperature = 1.0;  // divides the combined scores (fit_ensemble_temperature)
  // Byzantine detection: with at least `min_for_detection` answers, an answer is an outlier
  // when the class it names differs from the class the others name together (leave-one-out,
  // the mean of their softmax probabilities: bounded, so huge logits cannot sway it), a strict
  // majority of the others name that class themselves, AND the total variation distance
  // between its softmax and that mean is at least `outlier_distance`. Honest thinned models split
  // on hard inputs, but rarely both confidently and against the rest; a peer answering garbage does
  // both. Outliers are removed one at a time, the farthest first, never more than a minority.
  bool exclude_outliers = true;
  size_t min_for_detection = 3;
  double outlier_distance = 0.5;

  // InvalidArgument for a temperature or distance that is not a positive finite number.
  Status validate() const;
};

// One model's answer: its logits (exit output) and who sent it (a peer ID's text, or any name
// unique within the request).
struct Answer {
  std::string source;
  std::vector<float> logits;
};

struct Excluded {
  std::string source;
  int predicted = -1;         // the class it named
  double distance = 0;        // total variation distance from the others' mean probabilities
  int others_predicted = -1;  // the class the others named together
};

struct Combined {
  std::vector<float> scores;       // combined logits (mean z, or mean log-probabilities)
  std::vector<float> probs;        // softmax(scores / temperature)
  int predicted = -1;              // argmax of probs (first on ties)
  float confidence = 0;            // max probs
  float entropy = 0;               // normalised entropy η ∈ [0, 1] (§3.4.2)
  std::vector<std::string> used;   // the sources averaged, sorted
  std::vector<Excluded> excluded;  // the outliers left out, in the order they were removed
};

// Checks one answer: a non-empty source, `classes` logits (when classes > 0), all finite.
Status check_ensemble_answer(const Answer& a, size_t classes);

// Combines a set of answers (any order; sources distinct). InvalidArgument when the set is
// empty, two answers share a source, or an answer fails check_ensemble_answer (the class count
// is taken from the first answer).
Result<Combined> combine(std::vector<Answer> answers, const EnsembleOptions& options = {});

// Softmax temperature of the combined scores (§5.4.5): minimises the mean NLL of
// softmax(scores / T) over held-out samples, golden-section search on log T in [1/20, 20].
// scores: samples x classes, row-major; labels: one class per sample.
struct EnsembleCalibration {
  double temperature = 1.0;
  double nll_before = 0;  // at T = 1
  double nll_after = 0;
};
Result<EnsembleCalibration> fit_ensemble_temperature(std::span<const float> scores, size_t classes,
                                                     std::span<const int> labels);

// When a progressive ensemble may stop (SHOULDEXIT of Fig. 5.5): after `min_answers` answers
// in the combination, when the combined answer meets `rule` (confidence >= threshold, or
// normalised entropy < threshold; kModelDefault/kLastExit: never early), or as soon as
// `expected` answers have arrived (0: unknown) — every model has answered.
struct EnsembleExit {
  protocol::ExitRule rule;
  size_t min_answers = 1;
  size_t expected = 0;
};

// Fig. 5.5: answers added as they arrive; after each one, the current combination of all of
// them (outliers excluded) and whether to stop. Not thread-safe.
class ProgressiveEnsemble {
 public:
  ProgressiveEnsemble(EnsembleOptions options, EnsembleExit exit);

  // Adds one model's answer. InvalidArgument (nothing added) when it is malformed, has another
  // class count than the first answer, or comes from a source already added.
  Status add(Answer answer);
  // The same from an exit answer as /idn/infer/1.0.0 carries it: the exit's class
  // probabilities (its calibrated softmax), F32 [C] or [1, C]. They enter as log-probabilities
  // (softmax(log p) = p), so every rule combines what it would combine from the models' logits
  // (exactly, for exits at temperature 1). InvalidArgument when it is not a probability vector
  // (a value outside [0, 1], or a sum more than 1e-3 from 1): a peer that sends raw scores or
  // garbage is reported, not averaged in.
  Status add(std::string source, const core::Tensor& output);

  size_t answers() const { return answers_.size(); }
  // The combination of every answer added so far; empty (predicted -1) before the first.
  const Combined& current() const { return current_; }
  bool should_exit() const;

 private:
  EnsembleOptions options_;
  EnsembleExit exit_;
  std::vector<Answer> answers_;
  Combined current_;
};

}  // namespace idn::client
