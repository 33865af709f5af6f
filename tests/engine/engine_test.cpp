#include "engine/engine.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "engine/latency.h"
#include "motifs/spec_builder.h"
#include "nn/graph.h"
#include "support/tiny_model.h"

namespace idn::engine {
namespace {

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto e = Engine::load(idn::testing::tiny_package());
    ASSERT_TRUE(e.ok()) << e.status().to_string();
    engine_ = std::move(*e);
    samples_ = motifs::to_samples(idn::testing::tiny_data().test.x.slice(0, 0, 100));
  }
  std::unique_ptr<Engine> engine_;
  std::vector<core::Tensor> samples_;
};

TEST_F(EngineTest, EarlyExitSkipsLaterStages) {
  const ExitRule always{model::ExitCriterion::kConfidence, 0.0};
  for (const auto& s : samples_) {
    auto ev = engine_->infer(s, always);
    ASSERT_TRUE(ev.ok());
    EXPECT_EQ(ev->exit_index, 0);
  }
  auto runs = engine_->stage_runs();
  EXPECT_EQ(runs[0], 100);
  EXPECT_EQ(runs[1], 0) << "stage 1 ran for samples that had exited";

  const ExitRule never{model::ExitCriterion::kConfidence, 1.5};
  for (const auto& s : samples_) ASSERT_EQ(engine_->infer(s, never)->exit_index, 1);
  runs = engine_->stage_runs();
  EXPECT_EQ(runs[1], 100);
}

TEST_F(EngineTest, CancellingAtTheFirstExitStopsTheWork) {
  const ExitRule never{model::ExitCriterion::kConfidence, 1.5};
  int calls = 0;
  auto ev = engine_->infer_progressive(samples_[0], never, [&](const ExitEvent& e) {
    ++calls;
    return false;  // the client called finish()
  });
  ASSERT_TRUE(ev.ok());
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(engine_->stage_runs()[1], 0);
}

TEST_F(EngineTest, ProgressiveReportsEveryExitWithRisingCost) {
  const ExitRule never{model::ExitCriterion::kConfidence, 1.5};
  std::vector<ExitEvent> seen;
  auto ev = engine_->infer_progressive(samples_[1], never, [&](const ExitEvent& e) {
    seen.push_back(e);
    return true;
  });
  ASSERT_TRUE(ev.ok());
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_LT(seen[0].flops, seen[1].flops);
  EXPECT_TRUE(seen[1].exited);
  double sum = 0;
  for (float p : seen[0].probs) sum += p;
  EXPECT_NEAR(sum, 1.0, 1e-5);
}

TEST_F(EngineTest, BatchAndSingleSampleInferenceAgree) {
  core::Tensor batch{core::DType::kF32, {static_cast<int64_t>(samples_.size()), 1, 28, 28}, {}};
  for (const auto& s : samples_)
    batch.bytes.insert(batch.bytes.end(), s.bytes.begin(), s.bytes.end());
  auto events = engine_->infer_batch(batch);
  ASSERT_TRUE(events.ok()) << events.status().to_string();
  ASSERT_EQ(events->size(), samples_.size());
  int early = 0;
  for (size_t i = 0; i < samples_.size(); ++i) {
    auto single = engine_->infer(samples_[i]);
    ASSERT_TRUE(single.ok());
    EXPECT_EQ((*events)[i].exit_index, single->exit_index) << "sample " << i;
    EXPECT_EQ((*events)[i].predicted, single->predicted) << "sample " << i;
    EXPECT_NEAR((*events)[i].confidence, single->confidence, 1e-4) << "sample " << i;
    early += single->exit_index == 0;
  }
  // The package's operating point exits some samples early and sends others on.
  EXPECT_GT(early, 0);
}

TEST_F(EngineTest, ProgressiveBatchReportsPerSampleAndMatchesOneByOne) {
  const size_t n = 40;
  core::Tensor batch{core::DType::kF32, {static_cast<int64_t>(n), 1, 28, 28}, {}};
  for (size_t i = 0; i < n; ++i)
    batch.bytes.insert(batch.bytes.end(), samples_[i].bytes.begin(), samples_[i].bytes.end());
  // Mixed rules: even samples never exit early, odd ones use the package's operating point.
  std::vector<ExitRule> rules(n);
  for (size_t i = 0; i < n; i += 2) rules[i] = {model::ExitCriterion::kConfidence, 1.5};
  std::vector<std::vector<ExitEvent>> seen(n);
  auto events =
      engine_->infer_batch_progressive(batch, -1, rules, [&](size_t i, const ExitEvent& e) {
        seen[i].push_back(e);
        return true;
      });
  ASSERT_TRUE(events.ok()) << events.status().to_string();
  auto runs = engine_->stage_runs();
  EXPECT_EQ(runs[0], 1) << "one batch ran stage 0 once";
  for (size_t i = 0; i < n; ++i) {
    std::vector<ExitEvent> single;
    auto one = engine_->infer_progressive(samples_[i], rules[i], [&](const ExitEvent& e) {
      single.push_back(e);
      return true;
    });
    ASSERT_TRUE(one.ok());
    ASSERT_EQ(seen[i].size(), single.size()) << "sample " << i;
    for (size_t k = 0; k < single.size(); ++k) {
      EXPECT_EQ(seen[i][k].exit_index, single[k].exit_index);
      EXPECT_EQ(seen[i][k].predicted, single[k].predicted);
      EXPECT_EQ(seen[i][k].flops, single[k].flops);
      EXPECT_NEAR(seen[i][k].confidence, single[k].confidence, 1e-4);
    }
    EXPECT_EQ((*events)[i].exit_index, one->exit_index);
    EXPECT_TRUE((*events)[i].exited);
    if (i % 2 == 0) {
      EXPECT_EQ(seen[i].size(), 2u) << "a rule that never exits early reports both exits";
    }
  }
}

TEST_F(EngineTest, ProgressiveBatchDropsCancelledSamplesBeforeLaterStages) {
  const ExitRule never{model::ExitCriterion::kConfidence, 1.5};
  core::Tensor batch{core::DType::kF32, {3, 1, 28, 28}, {}};
  for (size_t i = 0; i < 3; ++i)
    batch.bytes.insert(batch.bytes.end(), samples_[i].bytes.begin(), samples_[i].bytes.end());
  std::vector<int> calls(3);
  // Sample 0 cancels at its first exit; sample 1 is refused before stage 1 runs.
  auto events = engine_->infer_batch_progressive(
      batch, -1, std::span<const ExitRule>(&never, 1),
      [&](size_t i, const ExitEvent&) {
        ++calls[i];
        return i != 0;
      },
      [&](size_t i, int stage) { return !(i == 1 && stage == 1); });
  ASSERT_TRUE(events.ok());
  EXPECT_EQ(calls, (std::vector<int>{1, 1, 2}));
  EXPECT_EQ((*events)[0].exit_index, 0);
  EXPECT_EQ((*events)[2].exit_index, 1);
  // Everyone dropped before stage 1: it never runs.
  auto none = engine_->infer_batch_progressive(batch, -1, std::span<const ExitRule>(&never, 1), {},
                                               [&](size_t, int stage) { return stage == 0; });
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(engine_->stage_runs()[1], 1);
  EXPECT_EQ(engine_->stage_runs()[0], 2);
  // Wrong rule count and a resume point outside the model are clear errors.
  std::vector<ExitRule> two(2);
  EXPECT_EQ(engine_->infer_batch_progressive(batch, -1, two, {}).status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(engine_->infer_batch_progressive(batch, 5, two, {}).status().code(),
            Code::kInvalidArgument);
}

TEST_F(EngineTest, ProgressiveBatchResumesFromActivations) {
  const ExitRule never{model::ExitCriterion::kConfidence, 1.5};
  core::Tensor acts;
  for (int i = 0; i < 4; ++i) {
    auto a = engine_->run_stages(samples_[i], -1, 0);
    ASSERT_TRUE(a.ok());
    if (i == 0) acts = {core::DType::kF32, a->shape, {}};
    acts.bytes.insert(acts.bytes.end(), a->bytes.begin(), a->bytes.end());
  }
  acts.shape[0] = 4;
  auto events = engine_->infer_batch_progressive(acts, 0, std::span<const ExitRule>(&never, 1), {});
  ASSERT_TRUE(events.ok()) << events.status().to_string();
  for (int i = 0; i < 4; ++i) {
    auto local = engine_->infer(samples_[i], never);
    ASSERT_TRUE(local.ok());
    EXPECT_EQ((*events)[i].exit_index, 1);
    EXPECT_EQ((*events)[i].predicted, local->predicted);
    EXPECT_NEAR((*events)[i].confidence, local->confidence, 1e-4);
  }
}

TEST_F(EngineTest, SplitExecutionMatchesLocalInference) {
  const ExitRule never{model::ExitCriterion::kConfidence, 1.5};
  for (int i = 0; i < 10; ++i) {
    auto act = engine_->run_stages(samples_[i], -1, 0);
    ASSERT_TRUE(act.ok()) << act.status().to_string();
    auto remote = engine_->run_from(*act, 0, never);
    auto local = engine_->infer(samples_[i], never);
    ASSERT_TRUE(remote.ok() && local.ok());
    EXPECT_EQ(remote->exit_index, local->exit_index);
    EXPECT_EQ(remote->predicted, local->predicted);
    for (size_t c = 0; c < local->probs.size(); ++c)
      EXPECT_NEAR(remote->probs[c], local->probs[c], 1e-5);
  }
}

TEST_F(EngineTest, WrongShapesAndNonFiniteInputsAreRefusedWithAClearError) {
  auto wrong = core::Tensor::f32({1, 27, 28}, std::vector<float>(27 * 28, 0.f));
  auto r = engine_->infer(wrong);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find("[1, 28, 28]"), std::string::npos) << r.status().message();

  auto nan = samples_[0];
  nan.f32_mut()[5] = std::nanf("");
  EXPECT_EQ(engine_->infer(nan).status().code(), Code::kInvalidArgument);

  auto short_bytes = samples_[0];
  short_bytes.bytes.resize(10);
  EXPECT_FALSE(engine_->infer(short_bytes).ok());

  core::Tensor ints{core::DType::kI32, {1, 28, 28}, Bytes(28 * 28 * 4)};
  EXPECT_FALSE(engine_->infer(ints).ok());

  // The engine keeps serving after bad input.
  EXPECT_TRUE(engine_->infer(samples_[0]).ok());
}

TEST(EngineLoadTest, CorruptPackageGivesOneClearError) {
  namespace fs = std::filesystem;
  fs::path src = idn::testing::tiny_package();
  fs::path dir = fs::temp_directory_path() / ("idn-corrupt-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  fs::copy_file(src / "model.json", dir / "model.json");
  {
    std::ofstream f(dir / "weights.safetensors", std::ios::binary);
    f << "garbage";
  }
  auto e = Engine::load(dir);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("weights.safetensors"), std::string::npos)
      << e.status().message();
  fs::remove_all(dir);
  EXPECT_EQ(Engine::load(dir).status().code(), Code::kNotFound);
}

TEST(EngineRunTest, PackageReferenceAnswersAsTheEngineDoes) {
  const auto dir = idn::testing::tiny_package();
  const auto& data = idn::testing::tiny_data();
  auto ref = motifs::package_reference(dir, data.test.x, data.test.y, 0.9);
  ASSERT_TRUE(ref.ok()) << ref.status().to_string();
  EXPECT_EQ(ref->name, "b-lenet");
  ASSERT_EQ(ref->correct.size(), static_cast<size_t>(data.test.size()));
  // motifs::package_reference (what operating points are chosen against) and the engine agree
  // sample by sample on a package's answers at its thresholds.
  auto eng = Engine::load(dir, {.threads = 1});
  ASSERT_TRUE(eng.ok());
  auto run =
      run_labelled(**eng, motifs::to_samples(data.test.x), motifs::to_labels(data.test.y), {}, 0);
  ASSERT_TRUE(run.ok());
  size_t agree = 0;
  for (size_t i = 0; i < run->correct.size(); ++i) agree += run->correct[i] == ref->correct[i];
  EXPECT_GE(agree, run->correct.size() - 2);  // float rounding at a threshold, at most
  // Images of another shape are refused with a clear error.
  auto bad = motifs::package_reference(dir, torch::zeros({2, 1, 27, 28}),
                                       torch::zeros({2}, torch::kLong), 0.9);
  EXPECT_FALSE(bad.ok());
}

TEST(EngineLayoutTest, EarlyExitsFromBlockedConvChainsAnswerAsTheDenseReference) {
  // Stage s0 is a conv-relu-pool chain that inference keeps in oneDNN's blocked layout up to
  // its (dense) output; samples that exit at e0 leave the batch, so every activation of s0,
  // blocked ones included, loses their rows before stage s1 runs.
  namespace fs = std::filesystem;
  motifs::SpecBuilder b("odd", "branchynet");
  b.input("image", {1, 28, 28});
  b.stage("s0").conv("conv1", 1, 11, 5, 1, 2).relu("relu1").maxpool("pool1", 3, 2, 1);
  b.conv("conv2", 11, 33, 5, 1, 2).relu("relu2");
  b.exit("e0").maxpool("epool", 2).flatten("eflat").linear("efc", 33 * 7 * 7, 10);
  b.stage("s1").maxpool("pool2", 3, 2, 1).conv("conv3", 33, 41, 3, 1, 1).relu("relu3");
  b.maxpool("pool3", 3, 2, 1).flatten("flat").linear("fc1", 41 * 4 * 4, 10);
  b.exit("e1");
  auto spec = b.build();
  ASSERT_TRUE(spec.ok()) << spec.status().to_string();
  torch::manual_seed(5);
  nn::Graph ref(*spec);
  const fs::path dir =
      fs::temp_directory_path() / ("idn-engine-layout-" + std::to_string(::getpid()));
  ASSERT_TRUE(model::save_package({*spec, ref->export_weights()}, dir).is_ok());
  auto eng = Engine::load(dir, {.threads = 1, .backend = Backend::kTorch});
  ASSERT_TRUE(eng.ok()) << eng.status().to_string();
  const int64_t n = 24;
  auto x = torch::randn({n, 1, 28, 28});
  ref->eval();
  ref->set_blocked_layout(false);
  std::vector<torch::Tensor> want;
  {
    torch::NoGradGuard ng;
    for (const auto& z : ref->forward_all(x)) want.push_back(torch::softmax(z, 1));
  }
  // Exit where exit 0's confidence is above its median (halfway between the two middle ones,
  // clear of float rounding): half the samples leave early.
  auto conf0 = std::get<0>(want[0].max(1));
  auto sorted = std::get<0>(conf0.sort());
  const ExitRule rule{model::ExitCriterion::kConfidence,
                      (sorted[n / 2 - 1].item<double>() + sorted[n / 2].item<double>()) / 2};
  auto events = (*eng)->infer_batch(nn::from_torch(x), rule);
  ASSERT_TRUE(events.ok()) << events.status().to_string();
  int early = 0;
  for (int64_t i = 0; i < n; ++i) {
    const ExitEvent& ev = (*events)[i];
    auto single = (*eng)->infer(nn::from_torch(x[i]), rule);
    ASSERT_TRUE(single.ok());
    EXPECT_EQ(ev.exit_index, single->exit_index) << "sample " << i;
    auto p = want[ev.exit_index][i];
    EXPECT_EQ(ev.exit_index, conf0[i].item<double>() >= rule.threshold ? 0 : 1) << "sample " << i;
    for (int64_t c = 0; c < p.size(0); ++c) {
      EXPECT_NEAR(ev.probs[c], p[c].item<float>(), 1e-4) << "sample " << i;
      EXPECT_NEAR(single->probs[c], p[c].item<float>(), 1e-4) << "sample " << i;
    }
    early += ev.exit_index == 0;
  }
  EXPECT_GT(early, 0);
  EXPECT_LT(early, n);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace idn::engine
