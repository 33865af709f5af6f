// onnx/ddnn_export.h without any runtime: the graphs a DDNN package becomes, the manifest, the
// determinism of the bytes and the errors for a broken package. The packages are made here,
// torch-free (random packed device sections, random cloud weights); tests/onnx_interop/ runs
// the graphs and compares their numbers with IDN's.
#include "onnx/ddnn_export.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "core/bytes.h"
#include "core/multihash.h"
#include "model/file_io.h"
#include "model/safetensors.h"
#include "ondevice/section.h"
#include "proto/onnx_ir.pb.h"

namespace idn::onnx {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct TempDir {
  fs::path path =
      fs::temp_directory_path() / ("ddnn_export_test_" + std::to_string(::getpid()) + "_" +
                                   ::testing::UnitTest::GetInstance()->current_test_info()->name());
  TempDir() { fs::create_directories(path); }
  ~TempDir() { fs::remove_all(path); }
};

constexpr int64_t kDevices = 2, kChannels = 1, kSize = 8, kFilters = 2, kClasses = 3;
constexpr int64_t kCloudFilters = 3;

json config(const std::string& local, const std::string& cloud) {
  return json{{"letter", "c"},
              {"views", {0, 1}},
              {"edges", 0},
              {"channels", kChannels},
              {"size", kSize},
              {"classes", kClasses},
              {"device_filters", kFilters},
              {"device_blocks", 1},
              {"edge_filters", 8},
              {"edge_blocks", 1},
              {"cloud_filters", kCloudFilters},
              {"cloud_blocks", 1},
              {"local", local},
              {"cloud", cloud},
              {"edge", "CC"},
              {"mask_absent", true}};
}

void write_text(const fs::path& p, const std::string& text) {
  std::ofstream(p, std::ios::binary) << text;
}

// Random bits with the unused bits of each row 0.
std::vector<uint64_t> random_rows(std::mt19937_64& rng, int64_t rows, int64_t fan_in) {
  const int64_t words = ondevice::words_for(fan_in);
  std::vector<uint64_t> w(static_cast<size_t>(rows * words));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < words; ++i) {
      uint64_t v = rng();
      if (i == words - 1 && fan_in % 64) v &= ~(~uint64_t{0} << (fan_in % 64));
      w[static_cast<size_t>(r * words + i)] = v;
    }
  return w;
}

ondevice::Section device_section(std::mt19937_64& rng, bool below) {
  ondevice::Layer conv;
  conv.kind = ondevice::LayerKind::kConvP;
  conv.outputs = kFilters;
  conv.weights = random_rows(rng, kFilters, kChannels * 9);
  conv.thresholds = {{10, false}, {-5, below}};
  ondevice::Layer fc;
  fc.kind = ondevice::LayerKind::kFcScores;
  fc.outputs = kClasses;
  fc.weights = random_rows(rng, kClasses, kFilters * 4 * 4);
  fc.norms.assign(kClasses, {0.5f, 3.0f, 1.5f, -0.25f});
  auto s =
      ondevice::Section::make(ondevice::InputKind::kPixels, {kChannels, kSize, kSize}, {conv, fc});
  EXPECT_TRUE(s.ok()) << s.status().to_string();
  return *s;
}

std::map<std::string, core::Tensor> cloud_weights(std::mt19937_64& rng,
                                                  const std::string& cloud = "CC") {
  std::uniform_real_distribution<float> u(-1, 1);
  auto t = [&](std::vector<int64_t> shape, float lo = -1, float hi = 1) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = lo + (hi - lo) * (u(rng) + 1) / 2;
    return core::Tensor::f32(shape, v);
  };
  std::map<std::string, core::Tensor> w;
  const int64_t in = cloud == "CC" ? kDevices * kFilters : kFilters;
  w["cloud.conv0.weight"] = t({kCloudFilters, in, 3, 3});
  w["cloud.fc.weight"] = t({kClasses, kCloudFilters * 2 * 2});
  for (auto [prefix, c] :
       {std::pair<std::string, int64_t>{"cloud.conv0", kCloudFilters}, {"cloud.fc", kClasses}}) {
    w[prefix + ".bn.weight"] = t({c});
    w[prefix + ".bn.bias"] = t({c});
    w[prefix + ".bn.running_mean"] = t({c});
    w[prefix + ".bn.running_var"] = t({c}, 0.5f, 2.0f);
  }
  return w;
}

// A config (c) package of two 1x8x8 cameras; `local` and `cloud` aggregation as given.
fs::path make_package(const fs::path& dir, const std::string& local = "MP",
                      const std::string& cloud = "CC", bool below = false) {
  fs::create_directories(dir);
  std::mt19937_64 rng(7);
  for (int64_t d = 0; d < kDevices; ++d) {
    const Bytes b = device_section(rng, below).serialize();
    write_text(dir / ("device" + std::to_string(d) + ".idnb"), std::string(b.begin(), b.end()));
  }
  EXPECT_TRUE(
      model::save_safetensors(dir / "weights.safetensors", cloud_weights(rng, cloud)).is_ok());
  json j{{"format", "idn-ddnn"},           {"version", 1},
         {"name", "synthetic-ddnn"},       {"motif", "ddnn"},
         {"config", config(local, cloud)}, {"thresholds", {{"local", 0.7}, {"edge", 0.8}}},
         {"labels", {"a", "b", "c"}}};
  write_text(dir / "ddnn.json", j.dump(2));
  return dir;
}

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

std::string sha256_hex(const std::string& bytes) {
  auto d = core::sha256(as_bytes(bytes));
  return hex_encode(ByteView(d.data(), d.size()));
}

TEST(DdnnExport, EveryDeviceTheLocalAggregatorAndTheCloudAreGraphs) {
  TempDir tmp;
  const fs::path pkg = make_package(tmp.path / "pkg");
  ASSERT_TRUE(is_ddnn_package(pkg));
  auto ex = export_ddnn(pkg);
  ASSERT_TRUE(ex.ok()) << ex.status().to_string();
  std::vector<std::string> files;
  for (const auto& g : ex->graphs) files.push_back(g.file);
  EXPECT_EQ(files, (std::vector<std::string>{"device_0.onnx", "device_1.onnx", "local.onnx",
                                             "cloud.onnx"}));

  const auto device = parse(ex->graphs[0]);
  EXPECT_EQ(device.opset_import(0).version(), kOpsetVersion);
  ASSERT_EQ(device.graph().input_size(), 1);
  EXPECT_EQ(device.graph().input(0).type().tensor_type().elem_type(), onnx_ir::TensorProto::UINT8);
  std::vector<std::string> outs;
  for (const auto& o : device.graph().output()) outs.push_back(o.name());
  EXPECT_EQ(outs, (std::vector<std::string>{"scores", "features", "features_packed"}));
  const auto ops = op_types(device);
  for (const char* op : {"Cast", "Conv", "MaxPool", "GreaterOrEqual", "Where", "MatMul", "Sub",
                         "Div", "Mul", "Add", "ReduceSum"})
    EXPECT_TRUE(ops.count(op)) << op;
  EXPECT_FALSE(ops.count("LessOrEqual"));                          // every threshold here is y >= t
  EXPECT_TRUE(op_types(parse(ex->graphs[2])).count("ReduceMax"));  // MP
  EXPECT_TRUE(op_types(parse(ex->graphs[3])).count("Reshape"));    // CC

  const auto m = json::parse(ex->manifest);
  EXPECT_EQ(m["format"], kDdnnManifestFormat);
  EXPECT_EQ(m["version"], 1);
  auto text = model::read_file(pkg / "ddnn.json");
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(m["model"]["hash"], core::Multihash::sha2_256(*text).to_base58());
  EXPECT_EQ(m["model"]["devices"], kDevices);
  EXPECT_EQ(m["input"]["dtype"], "U8");
  EXPECT_EQ(m["input"]["shape"], json::parse(R"(["N", 1, 8, 8])"));
  EXPECT_EQ(m["features"]["packed_bytes"], 4);  // 2 x 4 x 4 bits
  EXPECT_EQ(m["local"]["aggregation"], "MP");
  EXPECT_EQ(m["local"]["file"], "local.onnx");
  EXPECT_EQ(m["local"]["threshold"], 0.7);
  EXPECT_EQ(m["cloud"]["aggregation"], "CC");
  ASSERT_EQ(m["graphs"].size(), ex->graphs.size());
  for (size_t i = 0; i < ex->graphs.size(); ++i) {
    EXPECT_EQ(m["graphs"][i]["file"], ex->graphs[i].file);
    EXPECT_EQ(m["graphs"][i]["sha256"], sha256_hex(ex->graphs[i].bytes));
  }
  EXPECT_EQ(m["graphs"][1]["view"], 1);
  EXPECT_EQ(m["graphs"][3]["inputs"][0]["shape"], json::parse(R"(["N", 2, 2, 4, 4])"));

  // Deterministic: the same package gives the same bytes.
  auto again = export_ddnn(pkg);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->manifest, ex->manifest);
  for (size_t i = 0; i < ex->graphs.size(); ++i)
    EXPECT_EQ(again->graphs[i].bytes, ex->graphs[i].bytes);
}

TEST(DdnnExport, FilesInMemoryExportAsTheDirectoryDoes) {
  TempDir tmp;
  const fs::path pkg = make_package(tmp.path / "pkg");
  std::map<std::string, Bytes> files;
  for (const auto& e : fs::directory_iterator(pkg)) {
    auto b = model::read_file(e.path());
    ASSERT_TRUE(b.ok());
    files[e.path().filename().string()] = *b;
  }
  auto from_dir = export_ddnn(pkg);
  auto from_memory = export_ddnn_files(files);
  ASSERT_TRUE(from_dir.ok() && from_memory.ok()) << from_memory.status().to_string();
  EXPECT_EQ(from_memory->manifest, from_dir->manifest);
  files.erase("device1.idnb");
  auto missing = export_ddnn_files(files);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), Code::kNotFound);
}

TEST(DdnnExport, WritesTheDirectoryAndRefusesForeignFiles) {
  TempDir tmp;
  const fs::path pkg = make_package(tmp.path / "pkg");
  auto ex = export_ddnn_onnx(pkg, tmp.path / "out");
  ASSERT_TRUE(ex.ok()) << ex.status().to_string();
  for (const auto& g : ex->graphs) EXPECT_TRUE(fs::exists(tmp.path / "out" / g.file));
  EXPECT_TRUE(fs::exists(tmp.path / "out" / kManifestFile));
  EXPECT_TRUE(export_ddnn_onnx(pkg, tmp.path / "out").ok());  // over its own earlier export
  write_text(tmp.path / "out" / "notes.txt", "x");
  auto st = export_ddnn_onnx(pkg, tmp.path / "out");
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.status().code(), Code::kInvalidArgument);
  EXPECT_NE(st.status().message().find("notes.txt"), std::string::npos);
}

TEST(DdnnExport, BothThresholdDirectionsAndOtherAggregations) {
  TempDir tmp;
  auto ex = export_ddnn(make_package(tmp.path / "pkg", "AP", "MP", /*below=*/true));
  ASSERT_TRUE(ex.ok()) << ex.status().to_string();
  const auto ops = op_types(parse(ex->graphs[0]));
  for (const char* op : {"GreaterOrEqual", "LessOrEqual", "And", "Or"})
    EXPECT_TRUE(ops.count(op)) << op;
  EXPECT_TRUE(op_types(parse(ex->graphs[2])).count("ReduceSum"));  // AP
  EXPECT_TRUE(op_types(parse(ex->graphs[3])).count("ReduceMax"));  // MP

  // CC local aggregation is a learned map the network does not deploy: no local graph.
  auto cc = export_ddnn(make_package(tmp.path / "cc", "CC", "AP"));
  ASSERT_TRUE(cc.ok()) << cc.status().to_string();
  EXPECT_EQ(cc->graphs.size(), 3u);
  const auto m = json::parse(cc->manifest);
  EXPECT_TRUE(m["local"]["file"].is_null());
  EXPECT_EQ(m["cloud"]["aggregation"], "AP");
}

// Edits a fresh package with `edit`, exports it and returns the status.
Status export_edited(const fs::path& dir, const std::function<void(const fs::path&)>& edit) {
  make_package(dir);
  edit(dir);
  auto ex = export_ddnn(dir);
  return ex.ok() ? Status::ok() : ex.status();
}

void expect_error(const Status& st, Code code, const std::string& words) {
  ASSERT_FALSE(st.is_ok());
  EXPECT_EQ(st.code(), code) << st.to_string();
  EXPECT_NE(st.message().find(words), std::string::npos) << st.to_string();
}

json manifest_of(const fs::path& dir) {
  std::ifstream in(dir / "ddnn.json");
  return json::parse(in);
}

TEST(DdnnExport, BrokenPackagesGetClearErrors) {
  TempDir tmp;
  int n = 0;
  auto next = [&] { return tmp.path / "p" / std::to_string(n++); };
  expect_error(export_edited(next(), [](const fs::path& d) { write_text(d / "ddnn.json", "{"); }),
               Code::kInvalidArgument, "ddnn.json");
  expect_error(export_edited(next(),
                             [](const fs::path& d) {
                               auto j = manifest_of(d);
                               j["format"] = "idn-model";
                               write_text(d / "ddnn.json", j.dump());
                             }),
               Code::kInvalidArgument, "not an idn-ddnn manifest");
  expect_error(export_edited(next(),
                             [](const fs::path& d) {
                               auto j = manifest_of(d);
                               j["config"].erase("cloud_filters");
                               write_text(d / "ddnn.json", j.dump());
                             }),
               Code::kInvalidArgument, "cloud_filters");
  expect_error(export_edited(next(),
                             [](const fs::path& d) {
                               auto j = manifest_of(d);
                               j["config"]["letter"] = "e";
                               j["config"]["edges"] = 1;
                               write_text(d / "ddnn.json", j.dump());
                             }),
               Code::kUnsupported, "edges");
  expect_error(export_edited(next(),
                             [](const fs::path& d) {
                               auto j = manifest_of(d);
                               j["config"]["local"] = "XX";
                               write_text(d / "ddnn.json", j.dump());
                             }),
               Code::kInvalidArgument, "aggregation 'XX'");
  expect_error(export_edited(next(), [](const fs::path& d) { fs::remove(d / "device1.idnb"); }),
               Code::kNotFound, "device1.idnb");
  expect_error(
      export_edited(next(), [](const fs::path& d) { write_text(d / "device0.idnb", "IDNB junk"); }),
      Code::kCorruption, "device0.idnb");
  expect_error(export_edited(next(),
                             [](const fs::path& d) {
                               auto j = manifest_of(d);
                               j["config"]["size"] = 16;  // the sections read 8x8 views
                               write_text(d / "ddnn.json", j.dump());
                             }),
               Code::kInvalidArgument, "not a pixel section of the package's views");
  expect_error(
      export_edited(next(),
                    [](const fs::path& d) {
                      std::mt19937_64 rng(1);
                      auto w = cloud_weights(rng);
                      w.erase("cloud.fc.bn.running_var");
                      ASSERT_TRUE(model::save_safetensors(d / "weights.safetensors", w).is_ok());
                    }),
      Code::kInvalidArgument, "cloud.fc.bn.running_var");
  expect_error(
      export_edited(next(),
                    [](const fs::path& d) {
                      std::mt19937_64 rng(1);
                      auto w = cloud_weights(rng);
                      w["cloud.conv0.weight"] = core::Tensor::f32({1}, std::vector<float>{1.0f});
                      ASSERT_TRUE(model::save_safetensors(d / "weights.safetensors", w).is_ok());
                    }),
      Code::kInvalidArgument, "cloud.conv0.weight");
  expect_error(
      export_edited(next(),
                    [](const fs::path& d) { write_text(d / "weights.safetensors", "garbage"); }),
      Code::kCorruption, "");
}

}  // namespace
}  // namespace idn::onnx
