#include "onnx/ddnn_export.h"

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/bytes.h"
#include "core/multihash.h"
#include "model/file_io.h"
#include "model/safetensors.h"
#include "ondevice/section.h"
#include "onnx/graph_builder.h"
#include "proto/onnx_ir.pb.h"

namespace idn::onnx {
namespace {

namespace fs = std::filesystem;
namespace ir = idn::onnx_ir;
using json = nlohmann::json;
using detail::GraphBuilder;
using detail::sha256_hex;
using detail::shape_json;
using detail::values_json;
using ondevice::LayerKind;

// The batch-norm epsilon of every DDNN block (nn::ConvPOptions / FcOptions bn_eps; not stored).
constexpr float kBnEps = 1e-5f;
// Integers a float holds exactly: every pre-activation and threshold must lie within.
constexpr int64_t kExactInt = int64_t{1} << 24;

// ddnn.json's parts the export needs (motifs::DdnnConfig, read without LibTorch).
struct DdnnSpec {
  std::string name, text, local, cloud;
  char letter = 'c';
  int64_t edges = 0, channels = 0, size = 0, classes = 0;
  int64_t device_blocks = 0, cloud_filters = 0, cloud_blocks = 0;
  std::vector<int64_t> views;
  double local_threshold = 0;
  std::vector<std::string> labels;
  int64_t devices() const { return static_cast<int64_t>(views.size()); }
};

// A package's files by name ("ddnn.json", "device0.idnb", ...), from a directory or memory;
// `label` names a file in errors.
struct Files {
  std::function<Result<Bytes>(const std::string& name, uint64_t max_bytes)> read;
  std::function<std::string(const std::string& name)> label;
};

Result<DdnnSpec> read_spec(const Files& files) {
  const std::string file = files.label(kDdnnPackageFile);
  IDN_ASSIGN_OR_RETURN(auto bytes, files.read(kDdnnPackageFile, 16 << 20));
  auto bad = [&](const std::string& m) { return Status::invalid_argument(file + ": " + m); };
  DdnnSpec s;
  s.text.assign(bytes.begin(), bytes.end());
  try {
    const auto j = json::parse(s.text);
    if (!j.is_object() || j.value("format", "") != "idn-ddnn")
      return bad("not an idn-ddnn manifest");
    const auto& c = j.at("config");
    const auto letter = c.at("letter").get<std::string>();
    if (letter.size() != 1 || letter[0] < 'a' || letter[0] > 'f')
      return bad("config.letter must be one of a-f");
    s.letter = letter[0];
    s.name = j.at("name").get<std::string>();
    s.views = c.at("views").get<std::vector<int64_t>>();
    s.edges = c.at("edges").get<int64_t>();
    s.channels = c.at("channels").get<int64_t>();
    s.size = c.at("size").get<int64_t>();
    s.classes = c.at("classes").get<int64_t>();
    s.device_blocks = c.at("device_blocks").get<int64_t>();
    s.cloud_filters = c.at("cloud_filters").get<int64_t>();
    s.cloud_blocks = c.at("cloud_blocks").get<int64_t>();
    s.local = c.at("local").get<std::string>();
    s.cloud = c.at("cloud").get<std::string>();
    s.local_threshold = j.at("thresholds").at("local").get<double>();
    s.labels = j.value("labels", std::vector<std::string>{});
  } catch (const json::exception& e) {
    return bad(e.what());
  }
  if (s.letter == 'a' || s.edges != 0 || s.letter > 'c')
    return Status::unsupported(file + ": DDNN configuration (" + s.letter +
                               "): the export covers devices, a local exit and the cloud ((b), "
                               "(c)), as the network deploys them; not edges or a raw sensor");
  for (const auto* a : {&s.local, &s.cloud})
    if (*a != "MP" && *a != "AP" && *a != "CC")
      return bad("aggregation '" + *a + "' (expected MP, AP or CC)");
  std::set<int64_t> seen;
  for (int64_t v : s.views)
    if (v < 0 || v >= 64 || !seen.insert(v).second) return bad("views must be distinct, in 0..63");
  if (s.views.empty() || s.devices() > 64) return bad("1..64 devices expected");
  if (s.classes < 2 || s.classes > 4096 || s.channels < 1 || s.channels > 16 || s.size < 1 ||
      s.size > 1024 || s.device_blocks < 1 || s.device_blocks > 8 || s.cloud_filters < 1 ||
      s.cloud_filters > 4096 || s.cloud_blocks < 1 || s.cloud_blocks > 8)
    return bad("config sizes out of range");
  if (!std::isfinite(s.local_threshold)) return bad("thresholds.local must be a number");
  return s;
}

constexpr int kF32 = ir::TensorProto::FLOAT, kU8 = ir::TensorProto::UINT8;

// +1 where `cond`, else -1.
std::string plus_minus(GraphBuilder& g, const std::string& cond, const std::string& name) {
  return g.op("Where", {cond, g.scalar(name + "/plus", 1.0f), g.scalar(name + "/minus", -1.0f)},
              name);
}

// Binary conv 3x3 s1 p1 (no bias) then max-pool 3x3 s2 p1; weights [out, in, 3, 3] in +-1.
std::string conv_pool(GraphBuilder& g, const std::string& x, int64_t in, int64_t out,
                      const std::vector<float>& w, const std::string& name) {
  ir::NodeProto* n = nullptr;
  const std::string y =
      g.op("Conv", {x, g.constant(name + "/weight", {out, in, 3, 3}, w)}, name + "/conv", &n);
  GraphBuilder::attr(*n, "kernel_shape", std::vector<int64_t>{3, 3});
  GraphBuilder::attr(*n, "strides", std::vector<int64_t>{1, 1});
  GraphBuilder::attr(*n, "pads", std::vector<int64_t>{1, 1, 1, 1});
  GraphBuilder::attr(*n, "dilations", std::vector<int64_t>{1, 1});
  GraphBuilder::attr(*n, "group", int64_t{1});
  const std::string p = g.op("MaxPool", {y}, name + "/pool", &n);
  GraphBuilder::attr(*n, "kernel_shape", std::vector<int64_t>{3, 3});
  GraphBuilder::attr(*n, "strides", std::vector<int64_t>{2, 2});
  GraphBuilder::attr(*n, "pads", std::vector<int64_t>{1, 1, 1, 1});
  return p;
}

// x [N, in...] flattened, times +-1 weights given as rows [out, fan_in]: MatMul by the
// transpose.
std::string linear(GraphBuilder& g, const std::string& x, int64_t fan_in, int64_t out,
                   const std::vector<float>& rows, const std::string& name) {
  ir::NodeProto* n = nullptr;
  const std::string flat = g.op("Flatten", {x}, name + "/flatten", &n);
  GraphBuilder::attr(*n, "axis", int64_t{1});
  std::vector<float> t(static_cast<size_t>(fan_in * out));
  for (int64_t o = 0; o < out; ++o)
    for (int64_t i = 0; i < fan_in; ++i)
      t[static_cast<size_t>(i * out + o)] = rows[static_cast<size_t>(o * fan_in + i)];
  return g.op("MatMul", {flat, g.constant(name + "/weight_t", {fan_in, out}, t)}, name + "/matmul");
}

// ((y - mean) / std) * gamma + beta, four ops, constants shaped `dims` (per channel).
std::string norm(GraphBuilder& g, const std::string& y, const std::vector<int64_t>& dims,
                 const std::vector<float>& mean, const std::vector<float>& sd,
                 const std::vector<float>& gamma, const std::vector<float>& beta,
                 const std::string& name) {
  std::string t = g.op("Sub", {y, g.constant(name + "/mean", dims, mean)}, name + "/centered");
  t = g.op("Div", {t, g.constant(name + "/std", dims, sd)}, name + "/scaled");
  t = g.op("Mul", {t, g.constant(name + "/gamma", dims, gamma)}, name + "/gamma_mul");
  return g.op("Add", {t, g.constant(name + "/beta", dims, beta)}, name + "/beta_add");
}

struct Thresholded {
  std::string fires;  // bool: the bit is 1
  std::string value;  // float +-1
};

// An ondevice threshold per output channel: y >= t, or y <= t where `below`.
Result<Thresholded> threshold(GraphBuilder& g, const std::string& y, const ondevice::Layer& l,
                              const std::vector<int64_t>& dims, const std::string& name) {
  std::vector<float> t;
  std::vector<bool> below;
  bool any_below = false, any_above = false;
  for (const auto& th : l.thresholds) {
    if (th.t <= -kExactInt || th.t >= kExactInt)
      return Status::unsupported("threshold " + std::to_string(th.t) +
                                 " is beyond the integers a float holds exactly");
    t.push_back(static_cast<float>(th.t));
    below.push_back(th.below);
    (th.below ? any_below : any_above) = true;
  }
  const std::string tc = g.constant(name + "/threshold", dims, t);
  Thresholded out;
  if (!any_below) {
    out.fires = g.op("GreaterOrEqual", {y, tc}, name + "/at_least");
  } else if (!any_above) {
    out.fires = g.op("LessOrEqual", {y, tc}, name + "/at_most");
  } else {
    const std::string ge = g.op("GreaterOrEqual", {y, tc}, name + "/at_least");
    const std::string le = g.op("LessOrEqual", {y, tc}, name + "/at_most");
    // (below and y <= t) or (not below and y >= t): onnxruntime has no Where over bools.
    std::vector<bool> above(below.size());
    for (size_t i = 0; i < below.size(); ++i) above[i] = !below[i];
    const std::string lo =
        g.op("And", {g.constant_bool(name + "/below", dims, below), le}, name + "/low");
    const std::string hi =
        g.op("And", {g.constant_bool(name + "/above", dims, above), ge}, name + "/high");
    out.fires = g.op("Or", {lo, hi}, name + "/fires");
  }
  out.value = plus_minus(g, out.fires, name + "/bits");
  return out;
}

std::string model_bytes(GraphBuilder& g, const std::string& doc, const std::string& tag,
                        const std::string& model_name) {
  ir::ModelProto m;
  m.set_ir_version(kIrVersion);
  m.set_producer_name("idn");
  m.set_producer_version("1");
  m.set_model_version(1);
  auto* opset = m.add_opset_import();
  opset->set_domain("");
  opset->set_version(kOpsetVersion);
  m.set_doc_string(doc);
  *m.mutable_graph() = std::move(g.graph());
  for (auto [k, v] :
       {std::pair<std::string, std::string>{"idn.model", model_name}, {"idn.graph", tag}}) {
    auto* e = m.add_metadata_props();
    e->set_key(k);
    e->set_value(v);
  }
  std::string out;
  m.SerializeToString(&out);
  return out;
}

std::vector<float> unpack_rows(const ondevice::Layer& l, int64_t fan_in) {
  const int64_t row = ondevice::words_for(fan_in);
  std::vector<float> w(static_cast<size_t>(l.outputs * fan_in));
  for (int64_t o = 0; o < l.outputs; ++o)
    for (int64_t i = 0; i < fan_in; ++i)
      w[static_cast<size_t>(o * fan_in + i)] =
          (l.weights[static_cast<size_t>(o * row + i / 64)] >> (i % 64)) & 1 ? 1.0f : -1.0f;
  return w;
}

std::vector<int64_t> dims_of(ondevice::Shape s) {
  return {s.c, s.h, s.w};
}

// Device d's graph from its packed section.
Result<GraphFile> device_graph(const DdnnSpec& spec, int64_t d, const ondevice::Section& s) {
  GraphFile f;
  f.index = static_cast<int>(d);
  f.name = "device" + std::to_string(d);
  f.file = "device_" + std::to_string(d) + ".onnx";
  GraphBuilder g(spec.name + "/" + f.name);
  const auto in = s.input_shape();
  g.input("view", dims_of(in), kU8);
  f.inputs.push_back({"view", dims_of(in), "camera", "U8"});
  ir::NodeProto* cast = nullptr;
  std::string x = g.op("Cast", {"view"}, "pixels", &cast);
  GraphBuilder::attr(*cast, "to", int64_t{kF32});
  std::string features, features_bits;
  ondevice::Shape feature_shape;
  ondevice::Shape cur = in;
  for (size_t i = 0; i < s.layers().size(); ++i) {
    const auto& l = s.layers()[i];
    const std::string name = "layer" + std::to_string(i);
    const int64_t fan_in = ondevice::Section::fan_in(l.kind, cur);
    if (fan_in * (i == 0 ? 255 : 1) >= kExactInt)
      return Status::unsupported(f.name + " " + name + ": sums beyond the integers a float holds");
    const auto rows = unpack_rows(l, fan_in);
    const ondevice::Shape out = s.output_shape(i);
    if (l.kind == LayerKind::kConvP) {
      const std::string y = conv_pool(g, x, cur.c, l.outputs, rows, name);
      IDN_ASSIGN_OR_RETURN(auto t, threshold(g, y, l, {1, l.outputs, 1, 1}, name));
      x = t.value;
      features = t.value;
      features_bits = t.fires;
      feature_shape = out;
    } else {
      const std::string y = linear(g, x, fan_in, l.outputs, rows, name);
      if (l.kind == LayerKind::kFcBits) {
        IDN_ASSIGN_OR_RETURN(auto t, threshold(g, y, l, {l.outputs}, name));
        x = t.value;
      } else {
        std::vector<float> mean, sd, gamma, beta;
        for (const auto& n : l.norms) {
          mean.push_back(n.mean);
          sd.push_back(n.std);
          gamma.push_back(n.gamma);
          beta.push_back(n.beta);
        }
        x = norm(g, y, {l.outputs}, mean, sd, gamma, beta, name);
      }
    }
    cur = out;
  }
  if (features.empty() || s.layers().back().kind != LayerKind::kFcScores)
    return Status::unsupported(f.name +
                               ": a device section needs a ConvP layer and ends in FC "
                               "scores");
  g.output_from(x, "scores", {spec.classes}, kF32);
  g.output_from(features, "features", dims_of(feature_shape), kF32);
  // The wire's packing: bit i of the flattened features in bit i % 8 of byte i / 8.
  const int64_t bits = feature_shape.size(), bytes = (bits + 7) / 8;
  ir::NodeProto* n = nullptr;
  std::string b = g.op("Cast", {features_bits}, "packed/ones", &n);
  GraphBuilder::attr(*n, "to", int64_t{kF32});
  b = g.op("Flatten", {b}, "packed/flat", &n);
  GraphBuilder::attr(*n, "axis", int64_t{1});
  if (bits % 8 != 0)
    b = g.op("Pad", {b, g.constant_i64("packed/pads", {0, 0, 0, bytes * 8 - bits})},
             "packed/padded");
  b = g.op("Reshape", {b, g.constant_i64("packed/shape", {0, bytes, 8})}, "packed/bytes");
  b = g.op("Mul",
           {b, g.constant("packed/weights", {8}, std::vector<float>{1, 2, 4, 8, 16, 32, 64, 128})},
           "packed/weighted");
  b = g.op("ReduceSum", {b, g.constant_i64("packed/axes", {2})}, "packed/sum", &n);
  GraphBuilder::attr(*n, "keepdims", int64_t{0});
  b = g.op("Cast", {b}, "packed/u8", &n);
  GraphBuilder::attr(*n, "to", int64_t{kU8});
  g.output_from(b, "features_packed", {bytes}, kU8);
  f.outputs = {{"scores", {spec.classes}, "", "F32"},
               {"features", dims_of(feature_shape), "", "F32"},
               {"features_packed", {bytes}, "", "U8"}};
  f.bytes = model_bytes(
      g,
      spec.name + " DDNN device section " + std::to_string(d) + " (IDN export; see manifest.json)",
      f.name, spec.name);
  return f;
}

// mask [N, D] bool of present devices, from "present" > 0.
std::string present_mask(GraphBuilder& g) {
  return g.op("Greater", {"present", g.scalar("present/zero", 0.0f)}, "present/mask");
}

// motifs::aggregate over axis 1 of x ([N, D, rest...], rank 2 + rest): MP, AP or CC.
std::string aggregate(GraphBuilder& g, const std::string& op, const std::string& x, int64_t devices,
                      const std::vector<int64_t>& rest, const std::string& name) {
  std::vector<int64_t> axes;
  for (size_t i = 0; i < rest.size(); ++i) axes.push_back(static_cast<int64_t>(i) + 2);
  const std::string mask = present_mask(g);
  std::string m = mask;
  if (!axes.empty())
    m = g.op("Unsqueeze", {mask, g.constant_i64(name + "/axes", axes)}, name + "/mask");
  ir::NodeProto* n = nullptr;
  if (op == "CC") {
    std::string mf = g.op("Cast", {m}, name + "/maskf", &n);
    GraphBuilder::attr(*n, "to", int64_t{kF32});
    const std::string masked = g.op("Mul", {x, mf}, name + "/masked");
    std::vector<int64_t> shape{0, devices * rest.at(0)};
    for (size_t i = 1; i < rest.size(); ++i) shape.push_back(rest[i]);
    return g.op("Reshape", {masked, g.constant_i64(name + "/shape", shape)}, name);
  }
  if (op == "MP") {
    const std::string filled = g.op(
        "Where", {m, x, g.scalar(name + "/minus_inf", -std::numeric_limits<float>::infinity())},
        name + "/filled");
    const std::string mx = g.op("ReduceMax", {filled}, name + "/max", &n);
    GraphBuilder::attr(*n, "axes", std::vector<int64_t>{1});
    GraphBuilder::attr(*n, "keepdims", int64_t{0});
    // Any device present: [N] -> [N, 1, ...] of rank 1 + rest.
    std::string any = g.op("Cast", {mask}, name + "/presentf", &n);
    GraphBuilder::attr(*n, "to", int64_t{kF32});
    any = g.op("ReduceMax", {any}, name + "/any_max", &n);
    GraphBuilder::attr(*n, "axes", std::vector<int64_t>{1});
    GraphBuilder::attr(*n, "keepdims", int64_t{1});
    std::vector<int64_t> more;
    for (size_t i = 1; i < rest.size(); ++i) more.push_back(static_cast<int64_t>(i) + 1);
    if (!more.empty())
      any = g.op("Unsqueeze", {any, g.constant_i64(name + "/any_axes", more)}, name + "/any_u");
    any = g.op("Greater", {any, g.scalar(name + "/half", 0.5f)}, name + "/any");
    return g.op("Where", {any, mx, g.scalar(name + "/zero", 0.0f)}, name);
  }
  // AP: (x * mask).sum(1) / max(count, 1).
  std::string mf = g.op("Cast", {m}, name + "/maskf", &n);
  GraphBuilder::attr(*n, "to", int64_t{kF32});
  const std::string masked = g.op("Mul", {x, mf}, name + "/masked");
  const std::string sum =
      g.op("ReduceSum", {masked, g.constant_i64(name + "/sum_axes", {1})}, name + "/sum", &n);
  GraphBuilder::attr(*n, "keepdims", int64_t{0});
  std::string count = g.op("Cast", {mask}, name + "/countf", &n);
  GraphBuilder::attr(*n, "to", int64_t{kF32});
  count =
      g.op("ReduceSum", {count, g.constant_i64(name + "/count_axes", {1})}, name + "/count", &n);
  GraphBuilder::attr(*n, "keepdims", int64_t{1});
  count = g.op("Max", {count, g.scalar(name + "/one", 1.0f)}, name + "/count_min1");
  std::vector<int64_t> more;
  for (size_t i = 1; i < rest.size(); ++i) more.push_back(static_cast<int64_t>(i) + 1);
  if (!more.empty())
    count =
        g.op("Unsqueeze", {count, g.constant_i64(name + "/count_u_axes", more)}, name + "/count_u");
  return g.op("Div", {sum, count}, name);
}

GraphFile local_graph(const DdnnSpec& spec) {
  GraphFile f;
  f.name = "local";
  f.file = "local.onnx";
  GraphBuilder g(spec.name + "/local");
  const int64_t D = spec.devices();
  g.input("scores", {D, spec.classes}, kF32);
  g.input("present", {D}, kF32);
  const std::string a =
      aggregate(g, spec.local, "scores", D, {spec.classes}, "local/" + spec.local);
  g.output_from(a, "local_scores", {spec.classes}, kF32);
  f.inputs = {{"scores", {D, spec.classes}, "device_<d>/scores", "F32"},
              {"present", {D}, "client", "F32"}};
  f.outputs = {{"local_scores", {spec.classes}, "", "F32"}};
  f.bytes =
      model_bytes(g, spec.name + " DDNN local aggregator (" + spec.local + ")", "local", spec.name);
  return f;
}

// The cloud's float weights, by exact name and shape.
struct Weights {
  const model::SafeTensors& st;
  std::string file;
  Result<std::vector<float>> get(const std::string& name, const std::vector<int64_t>& shape) const {
    auto it = st.tensors.find(name);
    if (it == st.tensors.end())
      return Status::invalid_argument(file + ": weight '" + name + "' is missing");
    const core::Tensor& t = it->second;
    if (t.dtype != core::DType::kF32 || t.shape != shape)
      return Status::invalid_argument(
          file + ": weight '" + name + "' must be F32 " + core::shape_string(shape) + ", is " +
          std::string(core::dtype_name(t.dtype)) + " " + core::shape_string(t.shape));
    auto v = t.f32();
    return std::vector<float>(v.begin(), v.end());
  }
};

struct Norm {
  std::vector<float> mean, sd, gamma, beta;
};

Result<Norm> block_norm(const Weights& w, const std::string& prefix, int64_t c) {
  Norm n;
  IDN_ASSIGN_OR_RETURN(n.mean, w.get(prefix + ".bn.running_mean", {c}));
  IDN_ASSIGN_OR_RETURN(auto var, w.get(prefix + ".bn.running_var", {c}));
  IDN_ASSIGN_OR_RETURN(n.gamma, w.get(prefix + ".bn.weight", {c}));
  IDN_ASSIGN_OR_RETURN(n.beta, w.get(prefix + ".bn.bias", {c}));
  for (float v : var) n.sd.push_back(std::sqrt(v + kBnEps));  // BlockNorm::stddev, in float
  return n;
}

std::vector<float> signs(std::vector<float> w) {
  for (float& v : w) v = v >= 0 ? 1.0f : -1.0f;  // nn::binarize_weights
  return w;
}

Result<GraphFile> cloud_graph(const DdnnSpec& spec, ondevice::Shape feat, const Weights& w) {
  GraphFile f;
  f.name = "cloud";
  f.file = "cloud.onnx";
  GraphBuilder g(spec.name + "/cloud");
  const int64_t D = spec.devices();
  const std::vector<int64_t> fdims{D, feat.c, feat.h, feat.w};
  g.input("features", fdims, kF32);
  g.input("present", {D}, kF32);
  std::string x = aggregate(g, spec.cloud, "features", D, dims_of(feat), "cloud/" + spec.cloud);
  int64_t in = spec.cloud == "CC" ? D * feat.c : feat.c, side = feat.h, side_w = feat.w;
  const int64_t cf = spec.cloud_filters;
  for (int64_t b = 0; b < spec.cloud_blocks; ++b) {
    const std::string prefix = "cloud.conv" + std::to_string(b);
    IDN_ASSIGN_OR_RETURN(auto wt, w.get(prefix + ".weight", {cf, in, 3, 3}));
    IDN_ASSIGN_OR_RETURN(auto n, block_norm(w, prefix, cf));
    const std::string y = conv_pool(g, x, in, cf, signs(std::move(wt)), prefix);
    const std::string t = norm(g, y, {1, cf, 1, 1}, n.mean, n.sd, n.gamma, n.beta, prefix + "/bn");
    x = plus_minus(
        g, g.op("GreaterOrEqual", {t, g.scalar(prefix + "/zero", 0.0f)}, prefix + "/nonnegative"),
        prefix + "/sign");
    in = cf;
    side = (side - 1) / 2 + 1;
    side_w = (side_w - 1) / 2 + 1;
  }
  const int64_t fan_in = cf * side * side_w;
  IDN_ASSIGN_OR_RETURN(auto fw, w.get("cloud.fc.weight", {spec.classes, fan_in}));
  IDN_ASSIGN_OR_RETURN(auto n, block_norm(w, "cloud.fc", spec.classes));
  const std::string y = linear(g, x, fan_in, spec.classes, signs(std::move(fw)), "cloud.fc");
  x = norm(g, y, {spec.classes}, n.mean, n.sd, n.gamma, n.beta, "cloud.fc/bn");
  g.output_from(x, "scores", {spec.classes}, kF32);
  f.inputs = {{"features", fdims, "device_<d>/features", "F32"}, {"present", {D}, "client", "F32"}};
  f.outputs = {{"scores", {spec.classes}, "", "F32"}};
  f.bytes = model_bytes(g, spec.name + " DDNN cloud section (IDN export; see manifest.json)",
                        "cloud", spec.name);
  return f;
}

}  // namespace

bool is_ddnn_package(const fs::path& dir) {
  std::error_code ec;
  return fs::is_regular_file(dir / kDdnnPackageFile, ec);
}

namespace {

Result<OnnxExport> export_files(const Files& files) {
  IDN_ASSIGN_OR_RETURN(auto spec, read_spec(files));
  OnnxExport out;
  ondevice::Shape feat;
  for (int64_t d = 0; d < spec.devices(); ++d) {
    const std::string name = "device" + std::to_string(d) + ".idnb", blob = files.label(name);
    IDN_ASSIGN_OR_RETURN(auto bytes, files.read(name, 64 << 20));
    auto s = ondevice::Section::parse(bytes);
    if (!s.ok()) return s.status().with_context(blob);
    if (s->input_kind() != ondevice::InputKind::kPixels ||
        s->input_shape() != ondevice::Shape{spec.channels, spec.size, spec.size})
      return Status::invalid_argument(blob + ": not a pixel section of the package's views");
    auto g = device_graph(spec, d, *s);
    if (!g.ok()) return g.status().with_context(blob);
    if (g->outputs[0].shape != std::vector<int64_t>{spec.classes})
      return Status::invalid_argument(blob + ": its scores are not the package's classes");
    const auto& fs_ = g->outputs[1].shape;
    const ondevice::Shape f{fs_[0], fs_[1], fs_[2]};
    if (d > 0 && f != feat)
      return Status::invalid_argument(blob + ": features differ from device 0's");
    feat = f;
    out.graphs.push_back(std::move(*g));
  }
  const bool fixed_local = spec.local != "CC";
  if (fixed_local) out.graphs.push_back(local_graph(spec));
  const std::string wfile = files.label("weights.safetensors");
  IDN_ASSIGN_OR_RETURN(auto wbytes, files.read("weights.safetensors", uint64_t{1} << 32));
  auto st = model::parse_safetensors(wbytes);
  if (!st.ok()) return st.status().with_context(wfile);
  IDN_ASSIGN_OR_RETURN(auto cloud, cloud_graph(spec, feat, Weights{*st, wfile}));
  out.graphs.push_back(std::move(cloud));

  json graphs = json::array();
  for (const auto& g : out.graphs) {
    json j{{"name", g.name},
           {"file", g.file},
           {"bytes", g.bytes.size()},
           {"sha256", sha256_hex(g.bytes)},
           {"inputs", values_json(g.inputs, true)},
           {"outputs", values_json(g.outputs, true)}};
    if (g.name.rfind("device", 0) == 0) {
      j["role"] = "device";
      j["device"] = g.index;
      j["view"] = spec.views[static_cast<size_t>(g.index)];
    } else {
      j["role"] = g.name;
    }
    graphs.push_back(std::move(j));
  }
  json m{{"format", kDdnnManifestFormat},
         {"version", kManifestVersion},
         {"opset", kOpsetVersion},
         {"ir_version", kIrVersion},
         {"model",
          {{"name", spec.name},
           {"motif", "ddnn"},
           {"configuration", std::string(1, spec.letter)},
           {"devices", spec.devices()},
           {"classes", spec.classes},
           {"hash", core::Multihash::sha2_256(as_bytes(spec.text)).to_base58()}}},
         {"labels", spec.labels},
         {"input",
          {{"name", "view"},
           {"dtype", "U8"},
           {"shape", shape_json({spec.channels, spec.size, spec.size})},
           {"scaling",
            "none: the camera's 8-bit pixels 0..255, channel-major, as the device "
            "section reads them"}}},
         {"features",
          {{"shape", shape_json(dims_of(feat))},
           {"packed_bytes", (feat.size() + 7) / 8},
           {"packing", "bit i of the flattened features (1 for +1) in bit i % 8 of byte i / 8"}}},
         {"local",
          {{"aggregation", spec.local},
           {"file", fixed_local ? json("local.onnx") : json(nullptr)},
           {"criterion", "entropy"},
           {"threshold", spec.local_threshold}}},
         {"cloud", {{"aggregation", spec.cloud}, {"file", "cloud.onnx"}}},
         {"graphs", graphs},
         {"exit_rule",
          "Each present device runs device_<d>.onnx on its view. The local aggregator combines the "
          "present devices' scores (local.onnx, present = 1 per device that answered); a sample "
          "exits locally when the normalized entropy -sum(p ln p) / ln(classes) of p = "
          "softmax(local scores) is <= local.threshold (threshold >= 1: always, <= 0: never). "
          "Otherwise cloud.onnx classifies it from the present devices' features (absent "
          "devices: present 0, features 0)."}};
  if (!fixed_local)
    m["local"]["note"] =
        "CC local aggregation uses a learned map the network does not deploy; not exported";
  out.manifest = m.dump(2) + "\n";
  return out;
}

}  // namespace

Result<OnnxExport> export_ddnn(const fs::path& dir) {
  return export_files(Files{
      [&](const std::string& name, uint64_t max) { return model::read_file(dir / name, max); },
      [&](const std::string& name) { return (dir / name).string(); }});
}

Result<OnnxExport> export_ddnn_files(const std::map<std::string, Bytes>& files) {
  return export_files(Files{[&](const std::string& name, uint64_t max) -> Result<Bytes> {
                              auto it = files.find(name);
                              if (it == files.end())
                                return Status::not_found(name + " is not in the package");
                              if (it->second.size() > max)
                                return Status::limit_exceeded(name + " is too large");
                              return it->second;
                            },
                            [](const std::string& name) { return name; }});
}

Result<OnnxExport> export_ddnn_onnx(const fs::path& dir, const fs::path& out_dir) {
  auto ex = export_ddnn(dir);
  if (!ex.ok()) {
    const Status& s = ex.status();
    if (s.message().find(dir.string()) != std::string::npos) return s;
    return s.with_context(dir.string());
  }
  IDN_RETURN_IF_ERROR(write_export(*ex, out_dir));
  return ex;
}

}  // namespace idn::onnx
