#include "nn/graph.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "model/package.h"
#include "motifs/branchynet_arch.h"
#include "motifs/parallelnet.h"
#include "motifs/spec_builder.h"

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

// Every exit's logits with the blocked inference layout on and off (the dense reference).
void expect_blocked_equals_dense(const model::ModelSpec& spec, int64_t batch) {
  SCOPED_TRACE(spec.name + " batch " + std::to_string(batch));
  torch::manual_seed(11);
  Graph g(spec);
  g->eval();
  torch::NoGradGuard ng;
  auto x = torch::randn({batch, 1, 28, 28});
  ASSERT_TRUE(g->blocked_layout());
  auto blocked = g->forward_all(x);
  g->set_blocked_layout(false);
  auto dense = g->forward_all(x);
  ASSERT_EQ(blocked.size(), dense.size());
  for (size_t e = 0; e < dense.size(); ++e) {
    EXPECT_FALSE(blocked[e].is_mkldnn());
    EXPECT_TRUE(torch::allclose(blocked[e], dense[e], 1e-4, 1e-4))
        << "exit " << e << ": max difference " << (blocked[e] - dense[e]).abs().max().item<float>();
  }
}

TEST(GraphTest, BlockedLayoutAnswersAsTheDenseReference) {
  // Odd channel counts as a generated ParallelNet model has (oneDNN pads them to its blocks), a
  // convolution read by a relu and by a pooling layer (so that relu must not run in place) whose
  // outputs are averaged, and a stage boundary inside a conv-relu-pool chain.
  motifs::SpecBuilder b("odd", "branchynet");
  b.input("image", {1, 28, 28});
  b.stage("s0").conv("conv1", 1, 11, 5, 1, 2).relu("relu1").maxpool("pool1", 3, 2, 1);
  b.conv("conv2", 11, 33, 5, 1, 2).relu("relu2");
  b.exit("e0").maxpool("epool", 2).flatten("eflat").linear("efc", 33 * 7 * 7, 10);
  b.stage("s1").maxpool("pool2", 3, 2, 1).conv("conv3", 33, 66, 3, 1, 1).relu("relu3");
  b.conv("conv4", 66, 41, 3, 1, 1).relu("relu4").maxpool("pool4", 3, 2, 1).flatten("flat");
  b.linear("fc1", 41 * 4 * 4, 157).relu("relu5");
  b.exit("e1").linear("fc2", 157, 10);
  auto odd = b.build();
  ASSERT_TRUE(odd.ok()) << odd.status().to_string();
  // Stage s0 ends in avg(relu2, maxpool(conv2)).
  auto at = [&](const std::string& name) {
    return std::find_if(odd->layers.begin(), odd->layers.end(),
                        [&](const model::LayerSpec& l) { return l.name == name; });
  };
  model::LayerSpec side{"side", model::LayerType::kMaxPool2d, {"conv2"}};
  side.params = {{"kernel", 3}, {"stride", 1}, {"padding", 1}};
  model::LayerSpec join{"join", model::LayerType::kAggregate, {"relu2", "side"}};
  join.params = {{"op", "avg"}};
  odd->layers.insert(at("relu2") + 1, {side, join});
  odd->stages[0].layers.insert(odd->stages[0].layers.end(), {"side", "join"});
  odd->stages[0].output = "join";
  at("epool")->inputs = {"join"};
  at("pool2")->inputs = {"join"};
  ASSERT_TRUE(model::validate_model_spec(*odd).is_ok())
      << model::validate_model_spec(*odd).to_string();
  EXPECT_EQ(Graph(*odd)->blocked_layers(),
            (std::vector<std::string>{"conv1", "relu1", "pool1", "conv2", "conv3", "relu3", "conv4",
                                      "relu4"}));
  for (int64_t batch : {1, 5}) expect_blocked_equals_dense(*odd, batch);
  // The architectures the repository trains.
  for (const char* arch : {"b-lenet", "b-alexnet"})
    expect_blocked_equals_dense(*motifs::branchynet_arch(arch), 3);
  for (const char* arch : {"alexnet", "tiny"})
    expect_blocked_equals_dense(*motifs::parallelnet_arch(arch, 10), 3);
}

TEST(GraphTest, InferenceFlushesDenormalsTrainingDoesNot) {
  motifs::SpecBuilder b("daz", "branchynet");
  b.input("x", {1, 4, 4});
  b.stage("s0").conv("c", 1, 1, 1);
  b.exit("e").flatten("f").linear("fc", 16, 2);
  auto spec = b.build();
  ASSERT_TRUE(spec.ok()) << spec.status().to_string();
  Graph g(*spec);
  g->eval();
  {
    torch::NoGradGuard ng;
    for (auto& p : g->parameters()) p.fill_(0);
    g->named_parameters()["c.weight"].fill_(1e30);
  }
  const auto x = torch::full({1, 1, 4, 4}, 1e-39f);  // denormal: x * 1e30 would be 1e-9
  {
    torch::NoGradGuard ng;
    auto acts = g->begin({x});
    EXPECT_EQ(g->run_stage(0, acts).abs().max().item<float>(), 0.0f);
    EXPECT_GT((x * 4.0f).max().item<float>(), 0.0f);  // the caller's setting is back
  }
  g->train();
  auto acts = g->begin({x});
  EXPECT_GT(g->run_stage(0, acts).abs().max().item<float>(), 0.0f);
}

TEST(GraphTest, BlockedLayoutStaysOutOfTrainingAndStageOutputs) {
  auto spec = *motifs::branchynet_arch("b-lenet");
  Graph g(spec);
  auto x = torch::randn({2, 1, 28, 28});
  g->train();
  auto logits = g->forward_all(x);  // autograd on: dense tensors, gradients flow
  EXPECT_TRUE(logits.back().requires_grad());
  g->eval();
  torch::NoGradGuard ng;
  auto acts = g->begin({x});
  for (int s = 0; s < g->num_stages(); ++s) EXPECT_FALSE(g->run_stage(s, acts).is_mkldnn());
}

}  // namespace
}  // namespace idn::nn
