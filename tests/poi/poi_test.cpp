#include "poi/poi.h"

#include <torch/torch.h>

#include <filesystem>
#include <random>

#include <gtest/gtest.h>

#include "model/package.h"
#include "motifs/spec_builder.h"
#include "nn/graph.h"

namespace idn::poi {
namespace {

namespace fs = std::filesystem;
constexpr int64_t kM = 96;
constexpr uint32_t kClasses = 3;

// A random 4 -> 3 linear classifier saved as a package.
fs::path tiny_model(const fs::path& dir, uint64_t seed) {
  torch::manual_seed(seed);
  auto spec = motifs::SpecBuilder("tiny", "plain")
                  .input("x", {4})
                  .stage("s")
                  .linear("fc", 4, kClasses)
                  .exit("out")
                  .build();
  EXPECT_TRUE(spec.ok()) << spec.status().to_string();
  nn::Graph g(*spec);
  EXPECT_TRUE(model::save_package({*spec, g->export_weights()}, dir).is_ok());
  return dir;
}

class PoiTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = fs::temp_directory_path() / ("idn-poi-" + std::to_string(::getpid()));
    fs::remove_all(root_);
    good_ = tiny_model(root_ / "good", 1);
    other_ = tiny_model(root_ / "other", 2);
    std::mt19937 rng(3);
    std::normal_distribution<float> nd;
    std::vector<float> z(kM * 4);
    for (auto& v : z) v = nd(rng);
    auto inputs = core::Tensor::f32({kM, 4}, z);
    // The hidden labels are what `good` answers: it has error 0, `other` a large one.
    auto xt = predict(good_, inputs, kClasses);
    ASSERT_TRUE(xt.ok()) << xt.status().to_string();
    motifs::DelOptions o;
    o.classes = kClasses;
    o.n = 16;
    o.hidden = 64;
    o.epochs = 15;
    o.samples_per_epoch = 512;
    o.batch = 32;
    o.test_samples = 64;
    auto del = motifs::train_del(*xt, o);
    ASSERT_TRUE(del.ok()) << del.status().to_string();
    ASSERT_TRUE(write_problem(root_ / "problem", *del, inputs, *xt, 0.3, 0.01).is_ok());
    other_error_ = *daimon::error(*predict(other_, inputs, kClasses), *xt);
  }
  static void TearDownTestSuite() { fs::remove_all(root_); }

  static Problem problem() {
    auto p = load_problem(root_ / "problem");
    EXPECT_TRUE(p.ok()) << p.status().to_string();
    return std::move(*p);
  }
  static identity::KeyPair key(uint8_t b) { return *identity::KeyPair::from_seed(Bytes(32, b)); }

  static inline fs::path root_, good_, other_;
  static inline double other_error_ = 0;
};

TEST_F(PoiTest, AProblemHoldsNoLabels) {
  Problem p = problem();
  EXPECT_EQ(p.m, kM);
  EXPECT_EQ(p.yt.size(), 16u);
  for (const auto& e : fs::recursive_directory_iterator(root_ / "problem")) {
    auto name = e.path().filename().string();
    EXPECT_TRUE(name == "problem.json" || name == "inputs.safetensors" || name == "del" ||
                name == "model.json" || name == "weights.safetensors")
        << name;
  }
  EXPECT_FALSE(load_problem(root_ / "nope").ok());
}

TEST_F(PoiTest, AnImprovedModelsProofVerifies) {
  Problem p = problem();
  auto proof = prove(p, good_, key(1));
  ASSERT_TRUE(proof.ok()) << proof.status().to_string();
  auto v = verify(p, good_, *proof, p.d_c, p.delta);
  ASSERT_TRUE(v.ok()) << v.status().to_string();
  EXPECT_EQ(v->failure, "");
  EXPECT_TRUE(v->verification.holds);
  EXPECT_LT(v->verification.distance, 0.05);  // error 0
  // A verifier signs its verdict; anyone can check it.
  daimon::sign(v->verification, key(9));
  EXPECT_TRUE(daimon::check_signature(v->verification).is_ok());
}

TEST_F(PoiTest, AWorseModelIsNoImprovement) {
  ASSERT_GT(other_error_, 0.4);  // two random classifiers of 3 classes mostly disagree
  Problem p = problem();
  auto proof = prove(p, other_, key(1));
  ASSERT_TRUE(proof.ok());
  auto v = verify(p, other_, *proof, p.d_c, p.delta);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->failure.rfind("improvement:", 0), 0u) << v->failure;
  EXPECT_FALSE(v->verification.holds);
}

TEST_F(PoiTest, EveryTamperingIsRejectedWithTheCheckThatFailed) {
  Problem p = problem();
  auto proof = prove(p, good_, key(1));
  ASSERT_TRUE(proof.ok());
  auto failure = [&](const daimon::Proof& x, const fs::path& model, double d_c) {
    auto v = verify(p, model, x, d_c, p.delta);
    EXPECT_TRUE(v.ok());
    return v->failure;
  };
  // The signature: outputs changed after signing.
  daimon::Proof y = *proof;
  y.y[0] += 0.01f;
  EXPECT_NE(failure(y, good_, p.d_c).find("signature"), std::string::npos);
  // The digest: the proof checked against another model.
  EXPECT_EQ(failure(*proof, other_, p.d_c).rfind("digest:", 0), 0u);
  // Outputs: the worse model's prover re-signs outputs that hit y_t exactly.
  auto worse = prove(p, other_, key(1));
  ASSERT_TRUE(worse.ok());
  daimon::Proof lie = *worse;
  lie.y = p.yt;
  daimon::sign(lie, key(1));
  EXPECT_EQ(failure(lie, other_, p.d_c).rfind("outputs:", 0), 0u);
  // A different model with the same claimed outputs: the worse model's CID under the good
  // model's outputs, re-signed.
  daimon::Proof swapped = *proof;
  swapped.model = *package_cid(other_);
  daimon::sign(swapped, key(1));
  EXPECT_EQ(failure(swapped, other_, p.d_c).rfind("outputs:", 0), 0u);
  // The distance claim: a d_c the model does not beat.
  EXPECT_EQ(failure(*proof, good_, 0.005).rfind("improvement:", 0), 0u);
  // Another problem.
  daimon::Proof elsewhere = *proof;
  elsewhere.problem = std::string(64, '0');
  daimon::sign(elsewhere, key(1));
  EXPECT_EQ(failure(elsewhere, good_, p.d_c).rfind("problem:", 0), 0u);
}

}  // namespace
}  // namespace idn::poi
