#include "motifs/tradeoff.h"

#include <algorithm>
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

ProfilePoint evaluate_point(const model::ModelSpec& spec, const std::vector<ExitScores>& scores,
                            const std::vector<int64_t>& labels, const ComponentCosts& costs,
                            const std::vector<double>& thresholds) {
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
  size_t correct = 0;
  for (size_t i = 0; i < taken.size(); ++i) {
    int e = taken[i];
    std::span<const float> p(scores[e].probs.data() + i * scores[e].classes, scores[e].classes);
    correct += model::argmax(p) == labels[i];
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
  return pt;
}

std::vector<ProfilePoint> sweep_thresholds(const model::ModelSpec& spec,
                                           const std::vector<ExitScores>& scores,
                                           const std::vector<int64_t>& labels,
                                           const ComponentCosts& costs, int grid) {
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
    out.push_back(evaluate_point(spec, scores, labels, costs, th));
    int e = 0;
    while (e < n_exits && ++idx[e] == cand[e].size()) idx[e++] = 0;
    if (e == n_exits) break;
  }
  return out;
}

ProfilePoint choose_operating_point(const std::vector<ProfilePoint>& profile, double final_accuracy,
                                    double max_drop) {
  const ProfilePoint* best = nullptr;
  for (const auto& p : profile) {
    if (p.accuracy + 1e-12 < final_accuracy - max_drop) continue;
    if (!best || p.mean_us < best->mean_us ||
        (p.mean_us == best->mean_us && p.accuracy > best->accuracy))
      best = &p;
  }
  if (best) return *best;
  // Nothing qualifies (cannot happen when the never-exit point is in the profile): most accurate.
  return *std::max_element(profile.begin(), profile.end(),
                           [](auto& a, auto& b) { return a.accuracy < b.accuracy; });
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
  return {{"thresholds", p.thresholds}, {"accuracy", p.accuracy},
          {"mean_us", p.mean_us},       {"median_us", p.median_us},
          {"mean_flops", p.mean_flops}, {"exit_fraction", p.exit_fraction}};
}

}  // namespace idn::motifs
