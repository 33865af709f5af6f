#include "model/model_spec.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <functional>
#include <limits>
#include <set>
#include <unordered_map>

#include "model/strict_json.h"

namespace idn::model {
namespace {

using nlohmann::json;

constexpr std::string_view kFormat = "idn-model";
constexpr int kVersion = 1;
// Bounds on integer params and dims, so shape and FLOP arithmetic stays far from overflow.
constexpr int64_t kMaxDim = int64_t{1} << 24;
constexpr int64_t kMaxElements = int64_t{1} << 40;
constexpr int64_t kMaxFlops = int64_t{1} << 62;
// model.json itself nests 4 deep; operating_point is free-form but small.
constexpr int kMaxJsonDepth = 64;

const std::vector<std::string_view>& motif_names() {
  static const std::vector<std::string_view> k = {"branchynet", "ddnn", "parallelnet", "plain"};
  return k;
}

std::string q(std::string_view s) {
  std::string out(1, '\'');
  out.append(s);
  out.push_back('\'');
  return out;
}
std::string num(double x) {
  return json(x).dump();
}

std::string join(const std::vector<std::string_view>& v) {
  std::string s;
  for (auto x : v) s += (s.empty() ? "" : ", ") + std::string(x);
  return s;
}

Status bad(std::string m) {
  return Status::invalid_argument(std::move(m));
}

// ---- JSON access helpers: each error says where in model.json the problem is. ----

Status check_object(const json& j, const std::string& where) {
  if (!j.is_object()) return bad(where + " must be a JSON object, got " + j.type_name());
  return Status::ok();
}

Status check_keys(const json& j, const std::string& where,
                  const std::vector<std::string_view>& allowed) {
  for (auto it = j.begin(); it != j.end(); ++it)
    if (std::find(allowed.begin(), allowed.end(), it.key()) == allowed.end())
      return bad(where + ": unknown key \"" + it.key() + "\" (allowed: " + join(allowed) + ")");
  return Status::ok();
}

Result<const json*> field(const json& j, const char* key, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end()) return bad(where + ": missing required key \"" + key + "\"");
  return &*it;
}

Result<std::string> as_string(const json& v, const std::string& what) {
  if (!v.is_string()) return bad(what + " must be a string, got " + v.dump());
  return v.get<std::string>();
}

Result<int64_t> as_int(const json& v, const std::string& what) {
  if (v.is_number_unsigned() && v.get<uint64_t>() <= static_cast<uint64_t>(kMaxDim))
    return static_cast<int64_t>(v.get<uint64_t>());
  if (v.is_number_integer() && !v.is_number_unsigned() && v.get<int64_t>() >= -kMaxDim &&
      v.get<int64_t>() <= kMaxDim)
    return v.get<int64_t>();
  if (v.is_number_integer()) return bad(what + " is out of range: " + v.dump());
  return bad(what + " must be an integer, got " + v.dump());
}

Result<double> as_number(const json& v, const std::string& what) {
  if (!v.is_number()) return bad(what + " must be a number, got " + v.dump());
  return v.get<double>();
}

Result<std::vector<std::string>> as_string_array(const json& v, const std::string& what) {
  if (!v.is_array()) return bad(what + " must be an array of strings, got " + v.dump());
  std::vector<std::string> out;
  for (size_t i = 0; i < v.size(); ++i) {
    IDN_ASSIGN_OR_RETURN(auto s, as_string(v[i], what + "[" + std::to_string(i) + "]"));
    out.push_back(std::move(s));
  }
  return out;
}

Result<std::vector<int64_t>> as_int_array(const json& v, const std::string& what) {
  if (!v.is_array()) return bad(what + " must be an array of integers, got " + v.dump());
  std::vector<int64_t> out;
  for (size_t i = 0; i < v.size(); ++i) {
    IDN_ASSIGN_OR_RETURN(auto x, as_int(v[i], what + "[" + std::to_string(i) + "]"));
    out.push_back(x);
  }
  return out;
}

Result<std::vector<float>> as_float_array(const json& v, const std::string& what) {
  if (!v.is_array()) return bad(what + " must be an array of numbers, got " + v.dump());
  std::vector<float> out;
  for (size_t i = 0; i < v.size(); ++i) {
    IDN_ASSIGN_OR_RETURN(double x, as_number(v[i], what + "[" + std::to_string(i) + "]"));
    out.push_back(static_cast<float>(x));
  }
  return out;
}

// The shortest decimal that reads back as the same float, so model.json shows 0.286, not
// 0.28600001335144043, and still round-trips bit-exactly.
double float_for_json(float f) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, f);
  double d = 0;
  std::from_chars(buf, r.ptr, d);
  return d;
}

// ---- Layer params: names, types, defaults. ----

enum class PType { kInt, kNumber, kBool, kString };

struct ParamDef {
  const char* name;
  PType type;
  bool required;
  json fallback;  // null with required=false: derived (pool stride = kernel)
  int64_t min_int = 0;
};

const std::vector<ParamDef>& param_defs(LayerType t) {
  static const std::vector<ParamDef> kConv = {
      {"in_channels", PType::kInt, true, {}, 1}, {"out_channels", PType::kInt, true, {}, 1},
      {"kernel", PType::kInt, true, {}, 1},      {"stride", PType::kInt, false, 1, 1},
      {"padding", PType::kInt, false, 0, 0},     {"bias", PType::kBool, false, true}};
  static const std::vector<ParamDef> kLinear = {{"in_features", PType::kInt, true, {}, 1},
                                                {"out_features", PType::kInt, true, {}, 1},
                                                {"bias", PType::kBool, false, true}};
  static const std::vector<ParamDef> kPool = {{"kernel", PType::kInt, true, {}, 1},
                                              {"stride", PType::kInt, false, {}, 1},
                                              {"padding", PType::kInt, false, 0, 0}};
  static const std::vector<ParamDef> kBatchNorm = {{"num_features", PType::kInt, true, {}, 1},
                                                   {"eps", PType::kNumber, false, 1e-5},
                                                   {"momentum", PType::kNumber, false, 0.1}};
  static const std::vector<ParamDef> kDropout = {{"p", PType::kNumber, false, 0.5}};
  static const std::vector<ParamDef> kLRN = {{"size", PType::kInt, true, {}, 1},
                                             {"alpha", PType::kNumber, false, 1e-4},
                                             {"beta", PType::kNumber, false, 0.75},
                                             {"k", PType::kNumber, false, 1.0}};
  static const std::vector<ParamDef> kAggregate = {{"op", PType::kString, true, {}}};
  static const std::vector<ParamDef> kNone = {};
  switch (t) {
    case LayerType::kConv2d:
      return kConv;
    case LayerType::kLinear:
      return kLinear;
    case LayerType::kMaxPool2d:
    case LayerType::kAvgPool2d:
      return kPool;
    case LayerType::kBatchNorm:
      return kBatchNorm;
    case LayerType::kDropout:
      return kDropout;
    case LayerType::kLRN:
      return kLRN;
    case LayerType::kAggregate:
      return kAggregate;
    case LayerType::kReLU:
    case LayerType::kFlatten:
    case LayerType::kSoftmax:
      return kNone;
  }
  return kNone;
}

std::string layer_where(const LayerSpec& l) {
  return "layer " + q(l.name) + " (" + std::string(layer_type_name(l.type)) + ")";
}

// Checks types and ranges and fills defaults, so consumers (nn/) can read every param.
Status normalize_params(LayerSpec& l) {
  const std::string where = layer_where(l);
  if (l.params.is_null()) l.params = json::object();
  if (!l.params.is_object()) return bad(where + ": \"params\" must be a JSON object");
  const auto& defs = param_defs(l.type);
  for (auto it = l.params.begin(); it != l.params.end(); ++it) {
    bool known = std::any_of(defs.begin(), defs.end(),
                             [&](const ParamDef& d) { return it.key() == d.name; });
    if (!known) {
      std::vector<std::string_view> names;
      for (const auto& d : defs) names.push_back(d.name);
      return bad(where + ": unknown param \"" + it.key() + "\" (" +
                 (names.empty() ? std::string("this layer type takes no params")
                                : "expected: " + join(names)) +
                 ")");
    }
  }
  for (const ParamDef& d : defs) {
    const std::string what = where + ": param \"" + std::string(d.name) + "\"";
    if (!l.params.contains(d.name)) {
      if (d.required) return bad(where + ": missing required param \"" + d.name + "\"");
      if (!d.fallback.is_null()) l.params[d.name] = d.fallback;
      continue;
    }
    const json& v = l.params[d.name];
    switch (d.type) {
      case PType::kInt: {
        IDN_ASSIGN_OR_RETURN(int64_t x, as_int(v, what));
        if (x < d.min_int) return bad(what + " must be >= " + std::to_string(d.min_int));
        break;
      }
      case PType::kNumber: {
        IDN_ASSIGN_OR_RETURN(double x, as_number(v, what));
        if (!std::isfinite(x)) return bad(what + " must be finite");
        break;
      }
      case PType::kBool:
        if (!v.is_boolean()) return bad(what + " must be true or false, got " + v.dump());
        break;
      case PType::kString:
        if (!v.is_string()) return bad(what + " must be a string, got " + v.dump());
        break;
    }
  }
  switch (l.type) {
    case LayerType::kMaxPool2d:
    case LayerType::kAvgPool2d: {
      if (!l.params.contains("stride")) l.params["stride"] = l.params["kernel"];
      int64_t k = l.params["kernel"].get<int64_t>(), p = l.params["padding"].get<int64_t>();
      if (2 * p > k)
        return bad(where + ": padding " + std::to_string(p) + " exceeds half the kernel");
      break;
    }
    case LayerType::kBatchNorm:
      if (l.params["eps"].get<double>() <= 0) return bad(where + ": param \"eps\" must be > 0");
      break;
    case LayerType::kDropout: {
      double p = l.params["p"].get<double>();
      if (p < 0 || p >= 1) return bad(where + ": param \"p\" must be in [0, 1)");
      break;
    }
    case LayerType::kAggregate: {
      auto op = l.params["op"].get<std::string>();
      if (op != "max" && op != "avg" && op != "concat")
        return bad(where + ": param \"op\" is \"" + op + "\"; expected max, avg or concat");
      break;
    }
    default:
      break;
  }
  return Status::ok();
}

// Reads an integer param; 0 if absent, so required_weights() cannot throw on an unvalidated spec.
int64_t iparam(const LayerSpec& l, const char* name) {
  if (!l.params.is_object()) return 0;
  auto it = l.params.find(name);
  return it != l.params.end() && it->is_number_integer() ? it->get<int64_t>() : 0;
}

bool bparam(const LayerSpec& l, const char* name) {
  if (!l.params.is_object()) return true;
  auto it = l.params.find(name);
  return it == l.params.end() || !it->is_boolean() || it->get<bool>();
}

bool checked_mul(int64_t a, int64_t b, int64_t& out) {
  return !__builtin_mul_overflow(a, b, &out) && out <= kMaxFlops;
}

Result<int64_t> numel_of(const std::vector<int64_t>& shape, const std::string& where) {
  int64_t n = 1;
  for (int64_t d : shape)
    if (!checked_mul(n, d, n) || n > kMaxElements)
      return bad(where + ": output shape " + core::shape_string(shape) + " is too large");
  return n;
}

// Output shape of one layer from its inputs' shapes (per sample), and its FLOPs.
Status infer_layer(LayerSpec& l, const std::vector<const std::vector<int64_t>*>& in) {
  const std::string where = layer_where(l);
  const auto& x = *in[0];
  const std::string xs = core::shape_string(x);
  auto spatial = [&](int64_t k, int64_t s, int64_t p, std::vector<int64_t>& out) -> Status {
    if (x.size() != 3) return bad(where + ": needs a [C, H, W] input, got " + xs);
    out = {x[0], 0, 0};
    for (int i = 1; i <= 2; ++i) {
      if (x[i] + 2 * p < k)
        return bad(where + ": kernel " + std::to_string(k) + " is larger than the padded input " +
                   xs + " (output size would be < 1)");
      out[i] = (x[i] + 2 * p - k) / s + 1;
    }
    return Status::ok();
  };
  int64_t flops = 0;
  switch (l.type) {
    case LayerType::kConv2d: {
      int64_t cin = iparam(l, "in_channels"), cout = iparam(l, "out_channels"),
              k = iparam(l, "kernel");
      IDN_RETURN_IF_ERROR(spatial(k, iparam(l, "stride"), iparam(l, "padding"), l.out_shape));
      if (x[0] != cin)
        return bad(where + ": in_channels is " + std::to_string(cin) + " but its input " +
                   q(l.inputs[0]) + " has shape " + xs + " (" + std::to_string(x[0]) +
                   " channels)");
      l.out_shape[0] = cout;
      IDN_ASSIGN_OR_RETURN(int64_t out_elems, numel_of(l.out_shape, where));
      int64_t f = 2;
      for (int64_t m : {k, k, cin, cout, l.out_shape[1], l.out_shape[2]})
        if (!checked_mul(f, m, f)) return bad(where + ": FLOP count overflows");
      if (bparam(l, "bias")) f += out_elems;
      flops = f;
      break;
    }
    case LayerType::kLinear: {
      int64_t fin = iparam(l, "in_features"), fout = iparam(l, "out_features");
      if (x.size() != 1)
        return bad(where + ": needs a 1-D input, but " + q(l.inputs[0]) + " has shape " + xs +
                   " (insert a flatten layer before it)");
      if (x[0] != fin)
        return bad(where + ": in_features is " + std::to_string(fin) + " but its input " +
                   q(l.inputs[0]) + " has " + std::to_string(x[0]) + " features");
      l.out_shape = {fout};
      flops = 2 * fin * fout + (bparam(l, "bias") ? fout : 0);
      break;
    }
    case LayerType::kMaxPool2d:
    case LayerType::kAvgPool2d: {
      int64_t k = iparam(l, "kernel");
      IDN_RETURN_IF_ERROR(spatial(k, iparam(l, "stride"), iparam(l, "padding"), l.out_shape));
      IDN_ASSIGN_OR_RETURN(int64_t out_elems, numel_of(l.out_shape, where));
      if (!checked_mul(out_elems, k * k, flops)) return bad(where + ": FLOP count overflows");
      break;
    }
    case LayerType::kBatchNorm: {
      int64_t c = iparam(l, "num_features");
      if (x.size() != 1 && x.size() != 3)
        return bad(where + ": needs a [C] or [C, H, W] input, got " + xs);
      if (x[0] != c)
        return bad(where + ": num_features is " + std::to_string(c) + " but its input " +
                   q(l.inputs[0]) + " has shape " + xs + " (" + std::to_string(x[0]) +
                   " channels)");
      l.out_shape = x;
      break;
    }
    case LayerType::kFlatten: {
      if (x.empty()) return bad(where + ": cannot flatten a scalar");
      IDN_ASSIGN_OR_RETURN(int64_t n, numel_of(x, where));
      l.out_shape = {n};
      break;
    }
    case LayerType::kLRN:
      if (x.size() < 2) return bad(where + ": needs a [C, H, W] or [C, L] input, got " + xs);
      l.out_shape = x;
      break;
    case LayerType::kReLU:
    case LayerType::kDropout:
    case LayerType::kSoftmax:
      if (x.empty()) return bad(where + ": needs at least a 1-D input, got a scalar");
      l.out_shape = x;
      break;
    case LayerType::kAggregate: {
      const std::string op = l.params["op"].get<std::string>();
      l.out_shape = x;
      for (size_t i = 1; i < in.size(); ++i) {
        const auto& y = *in[i];
        const std::string msg = where + ": input " + q(l.inputs[i]) + " has shape " +
                                core::shape_string(y) + " but " + q(l.inputs[0]) + " has " + xs;
        if (op == "concat") {
          if (y.size() != x.size() || y.empty() ||
              !std::equal(y.begin() + 1, y.end(), x.begin() + 1))
            return bad(msg + " (concat needs equal shapes except dim 0)");
          l.out_shape[0] += y[0];
        } else if (y != x) {
          return bad(msg + " (" + op + " needs equal shapes)");
        }
      }
      if (l.out_shape.empty()) return bad(where + ": cannot aggregate scalars");
      break;
    }
  }
  IDN_ASSIGN_OR_RETURN(int64_t out_elems, numel_of(l.out_shape, where));
  l.flops = flops ? flops : out_elems;
  return Status::ok();
}

// The owner of each layer: a stage or an exit, by index.
struct Owner {
  bool is_exit = false;
  int index = 0;
};

std::string owner_name(const ModelSpec& s, Owner o) {
  return o.is_exit ? "exit " + q(s.exits[o.index].name) : "stage " + q(s.stages[o.index].name);
}

Status check_references(ModelSpec& spec, const std::unordered_map<std::string, int>& index,
                        const std::set<std::string>& input_names) {
  for (const LayerSpec& l : spec.layers)
    for (const std::string& in : l.inputs)
      if (!index.count(in) && !input_names.count(in))
        return bad(layer_where(l) + ": input " + q(in) +
                   " is not defined (neither a model input nor a layer)");
  // Cycles first, so a cycle is reported as one rather than as a forward reference.
  std::vector<int> color(spec.layers.size(), 0);  // 0 new, 1 on the stack, 2 done
  std::vector<int> stack;
  std::function<Status(int)> visit = [&](int i) -> Status {
    color[i] = 1;
    stack.push_back(i);
    for (const std::string& in : spec.layers[i].inputs) {
      auto it = index.find(in);
      if (it == index.end()) continue;
      int j = it->second;
      if (color[j] == 1) {
        std::string path;
        auto from = std::find(stack.begin(), stack.end(), j);
        for (auto p = from; p != stack.end(); ++p) path += spec.layers[*p].name + " -> ";
        return bad("cycle among layers: " + path + spec.layers[j].name);
      }
      if (color[j] == 0) IDN_RETURN_IF_ERROR(visit(j));
    }
    stack.pop_back();
    color[i] = 2;
    return Status::ok();
  };
  for (size_t i = 0; i < spec.layers.size(); ++i)
    if (color[i] == 0) IDN_RETURN_IF_ERROR(visit(static_cast<int>(i)));
  for (size_t i = 0; i < spec.layers.size(); ++i)
    for (const std::string& in : spec.layers[i].inputs) {
      auto it = index.find(in);
      if (it != index.end() && it->second > static_cast<int>(i))
        return bad(layer_where(spec.layers[i]) + ": input " + q(in) +
                   " is defined later in \"layers\" (forward reference; list layers in "
                   "execution order)");
    }
  return Status::ok();
}

// Assigns each layer to exactly one stage or exit and checks what may cross their boundaries:
// a stage layer reads model inputs, earlier layers of its stage, or outputs of earlier stages;
// an exit head also reads outputs of stages up to its own; nothing reads an exit's layers.
Status check_membership(const ModelSpec& spec, const std::unordered_map<std::string, int>& index,
                        std::vector<Owner>& owner_of) {
  std::vector<bool> owned(spec.layers.size(), false);
  owner_of.assign(spec.layers.size(), Owner{});
  auto claim = [&](const std::vector<std::string>& names, Owner o) -> Status {
    int last = -1;
    for (const std::string& n : names) {
      auto it = index.find(n);
      if (it == index.end())
        return bad(owner_name(spec, o) + " lists layer " + q(n) + ", which is not defined");
      int i = it->second;
      if (owned[i])
        return bad("layer " + q(n) + " is in both " + owner_name(spec, owner_of[i]) + " and " +
                   owner_name(spec, o) + " (each layer belongs to exactly one)");
      if (i < last)
        return bad(owner_name(spec, o) + " lists layer " + q(n) + " after " +
                   q(spec.layers[last].name) + ", but \"layers\" orders them the other way");
      owned[i] = true;
      owner_of[i] = o;
      last = i;
    }
    return Status::ok();
  };
  for (size_t s = 0; s < spec.stages.size(); ++s)
    IDN_RETURN_IF_ERROR(claim(spec.stages[s].layers, {false, static_cast<int>(s)}));
  for (size_t e = 0; e < spec.exits.size(); ++e)
    IDN_RETURN_IF_ERROR(claim(spec.exits[e].layers, {true, static_cast<int>(e)}));
  for (size_t i = 0; i < spec.layers.size(); ++i)
    if (!owned[i]) return bad("layer " + q(spec.layers[i].name) + " is in no stage or exit");

  for (size_t i = 0; i < spec.layers.size(); ++i) {
    const Owner me = owner_of[i];
    const int my_stage = me.is_exit ? spec.exits[me.index].stage : me.index;
    for (const std::string& in : spec.layers[i].inputs) {
      auto it = index.find(in);
      if (it == index.end()) continue;  // a model input
      const Owner src = owner_of[it->second];
      if (src.is_exit == me.is_exit && src.index == me.index) continue;
      const std::string who = layer_where(spec.layers[i]) + " in " + owner_name(spec, me);
      if (src.is_exit)
        return bad(who + " reads " + q(in) + " from " + owner_name(spec, src) +
                   "; exit heads are side branches nothing else may read");
      if ((me.is_exit && src.index > my_stage) || (!me.is_exit && src.index >= my_stage))
        return bad(who + " reads " + q(in) + " from the later " + owner_name(spec, src));
      if (spec.stages[src.index].output != in)
        return bad(who + " reads " + q(in) + " from " + owner_name(spec, src) +
                   ", which is not that stage's output (only stage outputs cross stages)");
    }
  }
  return Status::ok();
}

Status check_exits(const ModelSpec& spec) {
  if (spec.exits.empty())
    return bad("model has no exits; the last stage needs at least one exit producing logits");
  int prev_stage = 0;
  const int n_stages = static_cast<int>(spec.stages.size());
  for (const ExitSpec& e : spec.exits) {
    const std::string where = "exit " + q(e.name);
    if (e.stage < 0 || e.stage >= n_stages)
      return bad(where + ": stage " + std::to_string(e.stage) + " is out of range (the model has " +
                 std::to_string(n_stages) + " stages, numbered from 0)");
    if (e.stage < prev_stage) return bad(where + ": exits must be listed in stage order");
    prev_stage = e.stage;
    if (e.layers.empty()) {
      if (e.output != spec.stages[e.stage].output)
        return bad(where + ": has no head layers, so its output must be stage " +
                   q(spec.stages[e.stage].name) + "'s output " + q(spec.stages[e.stage].output) +
                   ", not " + q(e.output));
    } else if (std::find(e.layers.begin(), e.layers.end(), e.output) == e.layers.end()) {
      return bad(where + ": output " + q(e.output) + " is not one of its layers");
    }
    if (!(e.threshold >= 0 && e.threshold <= 1))
      return bad(where + ": threshold " + num(e.threshold) + " is outside [0, 1]");
    if (!(e.temperature > 0) || !std::isfinite(e.temperature))
      return bad(where + ": temperature " + num(e.temperature) + " must be > 0");
  }
  if (spec.exits.back().stage != n_stages - 1)
    return bad("last exit " + q(spec.exits.back().name) + " is at stage " +
               std::to_string(spec.exits.back().stage) + " but the model has " +
               std::to_string(n_stages) + " stages; the final stage needs an exit");
  return Status::ok();
}

// ---- JSON -> ModelSpec (structure only; validate_model_spec does the semantics). ----

struct StoredFlops {
  std::vector<std::optional<int64_t>> stages, exits;
};

Result<std::optional<int64_t>> stored_flops(const json& j, const std::string& where) {
  auto it = j.find("flops");
  if (it == j.end()) return std::optional<int64_t>{};
  if (!it->is_number_integer() || (!it->is_number_unsigned() && it->get<int64_t>() < 0))
    return bad(where + ": \"flops\" must be a non-negative integer, got " + it->dump());
  if (it->is_number_unsigned() && it->get<uint64_t>() > static_cast<uint64_t>(kMaxFlops))
    return bad(where + ": \"flops\" is out of range");
  return std::optional<int64_t>{it->get<int64_t>()};
}

Result<ModelSpec> parse_structure(const json& j, StoredFlops& stored) {
  IDN_RETURN_IF_ERROR(check_object(j, "model.json"));
  auto fmt = j.find("format");
  if (fmt == j.end())
    return bad("missing \"format\": expected \"idn-model\" (is this an IDN model.json?)");
  if (!fmt->is_string() || fmt->get<std::string>() != kFormat)
    return bad("\"format\" is " + fmt->dump() + "; expected \"idn-model\"");
  auto ver = j.find("version");
  if (ver == j.end()) return bad("missing \"version\" (this build reads version 1)");
  if (!ver->is_number_integer() || ver->get<int64_t>() != kVersion)
    return Status::unsupported("model.json \"version\" is " + ver->dump() +
                               "; this build reads version 1");
  IDN_RETURN_IF_ERROR(check_keys(j, "model.json",
                                 {"format", "version", "name", "motif", "inputs", "preprocess",
                                  "labels", "layers", "stages", "exits", "operating_point"}));
  ModelSpec spec;
  IDN_ASSIGN_OR_RETURN(const json* name, field(j, "name", "model.json"));
  IDN_ASSIGN_OR_RETURN(spec.name, as_string(*name, "\"name\""));
  spec.motif = "plain";
  if (j.contains("motif")) {
    IDN_ASSIGN_OR_RETURN(spec.motif, as_string(j["motif"], "\"motif\""));
  }

  IDN_ASSIGN_OR_RETURN(const json* inputs, field(j, "inputs", "model.json"));
  if (!inputs->is_array()) return bad("\"inputs\" must be an array");
  for (size_t i = 0; i < inputs->size(); ++i) {
    const json& v = (*inputs)[i];
    std::string where = "inputs[" + std::to_string(i) + "]";
    IDN_RETURN_IF_ERROR(check_object(v, where));
    IDN_RETURN_IF_ERROR(check_keys(v, where, {"name", "dtype", "shape"}));
    InputSpec in;
    IDN_ASSIGN_OR_RETURN(const json* n, field(v, "name", where));
    IDN_ASSIGN_OR_RETURN(in.name, as_string(*n, where + ".name"));
    where = "input " + q(in.name);
    if (v.contains("dtype")) {
      IDN_ASSIGN_OR_RETURN(std::string dt, as_string(v["dtype"], where + ": \"dtype\""));
      auto d = core::parse_dtype(dt);
      if (!d.ok()) return d.status().with_context(where);
      in.dtype = *d;
    }
    IDN_ASSIGN_OR_RETURN(const json* shape, field(v, "shape", where));
    IDN_ASSIGN_OR_RETURN(in.shape, as_int_array(*shape, where + ": \"shape\""));
    spec.inputs.push_back(std::move(in));
  }

  if (j.contains("preprocess")) {
    const json& p = j["preprocess"];
    IDN_RETURN_IF_ERROR(check_object(p, "\"preprocess\""));
    IDN_RETURN_IF_ERROR(check_keys(p, "\"preprocess\"", {"mean", "std"}));
    IDN_ASSIGN_OR_RETURN(const json* mean, field(p, "mean", "\"preprocess\""));
    IDN_ASSIGN_OR_RETURN(const json* sd, field(p, "std", "\"preprocess\""));
    IDN_ASSIGN_OR_RETURN(spec.preprocess_mean, as_float_array(*mean, "preprocess.mean"));
    IDN_ASSIGN_OR_RETURN(spec.preprocess_std, as_float_array(*sd, "preprocess.std"));
  }
  if (j.contains("labels")) {
    IDN_ASSIGN_OR_RETURN(spec.labels, as_string_array(j["labels"], "\"labels\""));
  }

  IDN_ASSIGN_OR_RETURN(const json* layers, field(j, "layers", "model.json"));
  if (!layers->is_array()) return bad("\"layers\" must be an array");
  for (size_t i = 0; i < layers->size(); ++i) {
    const json& v = (*layers)[i];
    std::string where = "layers[" + std::to_string(i) + "]";
    IDN_RETURN_IF_ERROR(check_object(v, where));
    LayerSpec l;
    IDN_ASSIGN_OR_RETURN(const json* n, field(v, "name", where));
    IDN_ASSIGN_OR_RETURN(l.name, as_string(*n, where + ".name"));
    where = "layer " + q(l.name);
    IDN_RETURN_IF_ERROR(check_keys(v, where, {"name", "type", "inputs", "params"}));
    IDN_ASSIGN_OR_RETURN(const json* type, field(v, "type", where));
    IDN_ASSIGN_OR_RETURN(std::string type_name, as_string(*type, where + ": \"type\""));
    auto t = parse_layer_type(type_name);
    if (!t.ok()) return t.status().with_context(where);
    l.type = *t;
    IDN_ASSIGN_OR_RETURN(const json* ins, field(v, "inputs", where));
    IDN_ASSIGN_OR_RETURN(l.inputs, as_string_array(*ins, where + ": \"inputs\""));
    if (v.contains("params")) l.params = v["params"];
    spec.layers.push_back(std::move(l));
  }

  IDN_ASSIGN_OR_RETURN(const json* stages, field(j, "stages", "model.json"));
  if (!stages->is_array()) return bad("\"stages\" must be an array");
  for (size_t i = 0; i < stages->size(); ++i) {
    const json& v = (*stages)[i];
    std::string where = "stages[" + std::to_string(i) + "]";
    IDN_RETURN_IF_ERROR(check_object(v, where));
    StageSpec s;
    IDN_ASSIGN_OR_RETURN(const json* n, field(v, "name", where));
    IDN_ASSIGN_OR_RETURN(s.name, as_string(*n, where + ".name"));
    where = "stage " + q(s.name);
    IDN_RETURN_IF_ERROR(check_keys(v, where, {"name", "layers", "output", "flops"}));
    IDN_ASSIGN_OR_RETURN(const json* ls, field(v, "layers", where));
    IDN_ASSIGN_OR_RETURN(s.layers, as_string_array(*ls, where + ": \"layers\""));
    IDN_ASSIGN_OR_RETURN(const json* out, field(v, "output", where));
    IDN_ASSIGN_OR_RETURN(s.output, as_string(*out, where + ": \"output\""));
    IDN_ASSIGN_OR_RETURN(auto f, stored_flops(v, where));
    stored.stages.push_back(f);
    spec.stages.push_back(std::move(s));
  }

  IDN_ASSIGN_OR_RETURN(const json* exits, field(j, "exits", "model.json"));
  if (!exits->is_array()) return bad("\"exits\" must be an array");
  for (size_t i = 0; i < exits->size(); ++i) {
    const json& v = (*exits)[i];
    std::string where = "exits[" + std::to_string(i) + "]";
    IDN_RETURN_IF_ERROR(check_object(v, where));
    ExitSpec e;
    IDN_ASSIGN_OR_RETURN(const json* n, field(v, "name", where));
    IDN_ASSIGN_OR_RETURN(e.name, as_string(*n, where + ".name"));
    where = "exit " + q(e.name);
    IDN_RETURN_IF_ERROR(check_keys(
        v, where,
        {"name", "stage", "layers", "output", "criterion", "threshold", "temperature", "flops"}));
    IDN_ASSIGN_OR_RETURN(const json* st, field(v, "stage", where));
    IDN_ASSIGN_OR_RETURN(int64_t stage, as_int(*st, where + ": \"stage\""));
    e.stage = static_cast<int>(stage);
    IDN_ASSIGN_OR_RETURN(const json* ls, field(v, "layers", where));
    IDN_ASSIGN_OR_RETURN(e.layers, as_string_array(*ls, where + ": \"layers\""));
    IDN_ASSIGN_OR_RETURN(const json* out, field(v, "output", where));
    IDN_ASSIGN_OR_RETURN(e.output, as_string(*out, where + ": \"output\""));
    IDN_ASSIGN_OR_RETURN(const json* crit, field(v, "criterion", where));
    IDN_ASSIGN_OR_RETURN(std::string crit_name, as_string(*crit, where + ": \"criterion\""));
    auto c = parse_criterion(crit_name);
    if (!c.ok()) return c.status().with_context(where);
    e.criterion = *c;
    IDN_ASSIGN_OR_RETURN(const json* th, field(v, "threshold", where));
    IDN_ASSIGN_OR_RETURN(e.threshold, as_number(*th, where + ": \"threshold\""));
    if (v.contains("temperature")) {
      IDN_ASSIGN_OR_RETURN(e.temperature, as_number(v["temperature"], where + ": \"temperature\""));
    }
    IDN_ASSIGN_OR_RETURN(auto f, stored_flops(v, where));
    stored.exits.push_back(f);
    spec.exits.push_back(std::move(e));
  }

  if (j.contains("operating_point")) {
    IDN_RETURN_IF_ERROR(check_object(j["operating_point"], "\"operating_point\""));
    spec.operating_point = j["operating_point"];
  }
  return spec;
}

}  // namespace

std::string_view layer_type_name(LayerType t) {
  switch (t) {
    case LayerType::kConv2d:
      return "conv2d";
    case LayerType::kLinear:
      return "linear";
    case LayerType::kReLU:
      return "relu";
    case LayerType::kMaxPool2d:
      return "maxpool2d";
    case LayerType::kAvgPool2d:
      return "avgpool2d";
    case LayerType::kBatchNorm:
      return "batchnorm";
    case LayerType::kDropout:
      return "dropout";
    case LayerType::kFlatten:
      return "flatten";
    case LayerType::kLRN:
      return "lrn";
    case LayerType::kSoftmax:
      return "softmax";
    case LayerType::kAggregate:
      return "aggregate";
  }
  return "?";
}

Result<LayerType> parse_layer_type(std::string_view name) {
  for (int i = 0; i <= static_cast<int>(LayerType::kAggregate); ++i) {
    auto t = static_cast<LayerType>(i);
    if (layer_type_name(t) == name) return t;
  }
  return bad("unknown layer type \"" + std::string(name) +
             "\" (expected conv2d, linear, relu, maxpool2d, avgpool2d, batchnorm, dropout, "
             "flatten, lrn, softmax or aggregate)");
}

std::string_view criterion_name(ExitCriterion c) {
  return c == ExitCriterion::kEntropy ? "entropy" : "confidence";
}

Result<ExitCriterion> parse_criterion(std::string_view name) {
  if (name == "confidence") return ExitCriterion::kConfidence;
  if (name == "entropy") return ExitCriterion::kEntropy;
  return bad("unknown exit criterion \"" + std::string(name) +
             "\" (expected confidence or entropy)");
}

const LayerSpec* ModelSpec::layer(std::string_view n) const {
  for (const LayerSpec& l : layers)
    if (l.name == n) return &l;
  return nullptr;
}

int ModelSpec::num_classes() const {
  if (exits.empty()) return 0;
  const LayerSpec* l = layer(exits.back().output);
  return l && l->out_shape.size() == 1 ? static_cast<int>(l->out_shape[0]) : 0;
}

int64_t ModelSpec::trunk_flops() const {
  int64_t f = 0;
  for (const StageSpec& s : stages) f += s.flops;
  if (!exits.empty()) f += exits.back().flops;
  return f;
}

std::vector<WeightSpec> ModelSpec::required_weights() const {
  std::vector<WeightSpec> w;
  for (const LayerSpec& l : layers) {
    const std::string& n = l.name;
    switch (l.type) {
      case LayerType::kConv2d: {
        int64_t out = iparam(l, "out_channels"), k = iparam(l, "kernel");
        w.push_back({n + ".weight", {out, iparam(l, "in_channels"), k, k}});
        if (bparam(l, "bias")) w.push_back({n + ".bias", {out}});
        break;
      }
      case LayerType::kLinear: {
        int64_t out = iparam(l, "out_features");
        w.push_back({n + ".weight", {out, iparam(l, "in_features")}});
        if (bparam(l, "bias")) w.push_back({n + ".bias", {out}});
        break;
      }
      case LayerType::kBatchNorm: {
        int64_t c = iparam(l, "num_features");
        for (const char* s : {".weight", ".bias", ".running_mean", ".running_var"})
          w.push_back({n + s, {c}});
        break;
      }
      default:
        break;
    }
  }
  return w;
}

Status validate_model_spec(ModelSpec& spec) {
  if (spec.name.empty()) return bad("model \"name\" is empty");
  const auto& motifs = motif_names();
  if (std::find(motifs.begin(), motifs.end(), spec.motif) == motifs.end())
    return bad("unknown motif \"" + spec.motif + "\" (expected " + join(motifs) + ")");

  if (spec.inputs.empty()) return bad("model has no inputs");
  std::set<std::string> input_names;
  std::unordered_map<std::string, const std::vector<int64_t>*> shapes;
  for (const InputSpec& in : spec.inputs) {
    const std::string where = "input " + q(in.name);
    if (in.name.empty()) return bad("an input has an empty name");
    if (!input_names.insert(in.name).second) return bad(where + " is defined twice");
    if (in.shape.empty() || in.shape.size() > 3)
      return bad(where + ": shape " + core::shape_string(in.shape) +
                 " must have 1 to 3 dims (per sample, no batch dim)");
    for (int64_t d : in.shape)
      if (d < 1 || d > kMaxDim)
        return bad(where + ": shape " + core::shape_string(in.shape) + " has a bad dimension");
    IDN_RETURN_IF_ERROR(numel_of(in.shape, where).status());
    shapes[in.name] = &in.shape;
  }
  if (spec.preprocess_mean.size() != spec.preprocess_std.size())
    return bad("preprocess has " + std::to_string(spec.preprocess_mean.size()) + " means but " +
               std::to_string(spec.preprocess_std.size()) + " stds");
  if (!spec.preprocess_mean.empty()) {
    for (float s : spec.preprocess_std)
      if (!(s > 0) || !std::isfinite(s)) return bad("preprocess std values must be > 0");
    for (float m : spec.preprocess_mean)
      if (!std::isfinite(m)) return bad("preprocess mean values must be finite");
    for (const InputSpec& in : spec.inputs)
      if (in.shape[0] != static_cast<int64_t>(spec.preprocess_mean.size()))
        return bad("preprocess has " + std::to_string(spec.preprocess_mean.size()) +
                   " channels but input " + q(in.name) + " has shape " +
                   core::shape_string(in.shape));
  }

  std::unordered_map<std::string, int> index;
  for (size_t i = 0; i < spec.layers.size(); ++i) {
    LayerSpec& l = spec.layers[i];
    if (l.name.empty()) return bad("layers[" + std::to_string(i) + "] has an empty name");
    if (input_names.count(l.name))
      return bad("layer " + q(l.name) + " has the same name as a model input");
    if (!index.emplace(l.name, static_cast<int>(i)).second)
      return bad("duplicate layer name " + q(l.name));
    IDN_RETURN_IF_ERROR(normalize_params(l));
    if (l.type == LayerType::kAggregate ? l.inputs.empty() : l.inputs.size() != 1)
      return bad(layer_where(l) + ": takes " +
                 (l.type == LayerType::kAggregate ? std::string("one or more inputs")
                                                  : std::string("exactly one input")) +
                 ", got " + std::to_string(l.inputs.size()));
  }
  IDN_RETURN_IF_ERROR(check_references(spec, index, input_names));

  if (spec.stages.empty()) return bad("model has no stages");
  std::set<std::string> names;
  for (const StageSpec& s : spec.stages) {
    if (s.name.empty()) return bad("a stage has an empty name");
    if (!names.insert(s.name).second) return bad("duplicate stage name " + q(s.name));
    if (s.layers.empty()) return bad("stage " + q(s.name) + " has no layers");
    if (std::find(s.layers.begin(), s.layers.end(), s.output) == s.layers.end())
      return bad("stage " + q(s.name) + ": output " + q(s.output) + " is not one of its layers");
  }
  names.clear();
  for (const ExitSpec& e : spec.exits) {
    if (e.name.empty()) return bad("an exit has an empty name");
    if (!names.insert(e.name).second) return bad("duplicate exit name " + q(e.name));
  }
  IDN_RETURN_IF_ERROR(check_exits(spec));
  std::vector<Owner> owners;
  IDN_RETURN_IF_ERROR(check_membership(spec, index, owners));

  for (LayerSpec& l : spec.layers) {
    std::vector<const std::vector<int64_t>*> in;
    for (const std::string& n : l.inputs) in.push_back(shapes.at(n));
    IDN_RETURN_IF_ERROR(infer_layer(l, in));
    shapes[l.name] = &l.out_shape;
  }
  for (StageSpec& s : spec.stages) {
    s.flops = 0;
    for (const std::string& n : s.layers) s.flops += spec.layers[index.at(n)].flops;
  }
  int64_t classes = -1;
  for (ExitSpec& e : spec.exits) {
    e.flops = 0;
    for (const std::string& n : e.layers) e.flops += spec.layers[index.at(n)].flops;
    const auto& shape = spec.layers[index.at(e.output)].out_shape;
    if (shape.size() != 1)
      return bad("exit " + q(e.name) + ": output " + q(e.output) + " has shape " +
                 core::shape_string(shape) +
                 "; exit logits must be a 1-D [num_classes] vector (add flatten + linear)");
    if (classes >= 0 && shape[0] != classes)
      return bad("exit " + q(e.name) + " produces " + std::to_string(shape[0]) +
                 " logits but earlier exits produce " + std::to_string(classes));
    classes = shape[0];
  }
  if (!spec.labels.empty() && static_cast<int64_t>(spec.labels.size()) != classes)
    return bad("\"labels\" has " + std::to_string(spec.labels.size()) +
               " names but the exits produce " + std::to_string(classes) + " logits");
  if (!spec.operating_point.is_object()) return bad("\"operating_point\" must be a JSON object");
  return Status::ok();
}

Result<ModelSpec> parse_model_spec(const json& j) {
  StoredFlops stored;
  IDN_ASSIGN_OR_RETURN(ModelSpec spec, parse_structure(j, stored));
  IDN_RETURN_IF_ERROR(validate_model_spec(spec));
  auto check = [](const std::optional<int64_t>& s, int64_t computed, const std::string& who) {
    if (s && *s != computed)
      return bad(who + ": stored flops " + std::to_string(*s) + " disagree with the " +
                 std::to_string(computed) +
                 " computed from its layers (edited by hand, or written by another version)");
    return Status::ok();
  };
  for (size_t i = 0; i < spec.stages.size(); ++i)
    IDN_RETURN_IF_ERROR(
        check(stored.stages[i], spec.stages[i].flops, "stage " + q(spec.stages[i].name)));
  for (size_t i = 0; i < spec.exits.size(); ++i)
    IDN_RETURN_IF_ERROR(
        check(stored.exits[i], spec.exits[i].flops, "exit " + q(spec.exits[i].name)));
  return spec;
}

Result<ModelSpec> parse_model_spec_text(std::string_view text) {
  IDN_ASSIGN_OR_RETURN(json j, parse_json_strict(text, kMaxJsonDepth));
  return parse_model_spec(j);
}

json to_json(const ModelSpec& spec) {
  json j = json::object();
  j["format"] = kFormat;
  j["version"] = kVersion;
  j["name"] = spec.name;
  j["motif"] = spec.motif;
  json inputs = json::array();
  for (const InputSpec& in : spec.inputs)
    inputs.push_back(
        {{"name", in.name}, {"dtype", core::dtype_name(in.dtype)}, {"shape", in.shape}});
  j["inputs"] = inputs;
  if (!spec.preprocess_mean.empty() || !spec.preprocess_std.empty()) {
    json mean = json::array(), sd = json::array();
    for (float m : spec.preprocess_mean) mean.push_back(float_for_json(m));
    for (float s : spec.preprocess_std) sd.push_back(float_for_json(s));
    j["preprocess"] = {{"mean", mean}, {"std", sd}};
  }
  if (!spec.labels.empty()) j["labels"] = spec.labels;
  json layers = json::array();
  for (const LayerSpec& l : spec.layers) {
    json o = {{"name", l.name}, {"type", layer_type_name(l.type)}, {"inputs", l.inputs}};
    if (l.params.is_object() && !l.params.empty()) o["params"] = l.params;
    layers.push_back(std::move(o));
  }
  j["layers"] = layers;
  json stages = json::array();
  for (const StageSpec& s : spec.stages)
    stages.push_back(
        {{"name", s.name}, {"layers", s.layers}, {"output", s.output}, {"flops", s.flops}});
  j["stages"] = stages;
  json exits = json::array();
  for (const ExitSpec& e : spec.exits)
    exits.push_back({{"name", e.name},
                     {"stage", e.stage},
                     {"layers", e.layers},
                     {"output", e.output},
                     {"criterion", criterion_name(e.criterion)},
                     {"threshold", e.threshold},
                     {"temperature", e.temperature},
                     {"flops", e.flops}});
  j["exits"] = exits;
  if (spec.operating_point.is_object() && !spec.operating_point.empty())
    j["operating_point"] = spec.operating_point;
  return j;
}

std::string to_json_text(const ModelSpec& spec) {
  return to_json(spec).dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

Status check_weights(const ModelSpec& spec, const std::map<std::string, core::Tensor>& weights) {
  std::set<std::string> required;
  for (const WeightSpec& w : spec.required_weights()) {
    required.insert(w.name);
    auto it = weights.find(w.name);
    if (it == weights.end())
      return bad("missing weight " + q(w.name) + " (expected F32 " + core::shape_string(w.shape) +
                 ")");
    const core::Tensor& t = it->second;
    if (t.dtype != core::DType::kF32)
      return bad("weight " + q(w.name) + " has dtype " + std::string(core::dtype_name(t.dtype)) +
                 "; expected F32");
    if (t.shape != w.shape)
      return bad("weight " + q(w.name) + " has shape " + core::shape_string(t.shape) +
                 "; expected " + core::shape_string(w.shape));
    Status st = t.validate();
    if (!st.is_ok()) return st.with_context("weight " + q(w.name));
  }
  for (const auto& [name, t] : weights)
    if (!required.count(name))
      return bad("unexpected weight " + q(name) + " (no layer of the model uses it)");
  return Status::ok();
}

}  // namespace idn::model
