#include "engine/latency.h"

#include <algorithm>
#include <chrono>
#include <cmath>

namespace idn::engine {

LatencyStats latency_stats(std::vector<double> v) {
  LatencyStats s;
  if (v.empty()) return s;
  double sum = 0;
  for (double x : v) sum += x;
  s.mean_us = sum / v.size();
  std::sort(v.begin(), v.end());
  s.median_us = v[v.size() / 2];
  s.p99_us = v[std::min(v.size() - 1, static_cast<size_t>(std::ceil(0.99 * v.size())) - 1)];
  return s;
}

Result<EngineRun> run_labelled(Engine& engine, const std::vector<core::Tensor>& samples,
                               const std::vector<int64_t>& labels, const ExitRule& rule,
                               int warmup) {
  if (samples.size() != labels.size())
    return Status::invalid_argument("samples and labels differ in count");
  for (int i = 0; i < warmup && !samples.empty(); ++i) {
    IDN_ASSIGN_OR_RETURN(auto ev, engine.infer(samples[i % samples.size()], rule));
    (void)ev;
  }
  EngineRun run;
  run.exit_fraction.assign(engine.spec().exits.size(), 0);
  run.times_us.reserve(samples.size());
  run.correct.reserve(samples.size());
  size_t correct = 0;
  using Clock = std::chrono::steady_clock;
  for (size_t i = 0; i < samples.size(); ++i) {
    auto t0 = Clock::now();
    auto ev = engine.infer(samples[i], rule);
    run.times_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    if (!ev.ok()) return ev.status().with_context("sample " + std::to_string(i));
    run.correct.push_back(ev->predicted == labels[i]);
    correct += run.correct.back();
    run.exit_fraction[ev->exit_index] += 1;
    run.mean_flops += ev->flops;
  }
  const double n = std::max<size_t>(samples.size(), 1);
  run.accuracy = correct / n;
  for (double& f : run.exit_fraction) f /= n;
  run.mean_flops /= n;
  run.latency = latency_stats(run.times_us);
  return run;
}

}  // namespace idn::engine
