#include "nn/graph.h"

#include <gtest/gtest.h>

#include "model/package.h"
#include "motifs/branchynet_arch.h"

namespace idn::nn {
namespace {

TEST(GraphTest, ExportedWeightsMatchTheSpecAndReloadBitExactly) {
  auto spec = *motifs::branchynet_arch("b-alexnet");
  torch::manual_seed(1);
  Graph a(spec);
  auto w = a->export_weights();
  EXPECT_TRUE(model::check_weights(spec, w).is_ok()) << model::check_weights(spec, w).to_string();
  torch::manual_seed(2);
  Graph b(spec);
  ASSERT_TRUE(b->load_weights(w).is_ok());
  EXPECT_EQ(b->export_weights(), w);
  a->eval();
  b->eval();
  auto x = torch::randn({3, 1, 28, 28});
  auto la = a->forward_all(x), lb = b->forward_all(x);
  ASSERT_EQ(la.size(), 3u);
  for (size_t e = 0; e < la.size(); ++e) EXPECT_TRUE(torch::equal(la[e], lb[e]));
}

TEST(GraphTest, StagesRunInOrderAndExitsSeeTheirStage) {
  auto spec = *motifs::branchynet_arch("b-lenet");
  Graph g(spec);
  g->eval();
  torch::NoGradGuard ng;
  auto acts = g->begin({torch::randn({2, 1, 28, 28})});
  auto s0 = g->run_stage(0, acts);
  EXPECT_EQ(s0.sizes(), (std::vector<int64_t>{2, 20, 12, 12}));
  auto z0 = g->run_exit(0, acts);
  EXPECT_EQ(z0.sizes(), (std::vector<int64_t>{2, 10}));
  g->run_stage(1, acts);
  EXPECT_EQ(g->run_exit(1, acts).sizes(), (std::vector<int64_t>{2, 10}));
  EXPECT_EQ(g->stage_runs(), (std::vector<int64_t>{1, 1}));
}

TEST(GraphTest, SavedPackageRoundTripsBitExactly) {
  namespace fs = std::filesystem;
  auto spec = *motifs::branchynet_arch("b-lenet");
  Graph g(spec);
  fs::path dir = fs::temp_directory_path() / ("idn-graph-" + std::to_string(::getpid()));
  ASSERT_TRUE(model::save_package({spec, g->export_weights()}, dir).is_ok());
  auto back = model::load_package(dir);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(back->weights, g->export_weights());
  EXPECT_EQ(model::to_json(back->spec), model::to_json(spec));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace idn::nn
