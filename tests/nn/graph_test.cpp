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

TEST(GraphTest, EvaluationAfterOptimizerStepsSeesTheNewWeights) {
  // torch::optim's SGD and Adam write through Tensor::data(), which has its own version
  // counter, so the conv layers' packed inference weights cannot notice the update by
  // themselves: a graph that evaluates, trains and evaluates again must not answer with the
  // weights of its first evaluation (every `idn train` calibrated on stale logits that way).
  for (const char* optimizer : {"sgd", "adam"}) {
    auto spec = *motifs::branchynet_arch("b-lenet");
    torch::manual_seed(4);
    Graph g(spec);
    auto x = torch::randn({4, 1, 28, 28});
    auto y = torch::randint(0, 10, {4}, torch::kLong);
    auto eval = [&](Graph& m) {
      torch::NoGradGuard ng;
      m->eval();
      return m->forward_all(x);
    };
    eval(g);  // packs the conv weights
    std::unique_ptr<torch::optim::Optimizer> opt;
    if (std::string(optimizer) == "sgd")
      opt = std::make_unique<torch::optim::SGD>(g->parameters(),
                                                torch::optim::SGDOptions(0.5).momentum(0.9));
    else
      opt = std::make_unique<torch::optim::Adam>(g->parameters(), torch::optim::AdamOptions(0.05));
    g->train();
    for (int step = 0; step < 3; ++step) {
      opt->zero_grad();
      auto logits = g->forward_all(x);
      auto loss = torch::nn::functional::cross_entropy(logits.back(), y);
      loss.backward();
      opt->step();
    }
    auto after = eval(g);
    Graph fresh(spec);
    ASSERT_TRUE(fresh->load_weights(g->export_weights()).is_ok());
    auto want = eval(fresh);
    for (size_t e = 0; e < want.size(); ++e)
      EXPECT_TRUE(torch::allclose(after[e], want[e], 1e-5, 1e-5)) << optimizer << " exit " << e;
  }
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
