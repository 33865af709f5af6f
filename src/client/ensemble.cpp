#include "client/ensemble.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "client/answer.h"

namespace idn::client {
namespace {

using Vec = std::vector<double>;

Vec softmax(const Vec& z, double temperature) {
  double m = -std::numeric_limits<double>::infinity();
  for (double v : z) m = std::max(m, v / temperature);
  Vec p(z.size());
  double s = 0;
  for (size_t i = 0; i < z.size(); ++i) s += p[i] = std::exp(z[i] / temperature - m);
  for (double& v : p) v /= s;
  return p;
}

Vec log_softmax(const std::vector<float>& z) {
  double m = -std::numeric_limits<double>::infinity();
  for (float v : z) m = std::max(m, static_cast<double>(v));
  double s = 0;
  for (float v : z) s += std::exp(v - m);
  const double lse = m + std::log(s);
  Vec out(z.size());
  for (size_t i = 0; i < z.size(); ++i) out[i] = z[i] - lse;
  return out;
}

int argmax(const Vec& v) {
  return v.empty() ? -1 : static_cast<int>(std::max_element(v.begin(), v.end()) - v.begin());
}

// The combined scores of `answers` (indices into `all`), summed in the order given.
Vec combined_scores(const std::vector<Answer>& all, const std::vector<size_t>& idx,
                    CombineRule rule) {
  Vec s(all[idx[0]].logits.size(), 0.0);
  for (size_t i : idx) {
    if (rule == CombineRule::kGeometricMean) {
      auto l = log_softmax(all[i].logits);
      for (size_t c = 0; c < s.size(); ++c) s[c] += l[c];
    } else if (rule == CombineRule::kMeanProbabilities) {
      auto l = log_softmax(all[i].logits);
      for (size_t c = 0; c < s.size(); ++c) s[c] += std::exp(l[c]);
    } else {
      for (size_t c = 0; c < s.size(); ++c) s[c] += all[i].logits[c];
    }
  }
  for (double& v : s) v /= static_cast<double>(idx.size());
  if (rule == CombineRule::kMeanProbabilities)
    for (double& v : s) v = std::log(std::max(v, 1e-300));  // scores whose softmax is the mean
  return s;
}

double total_variation(const Vec& a, const Vec& b) {
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d += std::abs(a[i] - b[i]);
  return 0.5 * d;
}

double nll(std::span<const float> scores, size_t classes, std::span<const int> labels, double t) {
  double total = 0;
  for (size_t n = 0; n < labels.size(); ++n) {
    const float* z = scores.data() + n * classes;
    double m = -std::numeric_limits<double>::infinity();
    for (size_t c = 0; c < classes; ++c) m = std::max(m, z[c] / t);
    double s = 0;
    for (size_t c = 0; c < classes; ++c) s += std::exp(z[c] / t - m);
    total += m + std::log(s) - z[labels[n]] / t;
  }
  return total / static_cast<double>(labels.size());
}

}  // namespace

Status EnsembleOptions::validate() const {
  if (!std::isfinite(temperature) || temperature <= 0)
    return Status::invalid_argument("ensemble temperature must be a positive number");
  if (!std::isfinite(outlier_distance) || outlier_distance <= 0 || outlier_distance > 1)
    return Status::invalid_argument("outlier distance must be in (0, 1]");
  return Status::ok();
}

Status check_ensemble_answer(const Answer& a, size_t classes) {
  if (a.source.empty()) return Status::invalid_argument("an answer without a source");
  if (a.logits.empty()) return Status::invalid_argument("answer from " + a.source + " is empty");
  if (classes > 0 && a.logits.size() != classes)
    return Status::invalid_argument("answer from " + a.source + " has " +
                                    std::to_string(a.logits.size()) + " classes, expected " +
                                    std::to_string(classes));
  for (float v : a.logits)
    if (!std::isfinite(v))
      return Status::invalid_argument("answer from " + a.source + " has a non-finite logit");
  return Status::ok();
}

Result<Combined> combine(std::vector<Answer> answers, const EnsembleOptions& o) {
  IDN_RETURN_IF_ERROR(o.validate());
  if (answers.empty()) return Status::invalid_argument("no answers to combine");
  std::sort(answers.begin(), answers.end(),
            [](const Answer& a, const Answer& b) { return a.source < b.source; });
  const size_t classes = answers[0].logits.size();
  for (size_t i = 0; i < answers.size(); ++i) {
    IDN_RETURN_IF_ERROR(check_ensemble_answer(answers[i], classes));
    if (i > 0 && answers[i].source == answers[i - 1].source)
      return Status::invalid_argument("two answers from " + answers[i].source);
  }
  std::vector<size_t> active(answers.size());
  for (size_t i = 0; i < active.size(); ++i) active[i] = i;
  Combined out;
  // §5.5.3: cross-check each answer against the others; drop the farthest outlier, repeat.
  // At most a minority is dropped: (n - 1) / 2 of n answers.
  const size_t max_excluded = (answers.size() - 1) / 2;
  // Each answer is judged against the mean of the others' probabilities: a bounded vote, so
  // one answer with huge logits cannot drag the others' consensus towards itself.
  std::vector<Vec> probs;
  for (const auto& a : answers)
    probs.push_back(softmax(Vec(a.logits.begin(), a.logits.end()), 1.0));
  while (o.exclude_outliers && active.size() >= o.min_for_detection &&
         out.excluded.size() < max_excluded) {
    Excluded worst;
    size_t worst_at = active.size();
    for (size_t k = 0; k < active.size(); ++k) {
      Vec rest(classes, 0.0);
      for (size_t j = 0; j < active.size(); ++j)
        if (j != k)
          for (size_t c = 0; c < classes; ++c) rest[c] += probs[active[j]][c];
      for (double& v : rest) v /= static_cast<double>(active.size() - 1);
      const Vec& own = probs[active[k]];
      const double d = total_variation(own, rest);
      size_t agree = 0;  // others that name the others' class themselves
      for (size_t j = 0; j < active.size(); ++j)
        if (j != k && argmax(probs[active[j]]) == argmax(rest)) ++agree;
      if (2 * agree > active.size() - 1 && argmax(own) != argmax(rest) && d >= o.outlier_distance &&
          (worst_at == active.size() || d > worst.distance)) {
        worst = {answers[active[k]].source, argmax(own), d, argmax(rest)};
        worst_at = k;
      }
    }
    if (worst_at == active.size()) break;
    out.excluded.push_back(std::move(worst));
    active.erase(active.begin() + static_cast<std::ptrdiff_t>(worst_at));
  }
  const Vec s = combined_scores(answers, active, o.rule);
  const Vec p = softmax(s, o.temperature);
  out.scores.assign(s.begin(), s.end());
  out.probs.assign(p.begin(), p.end());
  out.predicted = argmax(p);
  out.confidence = static_cast<float>(p[out.predicted]);
  double h = 0;
  for (double v : p)
    if (v > 0) h -= v * std::log(v);
  out.entropy = classes > 1 ? static_cast<float>(h / std::log(static_cast<double>(classes))) : 0;
  for (size_t i : active) out.used.push_back(answers[i].source);
  return out;
}

Result<EnsembleCalibration> fit_ensemble_temperature(std::span<const float> scores, size_t classes,
                                                     std::span<const int> labels) {
  if (classes < 2 || labels.empty() || scores.size() != classes * labels.size())
    return Status::invalid_argument(
        "calibration needs samples x classes scores (classes >= 2) "
        "and one label per sample");
  for (int y : labels)
    if (y < 0 || static_cast<size_t>(y) >= classes)
      return Status::invalid_argument("calibration label " + std::to_string(y) + " is not a class");
  for (float v : scores)
    if (!std::isfinite(v)) return Status::invalid_argument("calibration scores must be finite");
  EnsembleCalibration c;
  c.nll_before = nll(scores, classes, labels, 1.0);
  // NLL is unimodal in T for fixed scores: golden-section search on log T.
  const double g = (std::sqrt(5.0) - 1) / 2;
  double lo = std::log(1.0 / 20), hi = std::log(20.0);
  double x1 = hi - g * (hi - lo), x2 = lo + g * (hi - lo);
  double f1 = nll(scores, classes, labels, std::exp(x1));
  double f2 = nll(scores, classes, labels, std::exp(x2));
  for (int i = 0; i < 60; ++i) {
    if (f1 < f2) {
      hi = x2, x2 = x1, f2 = f1;
      x1 = hi - g * (hi - lo);
      f1 = nll(scores, classes, labels, std::exp(x1));
    } else {
      lo = x1, x1 = x2, f1 = f2;
      x2 = lo + g * (hi - lo);
      f2 = nll(scores, classes, labels, std::exp(x2));
    }
  }
  c.temperature = std::exp(0.5 * (lo + hi));
  c.nll_after = nll(scores, classes, labels, c.temperature);
  if (c.nll_after > c.nll_before) c = {1.0, c.nll_before, c.nll_before};
  return c;
}

ProgressiveEnsemble::ProgressiveEnsemble(EnsembleOptions options, EnsembleExit exit)
    : options_(std::move(options)), exit_(std::move(exit)) {}

Status ProgressiveEnsemble::add(Answer answer) {
  IDN_RETURN_IF_ERROR(
      check_ensemble_answer(answer, answers_.empty() ? 0 : answers_[0].logits.size()));
  for (const auto& a : answers_)
    if (a.source == answer.source)
      return Status::invalid_argument("a second answer from " + answer.source);
  answers_.push_back(std::move(answer));
  auto c = combine(answers_, options_);
  if (!c.ok()) {
    answers_.pop_back();
    return c.status();
  }
  current_ = std::move(*c);
  return Status::ok();
}

Status ProgressiveEnsemble::add(std::string source, const core::Tensor& output) {
  IDN_RETURN_IF_ERROR(output.validate().with_context("answer from " + source));
  const bool row = output.shape.size() == 1 || (output.shape.size() == 2 && output.shape[0] == 1);
  if (output.dtype != core::DType::kF32 || !row)
    return Status::invalid_argument("answer from " + source + " must be F32 [C] or [1, C], got " +
                                    core::shape_string(output.shape));
  auto v = output.f32();
  double sum = 0;
  for (float x : v) {
    if (!(x >= 0.0f && x <= 1.0f + 1e-5f))
      return Status::invalid_argument("answer from " + source +
                                      " is not a probability vector (a value of " +
                                      std::to_string(x) + ")");
    sum += x;
  }
  if (std::abs(sum - 1) > 1e-3)
    return Status::invalid_argument("answer from " + source +
                                    " is not a probability vector (its values sum to " +
                                    std::to_string(sum) + ")");
  // A zero probability becomes a large finite negative log: one confident answer stays finite.
  constexpr float kFloor = 1e-12f;
  std::vector<float> logp(v.size());
  for (size_t i = 0; i < v.size(); ++i) logp[i] = std::log(std::max(v[i], kFloor));
  return add(Answer{std::move(source), std::move(logp)});
}

bool ProgressiveEnsemble::should_exit() const {
  if (answers_.empty()) return false;
  if (exit_.expected > 0 && answers_.size() >= exit_.expected) return true;
  return current_.used.size() >= exit_.min_answers &&
         meets_exit_rule(exit_.rule, current_.confidence, current_.entropy);
}

}  // namespace idn::client
