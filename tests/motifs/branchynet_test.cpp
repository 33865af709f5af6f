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

TEST(OperatingPointTest, IsChosenAgainstTheBaselineAndSaysSo) {
  // The tiny B-LeNet's operating point against a baseline that is right on every validation
  // sample: nothing can be within 0.5 points of it, so the point with the smallest bound (the
  // most accurate) is chosen and the package says the budget was not met.
  auto pkg = model::load_package(idn::testing::tiny_package());
  ASSERT_TRUE(pkg.ok());
  nn::Graph g(pkg->spec);
  ASSERT_TRUE(g->load_weights(pkg->weights).is_ok());
  const auto& data = idn::testing::tiny_data();
  auto x_val = normalize(data.val.x, data.mean, data.std);
  OperatingPointOptions op;
  op.timing_samples = 4;
  op.timing_reps = 1;
  Reference perfect{"oracle", std::vector<uint8_t>(data.val.size(), 1), 0.95};
  auto prof = profile_branchynet(g, x_val, data.val.y, op, &perfect);
  EXPECT_FALSE(prof.budget_met);
  const auto& ref = prof.spec.operating_point["reference"];
  EXPECT_EQ(ref["name"], "oracle");
  EXPECT_EQ(ref["budget"], 0.005);
  EXPECT_EQ(ref["confidence"], 0.95);
  EXPECT_EQ(ref["validation_samples"], data.val.size());
  EXPECT_FALSE(ref["budget_met"].get<bool>());
  double best = 1;
  for (auto& p : prof.profile) best = std::min(best, p.loss_upper);
  EXPECT_DOUBLE_EQ(prof.chosen.loss_upper, best);
  // Against its own final exit, the never-exit point has no loss at all, so the budget holds
  // and the chosen point's bound is within it.
  auto own = profile_branchynet(g, x_val, data.val.y, op);
  EXPECT_TRUE(own.budget_met);
  EXPECT_EQ(own.spec.operating_point["reference"]["name"], "final exit");
  EXPECT_LE(own.chosen.loss_upper, 0.005 + 1e-12);
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

TEST(BranchyNetTrainTest, SameSeedGivesIdenticalWeights) {
  // The whole recipe (initialisation, batch order, augmentation, dropout, optimiser), twice
  // with one seed and once with another, on 256 images at the thread count the CLI trains with.
  namespace fs = std::filesystem;
  const auto& all = idn::testing::tiny_data();
  LabeledData data = all;
  data.train = {all.train.x.slice(0, 0, 256), all.train.y.slice(0, 0, 256)};
  data.val = {all.val.x.slice(0, 0, 200), all.val.y.slice(0, 0, 200)};
  data.test = {};
  const int threads = torch::get_num_threads();
  torch::set_num_threads(2);
  fs::path root = fs::temp_directory_path() / ("idn-seed-" + std::to_string(::getpid()));
  auto weights = [&](uint64_t seed, const std::string& name) {
    TrainOptions t;
    t.epochs = 1;
    t.batch_size = 32;
    t.seed = seed;
    t.augment = true;
    t.progress = false;
    OperatingPointOptions op;
    op.timing_samples = 4;
    op.timing_reps = 1;
    auto r = fit_branchynet("b-lenet", data, t, op, root / name);
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    auto pkg = model::load_package(root / name);
    EXPECT_TRUE(pkg.ok());
    return pkg.ok() ? pkg->weights : std::map<std::string, core::Tensor>{};
  };
  auto a = weights(5, "a"), b = weights(5, "b"), c = weights(6, "c");
  torch::set_num_threads(threads);
  fs::remove_all(root);
  ASSERT_FALSE(a.empty());
  EXPECT_TRUE(a == b) << "same seed, different weights";
  EXPECT_FALSE(a == c) << "another seed gave the same weights";
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
