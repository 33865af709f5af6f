#include "motifs/tradeoff.h"

#include <gtest/gtest.h>

#include <cmath>

#include "motifs/branchynet_arch.h"

namespace idn::motifs {
namespace {

// Two exits, four samples, two classes. Exit 0 is confident on samples 0 and 1.
struct Fixture {
  model::ModelSpec spec = *branchynet_arch("b-lenet", 2);
  std::vector<ExitScores> scores{{{0.95f, 0.05f, 0.10f, 0.90f, 0.60f, 0.40f, 0.55f, 0.45f}, 2},
                                 {{0.99f, 0.01f, 0.20f, 0.80f, 0.10f, 0.90f, 0.30f, 0.70f}, 2}};
  std::vector<int64_t> labels{0, 1, 1, 0};
  ComponentCosts costs{{10, 90}, {2, 1}, {100, 900}, {20, 10}};
};

TEST(TradeoffTest, SamplesExitAtTheFirstConfidentBranch) {
  Fixture f;
  auto taken = simulate_exits(f.spec, f.scores, {0.85, 0.0});
  EXPECT_EQ(taken, (std::vector<int>{0, 0, 1, 1}));
  auto never = simulate_exits(f.spec, f.scores, {1.01, 0.0});
  EXPECT_EQ(never, (std::vector<int>{1, 1, 1, 1}));
}

TEST(TradeoffTest, CostCountsOnlyTheStagesAndHeadsASampleRuns) {
  Fixture f;
  auto p = evaluate_point(f.spec, f.scores, f.labels, f.costs, {0.85, 0.0});
  // Exit 0 path: stage0 + head0 = 12 us; exit 1 path: 10 + 90 + 2 + 1 = 103 us.
  EXPECT_DOUBLE_EQ(p.mean_us, (12 + 12 + 103 + 103) / 4.0);
  EXPECT_DOUBLE_EQ(p.mean_flops, (120 + 120 + 1030 + 1030) / 4.0);
  // Samples 0,1 correct at exit 0; sample 2 (label 1) correct at exit 1; sample 3 wrong.
  EXPECT_DOUBLE_EQ(p.accuracy, 0.75);
  EXPECT_DOUBLE_EQ(p.exit_fraction[0], 0.5);
}

TEST(TradeoffTest, OperatingPointIsTheFastestWhoseLossBoundIsWithinBudget) {
  // {thresholds, accuracy, mean_us, median_us, mean_flops, exit_fraction, loss, loss_upper}
  ProfilePoint slow{{1.0, 0}, 0.90, 100, 100, 0, {0, 1}, 0.0, 0.0};
  ProfilePoint mid{{0.9, 0}, 0.897, 60, 20, 0, {0.5, 0.5}, 0.003, 0.0045};
  ProfilePoint risky{{0.8, 0}, 0.898, 40, 20, 0, {0.7, 0.3}, 0.002, 0.0060};  // noisy: bound high
  ProfilePoint fast{{0.5, 0}, 0.80, 20, 20, 0, {0.9, 0.1}, 0.10, 0.11};
  bool met = false;
  auto chosen = choose_operating_point({slow, mid, risky, fast}, 0.005, &met);
  EXPECT_TRUE(met);
  EXPECT_EQ(chosen.mean_us, 60);  // not `risky`, whose point estimate alone would pass
  chosen = choose_operating_point({slow, mid, risky, fast}, 0.0, &met);
  EXPECT_EQ(chosen.mean_us, 100);
  // A baseline better than every point: nothing is within budget; the smallest bound wins.
  slow.loss_upper = 0.008;
  chosen = choose_operating_point({slow, mid, risky, fast}, 0.0, &met);
  EXPECT_FALSE(met);
  EXPECT_EQ(chosen.mean_us, 60);
  auto front = pareto_front({slow, mid, fast, {{0.7, 0}, 0.79, 70, 70, 0, {}}});
  ASSERT_EQ(front.size(), 3u);
  EXPECT_EQ(front[0].mean_us, 20);
}

TEST(TradeoffTest, PairedLossBoundMatchesTheNormalApproximation) {
  EXPECT_NEAR(normal_quantile(0.95), 1.6448536269514722, 1e-9);
  EXPECT_NEAR(normal_quantile(0.5), 0.0, 1e-12);
  EXPECT_NEAR(normal_quantile(0.025), -1.959963984540054, 1e-9);
  // 1000 samples: both right on 880, only the reference on 40, only the point on 20.
  std::vector<uint8_t> ref(1000, 0), pt(1000, 0);
  for (int i = 0; i < 880; ++i) ref[i] = pt[i] = 1;
  for (int i = 880; i < 920; ++i) ref[i] = 1;
  for (int i = 920; i < 940; ++i) pt[i] = 1;
  auto l = paired_loss(ref, pt, 0.95);
  EXPECT_EQ(l.ref_only, 40);
  EXPECT_EQ(l.point_only, 20);
  EXPECT_DOUBLE_EQ(l.loss, 0.02);
  double var = (0.06 - 0.02 * 0.02) * 1000.0 / 999.0;  // E[d^2] = discordant share
  EXPECT_NEAR(l.sd, std::sqrt(var), 1e-12);
  EXPECT_NEAR(l.upper, 0.02 + 1.6448536269514722 * std::sqrt(var / 1000), 1e-9);
  // Identical answers: no loss and no uncertainty about it.
  auto same = paired_loss(ref, ref, 0.99);
  EXPECT_EQ(same.loss, 0);
  EXPECT_EQ(same.upper, 0);
}

TEST(TradeoffTest, SweepMeasuresLossAgainstTheReferenceSampleBySample) {
  Fixture f;
  // A reference right on samples 0, 2 and 3.
  Reference ref{"baseline", {1, 0, 1, 1}, 0.95};
  auto p = evaluate_point(f.spec, f.scores, f.labels, f.costs, {0.85, 0.0}, &ref);
  // The point is right on 0, 1, 2: d = {0, -1, 0, 1}, mean 0.
  EXPECT_DOUBLE_EQ(p.loss, 0.0);
  EXPECT_GT(p.loss_upper, 0.0);
  EXPECT_EQ(correct_per_sample(f.spec, f.scores, f.labels, {0.85, 0.0}),
            (std::vector<uint8_t>{1, 1, 1, 0}));
}

TEST(TradeoffTest, SweepIncludesTheNeverExitPoint) {
  Fixture f;
  auto profile = sweep_thresholds(f.spec, f.scores, f.labels, f.costs, 5);
  bool found = false;
  for (auto& p : profile) found |= p.exit_fraction[1] == 1.0;
  EXPECT_TRUE(found);
}

}  // namespace
}  // namespace idn::motifs
