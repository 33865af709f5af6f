#include "motifs/branchynet.h"

#include <gtest/gtest.h>

#include "motifs/branchynet_arch.h"
#include "support/tiny_model.h"

namespace idn::motifs {
namespace {

TEST(BranchyNetArchTest, BranchesAreCheapRelativeToTheTrunk) {
  for (auto name : {"b-lenet", "b-alexnet"}) {
    auto spec = branchynet_arch(name);
    ASSERT_TRUE(spec.ok()) << spec.status().to_string();
    int64_t trunk = 0;
    for (auto& s : spec->stages) trunk += s.flops;
    for (size_t e = 0; e + 1 < spec->exits.size(); ++e)
      EXPECT_LT(spec->exits[e].flops, trunk / 20) << name << " exit " << e;
  }
  EXPECT_EQ(branchynet_arch("b-lenet")->exits.size(), 2u);
  EXPECT_EQ(branchynet_arch("b-alexnet")->exits.size(), 3u);
  EXPECT_EQ(branchynet_arch("lenet")->exits.size(), 1u);
  EXPECT_FALSE(branchynet_arch("resnet").ok());
}

TEST(BranchyNetLossTest, ExponentialWeightsFollowTheRecursion) {
  TrainOptions o;
  o.alpha = 0.9;
  auto w = exit_loss_weights(3, o);
  // L1 = l1; L2 = 0.1 l1 + 0.9 l2; L3 = 0.1 L2 + 0.9 l3.
  EXPECT_NEAR(w[0], 0.01, 1e-12);
  EXPECT_NEAR(w[1], 0.09, 1e-12);
  EXPECT_NEAR(w[2], 0.9, 1e-12);
  o.alpha.reset();
  o.exit_weights = {0.5, 2.0};
  EXPECT_EQ(exit_loss_weights(2, o), (std::vector<double>{0.5, 2.0}));
}

TEST(BranchyNetLossTest, RecommendedRecipeIsAdamOnlyForTheAlexNetStyleTrunks) {
  for (const auto& arch : branchynet_arch_names()) {
    TrainOptions t = recommended_train_options(arch);
    bool alexnet = arch.find("alexnet") != std::string::npos;
    EXPECT_EQ(t.optimizer, alexnet ? "adam" : "sgd") << arch;
    EXPECT_DOUBLE_EQ(t.lr, alexnet ? 1e-3 : TrainOptions{}.lr) << arch;
  }
}

TEST(CalibrationTest, TemperatureLowersValidationNll) {
  // Overconfident logits: the right answer only 60% of the time, with huge margins.
  torch::manual_seed(3);
  int64_t n = 2000;
  auto labels = torch::randint(0, 10, {n}, torch::kLong);
  auto wrong = (labels + torch::randint(1, 10, {n}, torch::kLong)) % 10;
  auto pred = torch::where(torch::rand({n}) < 0.6, labels, wrong);
  auto logits = torch::one_hot(pred, 10).to(torch::kFloat32) * 12.0f;
  auto c = fit_temperature(logits, labels);
  EXPECT_GT(c.temperature, 1.5);
  EXPECT_LT(c.nll_after, c.nll_before);
  EXPECT_NEAR(c.nll_after, nll_at(logits, labels, c.temperature), 1e-12);
}

TEST(CalibrationTest, TrainedBranchesGetLowerNllAfterCalibration) {
  auto dir = idn::testing::tiny_package();
  auto pkg = model::load_package(dir);
  ASSERT_TRUE(pkg.ok());
  auto cal = pkg->spec.operating_point["calibration"];
  ASSERT_EQ(cal.size(), 2u);
  for (auto& c : cal) EXPECT_LE(c["nll_after"].get<double>(), c["nll_before"].get<double>());
}

TEST(BranchyNetTrainTest, ResumeContinuesFromTheCheckpoint) {
  namespace fs = std::filesystem;
  const auto& data = idn::testing::tiny_data();
  auto spec = *branchynet_arch("b-lenet");
  fs::path ckpt = fs::temp_directory_path() / ("idn-ckpt-" + std::to_string(::getpid()));
  fs::remove_all(ckpt);
  auto x = normalize(data.train.x.slice(0, 0, 256), data.mean, data.std);
  auto y = data.train.y.slice(0, 0, 256);
  TrainOptions t;
  t.epochs = 1;
  t.progress = false;
  t.checkpoint_dir = ckpt;
  nn::Graph g1(spec);
  auto r1 = train_branchynet(g1, x, y, torch::Tensor(), torch::Tensor(), t);
  ASSERT_TRUE(r1.ok()) << r1.status().to_string();
  ASSERT_TRUE(fs::exists(ckpt / "state.json"));
  // A second run asked for 2 epochs resumes after epoch 1 and trains exactly one more.
  t.epochs = 2;
  t.resume = true;
  nn::Graph g2(spec);
  auto r2 = train_branchynet(g2, x, y, torch::Tensor(), torch::Tensor(), t);
  ASSERT_TRUE(r2.ok()) << r2.status().to_string();
  ASSERT_EQ(r2->size(), 1u);
  EXPECT_EQ((*r2)[0].epoch, 2);
  fs::remove_all(ckpt);
}

TEST(BranchyNetTrainTest, JointTrainingLearnsEveryExit) {
  auto dir = idn::testing::tiny_package();
  auto pkg = model::load_package(dir);
  ASSERT_TRUE(pkg.ok());
  nn::Graph g(pkg->spec);
  ASSERT_TRUE(g->load_weights(pkg->weights).is_ok());
  const auto& data = idn::testing::tiny_data();
  auto m = evaluate_exits(g, normalize(data.test.x, data.mean, data.std), data.test.y);
  ASSERT_EQ(m.size(), 2u);
  for (auto& e : m) EXPECT_GT(e.accuracy, 0.6);  // 10 classes: chance is 0.1
}

}  // namespace
}  // namespace idn::motifs
