#include "motifs/parallelnet.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <set>

#include "core/multihash.h"
#include "model/file_io.h"
#include "motifs/spec_builder.h"

namespace idn::motifs {
namespace {

using model::LayerSpec;
using model::LayerType;

std::string q(const std::string& s) {
  return "'" + s + "'";
}

Status check_p(double p, const std::string& what) {
  if (!std::isfinite(p) || p <= 0 || p > 1)
    return Status::invalid_argument(what + " must be in (0, 1], got " + std::to_string(p));
  return Status::ok();
}

// SplitMix64 (Steele, Lea, Flood 2014): tiny, fully specified, the same on every platform.
struct SplitMix64 {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }  // [0, 1)
};

bool is_weighted(LayerType t) {
  return t == LayerType::kConv2d || t == LayerType::kLinear;
}
// Layers that map a zero unit to zero and never mix units: removing a unit before them is the
// same as removing it after them.
bool passes_units(LayerType t) {
  return t == LayerType::kReLU || t == LayerType::kMaxPool2d || t == LayerType::kAvgPool2d ||
         t == LayerType::kDropout || t == LayerType::kFlatten;
}

const std::vector<int64_t>& shape_of(const model::ModelSpec& spec, const std::string& node) {
  for (const auto& in : spec.inputs)
    if (in.name == node) return in.shape;
  return spec.layer(node)->out_shape;
}

std::set<std::string> exit_outputs(const model::ModelSpec& spec) {
  std::set<std::string> out;
  for (const auto& e : spec.exits) out.insert(e.output);
  return out;
}

// Expected share of units kept by the draw: (n p + (1-p)^n) / n.
double kept_share(int64_t n, double p) {
  return (static_cast<double>(n) * p + std::pow(1 - p, static_cast<double>(n))) /
         static_cast<double>(n);
}

// A tensor [O, I, rest...] (or [O]) with rows `out` and, in each row, the I-blocks `in` kept.
core::Tensor select_units(const core::Tensor& w, const std::vector<int64_t>* out,
                          const std::vector<int64_t>* in) {
  const int64_t O = w.shape[0];
  const int64_t I = w.shape.size() > 1 ? w.shape[1] : 1;
  const int64_t rest = (O * I) != 0 ? w.numel() / (O * I) : 0;
  std::vector<int64_t> all_o, all_i;
  if (!out) {
    all_o.resize(O);
    for (int64_t i = 0; i < O; ++i) all_o[i] = i;
    out = &all_o;
  }
  if (!in) {
    all_i.resize(I);
    for (int64_t i = 0; i < I; ++i) all_i[i] = i;
    in = &all_i;
  }
  core::Tensor r;
  r.dtype = core::DType::kF32;
  r.shape = w.shape;
  r.shape[0] = static_cast<int64_t>(out->size());
  if (w.shape.size() > 1) r.shape[1] = static_cast<int64_t>(in->size());
  r.bytes.resize(out->size() * in->size() * rest * sizeof(float));
  const float* src = w.f32().data();
  float* dst = r.f32_mut().data();
  for (int64_t o : *out)
    for (int64_t i : *in) {
      std::memcpy(dst, src + (o * I + i) * rest, rest * sizeof(float));
      dst += rest;
    }
  return r;
}

std::string format_p(double p) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", p);
  return buf;
}

}  // namespace

double Density::at(const std::string& layer, int64_t step) const {
  if (auto it = per_layer.find(layer); it != per_layer.end()) return it->second;
  if (!cycle.empty()) return cycle[static_cast<size_t>(step) % cycle.size()];
  return p;
}

Status Density::validate() const {
  IDN_RETURN_IF_ERROR(check_p(p, "p"));
  for (const auto& [name, v] : per_layer) IDN_RETURN_IF_ERROR(check_p(v, "p of layer " + q(name)));
  for (size_t i = 0; i < cycle.size(); ++i)
    IDN_RETURN_IF_ERROR(check_p(cycle[i], "p at cycle step " + std::to_string(i)));
  return Status::ok();
}

nlohmann::json to_json(const Density& d) {
  nlohmann::json j{{"p", d.p}};
  if (!d.per_layer.empty()) j["per_layer"] = d.per_layer;
  if (!d.cycle.empty()) j["cycle"] = d.cycle;
  return j;
}

Result<Density> density_from_json(const nlohmann::json& j) {
  auto bad = [](const std::string& m) { return Status::invalid_argument("density: " + m); };
  if (!j.is_object()) return bad("must be a JSON object");
  Density d;
  for (const auto& [key, v] : j.items()) {
    if (key == "p") {
      if (!v.is_number()) return bad("\"p\" must be a number");
      d.p = v.get<double>();
    } else if (key == "per_layer") {
      if (!v.is_object()) return bad("\"per_layer\" must be an object of layer: p");
      for (const auto& [name, pv] : v.items()) {
        if (!pv.is_number()) return bad("p of layer " + q(name) + " must be a number");
        d.per_layer[name] = pv.get<double>();
      }
    } else if (key == "cycle") {
      if (!v.is_array()) return bad("\"cycle\" must be an array of numbers");
      for (const auto& pv : v) {
        if (!pv.is_number()) return bad("\"cycle\" must be an array of numbers");
        d.cycle.push_back(pv.get<double>());
      }
    } else {
      return bad("unknown key \"" + key + "\" (expected p, per_layer, cycle)");
    }
  }
  if (!j.contains("p")) return bad("\"p\" is missing");
  IDN_RETURN_IF_ERROR(d.validate());
  return d;
}

std::vector<std::string> parallelnet_arch_names() {
  return {"alexnet", "tiny"};
}

Result<model::ModelSpec> parallelnet_arch(const std::string& name, int classes) {
  if (name == "tiny") {
    // Two convs and a hidden linear layer: trains in seconds, for tests.
    SpecBuilder b("parallelnet-tiny", "parallelnet");
    b.input("image", {1, 28, 28});
    b.stage("stage0").conv("conv1", 1, 8, 5, 1, 2).relu("relu1").maxpool("pool1", 2);
    b.conv("conv2", 8, 16, 5, 1, 2).relu("relu2").maxpool("pool2", 2).flatten("flat");
    b.linear("fc1", 16 * 7 * 7, 64).relu("relu3");
    b.exit("exit0").linear("fc2", 64, classes);
    return b.build();
  }
  if (name == "alexnet") {
    // Fig. 5.6 (convs of 96, 288, 576, 384, 384 filters, linear layers of 1536, 1536, 10) at a
    // quarter of the width, on 28x28x1. No LRN or batch norm: both mix what a removed unit
    // contributes, so a thinned model would no longer equal the masked genesis model.
    SpecBuilder b("parallelnet-alexnet", "parallelnet");
    b.input("image", {1, 28, 28});
    b.stage("stage0")
        .conv("conv1", 1, 24, 5, 1, 2)
        .relu("relu1")
        .maxpool("pool1", 3, 2, 1);                                            // 24x14x14
    b.conv("conv2", 24, 72, 5, 1, 2).relu("relu2").maxpool("pool2", 3, 2, 1);  // 72x7x7
    b.conv("conv3", 72, 144, 3, 1, 1).relu("relu3");
    b.conv("conv4", 144, 96, 3, 1, 1).relu("relu4");
    b.conv("conv5", 96, 96, 3, 1, 1).relu("relu5").maxpool("pool5", 3, 2, 1);  // 96x4x4
    b.flatten("flat").linear("fc1", 96 * 4 * 4, 384).relu("relu6");
    b.linear("fc2", 384, 384).relu("relu7");
    b.exit("exit0").linear("fc3", 384, classes);
    return b.build();
  }
  return Status::invalid_argument("unknown ParallelNet architecture '" + name +
                                  "' (expected alexnet or tiny)");
}

Result<std::vector<ThinnedLayer>> thinned_layers(const model::ModelSpec& spec) {
  const auto logits = exit_outputs(spec);
  std::map<std::string, std::string> source;  // node -> thinned layer whose units it carries
  std::vector<ThinnedLayer> out;
  for (const LayerSpec& l : spec.layers) {
    std::string from;
    for (const auto& in : l.inputs)
      if (auto it = source.find(in); it != source.end()) from = it->second;
    if (is_weighted(l.type)) {
      if (!logits.count(l.name) && !l.out_shape.empty()) {
        out.push_back({l.name, l.out_shape[0]});
        source[l.name] = l.name;
      }
    } else if (!from.empty()) {
      if (!passes_units(l.type))
        return Status::invalid_argument(
            "layer " + q(l.name) + " (" + std::string(model::layer_type_name(l.type)) +
            ") reads the units of thinned layer " + q(from) +
            "; ParallelNet thins only through relu, max/avg pooling, dropout and flatten");
      source[l.name] = from;
    }
  }
  for (const auto& e : spec.exits)
    if (auto it = source.find(e.output); it != source.end() && it->second != e.output)
      return Status::invalid_argument("exit " + q(e.name) + " outputs the units of thinned layer " +
                                      q(it->second) + ": its classes would be cut");
  return out;
}

std::string scaling_name(Scaling s) {
  return s == Scaling::kInverted ? "inverted" : "none";
}

Result<Scaling> scaling_from_name(const std::string& name) {
  if (name == "none") return Scaling::kNone;
  if (name == "inverted") return Scaling::kInverted;
  return Status::invalid_argument("unknown ParallelNet scaling '" + name +
                                  "' (expected none or inverted)");
}

void set_scale(Mask& m, Scaling scaling, const Density& density, int64_t step) {
  m.scale.clear();
  if (scaling != Scaling::kInverted) return;
  for (const auto& [name, k] : m.kept)
    if (const double p = density.at(name, step); p < 1) m.scale[name] = 1 / p;
}

int64_t Mask::kept_units() const {
  int64_t n = 0;
  for (const auto& [name, k] : kept) n += static_cast<int64_t>(k.size());
  return n;
}

nlohmann::json to_json(const Mask& m) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [name, k] : m.kept) j[name] = k;
  return j;
}

Result<Mask> draw_mask(const model::ModelSpec& spec, const Density& density, uint64_t seed,
                       int64_t step) {
  IDN_RETURN_IF_ERROR(density.validate());
  IDN_ASSIGN_OR_RETURN(auto layers, thinned_layers(spec));
  for (const auto& [name, p] : density.per_layer)
    if (std::none_of(layers.begin(), layers.end(),
                     [&](const ThinnedLayer& t) { return t.name == name; }))
      return Status::invalid_argument("p is set for layer " + q(name) +
                                      ", which is not a thinned layer of " + q(spec.name));
  // Seed and step go through the mixer before they start the stream, so the streams of
  // neighbouring seeds (or steps) are unrelated, not shifted copies of each other.
  SplitMix64 seeder{seed};
  SplitMix64 start{seeder.next() ^ static_cast<uint64_t>(step)};
  SplitMix64 rng{start.next()};
  Mask m;
  for (const auto& t : layers) {
    const double p = density.at(t.name, step);
    auto& kept = m.kept[t.name];
    double smallest = 2;
    int64_t argmin = 0;
    for (int64_t u = 0; u < t.units; ++u) {
      const double r = rng.uniform();
      if (r < p) kept.push_back(u);
      if (r < smallest) smallest = r, argmin = u;
    }
    if (kept.empty()) kept.push_back(argmin);
  }
  return m;
}

Status check_mask(const model::ModelSpec& spec, const Mask& mask) {
  IDN_ASSIGN_OR_RETURN(auto layers, thinned_layers(spec));
  for (const auto& [name, k] : mask.kept)
    if (std::none_of(layers.begin(), layers.end(),
                     [&](const ThinnedLayer& t) { return t.name == name; }))
      return Status::invalid_argument("mask names layer " + q(name) + ", not a thinned layer");
  for (const auto& t : layers) {
    auto it = mask.kept.find(t.name);
    if (it == mask.kept.end())
      return Status::invalid_argument("mask has no entry for layer " + q(t.name));
    const auto& k = it->second;
    if (k.empty()) return Status::invalid_argument("mask keeps no unit of layer " + q(t.name));
    for (size_t i = 0; i < k.size(); ++i)
      if (k[i] < 0 || k[i] >= t.units || (i > 0 && k[i] <= k[i - 1]))
        return Status::invalid_argument("mask of layer " + q(t.name) +
                                        " must hold sorted, distinct units in [0, " +
                                        std::to_string(t.units) + ")");
  }
  for (const auto& [name, s] : mask.scale) {
    if (!mask.kept.count(name))
      return Status::invalid_argument("mask scales layer " + q(name) + ", not a thinned layer");
    if (!std::isfinite(s) || s <= 0)
      return Status::invalid_argument("mask's factor of layer " + q(name) +
                                      " must be finite and positive, got " + std::to_string(s));
  }
  return Status::ok();
}

Status apply_mask(nn::Graph& graph, const Mask& mask) {
  std::map<std::string, torch::Tensor> masks;
  if (!mask.kept.empty()) {
    IDN_RETURN_IF_ERROR(check_mask(graph->spec(), mask));
    for (const auto& [name, k] : mask.kept) {
      auto m = torch::zeros({graph->spec().layer(name)->out_shape[0]}, torch::kFloat32);
      auto it = mask.scale.find(name);
      const float s = it == mask.scale.end() ? 1.0f : static_cast<float>(it->second);
      for (int64_t u : k) m[u] = s;
      masks[name] = m;
    }
  }
  return graph->set_unit_masks(masks);
}

Status apply_thinned(nn::Graph& graph, const Mask& mask) {
  std::map<std::string, nn::GraphImpl::UnitSelection> sel;
  if (!mask.kept.empty()) {
    IDN_RETURN_IF_ERROR(check_mask(graph->spec(), mask));
    for (const auto& [name, k] : mask.kept) {
      auto it = mask.scale.find(name);
      sel[name] = {k, it == mask.scale.end() ? 1.0 : it->second};
    }
  }
  return graph->set_unit_selection(sel);
}

Result<model::Package> thin_package(const model::Package& genesis, const Mask& mask) {
  const auto& gs = genesis.spec;
  IDN_RETURN_IF_ERROR(check_mask(gs, mask));
  IDN_RETURN_IF_ERROR(model::check_weights(gs, genesis.weights).with_context("genesis"));
  model::Package out;
  out.spec = gs;
  // The kept indices along dim 0 of every node's output; absent: all of them.
  std::map<std::string, std::vector<int64_t>> kept;
  for (size_t li = 0; li < gs.layers.size(); ++li) {
    const LayerSpec& l = gs.layers[li];
    LayerSpec& nl = out.spec.layers[li];
    const std::string& in = l.inputs.empty() ? std::string() : l.inputs[0];
    const std::vector<int64_t>* in_kept = kept.count(in) ? &kept.at(in) : nullptr;
    if (is_weighted(l.type)) {
      const std::vector<int64_t>* out_kept =
          mask.kept.count(l.name) ? &mask.kept.at(l.name) : nullptr;
      const bool conv = l.type == LayerType::kConv2d;
      if (in_kept) nl.params[conv ? "in_channels" : "in_features"] = in_kept->size();
      if (out_kept) {
        nl.params[conv ? "out_channels" : "out_features"] = out_kept->size();
        kept[l.name] = *out_kept;
      }
      auto sit = mask.scale.find(l.name);
      const float s = sit == mask.scale.end() ? 1.0f : static_cast<float>(sit->second);
      for (const auto& w : gs.required_weights()) {
        if (w.name.rfind(l.name + ".", 0) != 0) continue;
        const auto& t = genesis.weights.at(w.name);
        auto r = w.name == l.name + ".weight" ? select_units(t, out_kept, in_kept)
                                              : select_units(t, out_kept, nullptr);
        if (s != 1.0f)  // the layer's weight and bias: s(Wx + b) = (sW)x + sb
          for (float& v : r.f32_mut()) v *= s;
        out.weights[w.name] = std::move(r);
      }
    } else if (in_kept) {
      if (!passes_units(l.type))  // thinned_layers() refused such a spec in check_mask
        return Status::internal("layer " + q(l.name) + " reads thinned units");
      if (l.type == LayerType::kFlatten) {
        const auto& s = shape_of(gs, in);
        int64_t block = 1;
        for (size_t d = 1; d < s.size(); ++d) block *= s[d];
        std::vector<int64_t> f;
        f.reserve(in_kept->size() * block);
        for (int64_t c : *in_kept)
          for (int64_t j = 0; j < block; ++j) f.push_back(c * block + j);
        kept[l.name] = std::move(f);
      } else {
        kept[l.name] = *in_kept;
      }
    }
  }
  for (const auto& [name, t] : genesis.weights)
    if (!out.weights.count(name)) out.weights[name] = t;
  IDN_RETURN_IF_ERROR(model::validate_model_spec(out.spec).with_context("thinned spec"));
  IDN_RETURN_IF_ERROR(model::check_weights(out.spec, out.weights).with_context("thinned weights"));
  return out;
}

int64_t parameter_count(const model::ModelSpec& spec) {
  int64_t n = 0;
  for (const auto& w : spec.required_weights()) {
    int64_t e = 1;
    for (int64_t d : w.shape) e *= d;
    n += e;
  }
  return n;
}

Result<double> expected_flops(const model::ModelSpec& spec, const Density& density) {
  IDN_RETURN_IF_ERROR(density.validate());
  IDN_ASSIGN_OR_RETURN(auto layers, thinned_layers(spec));
  std::map<std::string, int64_t> units;
  for (const auto& t : layers) units[t.name] = t.units;
  std::map<std::string, double> share;  // expected kept share of each node's dim 0
  std::map<std::string, double> flops;
  for (const LayerSpec& l : spec.layers) {
    const double a = l.inputs.empty() || !share.count(l.inputs[0]) ? 1.0 : share[l.inputs[0]];
    if (is_weighted(l.type)) {
      const double b = units.count(l.name) ? kept_share(units[l.name], density.at(l.name)) : 1.0;
      int64_t out_elems = 1;
      for (int64_t d : l.out_shape) out_elems *= d;
      const int64_t bias = l.params.value("bias", true) ? out_elems : 0;
      flops[l.name] = static_cast<double>(l.flops - bias) * a * b + static_cast<double>(bias) * b;
      share[l.name] = b;
    } else {
      flops[l.name] = static_cast<double>(l.flops) * a;
      share[l.name] = a;
    }
  }
  double total = 0;
  for (const auto& s : spec.stages)
    for (const auto& n : s.layers) total += flops[n];
  if (!spec.exits.empty())
    for (const auto& n : spec.exits.back().layers) total += flops[n];
  return total;
}

Result<double> density_for_budget(const model::ModelSpec& spec, const Density& base,
                                  double budget_flops) {
  if (!std::isfinite(budget_flops) || budget_flops <= 0)
    return Status::invalid_argument("the FLOPs budget must be a positive number");
  Density d = base;
  d.cycle.clear();
  d.p = 1;
  IDN_ASSIGN_OR_RETURN(double full, expected_flops(spec, d));
  if (full <= budget_flops) return 1.0;
  double lo = 1e-9, hi = 1;
  d.p = lo;
  IDN_ASSIGN_OR_RETURN(double smallest, expected_flops(spec, d));
  if (smallest > budget_flops)
    return Status::invalid_argument("a FLOPs budget of " + std::to_string(budget_flops) +
                                    " is below the smallest model " + q(spec.name) +
                                    " can generate (" + std::to_string(smallest) + " FLOPs)");
  while (hi - lo > 1e-7) {  // expected FLOPs grow with p: bisect
    d.p = 0.5 * (lo + hi);
    IDN_ASSIGN_OR_RETURN(double f, expected_flops(spec, d));
    (f <= budget_flops ? lo : hi) = d.p;
  }
  return std::floor(lo * 1e6) / 1e6;
}

Result<Generated> generate_parallelnet(const std::filesystem::path& genesis_dir,
                                       const GenerateOptions& opts) {
  const std::string where = "genesis " + genesis_dir.string();
  auto loaded = model::load_package(genesis_dir);
  if (!loaded.ok()) return loaded.status().with_context(where);
  model::Package genesis = std::move(*loaded);
  const auto& op = genesis.spec.operating_point;
  if (genesis.spec.motif != "parallelnet")
    return Status::invalid_argument(where + ": not a ParallelNet model (motif '" +
                                    genesis.spec.motif + "')");
  const auto pn = op.contains("parallelnet") ? op["parallelnet"] : nlohmann::json();
  if (!pn.is_object() || pn.value("role", "") != "genesis")
    return Status::invalid_argument(
        where + ": not a ParallelNet genesis model (operating_point.parallelnet.role is " +
        (pn.is_object() && pn.contains("role") ? pn["role"].dump() : std::string("missing")) +
        "); generate from the genesis model itself");
  if (!pn.contains("p_train"))
    return Status::corruption(where + ": operating_point.parallelnet has no p_train");
  auto p_train = density_from_json(pn["p_train"]);
  if (!p_train.ok()) return p_train.status().with_context(where + ": p_train");
  // Absent: a genesis written before the scaling was recorded, trained without it.
  Scaling scaling = Scaling::kNone;
  if (pn.contains("scaling")) {
    auto sc = pn["scaling"].is_string() ? scaling_from_name(pn["scaling"].get<std::string>())
                                        : Result<Scaling>(Status::invalid_argument(
                                              "operating_point.parallelnet.scaling must be a "
                                              "string"));
    if (!sc.ok()) return Status::corruption(where + ": " + sc.status().message());
    scaling = *sc;
  }

  Generated g;
  g.p_test = opts.p_test;
  if (!g.p_test.cycle.empty())
    return Status::invalid_argument("a p cycle is a training schedule; generate with one p");
  if (opts.budget_flops) {
    IDN_ASSIGN_OR_RETURN(g.p_test.p,
                         density_for_budget(genesis.spec, g.p_test, *opts.budget_flops));
  }
  IDN_RETURN_IF_ERROR(g.p_test.validate().with_context("p_test"));
  IDN_ASSIGN_OR_RETURN(g.mask, draw_mask(genesis.spec, g.p_test, opts.seed));
  set_scale(g.mask, scaling, g.p_test);
  IDN_ASSIGN_OR_RETURN(g.package, thin_package(genesis, g.mask));
  IDN_ASSIGN_OR_RETURN(g.expected_flops, expected_flops(genesis.spec, g.p_test));

  IDN_ASSIGN_OR_RETURN(auto json_bytes, model::read_file(genesis_dir / model::kModelJsonFile));
  IDN_ASSIGN_OR_RETURN(auto weight_bytes, model::read_file(genesis_dir / model::kWeightsFile));
  g.genesis_hash = core::Multihash::sha2_256(json_bytes).to_base58();
  auto wsha = core::sha256(weight_bytes);
  g.genesis_parameters = parameter_count(genesis.spec);
  g.parameters = parameter_count(g.package.spec);
  g.genesis_flops = genesis.spec.trunk_flops();
  g.flops = g.package.spec.trunk_flops();

  auto& spec = g.package.spec;
  spec.name = genesis.spec.name + "-p" + format_p(g.p_test.p) + "-s" + std::to_string(opts.seed);
  nlohmann::json rec{{"role", "generated"},
                     {"genesis",
                      {{"name", genesis.spec.name},
                       {"model_hash", g.genesis_hash},
                       {"weights_sha256", hex_encode(ByteView(wsha.data(), wsha.size()))},
                       {"parameters", g.genesis_parameters},
                       {"flops", g.genesis_flops}}},
                     {"p_train", pn["p_train"]},
                     {"p_test", to_json(g.p_test)},
                     {"mask_seed", opts.seed},
                     {"scaling", scaling_name(scaling)},
                     {"scale", g.mask.scale},
                     {"parameters", g.parameters},
                     {"expected_flops", g.expected_flops},
                     {"kept", to_json(g.mask)}};
  rec["scaling_rule"] = scaling == Scaling::kInverted
                            ? "the genesis trained each kept unit's output x 1/p_train of its "
                              "layer; here each kept unit's weight and bias are x 1/p_test of its "
                              "layer (the factors in scale)"
                            : "none: kept units' weights copied unchanged";
  if (opts.budget_flops) rec["budget_flops"] = *opts.budget_flops;
  spec.operating_point = nlohmann::json{{"parallelnet", rec}};
  return g;
}

}  // namespace idn::motifs
