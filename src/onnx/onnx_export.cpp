#include "onnx/onnx_export.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <set>
#include <system_error>

#include <nlohmann/json.hpp>

#include "core/bytes.h"
#include "core/multihash.h"
#include "model/file_io.h"
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
using model::LayerSpec;
using model::LayerType;

Status unsupported(const std::string& m) {
  return Status::unsupported("not exportable to ONNX: " + m);
}

std::string q(const std::string& s) {
  return "'" + s + "'";
}

int64_t iparam(const LayerSpec& l, const char* key) {
  return l.params.at(key).get<int64_t>();
}
double fparam(const LayerSpec& l, const char* key) {
  return l.params.at(key).get<double>();
}

struct Exporter {
  explicit Exporter(const model::Package& p) : pkg(p) {}

  const model::Package& pkg;
  const model::ModelSpec& spec = pkg.spec;
  std::set<std::string> spec_names;
  // Where each layer lives: "stage_<i>" or "exit_<j>".
  std::map<std::string, std::string> owner;
  std::map<std::string, int> owner_stage;  // stage index of a stage's layer

  const std::vector<int64_t>& shape_of(const std::string& value) const {
    if (const LayerSpec* l = spec.layer(value)) return l->out_shape;
    return spec.inputs[0].shape;
  }

  Result<std::string> weight(GraphBuilder& g, const LayerSpec& l, const std::string& key,
                             const std::vector<int64_t>& want) {
    const std::string name = l.name + "." + key;
    auto it = pkg.weights.find(name);
    if (it == pkg.weights.end())
      return Status::invalid_argument("weight " + q(name) + " of layer " + q(l.name) +
                                      " is missing");
    const core::Tensor& t = it->second;
    if (t.dtype != core::DType::kF32 || t.shape != want || !t.validate().is_ok())
      return Status::invalid_argument(
          "weight " + q(name) + " must be F32 " + core::shape_string(want) + ", is " +
          std::string(core::dtype_name(t.dtype)) + " " + core::shape_string(t.shape));
    return g.constant(name, want, std::span<const uint8_t>(t.bytes));
  }

  // torch's local_response_norm, step by step: the mean of x^2 over a window of `size`
  // channels (zero-padded by size/2 before and (size-1)/2 after), times alpha, plus k, to the
  // power beta, divides x. ONNX's LRN op centres its window the other way for an even size, and
  // onnxruntime runs it on 4-D input only; this form matches torch for every size and rank.
  Status lrn_decomposed(GraphBuilder& g, const LayerSpec& l, const std::string& x,
                        const std::string& y) {
    const int64_t size = iparam(l, "size");
    const size_t rank = l.out_shape.size() + 1;  // with the batch dimension
    const std::string& n = l.name;
    std::string sq = g.fresh(n + "/square");
    g.node("Mul", {x, x}, {sq}, n + "/square");
    std::string up = g.fresh(n + "/unsqueeze");
    g.node("Unsqueeze", {sq, g.constant_i64(n + "/axes", {1})}, {up}, n + "/unsqueeze");
    // [N, 1, C, ...]: pad the channel axis (2).
    std::vector<int64_t> pads(2 * (rank + 1), 0);
    pads[2] = size / 2;
    pads[rank + 1 + 2] = (size - 1) / 2;
    std::string padded = g.fresh(n + "/pad");
    g.node("Pad", {up, g.constant_i64(n + "/pads", pads)}, {padded}, n + "/pad");
    std::vector<int64_t> kernel(rank - 1, 1), strides(rank - 1, 1);
    kernel[0] = size;
    std::string avg = g.fresh(n + "/window_mean");
    auto& pool = g.node("AveragePool", {padded}, {avg}, n + "/window_mean");
    GraphBuilder::attr(pool, "kernel_shape", kernel);
    GraphBuilder::attr(pool, "strides", strides);
    std::string mean = g.fresh(n + "/squeeze");
    g.node("Squeeze", {avg, g.constant_i64(n + "/axes", {1})}, {mean}, n + "/squeeze");
    const float alpha = static_cast<float>(fparam(l, "alpha")),
                k = static_cast<float>(fparam(l, "k")),
                beta = static_cast<float>(fparam(l, "beta"));
    std::string scaled = g.fresh(n + "/scaled");
    g.node("Mul", {mean, g.constant(n + "/alpha", {}, std::span<const float>(&alpha, 1))}, {scaled},
           n + "/scaled");
    std::string shifted = g.fresh(n + "/shifted");
    g.node("Add", {scaled, g.constant(n + "/k", {}, std::span<const float>(&k, 1))}, {shifted},
           n + "/shifted");
    std::string div = g.fresh(n + "/divisor");
    g.node("Pow", {shifted, g.constant(n + "/beta", {}, std::span<const float>(&beta, 1))}, {div},
           n + "/divisor");
    g.node("Div", {x, div}, {y}, n);
    return Status::ok();
  }

  // Appends the nodes of layer `l`, reading its inputs through `value` (spec name -> value
  // name in this graph) and writing the layer's own name.
  Status layer(GraphBuilder& g, const LayerSpec& l,
               const std::map<std::string, std::string>& value) {
    std::vector<std::string> in;
    for (const auto& i : l.inputs) in.push_back(value.at(i));
    const std::string& y = l.name;
    const std::string& x = in.at(0);
    const auto& p = l.params;
    switch (l.type) {
      case LayerType::kConv2d: {
        const int64_t cin = iparam(l, "in_channels"), cout = iparam(l, "out_channels"),
                      k = iparam(l, "kernel"), s = iparam(l, "stride"), pad = iparam(l, "padding");
        std::vector<std::string> args{x};
        IDN_ASSIGN_OR_RETURN(std::string w, weight(g, l, "weight", {cout, cin, k, k}));
        args.push_back(w);
        if (p.value("bias", true)) {
          IDN_ASSIGN_OR_RETURN(std::string b, weight(g, l, "bias", {cout}));
          args.push_back(b);
        }
        auto& n = g.node("Conv", args, {y}, l.name);
        GraphBuilder::attr(n, "kernel_shape", std::vector<int64_t>{k, k});
        GraphBuilder::attr(n, "strides", std::vector<int64_t>{s, s});
        GraphBuilder::attr(n, "pads", std::vector<int64_t>{pad, pad, pad, pad});
        GraphBuilder::attr(n, "dilations", std::vector<int64_t>{1, 1});
        GraphBuilder::attr(n, "group", int64_t{1});
        break;
      }
      case LayerType::kLinear: {
        const int64_t fin = iparam(l, "in_features"), fout = iparam(l, "out_features");
        std::vector<std::string> args{x};
        IDN_ASSIGN_OR_RETURN(std::string w, weight(g, l, "weight", {fout, fin}));
        args.push_back(w);
        if (p.value("bias", true)) {
          IDN_ASSIGN_OR_RETURN(std::string b, weight(g, l, "bias", {fout}));
          args.push_back(b);
        }
        auto& n = g.node("Gemm", args, {y}, l.name);
        GraphBuilder::attr(n, "transB", int64_t{1});  // y = x W^T + b, W as torch stores it
        break;
      }
      case LayerType::kReLU:
        g.node("Relu", {x}, {y}, l.name);
        break;
      case LayerType::kMaxPool2d:
      case LayerType::kAvgPool2d: {
        const int64_t k = iparam(l, "kernel"), s = iparam(l, "stride"), pad = iparam(l, "padding");
        const bool avg = l.type == LayerType::kAvgPool2d;
        auto& n = g.node(avg ? "AveragePool" : "MaxPool", {x}, {y}, l.name);
        GraphBuilder::attr(n, "kernel_shape", std::vector<int64_t>{k, k});
        GraphBuilder::attr(n, "strides", std::vector<int64_t>{s, s});
        GraphBuilder::attr(n, "pads", std::vector<int64_t>{pad, pad, pad, pad});
        // torch's avg_pool2d counts the zero padding in each window's divisor.
        if (avg) GraphBuilder::attr(n, "count_include_pad", int64_t{1});
        break;
      }
      case LayerType::kBatchNorm: {
        const int64_t c = iparam(l, "num_features");
        std::vector<std::string> args{x};
        for (const char* key : {"weight", "bias", "running_mean", "running_var"}) {
          IDN_ASSIGN_OR_RETURN(std::string w, weight(g, l, key, {c}));
          args.push_back(w);
        }
        auto& n = g.node("BatchNormalization", args, {y}, l.name);
        GraphBuilder::attr(n, "epsilon", static_cast<float>(fparam(l, "eps")));
        break;
      }
      case LayerType::kDropout:
        g.node("Identity", {x}, {y}, l.name);  // inference: dropout passes its input through
        break;
      case LayerType::kFlatten: {
        auto& n = g.node("Flatten", {x}, {y}, l.name);
        GraphBuilder::attr(n, "axis", int64_t{1});
        break;
      }
      case LayerType::kLRN: {
        const int64_t size = iparam(l, "size");
        if (size % 2 == 1 && l.out_shape.size() == 3) {
          auto& n = g.node("LRN", {x}, {y}, l.name);
          GraphBuilder::attr(n, "size", size);
          GraphBuilder::attr(n, "alpha", static_cast<float>(fparam(l, "alpha")));
          GraphBuilder::attr(n, "beta", static_cast<float>(fparam(l, "beta")));
          GraphBuilder::attr(n, "bias", static_cast<float>(fparam(l, "k")));
        } else {
          IDN_RETURN_IF_ERROR(lrn_decomposed(g, l, x, y));
        }
        break;
      }
      case LayerType::kSoftmax: {
        auto& n = g.node("Softmax", {x}, {y}, l.name);
        GraphBuilder::attr(n, "axis", int64_t{-1});
        break;
      }
      case LayerType::kAggregate: {
        const std::string op = p.at("op").get<std::string>();
        if (op == "concat") {
          auto& n = g.node("Concat", in, {y}, l.name);
          GraphBuilder::attr(n, "axis", int64_t{1});
        } else {
          g.node(op == "avg" ? "Mean" : "Max", in, {y}, l.name);
        }
        break;
      }
    }
    return Status::ok();
  }

  // The graph of stage `idx` (is_exit false) or exit `idx` (is_exit true). model.json lets only
  // stage outputs cross from one stage (or its exit heads) to the next.
  Result<GraphFile> graph(bool is_exit, int idx) {
    GraphFile f;
    f.is_exit = is_exit;
    f.index = idx;
    const std::string tag = (is_exit ? "exit_" : "stage_") + std::to_string(idx);
    f.file = tag + ".onnx";
    const auto& layers = is_exit ? spec.exits[idx].layers : spec.stages[idx].layers;
    f.name = is_exit ? spec.exits[idx].name : spec.stages[idx].name;
    GraphBuilder g(spec.name + "/" + tag, &spec_names);
    std::set<std::string> produced(layers.begin(), layers.end());
    std::map<std::string, std::string> value;  // spec name -> value name in this graph
    const std::string what = (is_exit ? "exit " : "stage ") + q(f.name);

    // The graph's inputs: every value its layers read that it does not produce.
    std::vector<std::string> reads;
    for (const auto& ln : layers)
      for (const auto& i : spec.layer(ln)->inputs)
        if (!produced.count(i) && std::find(reads.begin(), reads.end(), i) == reads.end())
          reads.push_back(i);
    if (is_exit && layers.empty()) reads.push_back(spec.exits[idx].output);
    for (const auto& r : reads) {
      GraphValue v{r, shape_of(r), "input"};
      if (spec.layer(r)) {
        auto o = owner.find(r);
        if (o == owner.end() || !owner_stage.count(r))
          return unsupported(what + " reads " + q(r) + ", a value of an exit head");
        const int from = owner_stage.at(r);
        if (from >= (is_exit ? spec.exits[idx].stage + 1 : idx))
          return unsupported(what + " reads " + q(r) + " of a later stage");
        v.from = o->second;
      }
      g.input(r, v.shape);
      value[r] = r;
      if (!spec.layer(r) && !spec.preprocess_mean.empty()) {
        // The model input: normalise it as the engine does, (x - mean) * (1 / std).
        std::vector<int64_t> dims(v.shape.size() + 1, 1);
        dims[1] = static_cast<int64_t>(spec.preprocess_mean.size());
        std::vector<float> inv_std;
        for (float s : spec.preprocess_std) inv_std.push_back(1.0f / s);
        std::string centered = g.fresh(r + "/centered"), scaled = g.fresh(r + "/normalized");
        g.node("Sub", {r, g.constant(r + "/mean", dims, spec.preprocess_mean)}, {centered},
               r + "/centered");
        g.node("Mul", {centered, g.constant(r + "/inv_std", dims, inv_std)}, {scaled},
               r + "/normalized");
        g.value_info(centered, v.shape);
        g.value_info(scaled, v.shape);
        value[r] = scaled;
      }
      f.inputs.push_back(std::move(v));
    }
    for (const auto& ln : layers) g.claim(ln);
    for (const auto& ln : layers) {
      const LayerSpec& l = *spec.layer(ln);
      IDN_RETURN_IF_ERROR(layer(g, l, value));
      value[ln] = ln;
    }

    if (!is_exit) {
      const std::string& out = spec.stages[idx].output;
      if (!produced.count(out))
        return unsupported(what + " computes nothing of its own (its output " + q(out) +
                           " comes from elsewhere)");
      g.output(out, shape_of(out));
      f.outputs.push_back(GraphValue{out, shape_of(out), ""});
      for (const auto& ln : layers)
        if (ln != out) g.value_info(ln, spec.layer(ln)->out_shape);
    } else {
      const auto& e = spec.exits[idx];
      const std::string src = value.at(e.output);
      const std::vector<int64_t>& shape = shape_of(e.output);
      std::string logits = g.fresh("logits"), probs = g.fresh("probs");
      g.node("Identity", {src}, {logits}, "logits");
      const float t = static_cast<float>(e.temperature);
      std::string tempered = g.fresh("logits/tempered");
      g.node("Div", {logits, g.constant("temperature", {}, std::span<const float>(&t, 1))},
             {tempered}, "logits/tempered");
      auto& sm = g.node("Softmax", {tempered}, {probs}, "probs");
      GraphBuilder::attr(sm, "axis", int64_t{-1});
      g.value_info(tempered, shape);
      for (const auto& ln : layers) g.value_info(ln, spec.layer(ln)->out_shape);
      g.output(logits, shape);
      g.output(probs, shape);
      f.outputs.push_back(GraphValue{logits, shape, ""});
      f.outputs.push_back(GraphValue{probs, shape, ""});
    }

    ir::ModelProto m;
    m.set_ir_version(kIrVersion);
    m.set_producer_name("idn");
    m.set_producer_version("1");
    m.set_model_version(1);
    auto* opset = m.add_opset_import();
    opset->set_domain("");
    opset->set_version(kOpsetVersion);
    m.set_doc_string(spec.name + " " + (is_exit ? "exit head " : "stage ") + q(f.name) +
                     " (IDN model package export; see manifest.json)");
    *m.mutable_graph() = std::move(g.graph());
    auto meta = [&](const std::string& k, const std::string& v) {
      auto* e = m.add_metadata_props();
      e->set_key(k);
      e->set_value(v);
    };
    meta("idn.model", spec.name);
    meta("idn.graph", tag);
    if (!m.SerializeToString(&f.bytes)) return Status::internal("cannot serialise " + f.file);
    return f;
  }
};

}  // namespace

Result<OnnxExport> export_package(const model::Package& package) {
  const model::ModelSpec& spec = package.spec;
  if (spec.inputs.size() != 1)
    return unsupported("model " + q(spec.name) + " has " + std::to_string(spec.inputs.size()) +
                       " inputs; the export (like the engine) takes single-input models");
  if (spec.inputs[0].dtype != core::DType::kF32)
    return unsupported("input " + q(spec.inputs[0].name) + " is " +
                       std::string(core::dtype_name(spec.inputs[0].dtype)) + ", not F32");
  if (!spec.preprocess_mean.empty() &&
      (spec.preprocess_mean.size() != spec.preprocess_std.size() || spec.inputs[0].shape.empty() ||
       static_cast<int64_t>(spec.preprocess_mean.size()) != spec.inputs[0].shape[0]))
    return Status::invalid_argument("preprocess mean/std must have one value per input channel");
  Exporter ex(package);
  ex.spec_names.insert(spec.inputs[0].name);
  for (const auto& l : spec.layers) ex.spec_names.insert(l.name);
  for (size_t s = 0; s < spec.stages.size(); ++s)
    for (const auto& ln : spec.stages[s].layers) {
      ex.owner[ln] = "stage_" + std::to_string(s);
      ex.owner_stage[ln] = static_cast<int>(s);
    }
  for (size_t e = 0; e < spec.exits.size(); ++e)
    for (const auto& ln : spec.exits[e].layers) ex.owner[ln] = "exit_" + std::to_string(e);

  OnnxExport out;
  for (size_t s = 0; s < spec.stages.size(); ++s) {
    IDN_ASSIGN_OR_RETURN(auto g, ex.graph(false, static_cast<int>(s)));
    out.graphs.push_back(std::move(g));
  }
  for (size_t e = 0; e < spec.exits.size(); ++e) {
    IDN_ASSIGN_OR_RETURN(auto g, ex.graph(true, static_cast<int>(e)));
    out.graphs.push_back(std::move(g));
  }

  json stages = json::array(), exits = json::array();
  for (const auto& g : out.graphs) {
    json j{{"index", g.index},
           {"name", g.name},
           {"file", g.file},
           {"bytes", g.bytes.size()},
           {"sha256", sha256_hex(g.bytes)},
           {"inputs", values_json(g.inputs, false)},
           {"outputs", values_json(g.outputs, false)}};
    if (g.is_exit) {
      const auto& e = spec.exits[g.index];
      j["stage"] = e.stage;
      j["criterion"] = std::string(model::criterion_name(e.criterion));
      j["threshold"] = e.threshold;
      j["temperature"] = e.temperature;
      j["flops"] = e.flops;
      exits.push_back(std::move(j));
    } else {
      j["flops"] = spec.stages[g.index].flops;
      stages.push_back(std::move(j));
    }
  }
  const std::string text = model::to_json_text(spec);
  json m{{"format", kManifestFormat},
         {"version", kManifestVersion},
         {"opset", kOpsetVersion},
         {"ir_version", kIrVersion},
         {"model",
          {{"name", spec.name},
           {"motif", spec.motif},
           {"classes", spec.num_classes()},
           {"hash", core::Multihash::sha2_256(as_bytes(text)).to_base58()}}},
         {"input",
          {{"name", spec.inputs[0].name},
           {"dtype", std::string(core::dtype_name(spec.inputs[0].dtype))},
           {"shape", shape_json(spec.inputs[0].shape)}}},
         {"labels", spec.labels},
         {"stages", stages},
         {"exits", exits},
         {"exit_rule",
          "Run stage 0, then each exit of that stage, then the next stage, and so on. A sample "
          "leaves at the first exit whose rule holds on its probs: criterion confidence: "
          "max(probs) >= threshold; criterion entropy: -sum(p ln p) / ln(classes) <= "
          "threshold. The last exit always answers."}};
  if (!spec.preprocess_mean.empty())
    m["preprocess"] = {{"mean", spec.preprocess_mean},
                       {"std", spec.preprocess_std},
                       {"applied_in", "stage_0.onnx"}};
  out.manifest = m.dump(2) + "\n";
  return out;
}

Result<OnnxExport> export_onnx(const fs::path& model_dir, const fs::path& out_dir) {
  auto pkg = model::load_package(model_dir);
  if (!pkg.ok()) {
    // Name the package directory once: some of load_package's errors already do.
    const Status& s = pkg.status();
    if (s.message().find(model_dir.string()) != std::string::npos) return s;
    return s.with_context(model_dir.string());
  }
  auto ex = export_package(*pkg);
  if (!ex.ok()) return ex.status().with_context(model_dir.string());
  IDN_RETURN_IF_ERROR(write_export(*ex, out_dir));
  return ex;
}

Status write_export(const OnnxExport& ex, const fs::path& out_dir) {
  std::set<std::string> ours{kManifestFile};
  for (const auto& g : ex.graphs) ours.insert(g.file);
  std::error_code ec;
  if (fs::exists(out_dir, ec)) {
    if (!fs::is_directory(out_dir, ec))
      return Status::invalid_argument(out_dir.string() + " exists and is not a directory");
    for (const auto& entry : fs::directory_iterator(out_dir, ec)) {
      const std::string name = entry.path().filename().string();
      if (!ours.count(name) || !entry.is_regular_file())
        return Status::invalid_argument(out_dir.string() + " holds " + q(name) +
                                        ", which this export does not write; give a new or "
                                        "empty directory");
    }
    if (ec) return Status::io_error("cannot list " + out_dir.string() + ": " + ec.message());
  } else if (!fs::create_directories(out_dir, ec) && ec) {
    return Status::io_error("cannot create " + out_dir.string() + ": " + ec.message());
  }
  for (const auto& g : ex.graphs)
    IDN_RETURN_IF_ERROR(model::write_file_atomic(out_dir / g.file, as_bytes(g.bytes)));
  return model::write_file_atomic(out_dir / kManifestFile, as_bytes(ex.manifest));
}

}  // namespace idn::onnx
