#include "motifs/tradeoff.h"

#include <gtest/gtest.h>

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

TEST(TradeoffTest, OperatingPointIsTheFastestWithinTheAccuracyBudget) {
  ProfilePoint slow{{1.0, 0}, 0.90, 100, 100, 0, {0, 1}};
  ProfilePoint mid{{0.9, 0}, 0.897, 60, 20, 0, {0.5, 0.5}};
  ProfilePoint fast{{0.5, 0}, 0.80, 20, 20, 0, {0.9, 0.1}};
  auto chosen = choose_operating_point({slow, mid, fast}, 0.90, 0.005);
  EXPECT_EQ(chosen.mean_us, 60);
  chosen = choose_operating_point({slow, mid, fast}, 0.90, 0.0);
  EXPECT_EQ(chosen.mean_us, 100);
  auto front = pareto_front({slow, mid, fast, {{0.7, 0}, 0.79, 70, 70, 0, {}}});
  ASSERT_EQ(front.size(), 3u);
  EXPECT_EQ(front[0].mean_us, 20);
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
