#include "onnx/onnx_export.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "core/bytes.h"
#include "core/multihash.h"
#include "onnx/all_ops_spec.h"
#include "proto/onnx_ir.pb.h"

namespace idn::onnx {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

onnx_ir::ModelProto parse(const GraphFile& g) {
  onnx_ir::ModelProto m;
  EXPECT_TRUE(m.ParseFromString(g.bytes)) << g.file;
  return m;
}

std::set<std::string> op_types(const onnx_ir::ModelProto& m) {
  std::set<std::string> ops;
  for (const auto& n : m.graph().node()) ops.insert(n.op_type());
  return ops;
}

std::vector<std::string> names(const std::vector<GraphValue>& vs) {
  std::vector<std::string> out;
  for (const auto& v : vs) out.push_back(v.name);
  return out;
}

struct TempDir {
  fs::path path =
      fs::temp_directory_path() / ("onnx_export_test_" + std::to_string(::getpid()) + "_" +
                                   ::testing::UnitTest::GetInstance()->current_test_info()->name());
  ~TempDir() { fs::remove_all(path); }
};

TEST(OnnxExport, EveryStageAndExitIsOneGraph) {
  auto pkg = testing::all_ops_package();
  ASSERT_TRUE(pkg.ok()) << pkg.status().to_string();
  auto ex = export_package(*pkg);
  ASSERT_TRUE(ex.ok()) << ex.status().to_string();
  ASSERT_EQ(ex->graphs.size(), 4u);
  const auto& s0 = ex->graphs[0];
  const auto& s1 = ex->graphs[1];
  const auto& e0 = ex->graphs[2];
  const auto& e1 = ex->graphs[3];
  EXPECT_EQ(s0.file, "stage_0.onnx");
  EXPECT_EQ(s1.file, "stage_1.onnx");
  EXPECT_EQ(e0.file, "exit_0.onnx");
  EXPECT_EQ(e1.file, "exit_1.onnx");
  EXPECT_EQ(names(s0.inputs), std::vector<std::string>{"image"});
  EXPECT_EQ(s0.inputs[0].from, "input");
  EXPECT_EQ(names(s0.outputs), std::vector<std::string>{"pool1"});
  EXPECT_EQ(names(s1.inputs), std::vector<std::string>{"pool1"});
  EXPECT_EQ(s1.inputs[0].from, "stage_0");
  EXPECT_EQ(names(e0.inputs), std::vector<std::string>{"pool1"});
  EXPECT_EQ(e0.inputs[0].from, "stage_0");
  EXPECT_EQ(e0.inputs[0].shape, (std::vector<int64_t>{6, 6, 6}));
  EXPECT_EQ(names(e1.inputs), std::vector<std::string>{"fc2"});
  EXPECT_EQ(e1.inputs[0].from, "stage_1");
  for (const auto* e : {&e0, &e1}) {
    EXPECT_EQ(names(e->outputs), (std::vector<std::string>{"logits", "probs"}));
    EXPECT_EQ(e->outputs[1].shape, std::vector<int64_t>{4});
  }

  auto m0 = parse(s0);
  EXPECT_EQ(m0.ir_version(), kIrVersion);
  ASSERT_EQ(m0.opset_import_size(), 1);
  EXPECT_EQ(m0.opset_import(0).domain(), "");
  EXPECT_EQ(m0.opset_import(0).version(), kOpsetVersion);
  const auto& in = m0.graph().input(0);
  EXPECT_EQ(in.name(), "image");
  const auto& dims = in.type().tensor_type().shape().dim();
  ASSERT_EQ(dims.size(), 4);
  EXPECT_EQ(dims[0].dim_param(), "N");  // any batch size
  EXPECT_EQ(dims[1].dim_value(), 3);
  EXPECT_EQ(in.type().tensor_type().elem_type(), onnx_ir::TensorProto::FLOAT);
  EXPECT_EQ(op_types(m0), (std::set<std::string>{"Sub", "Mul", "Conv", "BatchNormalization", "Relu",
                                                 "LRN", "MaxPool"}));
  // Even-sized LRN is decomposed; every aggregation maps to its own op.
  EXPECT_EQ(op_types(parse(s1)),
            (std::set<std::string>{"Conv", "Mul", "Unsqueeze", "Pad", "AveragePool", "Squeeze",
                                   "Add", "Pow", "Div", "MaxPool", "Max", "Mean", "Concat",
                                   "Flatten", "BatchNormalization", "Identity", "Gemm", "Relu"}));
  EXPECT_EQ(op_types(parse(e0)), (std::set<std::string>{"AveragePool", "Flatten", "Gemm", "Softmax",
                                                        "Identity", "Div"}));
  EXPECT_EQ(op_types(parse(e1)), (std::set<std::string>{"Identity", "Div", "Softmax"}));
}

TEST(OnnxExport, AttributesFollowTheEnginesSemantics) {
  auto pkg = testing::all_ops_package();
  ASSERT_TRUE(pkg.ok());
  auto ex = export_package(*pkg);
  ASSERT_TRUE(ex.ok());
  auto find = [](const onnx_ir::ModelProto& m, const std::string& name) {
    for (const auto& n : m.graph().node())
      if (n.name() == name) return n;
    ADD_FAILURE() << "no node " << name;
    return onnx_ir::NodeProto{};
  };
  auto attr = [](const onnx_ir::NodeProto& n, const std::string& name) {
    for (const auto& a : n.attribute())
      if (a.name() == name) return a;
    ADD_FAILURE() << n.name() << " has no attribute " << name;
    return onnx_ir::AttributeProto{};
  };
  auto e0 = parse(ex->graphs[2]);
  // torch's avg_pool2d counts padding in the divisor; ONNX's default does not.
  auto pool = find(e0, "e0_pool");
  EXPECT_EQ(attr(pool, "count_include_pad").i(), 1);
  EXPECT_EQ(attr(pool, "count_include_pad").type(), onnx_ir::AttributeProto::INT);
  const auto pads = attr(pool, "pads");
  EXPECT_EQ(std::vector<int64_t>(pads.ints().begin(), pads.ints().end()),
            (std::vector<int64_t>{1, 1, 1, 1}));
  EXPECT_EQ(attr(find(e0, "e0_fc"), "transB").i(), 1);
  // The temperature divides the logits before the softmax the engine reports.
  bool found = false;
  for (const auto& t : e0.graph().initializer())
    if (t.name() == "temperature") {
      found = true;
      float v;
      ASSERT_EQ(t.raw_data().size(), sizeof v);
      std::memcpy(&v, t.raw_data().data(), sizeof v);
      EXPECT_EQ(v, 0.5f);
    }
  EXPECT_TRUE(found);
  auto s0 = parse(ex->graphs[0]);
  auto lrn = find(s0, "lrn1");
  EXPECT_EQ(attr(lrn, "size").i(), 5);
  EXPECT_FLOAT_EQ(attr(lrn, "bias").f(), 2.0f);
  EXPECT_FLOAT_EQ(attr(find(s0, "bn1"), "epsilon").f(), 1e-5f);
}

TEST(OnnxExport, WeightsTravelAsInitializersByTheirPackageNames) {
  auto pkg = testing::all_ops_package();
  ASSERT_TRUE(pkg.ok());
  auto ex = export_package(*pkg);
  ASSERT_TRUE(ex.ok());
  std::map<std::string, std::string> raw;
  for (const auto& g : ex->graphs) {
    const auto m = parse(g);
    for (const auto& t : m.graph().initializer()) raw[t.name()] = t.raw_data();
  }
  for (const auto& [name, t] : pkg->weights) {
    ASSERT_TRUE(raw.count(name)) << name;
    EXPECT_EQ(raw[name], std::string(t.bytes.begin(), t.bytes.end())) << name;
  }
}

TEST(OnnxExport, ManifestNamesFilesHashesAndTheExitRule) {
  auto pkg = testing::all_ops_package();
  ASSERT_TRUE(pkg.ok());
  auto ex = export_package(*pkg);
  ASSERT_TRUE(ex.ok());
  json m = json::parse(ex->manifest);
  EXPECT_EQ(m["format"], "idn-onnx");
  EXPECT_EQ(m["version"], 1);
  EXPECT_EQ(m["opset"], 13);
  EXPECT_EQ(m["model"]["name"], "all-ops");
  EXPECT_EQ(m["model"]["classes"], 4);
  EXPECT_EQ(m["model"]["hash"],
            core::Multihash::sha2_256(as_bytes(model::to_json_text(pkg->spec))).to_base58());
  EXPECT_EQ(m["input"]["shape"], json::parse(R"(["N", 3, 12, 12])"));
  EXPECT_EQ(m["preprocess"]["std"], json::parse("[0.5, 0.25, 2.0]"));
  ASSERT_EQ(m["stages"].size(), 2u);
  ASSERT_EQ(m["exits"].size(), 2u);
  for (const auto& g : ex->graphs) {
    const json& e = m[g.is_exit ? "exits" : "stages"][g.index];
    EXPECT_EQ(e["file"], g.file);
    EXPECT_EQ(e["bytes"], g.bytes.size());
    auto d = core::sha256(as_bytes(g.bytes));
    EXPECT_EQ(e["sha256"], hex_encode(ByteView(d.data(), d.size())));
  }
  EXPECT_EQ(m["exits"][1]["criterion"], "entropy");
  EXPECT_EQ(m["exits"][1]["threshold"], 0.5);
  EXPECT_EQ(m["exits"][1]["temperature"], 1.5);
  EXPECT_EQ(m["exits"][0]["inputs"][0]["from"], "stage_0");
  EXPECT_EQ(m["stages"][0]["outputs"][0]["shape"], json::parse(R"(["N", 6, 6, 6])"));
}

TEST(OnnxExport, SamePackageGivesTheSameBytes) {
  auto pkg = testing::all_ops_package();
  ASSERT_TRUE(pkg.ok());
  auto a = export_package(*pkg), b = export_package(*pkg);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->manifest, b->manifest);
  for (size_t i = 0; i < a->graphs.size(); ++i) EXPECT_EQ(a->graphs[i].bytes, b->graphs[i].bytes);
}

TEST(OnnxExport, ExitOutputsStepAsideForALayerNamedLogits) {
  std::string text = testing::kAllOpsSpec;
  for (size_t at; (at = text.find("\"fc2\"")) != std::string::npos;)
    text.replace(at, 5, "\"logits\"");
  auto spec = model::parse_model_spec_text(text);
  ASSERT_TRUE(spec.ok()) << spec.status().to_string();
  auto pkg = testing::all_ops_package();
  ASSERT_TRUE(pkg.ok());
  pkg->spec = *spec;
  pkg->weights["logits.weight"] = pkg->weights.at("fc2.weight");
  pkg->weights["logits.bias"] = pkg->weights.at("fc2.bias");
  auto ex = export_package(*pkg);
  ASSERT_TRUE(ex.ok()) << ex.status().to_string();
  EXPECT_EQ(names(ex->graphs[1].outputs), std::vector<std::string>{"logits"});
  EXPECT_EQ(names(ex->graphs[3].inputs), std::vector<std::string>{"logits"});
  EXPECT_EQ(names(ex->graphs[3].outputs), (std::vector<std::string>{"logits_1", "probs"}));
}

TEST(OnnxExport, RefusesWhatItCannotExpress) {
  auto pkg = testing::all_ops_package();
  ASSERT_TRUE(pkg.ok());
  auto two = *pkg;
  two.spec.inputs.push_back(two.spec.inputs[0]);
  two.spec.inputs[1].name = "second";
  auto r = export_package(two);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUnsupported);
  EXPECT_NE(r.status().message().find("2 inputs"), std::string::npos) << r.status().to_string();

  auto missing = *pkg;
  missing.weights.erase("conv2.weight");
  r = export_package(missing);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find("conv2.weight"), std::string::npos);

  auto misshapen = *pkg;
  misshapen.weights["fc1.weight"] = core::Tensor::f32({16, 143}, std::vector<float>(16 * 143));
  r = export_package(misshapen);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("[16, 144]"), std::string::npos) << r.status().to_string();
}

TEST(OnnxExport, WritesIntoANewOrItsOwnDirectoryOnly) {
  TempDir t;
  auto pkg = testing::all_ops_package();
  ASSERT_TRUE(pkg.ok());
  ASSERT_TRUE(model::save_package(*pkg, t.path / "pkg").is_ok());
  auto ex = export_onnx(t.path / "pkg", t.path / "out");
  ASSERT_TRUE(ex.ok()) << ex.status().to_string();
  for (const char* f :
       {"stage_0.onnx", "stage_1.onnx", "exit_0.onnx", "exit_1.onnx", "manifest.json"})
    EXPECT_TRUE(fs::is_regular_file(t.path / "out" / f)) << f;
  std::ifstream in(t.path / "out" / "stage_1.onnx", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(bytes, ex->graphs[1].bytes);
  // Again into the same directory: it holds only this export's files.
  EXPECT_TRUE(export_onnx(t.path / "pkg", t.path / "out").ok());

  std::ofstream(t.path / "out" / "notes.txt") << "mine";
  auto r = export_onnx(t.path / "pkg", t.path / "out");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find("notes.txt"), std::string::npos) << r.status().to_string();

  r = export_onnx(t.path / "pkg", t.path / "out" / "notes.txt");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("not a directory"), std::string::npos);

  r = export_onnx(t.path / "nowhere", t.path / "out2");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().to_string().find("nowhere"), std::string::npos) << r.status().to_string();
  EXPECT_FALSE(fs::exists(t.path / "out2"));
}

}  // namespace
}  // namespace idn::onnx
