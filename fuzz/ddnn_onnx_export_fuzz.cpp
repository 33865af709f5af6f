// Fuzzes the DDNN ONNX export's reading of ddnn.json (onnx/ddnn_export.h): the input is
// ddnn.json's text, beside two fixed valid 1x8x8 device sections and cloud weights of a CC
// cloud with 3 filters. Whatever the text, the export never crashes, an error says why, and an
// accepted package gives a manifest that parses, lists every graph and matches them.
// fuzz-deps: idn_onnx idn_ondevice idn_model idn_proto idn_core
#include <cstddef>
#include <cstdint>
#include <map>
#include <random>
#include <string>

#include <nlohmann/json.hpp>

#include "fuzz_check.h"
#include "model/safetensors.h"
#include "ondevice/section.h"
#include "onnx/ddnn_export.h"

using namespace idn;

namespace {

std::vector<uint64_t> rows(std::mt19937_64& rng, int64_t n, int64_t fan_in) {
  const int64_t words = ondevice::words_for(fan_in);
  std::vector<uint64_t> w(static_cast<size_t>(n * words));
  for (size_t i = 0; i < w.size(); ++i) {
    w[i] = rng();
    if (static_cast<int64_t>(i % words) == words - 1 && fan_in % 64)
      w[i] &= ~(~uint64_t{0} << (fan_in % 64));
  }
  return w;
}

// device0.idnb, device1.idnb (1x8x8 pixels, ConvP of 2, FC scores of 3) and the weights of a
// CC cloud (3 filters, 3 classes) over them.
const std::map<std::string, Bytes>& package_files() {
  static const std::map<std::string, Bytes> files = [] {
    std::map<std::string, Bytes> f;
    std::mt19937_64 rng(1);
    for (int d = 0; d < 2; ++d) {
      ondevice::Layer conv{
          ondevice::LayerKind::kConvP, 2, rows(rng, 2, 9), {{3, false}, {-2, true}}, {}};
      ondevice::Layer fc{ondevice::LayerKind::kFcScores, 3, rows(rng, 3, 32), {}, {}};
      fc.norms.assign(3, {0.5f, 2.0f, 1.0f, 0.0f});
      auto s = ondevice::Section::make(ondevice::InputKind::kPixels, {1, 8, 8}, {conv, fc});
      f["device" + std::to_string(d) + ".idnb"] = s->serialize();
    }
    auto t = [](std::vector<int64_t> shape, float v) {
      int64_t n = 1;
      for (int64_t x : shape) n *= x;
      return core::Tensor::f32(shape, std::vector<float>(static_cast<size_t>(n), v));
    };
    std::map<std::string, core::Tensor> w{{"cloud.conv0.weight", t({3, 4, 3, 3}, 0.5f)},
                                          {"cloud.fc.weight", t({3, 12}, -0.5f)}};
    for (auto [p, c] : {std::pair<std::string, int64_t>{"cloud.conv0", 3}, {"cloud.fc", 3}}) {
      w[p + ".bn.weight"] = t({c}, 1.0f);
      w[p + ".bn.bias"] = t({c}, 0.0f);
      w[p + ".bn.running_mean"] = t({c}, 0.0f);
      w[p + ".bn.running_var"] = t({c}, 1.0f);
    }
    f["weights.safetensors"] = *model::serialize_safetensors(w);
    return f;
  }();
  return files;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto files = package_files();
  files["ddnn.json"] = Bytes(data, data + size);
  auto ex = onnx::export_ddnn_files(files);
  if (!ex.ok()) {
    CHECK(!ex.status().message().empty());
    return 0;
  }
  const auto m = nlohmann::json::parse(ex->manifest);
  CHECK(m.at("format") == onnx::kDdnnManifestFormat);
  CHECK(m.at("graphs").size() == ex->graphs.size());
  CHECK(ex->graphs.size() >= 3 && ex->graphs.back().file == "cloud.onnx");
  for (size_t i = 0; i < ex->graphs.size(); ++i) {
    CHECK(!ex->graphs[i].bytes.empty());
    CHECK(m["graphs"][i].at("file") == ex->graphs[i].file);
  }
  return 0;
}
