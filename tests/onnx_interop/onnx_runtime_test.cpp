// IDN's ONNX export judged by foreign tools, ggml test-backend-ops style: the ONNX project's
// checker (python3-onnx, full check with strict shape inference) accepts every graph, and
// onnxruntime-node (interop/onnx_run.mjs), running the graphs stage by stage from the raw input,
// at batch K and batch 1, agrees with IDN's engine (LibTorch) within 1e-5 on every stage output
// and every exit's probabilities. Models: the trained tiny B-LeNet on FashionMNIST test images,
// B-AlexNet and a generated ParallelNet member (random weights; no training needed to compare
// arithmetic), and the all-ops package. Each tool's half is skipped, saying so, when that tool
// is not installed (scripts/setup installs both).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/engine.h"
#include "model/package.h"
#include "motifs/branchynet_arch.h"
#include "motifs/parallelnet.h"
#include "nn/graph.h"
#include "onnx/all_ops_spec.h"
#include "onnx/onnx_export.h"
#include "support/tiny_model.h"

namespace idn::onnx {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr double kTolerance = 1e-5;
constexpr int64_t kSamples = 4;

const fs::path kInterop = fs::path(IDN_SOURCE_DIR) / "interop";

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs `cmd` with stdout and stderr into `log`; returns its exit status.
int run(const std::string& cmd, const fs::path& log) {
  int rc = std::system((cmd + " >" + log.string() + " 2>&1").c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

// A python with the onnx module (Debian's python3-onnx is for /usr/bin/python3, which another
// python3 on PATH may shadow); empty when there is none.
std::string python_with_onnx() {
  for (const char* py : {"python3", "/usr/bin/python3"})
    if (std::system((std::string(py) + " -c 'import onnx' >/dev/null 2>&1").c_str()) == 0)
      return py;
  return "";
}

bool have_onnxruntime_node() {
  return std::system("command -v node >/dev/null 2>&1") == 0 &&
         fs::exists(kInterop / "node_modules" / "onnxruntime-node" / "package.json");
}

struct TempDir {
  fs::path path = fs::temp_directory_path() / ("onnx_runtime_test_" + std::to_string(::getpid()));
  TempDir() { fs::create_directories(path); }
  ~TempDir() { fs::remove_all(path); }
};

// A package of `spec` with torch's default initialisation (seeded), saved to `dir`.
void save_random_package(const model::ModelSpec& spec, const fs::path& dir) {
  torch::manual_seed(3);
  nn::Graph g(spec);
  model::Package pkg{spec, g->export_weights()};
  ASSERT_TRUE(model::save_package(pkg, dir).is_ok());
}

// K inputs of the package's input shape: FashionMNIST test images for 1x28x28 models, uniform
// [0, 1) values otherwise.
core::Tensor inputs_for(const model::ModelSpec& spec) {
  std::vector<int64_t> shape{kSamples};
  for (int64_t d : spec.inputs[0].shape) shape.push_back(d);
  if (spec.inputs[0].shape == std::vector<int64_t>{1, 28, 28}) {
    auto x = testing::tiny_data().test.x.slice(0, 0, kSamples).contiguous();
    return nn::from_torch(x);
  }
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(0, 1);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng);
  return core::Tensor::f32(shape, v);
}

// The engine's answers for every sample: each stage's output (run_stages) and each exit's
// probabilities (a rule no early exit meets, so every exit reports).
json reference(const fs::path& package_dir, const core::Tensor& inputs) {
  auto engine = engine::Engine::load(package_dir);
  EXPECT_TRUE(engine.ok()) << engine.status().to_string();
  const auto& spec = (*engine)->spec();
  json values = json::object();
  const int64_t per = static_cast<int64_t>(inputs.bytes.size() / sizeof(float) / kSamples);
  std::vector<int64_t> one(inputs.shape.begin() + 1, inputs.shape.end());
  for (int64_t s = 0; s < kSamples; ++s) {
    auto all = inputs.f32();
    core::Tensor x = core::Tensor::f32(
        one, std::span<const float>(all.data() + s * per, static_cast<size_t>(per)));
    for (size_t st = 0; st < spec.stages.size(); ++st) {
      auto out = (*engine)->run_stages(x, -1, static_cast<int>(st));
      EXPECT_TRUE(out.ok()) << out.status().to_string();
      auto& v = values["stage_" + std::to_string(st) + "/" + spec.stages[st].output];
      for (float f : out->f32()) v.push_back(f);
    }
  }
  engine::ExitRule never{model::ExitCriterion::kConfidence, 2.0};
  std::vector<std::vector<std::vector<float>>> probs(spec.exits.size(),
                                                     std::vector<std::vector<float>>(kSamples));
  auto events = (*engine)->infer_batch_progressive(inputs, never,
                                                   [&](size_t sample, const engine::ExitEvent& ev) {
                                                     probs[ev.exit_index][sample] = ev.probs;
                                                     return true;
                                                   });
  EXPECT_TRUE(events.ok()) << events.status().to_string();
  for (size_t e = 0; e < spec.exits.size(); ++e) {
    auto& v = values["exit_" + std::to_string(e) + "/probs"];
    for (const auto& p : probs[e]) {
      EXPECT_FALSE(p.empty()) << "exit " << e << " did not report";
      for (float f : p) v.push_back(f);
    }
  }
  json input = json::array();
  for (float f : inputs.f32()) input.push_back(f);
  return json{
      {"samples", kSamples}, {"input", input}, {"values", values}, {"tolerance", kTolerance}};
}

void check_package(const fs::path& package_dir, const fs::path& work) {
  SCOPED_TRACE(package_dir.string());
  const fs::path out = work / "onnx";
  auto ex = export_onnx(package_dir, out);
  ASSERT_TRUE(ex.ok()) << ex.status().to_string();

  const std::string py = python_with_onnx();
  if (py.empty()) {
    std::cout << "[ SKIPPED  ] python onnx checker: no python with the onnx module "
                 "(Debian: python3-onnx; run scripts/setup)\n";
  } else {
    int rc = run(py + " " + (kInterop / "onnx_check.py").string() + " " + out.string(),
                 work / "check.log");
    EXPECT_EQ(rc, 0) << slurp(work / "check.log");
    std::cout << slurp(work / "check.log");
  }

  if (!have_onnxruntime_node()) {
    std::cout << "[ SKIPPED  ] onnxruntime-node: node or interop/node_modules/onnxruntime-node "
                 "missing (run scripts/setup)\n";
    return;
  }
  auto pkg = model::load_package(package_dir);
  ASSERT_TRUE(pkg.ok());
  json ref = reference(package_dir, inputs_for(pkg->spec));
  std::ofstream(work / "ref.json") << ref.dump();
  int rc = run("node " + (kInterop / "onnx_run.mjs").string() + " --dir " + out.string() +
                   " --reference " + (work / "ref.json").string(),
               work / "run.log");
  const std::string log = slurp(work / "run.log");
  EXPECT_EQ(rc, 0) << log;
  std::cout << log;
  EXPECT_NE(log.find("\"mismatched\":0"), std::string::npos) << log;
}

class OnnxRuntime : public ::testing::Test {
 protected:
  void SetUp() override {
    if (python_with_onnx().empty() && !have_onnxruntime_node())
      GTEST_SKIP() << "neither python3-onnx nor onnxruntime-node is installed (run scripts/setup)";
  }
  TempDir tmp;
};

TEST_F(OnnxRuntime, TinyBLeNetAgreesWithTheEngineOnFashionMnistImages) {
  check_package(testing::tiny_package(), tmp.path);
}

TEST_F(OnnxRuntime, BAlexNetAgreesWithTheEngine) {
  auto spec = motifs::branchynet_arch("b-alexnet");
  ASSERT_TRUE(spec.ok()) << spec.status().to_string();
  save_random_package(*spec, tmp.path / "pkg");
  check_package(tmp.path / "pkg", tmp.path);
}

TEST_F(OnnxRuntime, GeneratedParallelNetMemberAgreesWithTheEngine) {
  auto spec = motifs::parallelnet_arch("alexnet");
  ASSERT_TRUE(spec.ok()) << spec.status().to_string();
  save_random_package(*spec, tmp.path / "genesis");
  auto genesis = model::load_package(tmp.path / "genesis");
  ASSERT_TRUE(genesis.ok());
  motifs::Density p{0.5};
  auto mask = motifs::draw_mask(genesis->spec, p, 3);
  ASSERT_TRUE(mask.ok()) << mask.status().to_string();
  motifs::set_scale(*mask, motifs::Scaling::kInverted, p);
  auto member = motifs::thin_package(*genesis, *mask);
  ASSERT_TRUE(member.ok()) << member.status().to_string();
  ASSERT_LT(motifs::parameter_count(member->spec), motifs::parameter_count(genesis->spec));
  ASSERT_TRUE(model::save_package(*member, tmp.path / "member").is_ok());
  check_package(tmp.path / "member", tmp.path);
}

TEST_F(OnnxRuntime, EveryLayerTypeAgreesWithTheEngine) {
  auto pkg = testing::all_ops_package();
  ASSERT_TRUE(pkg.ok()) << pkg.status().to_string();
  ASSERT_TRUE(model::save_package(*pkg, tmp.path / "pkg").is_ok());
  check_package(tmp.path / "pkg", tmp.path);
}

}  // namespace
}  // namespace idn::onnx
