// engine::Engine on its two backends: every entry point answers alike on LibTorch and on
// cpu::Executor (classes, exits, flops, stage counts; probabilities within 1e-4), early exit
// skips stages on both, and kAuto picks cpu where it agrees and torch where it cannot run or
// disagrees.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <random>

#include "engine/engine.h"
#include "model/package.h"
#include "motifs/branchynet_arch.h"
#include "motifs/spec_builder.h"
#include "nn/graph.h"
#include "support/tiny_model.h"

namespace idn::engine {
namespace {

namespace fs = std::filesystem;
constexpr double kTol = 1e-4;

std::unique_ptr<Engine> load(const fs::path& dir, Backend b, int cpu_max_batch = 32) {
  auto e = Engine::load(dir, {.threads = 1, .backend = b, .cpu_max_batch = cpu_max_batch});
  EXPECT_TRUE(e.ok()) << e.status().to_string();
  return e.ok() ? std::move(*e) : nullptr;
}

void expect_same(const ExitEvent& a, const ExitEvent& b, const std::string& what) {
  SCOPED_TRACE(what);
  EXPECT_EQ(a.exit_index, b.exit_index);
  EXPECT_EQ(a.stage, b.stage);
  EXPECT_EQ(a.predicted, b.predicted);
  EXPECT_EQ(a.exited, b.exited);
  EXPECT_EQ(a.flops, b.flops);
  EXPECT_NEAR(a.confidence, b.confidence, kTol);
  EXPECT_NEAR(a.entropy, b.entropy, kTol);
  ASSERT_EQ(a.probs.size(), b.probs.size());
  for (size_t i = 0; i < a.probs.size(); ++i) EXPECT_NEAR(a.probs[i], b.probs[i], kTol);
}

void expect_near(const core::Tensor& a, const core::Tensor& b, const std::string& what) {
  ASSERT_EQ(a.shape, b.shape) << what;
  auto x = a.f32(), y = b.f32();
  float d = 0;
  for (size_t i = 0; i < x.size(); ++i) d = std::max(d, std::abs(x[i] - y[i]));
  EXPECT_LE(d, kTol) << what;
}

// [N, ...] of N samples; `batched`: each has a leading batch dimension of 1.
core::Tensor stack(const std::vector<core::Tensor>& xs, bool batched = false) {
  std::vector<int64_t> shape{static_cast<int64_t>(xs.size())};
  auto per = xs[0].shape;
  if (batched) per.erase(per.begin());
  shape.insert(shape.end(), per.begin(), per.end());
  std::vector<float> v;
  for (const auto& x : xs) v.insert(v.end(), x.f32().begin(), x.f32().end());
  return core::Tensor::f32(shape, v);
}

// A package of `arch` with seeded random weights, saved under the temp directory.
fs::path random_package(const std::string& arch) {
  auto spec = *motifs::branchynet_arch(arch);
  torch::manual_seed(11);
  nn::Graph g(spec);
  fs::path dir =
      fs::temp_directory_path() / ("idn-backend-" + arch + "-" + std::to_string(::getpid()));
  EXPECT_TRUE(model::save_package({spec, g->export_weights()}, dir).is_ok());
  return dir;
}

std::vector<core::Tensor> random_samples(const model::ModelSpec& spec, int n) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(0.f, 1.f);
  std::vector<core::Tensor> out;
  for (int i = 0; i < n; ++i) {
    auto t = core::Tensor::zeros(core::DType::kF32, spec.inputs[0].shape);
    for (float& v : t.f32_mut()) v = u(rng);
    out.push_back(std::move(t));
  }
  return out;
}

// Runs every entry point on both backends (and on cpu in chunks of 7) and compares.
void check_entry_points(const fs::path& dir, const std::vector<core::Tensor>& samples) {
  auto torch = load(dir, Backend::kTorch);
  auto cpu = load(dir, Backend::kCpu);
  auto cpu7 = load(dir, Backend::kCpu, 7);
  ASSERT_TRUE(torch && cpu && cpu7);
  EXPECT_EQ(torch->backend(), Backend::kTorch);
  EXPECT_EQ(cpu->backend(), Backend::kCpu);
  const size_t n = samples.size();
  const int n_exits = static_cast<int>(torch->spec().exits.size());
  const int n_stages = static_cast<int>(torch->spec().stages.size());

  // A rule that sends about half the samples out at exit 0: the median of its confidence.
  const ExitRule never{model::ExitCriterion::kConfidence, 2.0};
  std::vector<double> conf0;
  for (size_t i = 0; i < n; ++i) {
    std::vector<ExitEvent> a, b;
    auto ra = torch->infer_progressive(samples[i], never, [&](const ExitEvent& e) {
      a.push_back(e);
      return true;
    });
    auto rb = cpu->infer_progressive(samples[i], never, [&](const ExitEvent& e) {
      b.push_back(e);
      return true;
    });
    ASSERT_TRUE(ra.ok() && rb.ok());
    ASSERT_EQ(a.size(), static_cast<size_t>(n_exits));
    ASSERT_EQ(b.size(), a.size());
    for (size_t k = 0; k < a.size(); ++k)
      expect_same(a[k], b[k],
                  "progressive sample " + std::to_string(i) + " exit " + std::to_string(k));
    conf0.push_back(a[0].confidence);
  }
  std::sort(conf0.begin(), conf0.end());
  const ExitRule half{model::ExitCriterion::kConfidence, (conf0[n / 2 - 1] + conf0[n / 2]) / 2};

  std::vector<ExitEvent> singles;
  for (size_t i = 0; i < n; ++i) {
    auto a = torch->infer(samples[i], half);
    auto b = cpu->infer(samples[i], half);
    ASSERT_TRUE(a.ok() && b.ok());
    expect_same(*a, *b, "infer sample " + std::to_string(i));
    singles.push_back(*a);
  }
  int early = 0;
  for (const auto& e : singles) early += e.exit_index == 0;
  EXPECT_GT(early, 0);
  EXPECT_LT(early, static_cast<int>(n));

  // Batches: 32 + the rest on cpu, chunks of 7 on cpu7, samples leaving between stages.
  const auto batch = stack(samples);
  auto ta = torch->infer_batch(batch, half);
  auto tb = cpu->infer_batch(batch, half);
  auto tc = cpu7->infer_batch(batch, half);
  ASSERT_TRUE(ta.ok() && tb.ok() && tc.ok()) << tb.status().to_string();
  for (size_t i = 0; i < n; ++i) {
    expect_same((*ta)[i], (*tb)[i], "infer_batch sample " + std::to_string(i));
    expect_same((*ta)[i], (*tc)[i], "infer_batch (chunks of 7) sample " + std::to_string(i));
    expect_same((*ta)[i], singles[i], "infer_batch vs infer, sample " + std::to_string(i));
  }

  // Progressive batch with per-sample rules; every fifth sample is dropped before stage 1.
  std::vector<ExitRule> rules(n, half);
  for (size_t i = 0; i < n; i += 3) rules[i] = never;
  auto drop = [](size_t sample, int stage) { return stage == 0 || sample % 5 != 0; };
  std::vector<std::vector<ExitEvent>> got;
  std::vector<std::vector<int>> reported;
  for (Engine* e : {torch.get(), cpu.get(), cpu7.get()}) {
    reported.emplace_back(n, 0);
    auto r = e->infer_batch_progressive(
        batch, -1, rules,
        [&](size_t i, const ExitEvent&) {
          ++reported.back()[i];
          return true;
        },
        drop);
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    got.push_back(*r);
  }
  for (size_t k = 1; k < got.size(); ++k) {
    EXPECT_EQ(reported[k], reported[0]);
    for (size_t i = 0; i < n; ++i)
      expect_same(got[0][i], got[k][i], "progressive batch sample " + std::to_string(i));
  }

  // Split execution: prefixes, stage outputs, and resuming from them (one by one, batched).
  for (int last = 0; last + 1 < n_stages; ++last) {
    std::vector<core::Tensor> acts;
    for (size_t i = 0; i < n; ++i) {
      auto a = torch->run_stages(samples[i], -1, last);
      auto b = cpu->run_stages(samples[i], -1, last);
      ASSERT_TRUE(a.ok() && b.ok());
      expect_near(*a, *b, "run_stages sample " + std::to_string(i));
      auto pa = torch->run_prefix(samples[i], last, half);
      auto pb = cpu->run_prefix(samples[i], last, half);
      ASSERT_TRUE(pa.ok() && pb.ok());
      ASSERT_EQ(pa->exit.has_value(), pb->exit.has_value());
      if (pa->exit) expect_same(*pa->exit, *pb->exit, "run_prefix sample " + std::to_string(i));
      if (!pa->exit || !pa->exit->exited) expect_near(pa->activation, pb->activation, "prefix");
      auto fa = torch->run_from(*a, last, half);
      auto fb = cpu->run_from(*a, last, half);
      ASSERT_TRUE(fa.ok() && fb.ok());
      expect_same(*fa, *fb, "run_from sample " + std::to_string(i));
      acts.push_back(*a);
    }
    auto acts_batch = stack(acts, true);
    auto ra = torch->infer_batch_progressive(acts_batch, last, rules, {});
    auto rb = cpu->infer_batch_progressive(acts_batch, last, rules, {});
    auto rc = cpu7->infer_batch_progressive(acts_batch, last, rules, {});
    ASSERT_TRUE(ra.ok() && rb.ok() && rc.ok()) << rc.status().to_string();
    for (size_t i = 0; i < n; ++i) {
      expect_same((*ra)[i], (*rb)[i], "resumed batch sample " + std::to_string(i));
      expect_same((*ra)[i], (*rc)[i], "resumed batch (chunks of 7) sample " + std::to_string(i));
    }
  }
  // The same calls ran the same stages on both backends (in batches: chunks count once).
  EXPECT_EQ(torch->stage_runs(), cpu->stage_runs());

  // A bad activation is a clear error on cpu as on torch.
  auto bad = core::Tensor::zeros(core::DType::kF32, {1, 3});
  auto ea = torch->run_from(bad, 0, half);
  auto eb = cpu->run_from(bad, 0, half);
  ASSERT_FALSE(ea.ok());
  ASSERT_FALSE(eb.ok());
  EXPECT_NE(eb.status().message().find("activation does not fit the model"), std::string::npos)
      << eb.status().to_string();
}

TEST(EngineBackends, EveryEntryPointAnswersAlikeOnTheTrainedBLeNet) {
  auto samples = motifs::to_samples(idn::testing::tiny_data().test.x.slice(0, 0, 40));
  check_entry_points(idn::testing::tiny_package("b-lenet"), samples);
}

TEST(EngineBackends, EveryEntryPointAnswersAlikeOnEveryBranchyNetArchitecture) {
  for (const auto& arch : motifs::branchynet_arch_names()) {
    if (arch.rfind("b-", 0) != 0) continue;  // the exit paths need exits; the rest are one stage
    SCOPED_TRACE(arch);
    auto dir = random_package(arch);
    auto spec = *motifs::branchynet_arch(arch);
    check_entry_points(dir, random_samples(spec, arch == "b-alexnet" ? 10 : 20));
    fs::remove_all(dir);
  }
}

TEST(EngineBackends, EarlyExitSkipsLaterStagesOnCpu) {
  auto cpu = load(idn::testing::tiny_package(), Backend::kCpu);
  ASSERT_TRUE(cpu);
  const auto samples = motifs::to_samples(idn::testing::tiny_data().test.x.slice(0, 0, 10));
  const ExitRule always{model::ExitCriterion::kConfidence, 0.0};
  for (const auto& s : samples) ASSERT_TRUE(cpu->infer(s, always).ok());
  EXPECT_EQ(cpu->stage_runs(), (std::vector<int64_t>{10, 0}));
  // A batch where every sample exits at the first exit never runs stage 1 either.
  ASSERT_TRUE(cpu->infer_batch(stack(samples), always).ok());
  EXPECT_EQ(cpu->stage_runs(), (std::vector<int64_t>{11, 0}));
  // Cancelling at the first exit stops the work too.
  auto r = cpu->infer_progressive(samples[0], {}, [](const ExitEvent&) { return false; });
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(cpu->stage_runs(), (std::vector<int64_t>{12, 0}));
}

TEST(EngineBackends, AutoPicksCpuWhereItAgreesAndTorchWhereItCannotRunOrDisagrees) {
  for (Backend b : {Backend::kAuto, Backend::kTorch, Backend::kCpu})
    EXPECT_EQ(*parse_backend(backend_name(b)), b);
  auto bad = parse_backend("gpu");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("auto, torch or cpu"), std::string::npos);

  const auto dir = idn::testing::tiny_package();
  // Untimed (auto_time_rounds 0): agreement alone decides.
  auto a = Engine::load(dir, {.backend = Backend::kAuto, .auto_time_rounds = 0});
  ASSERT_TRUE(a.ok());
  EXPECT_EQ((*a)->backend(), Backend::kCpu) << (*a)->backend_reason();
  EXPECT_EQ((*a)->backend_reason().find("probe pass"), std::string::npos);
  EXPECT_EQ((*a)->backend_reason().rfind("cpu: agrees with LibTorch", 0), 0u)
      << (*a)->backend_reason();
  auto t = load(dir, Backend::kTorch);
  EXPECT_EQ(t->backend(), Backend::kTorch);
  // The executor refuses a max_batch below 1: Auto falls back to torch and says why, an
  // explicit cpu is an error that says so.
  auto f = load(dir, Backend::kAuto, 0);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->backend(), Backend::kTorch);
  EXPECT_NE(f->backend_reason().find("cannot run"), std::string::npos) << f->backend_reason();
  EXPECT_NE(f->backend_reason().find("max_batch"), std::string::npos) << f->backend_reason();
  auto e = Engine::load(dir, {.backend = Backend::kCpu, .cpu_max_batch = 0});
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("backend cpu cannot run this package"), std::string::npos)
      << e.status().to_string();

  // Denormal weights: both backends run stages with denormals treated as zero
  // (core::DenormalsAreZero), and a huge next layer would make any difference visible in the
  // probabilities: they agree, and auto keeps cpu.
  motifs::SpecBuilder b("denormal", "branchynet");
  b.input("image", {1, 2, 2});
  b.stage("s0").flatten("flat").linear("fc1", 4, 2);
  b.exit("e0").linear("fc2", 2, 2);
  auto spec = b.build();
  ASSERT_TRUE(spec.ok()) << spec.status().to_string();
  std::map<std::string, core::Tensor> w;
  w["fc1.weight"] =
      core::Tensor::f32({2, 4}, std::vector<float>{1e-40f, 1e-40f, 1e-40f, 1e-40f, 0, 0, 0, 0});
  w["fc1.bias"] = core::Tensor::f32({2}, std::vector<float>{0, 0});
  w["fc2.weight"] = core::Tensor::f32({2, 2}, std::vector<float>{1e38f, 0, 0, 0});
  w["fc2.bias"] = core::Tensor::f32({2}, std::vector<float>{0, 0});
  const fs::path ddir =
      fs::temp_directory_path() / ("idn-backend-denormal-" + std::to_string(::getpid()));
  ASSERT_TRUE(model::save_package({*spec, w}, ddir).is_ok());
  auto torch = load(ddir, Backend::kTorch);
  auto cpu = load(ddir, Backend::kCpu);
  auto da = Engine::load(ddir, {.backend = Backend::kAuto, .auto_time_rounds = 0});
  ASSERT_TRUE(torch && cpu && da.ok());
  auto x = core::Tensor::f32({1, 2, 2}, std::vector<float>{0.5f, 0.5f, 0.5f, 0.5f});
  auto pt = torch->infer(x), pc = cpu->infer(x);
  ASSERT_TRUE(pt.ok() && pc.ok());
  EXPECT_NEAR(pt->probs[0], pc->probs[0], kTol);
  EXPECT_EQ(pt->predicted, pc->predicted);
  EXPECT_EQ((*da)->backend(), Backend::kCpu) << (*da)->backend_reason();
  fs::remove_all(ddir);
}

// Where both agree, auto keeps the faster of the timed probe passes; the times are injected, so
// the test does not depend on this machine's.
TEST(EngineBackends, AutoKeepsTheFasterOfTwoAgreeingBackendsAndSaysTheTimes) {
  const auto dir = idn::testing::tiny_package();
  for (const bool cpu_faster : {true, false}) {
    int calls = 0;
    EngineOptions o{.backend = Backend::kAuto, .auto_time_rounds = 3};
    o.probe_time_us = [&](Backend b) {
      ++calls;
      return (b == Backend::kCpu) == cpu_faster ? 10.0 : 40.0;
    };
    auto e = Engine::load(dir, o);
    ASSERT_TRUE(e.ok()) << e.status().to_string();
    const std::string& why = (*e)->backend_reason();
    EXPECT_EQ(calls, 6);  // 3 rounds, both backends
    EXPECT_EQ((*e)->backend(), cpu_faster ? Backend::kCpu : Backend::kTorch) << why;
    EXPECT_NE(
        why.find(cpu_faster ? "cpu 10.0 us vs torch 40.0 us" : "cpu 40.0 us vs torch 10.0 us"),
        std::string::npos)
        << why;
    EXPECT_NE(why.find("agree"), std::string::npos) << why;
    // The choice serves: same answer as the reference on a sample.
    auto x = core::Tensor::f32({1, 28, 28}, std::vector<float>(28 * 28, 0.3f));
    auto t = load(dir, Backend::kTorch);
    auto pa = (*e)->infer(x), pt = t->infer(x);
    ASSERT_TRUE(pa.ok() && pt.ok());
    EXPECT_EQ(pa->predicted, pt->predicted);
  }
}

}  // namespace
}  // namespace idn::engine
