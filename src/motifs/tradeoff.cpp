#include "motifs/tradeoff.h"

#include <algorithm>
#include <cmath>
#include <span>

#include "model/exit_criteria.h"

namespace idn::motifs {
namespace {

double score_of(model::ExitCriterion c, std::span<const float> p) {
  return c == model::ExitCriterion::kConfidence ? model::confidence(p)
                                                : model::normalized_entropy(p);
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  size_t m = v.size() / 2;
  std::nth_element(v.begin(), v.begin() + m, v.end());
  return v[m];
}

}  // namespace

double normal_quantile(double p) {
  // Bisection on the CDF 0.5 erfc(-z / sqrt 2): monotone, exact to ~1e-12, no tables.
  if (!(p > 0 && p < 1)) return p <= 0 ? -INFINITY : INFINITY;
  double lo = -40, hi = 40;
  for (int i = 0; i < 200 && hi - lo > 1e-13; ++i) {
    double mid = 0.5 * (lo + hi);
    (0.5 * std::erfc(-mid / std::sqrt(2.0)) < p ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

PairedLoss paired_loss(const std::vector<uint8_t>& ref, const std::vector<uint8_t>& correct,
                       double confidence) {
  PairedLoss r;
  r.n = static_cast<int64_t>(std::min(ref.size(), correct.size()));
  if (r.n == 0) return r;
  for (int64_t i = 0; i < r.n; ++i) {
    r.ref_only += ref[i] && !correct[i];
    r.point_only += !ref[i] && correct[i];
  }
  const double n = static_cast<double>(r.n);
  r.loss = (r.ref_only - r.point_only) / n;
  // Sample variance of d in {-1, 0, 1}: E[d^2] = discordant / n.
  double var = r.n > 1 ? ((r.ref_only + r.point_only) / n - r.loss * r.loss) * n / (n - 1) : 0;
  r.sd = std::sqrt(std::max(0.0, var));
  r.upper = r.loss + normal_quantile(confidence) * r.sd / std::sqrt(n);
  return r;
}

std::vector<int> simulate_exits(const model::ModelSpec& spec, const std::vector<ExitScores>& scores,
                                const std::vector<double>& thresholds) {
  const int n_exits = static_cast<int>(spec.exits.size());
  const size_t n = scores.empty() ? 0 : scores[0].probs.size() / scores[0].classes;
  std::vector<int> taken(n, n_exits - 1);
  for (size_t i = 0; i < n; ++i) {
    for (int e = 0; e + 1 < n_exits; ++e) {
      std::span<const float> p(scores[e].probs.data() + i * scores[e].classes, scores[e].classes);
      if (model::should_exit(spec.exits[e].criterion, thresholds[e], p)) {
        taken[i] = e;
        break;
      }
    }
  }
  return taken;
}

std::vector<uint8_t> correct_per_sample(const model::ModelSpec& spec,
                                        const std::vector<ExitScores>& scores,
                                        const std::vector<int64_t>& labels,
                                        const std::vector<double>& thresholds) {
  auto taken = simulate_exits(spec, scores, thresholds);
  std::vector<uint8_t> ok(taken.size());
  for (size_t i = 0; i < taken.size(); ++i) {
    const auto& s = scores[taken[i]];
    ok[i] = model::argmax(std::span<const float>(s.probs.data() + i * s.classes, s.classes)) ==
            labels[i];
  }
  return ok;
}

ProfilePoint evaluate_point(const model::ModelSpec& spec, const std::vector<ExitScores>& scores,
                            const std::vector<int64_t>& labels, const ComponentCosts& costs,
                            const std::vector<double>& thresholds, const Reference* ref) {
  const int n_exits = static_cast<int>(spec.exits.size());
  auto taken = simulate_exits(spec, scores, thresholds);
  // Cost of leaving at exit e: stages up to its stage, plus every exit head evaluated on the way.
  std::vector<double> path_us(n_exits), path_flops(n_exits);
  for (int e = 0; e < n_exits; ++e) {
    for (int s = 0; s <= spec.exits[e].stage; ++s) {
      path_us[e] += costs.stage_us[s];
      path_flops[e] += costs.stage_flops[s];
    }
    for (int k = 0; k <= e; ++k) {
      path_us[e] += costs.exit_us[k];
      path_flops[e] += costs.exit_flops[k];
    }
  }
  ProfilePoint pt;
  pt.thresholds = thresholds;
  pt.exit_fraction.assign(n_exits, 0);
  std::vector<double> times(taken.size());
  std::vector<uint8_t> ok(taken.size());
  size_t correct = 0;
  for (size_t i = 0; i < taken.size(); ++i) {
    int e = taken[i];
    std::span<const float> p(scores[e].probs.data() + i * scores[e].classes, scores[e].classes);
    ok[i] = model::argmax(p) == labels[i];
    correct += ok[i];
    pt.exit_fraction[e] += 1;
    times[i] = path_us[e];
    pt.mean_us += path_us[e];
    pt.mean_flops += path_flops[e];
  }
  const double n = std::max<size_t>(taken.size(), 1);
  pt.accuracy = correct / n;
  pt.mean_us /= n;
  pt.mean_flops /= n;
  for (double& f : pt.exit_fraction) f /= n;
  pt.median_us = median(std::move(times));
  if (ref && !ref->correct.empty()) {
    auto pl = paired_loss(ref->correct, ok, ref->confidence);
    pt.loss = pl.loss;
    pt.loss_upper = pl.upper;
  }
  return pt;
}

std::vector<ProfilePoint> sweep_thresholds(const model::ModelSpec& spec,
                                           const std::vector<ExitScores>& scores,
                                           const std::vector<int64_t>& labels,
                                           const ComponentCosts& costs, int grid,
                                           const Reference* ref) {
  const int n_exits = static_cast<int>(spec.exits.size());
  // Candidates per early exit: quantiles of that exit's scores, plus a value that never exits.
  std::vector<std::vector<double>> cand(n_exits);
  for (int e = 0; e + 1 < n_exits; ++e) {
    const auto& sc = scores[e];
    size_t n = sc.probs.size() / sc.classes;
    std::vector<double> v(n);
    for (size_t i = 0; i < n; ++i)
      v[i] = score_of(spec.exits[e].criterion,
                      std::span<const float>(sc.probs.data() + i * sc.classes, sc.classes));
    std::sort(v.begin(), v.end());
    bool conf = spec.exits[e].criterion == model::ExitCriterion::kConfidence;
    cand[e].push_back(conf ? 1.0 + 1e-9 : -1e-9);  // never exit
    for (int g = 0; g < grid && n; ++g) cand[e].push_back(v[std::min(n - 1, size_t(g) * n / grid)]);
    std::sort(cand[e].begin(), cand[e].end());
    cand[e].erase(std::unique(cand[e].begin(), cand[e].end()), cand[e].end());
  }
  cand[n_exits - 1] = {
      spec.exits[n_exits - 1].criterion == model::ExitCriterion::kConfidence ? 0.0 : 1.0};
  std::vector<ProfilePoint> out;
  std::vector<size_t> idx(n_exits, 0);
  while (true) {
    std::vector<double> th(n_exits);
    for (int e = 0; e < n_exits; ++e) th[e] = cand[e][idx[e]];
    out.push_back(evaluate_point(spec, scores, labels, costs, th, ref));
    int e = 0;
    while (e < n_exits && ++idx[e] == cand[e].size()) idx[e++] = 0;
    if (e == n_exits) break;
  }
  return out;
}

ProfilePoint choose_operating_point(const std::vector<ProfilePoint>& profile, double max_loss,
                                    bool* met) {
  const ProfilePoint* best = nullptr;
  for (const auto& p : profile) {
    if (p.loss_upper > max_loss + 1e-12) continue;
    if (!best || p.mean_us < best->mean_us ||
        (p.mean_us == best->mean_us && p.accuracy > best->accuracy))
      best = &p;
  }
  if (met) *met = best != nullptr;
  if (best || profile.empty()) return best ? *best : ProfilePoint{};
  // Nothing qualifies (a baseline better than even the full model): the smallest bound.
  return *std::min_element(profile.begin(), profile.end(), [](auto& a, auto& b) {
    return a.loss_upper != b.loss_upper ? a.loss_upper < b.loss_upper : a.mean_us < b.mean_us;
  });
}

std::vector<ProfilePoint> pareto_front(std::vector<ProfilePoint> profile) {
  std::sort(profile.begin(), profile.end(), [](auto& a, auto& b) {
    return a.mean_us != b.mean_us ? a.mean_us < b.mean_us : a.accuracy > b.accuracy;
  });
  std::vector<ProfilePoint> front;
  double best_acc = -1;
  for (auto& p : profile)
    if (p.accuracy > best_acc) {
      best_acc = p.accuracy;
      front.push_back(p);
    }
  return front;
}

nlohmann::json to_json(const ProfilePoint& p) {
  return {{"thresholds", p.thresholds},
          {"accuracy", p.accuracy},
          {"mean_us", p.mean_us},
          {"median_us", p.median_us},
          {"mean_flops", p.mean_flops},
          {"exit_fraction", p.exit_fraction},
          {"loss", p.loss},
          {"loss_upper", p.loss_upper}};
}

}  // namespace idn::motifs
