#include "model/package.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "model/file_io.h"
#include "model/safetensors.h"

namespace idn::model {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;
namespace fs = std::filesystem;

const char* kSpec = R"({
  "format": "idn-model", "version": 1, "name": "tiny", "motif": "branchynet",
  "inputs": [{"name": "image", "shape": [1, 6, 6]}],
  "labels": ["a", "b", "c"],
  "layers": [
    {"name": "conv", "type": "conv2d", "inputs": ["image"],
     "params": {"in_channels": 1, "out_channels": 2, "kernel": 3}},
    {"name": "bn", "type": "batchnorm", "inputs": ["conv"], "params": {"num_features": 2}},
    {"name": "relu", "type": "relu", "inputs": ["bn"]},
    {"name": "b_flat", "type": "flatten", "inputs": ["relu"]},
    {"name": "b_fc", "type": "linear", "inputs": ["b_flat"],
     "params": {"in_features": 32, "out_features": 3}},
    {"name": "pool", "type": "avgpool2d", "inputs": ["relu"], "params": {"kernel": 2}},
    {"name": "flat", "type": "flatten", "inputs": ["pool"]},
    {"name": "fc", "type": "linear", "inputs": ["flat"],
     "params": {"in_features": 8, "out_features": 3, "bias": false}}
  ],
  "stages": [{"name": "s0", "layers": ["conv", "bn", "relu"], "output": "relu"},
             {"name": "s1", "layers": ["pool", "flat", "fc"], "output": "fc"}],
  "exits": [{"name": "e0", "stage": 0, "layers": ["b_flat", "b_fc"], "output": "b_fc",
             "criterion": "entropy", "threshold": 0.25},
            {"name": "e1", "stage": 1, "layers": [], "output": "fc",
             "criterion": "confidence", "threshold": 0.9}],
  "operating_point": {"accuracy": 0.8, "thresholds": [0.25, 0.9]}
})";

Package make_package() {
  Package p;
  p.spec = parse_model_spec_text(kSpec).value();
  int k = 0;
  for (const WeightSpec& w : p.spec.required_weights()) {
    core::Tensor t = core::Tensor::zeros(core::DType::kF32, w.shape);
    for (float& v : t.f32_mut()) {
      ++k;
      v = std::sin(static_cast<float>(k)) * 1e-3f * k;
    }
    p.weights[w.name] = t;
  }
  return p;
}

class PackageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(IDN_BINARY_DIR) / "tmp" /
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
  }
  fs::path dir_;
};

TEST_F(PackageTest, SaveThenLoadRoundTripsBitExactly) {
  Package p = make_package();
  ASSERT_TRUE(save_package(p, dir_).is_ok());
  auto back = load_package(dir_);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(back->weights, p.weights);
  EXPECT_EQ(to_json(back->spec), to_json(p.spec));
  EXPECT_EQ(back->spec.operating_point["thresholds"][1], 0.9);

  // Files on disk are exactly the canonical encodings, and saving again changes no byte.
  Bytes weights = read_file(dir_ / kWeightsFile).value();
  Bytes json = read_file(dir_ / kModelJsonFile).value();
  EXPECT_EQ(weights, serialize_safetensors(p.weights).value());
  EXPECT_EQ(to_string(json), to_json_text(p.spec));
  ASSERT_TRUE(save_package(*back, dir_).is_ok());
  EXPECT_EQ(read_file(dir_ / kWeightsFile).value(), weights);
  EXPECT_EQ(read_file(dir_ / kModelJsonFile).value(), json);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 2);
}

TEST_F(PackageTest, ModelJsonIsPrettyWithFlops) {
  ASSERT_TRUE(save_package(make_package(), dir_).is_ok());
  std::string text = to_string(read_file(dir_ / kModelJsonFile).value());
  EXPECT_THAT(text, StartsWith("{\n  \"exits\": ["));
  EXPECT_THAT(text, HasSubstr("\"flops\": "));
  EXPECT_EQ(text.back(), '\n');
}

TEST_F(PackageTest, CorruptModelJsonIsOneClearError) {
  ASSERT_TRUE(save_package(make_package(), dir_).is_ok());
  ASSERT_TRUE(
      write_file_atomic(dir_ / kModelJsonFile, as_bytes("{\"format\": \"idn-model\",")).is_ok());
  auto st = load_package(dir_);
  ASSERT_FALSE(st.ok());
  EXPECT_THAT(st.status().message(), StartsWith("model.json: not valid JSON"));
}

TEST_F(PackageTest, TruncatedWeightsAreOneClearError) {
  ASSERT_TRUE(save_package(make_package(), dir_).is_ok());
  Bytes w = read_file(dir_ / kWeightsFile).value();
  w.resize(w.size() - 5);
  ASSERT_TRUE(write_file_atomic(dir_ / kWeightsFile, w).is_ok());
  auto st = load_package(dir_);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.status().code(), Code::kCorruption);
  EXPECT_THAT(st.status().message(), StartsWith("weights.safetensors: tensor "));
  EXPECT_THAT(st.status().message(), HasSubstr("truncated"));
}

TEST_F(PackageTest, MismatchedWeightsNameTheTensor) {
  Package p = make_package();
  ASSERT_TRUE(save_package(p, dir_).is_ok());
  p.weights["fc.weight"] = core::Tensor::zeros(core::DType::kF32, {3, 9});
  ASSERT_TRUE(save_safetensors(dir_ / kWeightsFile, p.weights).is_ok());
  auto st = load_package(dir_);
  ASSERT_FALSE(st.ok());
  EXPECT_THAT(st.status().message(),
              StartsWith("weights.safetensors does not match model.json: weight 'fc.weight' has "
                         "shape [3, 9]; expected [3, 8]"));
}

TEST_F(PackageTest, MissingFilesAreNotFound) {
  EXPECT_EQ(load_package(dir_).status().code(), Code::kNotFound);
  ASSERT_TRUE(save_package(make_package(), dir_).is_ok());
  fs::remove(dir_ / kWeightsFile);
  auto st = load_package(dir_);
  EXPECT_EQ(st.status().code(), Code::kNotFound);
  EXPECT_THAT(st.status().message(), StartsWith("weights.safetensors: "));
}

TEST_F(PackageTest, SaveRefusesInconsistentPackageAndWritesNothing) {
  Package p = make_package();
  p.weights.erase("bn.running_var");
  Status st = save_package(p, dir_);
  EXPECT_THAT(st.message(), HasSubstr("missing weight 'bn.running_var'"));
  EXPECT_FALSE(fs::exists(dir_));
}

}  // namespace
}  // namespace idn::model
