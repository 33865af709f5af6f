// The ONNX export of a DDNN package (onnx/ddnn_export.h) judged by foreign tools: python3-onnx's
// checker (full check) accepts every graph, and onnxruntime-node (interop/onnx_ddnn_run.mjs),
// running the device graphs on six-camera views of FashionMNIST test images, the local
// aggregator on their scores and the cloud graph on their features, at batch K and batch 1,
// agrees with IDN: ondevice::Section (the packed device section a sensor runs) bit for bit on
// the features and within 1e-5 on the scores, and LibTorch's local aggregator and cloud section
// (motifs::Ddnn, as serve/'s cloud section runs it) within 1e-5, with absent devices (one, all
// but one, none). Each tool's half is skipped, saying so, when the tool is not installed.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "model/file_io.h"
#include "motifs/ddnn.h"
#include "ondevice/section.h"
#include "onnx/ddnn_export.h"
#include "support/tiny_ddnn.h"

namespace idn::onnx {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr int64_t kSamples = 6;
const fs::path kInterop = fs::path(IDN_SOURCE_DIR) / "interop";

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

int run(const std::string& cmd, const fs::path& log) {
  int rc = std::system((cmd + " >" + log.string() + " 2>&1").c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

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
  fs::path path = fs::temp_directory_path() / ("onnx_ddnn_test_" + std::to_string(::getpid()));
  TempDir() { fs::create_directories(path); }
  ~TempDir() { fs::remove_all(path); }
};

// IDN's answers on K samples: every device section (ondevice::Section) on its camera's view,
// the local aggregator and the cloud section (LibTorch) on them, with the presence the replay
// says except: sample 0 loses device 1, sample 1 keeps device 2 only, the last sample has none.
json reference(const fs::path& dir) {
  auto pkg = motifs::load_ddnn(dir);
  EXPECT_TRUE(pkg.ok()) << pkg.status().to_string();
  const auto& c = pkg->model->config();
  const int64_t D = c.devices();
  const auto views = testing::tiny_ddnn_views(kSamples, 21);
  const auto feat = motifs::device_feature_shape(c);
  json ref{{"samples", kSamples}, {"tolerance", 1e-5}};
  json pixels = json::array(), present = json::array();
  auto pres = torch::zeros({kSamples, D}, torch::kBool);
  for (int64_t s = 0; s < kSamples; ++s)
    for (int64_t d = 0; d < D; ++d) {
      bool p = views.present(s, c.views[d]);
      if (s == 0 && d == 1) p = false;
      if (s == 1) p = d == 2;
      if (s == kSamples - 1) p = false;
      pres[s][d] = p;
      present.push_back(p ? 1 : 0);
      for (uint8_t v : views.view(s, c.views[d])) pixels.push_back(v);
    }
  auto scores = torch::zeros({kSamples, D, c.classes});
  auto features = torch::zeros({kSamples, D, feat.c, feat.h, feat.w});
  json dev_scores = json::array(), dev_features = json::array(), dev_packed = json::array();
  for (int64_t d = 0; d < D; ++d) {
    auto bytes = model::read_file(dir / ("device" + std::to_string(d) + ".idnb"), 1 << 20);
    EXPECT_TRUE(bytes.ok());
    auto section = ondevice::Section::parse(*bytes);
    EXPECT_TRUE(section.ok()) << section.status().to_string();
    json ds = json::array(), df = json::array(), dp = json::array();
    for (int64_t s = 0; s < kSamples; ++s) {
      auto out = section->run_device(views.view(s, c.views[d]));
      EXPECT_TRUE(out.ok()) << out.status().to_string();
      for (int64_t k = 0; k < c.classes; ++k) {
        ds.push_back(out->scores[k]);
        scores[s][d][k] = out->scores[k];
      }
      auto f = features[s][d].view({-1});
      for (int64_t b = 0; b < feat.size(); ++b) {
        const float v = (out->features[b / 64] >> (b % 64)) & 1 ? 1.0f : -1.0f;
        df.push_back(v);
        if (pres[s][d].item<bool>()) f[b] = v;
      }
      for (uint8_t v : ondevice::pack_bytes(out->features, feat.size())) dp.push_back(v);
    }
    dev_scores.push_back(ds);
    dev_features.push_back(df);
    dev_packed.push_back(dp);
  }
  torch::NoGradGuard no_grad;
  auto local = pkg->model->local_forward(scores, pres).contiguous();
  auto cloud = pkg->model->cloud_forward(features, pres).contiguous();
  json lj = json::array(), cj = json::array();
  for (int64_t i = 0; i < local.numel(); ++i) lj.push_back(local.data_ptr<float>()[i]);
  for (int64_t i = 0; i < cloud.numel(); ++i) cj.push_back(cloud.data_ptr<float>()[i]);
  ref["views"] = pixels;
  ref["present"] = present;
  ref["device_scores"] = dev_scores;
  ref["device_features"] = dev_features;
  ref["device_packed"] = dev_packed;
  if (c.local != motifs::Aggregation::kConcat) ref["local"] = lj;
  ref["cloud"] = cj;
  return ref;
}

void check_package(const fs::path& pkg, const fs::path& work) {
  SCOPED_TRACE(pkg.string());
  const bool py = !python_with_onnx().empty(), node = have_onnxruntime_node();
  const fs::path out = work / "onnx";
  auto ex = export_ddnn_onnx(pkg, out);
  ASSERT_TRUE(ex.ok()) << ex.status().to_string();
  if (!py) {
    std::cout << "[ SKIPPED  ] python onnx checker: no python with the onnx module\n";
  } else {
    int rc =
        run(python_with_onnx() + " " + (kInterop / "onnx_check.py").string() + " " + out.string(),
            work / "check.log");
    EXPECT_EQ(rc, 0) << slurp(work / "check.log");
    std::cout << slurp(work / "check.log");
  }
  if (!node) {
    std::cout << "[ SKIPPED  ] onnxruntime-node: node or interop/node_modules/onnxruntime-node "
                 "missing (run scripts/setup)\n";
    return;
  }
  std::ofstream(work / "ref.json") << reference(pkg).dump();
  int rc = run("node " + (kInterop / "onnx_ddnn_run.mjs").string() + " --dir " + out.string() +
                   " --reference " + (work / "ref.json").string(),
               work / "run.log");
  const std::string log = slurp(work / "run.log");
  EXPECT_EQ(rc, 0) << log;
  std::cout << log;
  EXPECT_NE(log.find("\"mismatched\":0"), std::string::npos) << log;
}

class OnnxDdnnRuntime : public ::testing::Test {
 protected:
  void SetUp() override {
    if (python_with_onnx().empty() && !have_onnxruntime_node())
      GTEST_SKIP() << "neither python3-onnx nor onnxruntime-node is installed (run scripts/setup)";
  }
  TempDir tmp;
};

TEST_F(OnnxDdnnRuntime, TinyDdnnSectionsAgreeWithTheSectionsAndTheCloud) {
  check_package(testing::tiny_ddnn_package(), tmp.path);
}

// Paths the trained fixture (MP local, CC cloud, one block, every threshold y >= t) leaves
// out: two device blocks (the second reads bits), thresholds of both directions (negative
// batch-norm scales), AP local and MP cloud aggregation, two cloud blocks. Random weights and
// statistics; no training needed to compare arithmetic.
TEST_F(OnnxDdnnRuntime, RandomDdnnWithBothThresholdDirectionsAndApMpAgrees) {
  auto c = motifs::ddnn_config('c', 6);
  ASSERT_TRUE(c.ok());
  c->device_blocks = 2;
  c->cloud_blocks = 2;
  c->local = motifs::Aggregation::kAverage;
  c->cloud = motifs::Aggregation::kMax;
  torch::manual_seed(11);
  motifs::DdnnPackage p;
  p.name = "random-ddnn";
  p.model = motifs::Ddnn(*c);
  p.labels = {"pullover", "coat", "sandal"};
  {
    torch::NoGradGuard no_grad;
    for (auto& item : p.model->named_parameters()) {
      const std::string& name = item.key();
      auto& t = item.value();
      if (name.find(".bn.weight") != std::string::npos)
        t.uniform_(-1, 1);
      else if (name.find(".bn.bias") != std::string::npos)
        t.uniform_(-0.5, 0.5);
    }
    for (auto& item : p.model->named_buffers()) {
      const std::string& name = item.key();
      auto& t = item.value();
      if (name.find("running_mean") != std::string::npos)
        t.uniform_(-8, 8);
      else if (name.find("running_var") != std::string::npos)
        t.uniform_(1, 40);
    }
  }
  p.model->eval();
  ASSERT_TRUE(motifs::save_ddnn(p, tmp.path / "pkg").is_ok());
  int below = 0, above = 0;
  for (int64_t d = 0; d < c->devices(); ++d) {
    auto bytes = model::read_file(tmp.path / "pkg" / ("device" + std::to_string(d) + ".idnb"));
    ASSERT_TRUE(bytes.ok());
    auto s = ondevice::Section::parse(*bytes);
    ASSERT_TRUE(s.ok());
    for (const auto& l : s->layers())
      for (const auto& t : l.thresholds) ++(t.below ? below : above);
  }
  ASSERT_GT(below, 0);
  ASSERT_GT(above, 0);
  check_package(tmp.path / "pkg", tmp.path);
}

}  // namespace
}  // namespace idn::onnx
