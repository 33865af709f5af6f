#include "nn/graph.h"

#include <algorithm>
#include <cstring>
#include <optional>
#include <stdexcept>

#include "nn/inference_ops.h"

namespace idn::nn {
namespace {

using model::LayerType;

int64_t param(const nlohmann::json& p, const char* key, int64_t fallback) {
  return p.contains(key) ? p.at(key).get<int64_t>() : fallback;
}
double paramf(const nlohmann::json& p, const char* key, double fallback) {
  return p.contains(key) ? p.at(key).get<double>() : fallback;
}

std::string module_name(const std::string& layer) {
  std::string s = layer;
  for (char& c : s)
    if (c == '.') c = '_';
  return s;
}

}  // namespace

void GraphImpl::train(bool on) {
  if (on != is_training())
    for (auto& p : packed_conv_) p.reset();
  torch::nn::Module::train(on);
}

GraphImpl::GraphImpl(model::ModelSpec spec) : spec_(std::move(spec)) {
  num_inputs_ = static_cast<int>(spec_.inputs.size());
  std::map<std::string, int> slot;
  std::map<std::string, size_t> rank;  // per-sample rank of each node's output
  for (int i = 0; i < num_inputs_; ++i) {
    slot[spec_.inputs[i].name] = i;
    rank[spec_.inputs[i].name] = spec_.inputs[i].shape.size();
  }
  modules_.resize(spec_.layers.size());
  packed_conv_.resize(spec_.layers.size());
  layer_inputs_.resize(spec_.layers.size());
  for (size_t li = 0; li < spec_.layers.size(); ++li) {
    const auto& l = spec_.layers[li];
    const auto& p = l.params;
    for (const auto& in : l.inputs) layer_inputs_[li].push_back(slot.at(in));
    size_t in_rank = l.inputs.empty() ? 0 : rank.at(l.inputs[0]);
    torch::nn::AnyModule m;
    switch (l.type) {
      case LayerType::kConv2d:
        m = torch::nn::AnyModule(torch::nn::Conv2d(
            torch::nn::Conv2dOptions(param(p, "in_channels", 0), param(p, "out_channels", 0),
                                     param(p, "kernel", 1))
                .stride(param(p, "stride", 1))
                .padding(param(p, "padding", 0))
                .bias(p.value("bias", true))));
        break;
      case LayerType::kLinear:
        m = torch::nn::AnyModule(torch::nn::Linear(
            torch::nn::LinearOptions(param(p, "in_features", 0), param(p, "out_features", 0))
                .bias(p.value("bias", true))));
        break;
      case LayerType::kBatchNorm: {
        int64_t c = param(p, "num_features", 0);
        double eps = paramf(p, "eps", 1e-5), mom = paramf(p, "momentum", 0.1);
        if (in_rank == 1)
          m = torch::nn::AnyModule(
              torch::nn::BatchNorm1d(torch::nn::BatchNorm1dOptions(c).eps(eps).momentum(mom)));
        else
          m = torch::nn::AnyModule(
              torch::nn::BatchNorm2d(torch::nn::BatchNorm2dOptions(c).eps(eps).momentum(mom)));
        break;
      }
      case LayerType::kDropout:
        m = torch::nn::AnyModule(torch::nn::Dropout(paramf(p, "p", 0.5)));
        break;
      case LayerType::kLRN:
        m = torch::nn::AnyModule(
            torch::nn::LocalResponseNorm(torch::nn::LocalResponseNormOptions(param(p, "size", 5))
                                             .alpha(paramf(p, "alpha", 1e-4))
                                             .beta(paramf(p, "beta", 0.75))
                                             .k(paramf(p, "k", 1.0))));
        break;
      default:
        break;
    }
    if (!m.is_empty()) {
      register_module(module_name(l.name), m.ptr());
      modules_[li] = std::move(m);
    }
    slot[l.name] = num_inputs_ + static_cast<int>(li);
    rank[l.name] = l.out_shape.empty() ? in_rank : l.out_shape.size();
    if (l.type == LayerType::kFlatten) rank[l.name] = 1;
  }
  std::map<std::string, int> layer_index;
  for (size_t li = 0; li < spec_.layers.size(); ++li) layer_index[spec_.layers[li].name] = li;
  for (const auto& s : spec_.stages) {
    std::vector<int> idx;
    for (const auto& n : s.layers) idx.push_back(layer_index.at(n));
    stage_layers_.push_back(std::move(idx));
    stage_output_slot_.push_back(slot.at(s.output));
  }
  for (const auto& e : spec_.exits) {
    std::vector<int> idx;
    for (const auto& n : e.layers) idx.push_back(layer_index.at(n));
    exit_layers_.push_back(std::move(idx));
    exit_output_slot_.push_back(slot.at(e.output));
  }
  stage_runs_.assign(spec_.stages.size(), 0);
  plan_inference();
}

void GraphImpl::plan_inference() {
  const size_t n = spec_.layers.size();
  std::vector<std::vector<int>> readers(num_inputs_ + n);
  for (size_t li = 0; li < n; ++li)
    for (int s : layer_inputs_[li]) readers[s].push_back(static_cast<int>(li));
  std::vector<char> pinned(num_inputs_ + n, 0);  // stage and exit outputs: always dense
  for (int s : stage_output_slot_) pinned[s] = 1;
  for (int s : exit_output_slot_) pinned[s] = 1;
  auto chainable = [&](int li) {
    const LayerType t = spec_.layers[li].type;
    return (t == LayerType::kConv2d || t == LayerType::kReLU || t == LayerType::kMaxPool2d) &&
           layer_inputs_[li].size() == 1;
  };
  blocked_out_.assign(n, 0);
  relu_in_place_.assign(n, 0);
  for (size_t li = 0; li < n; ++li) {
    const LayerType t = spec_.layers[li].type;
    const int in = layer_inputs_[li].empty() ? -1 : layer_inputs_[li][0];
    const int from = in - num_inputs_;  // the layer producing the input, if any
    // A conv or linear output is a fresh tensor: its only reader may overwrite it.
    if (t == LayerType::kReLU && from >= 0 && !pinned[in] && readers[in].size() == 1 &&
        (spec_.layers[from].type == LayerType::kConv2d ||
         spec_.layers[from].type == LayerType::kLinear))
      relu_in_place_[li] = 1;
    const int slot = num_inputs_ + static_cast<int>(li);
    if (!chainable(li) || pinned[slot] || readers[slot].empty()) continue;
    if (t != LayerType::kConv2d && !(from >= 0 && blocked_out_[from])) continue;
    blocked_out_[li] = std::all_of(readers[slot].begin(), readers[slot].end(), chainable);
  }
}

Status GraphImpl::load_weights(const std::map<std::string, core::Tensor>& weights) {
  torch::NoGradGuard no_grad;
  for (size_t li = 0; li < spec_.layers.size(); ++li) {
    if (modules_[li].is_empty()) continue;
    const auto& lname = spec_.layers[li].name;
    auto assign = [&](const std::string& key, torch::Tensor& dst) -> Status {
      auto it = weights.find(lname + "." + key);
      if (it == weights.end())
        return Status::not_found("weight '" + lname + "." + key + "' missing");
      auto src = to_torch(it->second);
      if (src.sizes() != dst.sizes())
        return Status::invalid_argument("weight '" + lname + "." + key + "' has shape " +
                                        core::shape_string(it->second.shape) + ", layer needs " +
                                        core::shape_string(dst.sizes().vec()));
      dst.copy_(src);
      return Status::ok();
    };
    auto* mod = modules_[li].ptr().get();
    for (auto& p : mod->named_parameters(/*recurse=*/false))
      IDN_RETURN_IF_ERROR(assign(p.key(), p.value()));
    for (auto& b : mod->named_buffers(/*recurse=*/false)) {
      if (b.key() == "num_batches_tracked") continue;
      IDN_RETURN_IF_ERROR(assign(b.key(), b.value()));
    }
  }
  return Status::ok();
}

std::map<std::string, core::Tensor> GraphImpl::export_weights() const {
  std::map<std::string, core::Tensor> out;
  for (size_t li = 0; li < spec_.layers.size(); ++li) {
    if (modules_[li].is_empty()) continue;
    const auto& lname = spec_.layers[li].name;
    const auto* mod = modules_[li].ptr().get();
    for (const auto& p : mod->named_parameters(false))
      out[lname + "." + p.key()] = from_torch(p.value());
    for (const auto& b : mod->named_buffers(false)) {
      if (b.key() == "num_batches_tracked") continue;
      out[lname + "." + b.key()] = from_torch(b.value());
    }
  }
  return out;
}

Activations GraphImpl::begin(const std::vector<torch::Tensor>& inputs) const {
  Activations acts(num_inputs_ + spec_.layers.size());
  for (int i = 0; i < num_inputs_ && i < static_cast<int>(inputs.size()); ++i) acts[i] = inputs[i];
  return acts;
}

std::vector<std::string> GraphImpl::blocked_layers() const {
  std::vector<std::string> out;
  for (size_t li = 0; li < spec_.layers.size(); ++li)
    if (blocked_out_[li]) out.push_back(spec_.layers[li].name);
  return out;
}

torch::Tensor GraphImpl::run_layer(int idx, Activations& acts) {
  const auto& l = spec_.layers[idx];
  const auto& ins = layer_inputs_[idx];
  const bool planned = blocked_on_ && !is_training() && !torch::GradMode::is_enabled() &&
                       unit_mask_.empty() && slice_.empty();
  const bool keep_blocked = planned && blocked_out_[idx];
  if (l.type != LayerType::kConv2d && l.type != LayerType::kReLU && l.type != LayerType::kMaxPool2d)
    for (int s : ins)
      if (acts[s].defined() && acts[s].is_mkldnn()) acts[s] = acts[s].to_dense();
  const torch::Tensor& x = acts[ins[0]];
  const auto& p = l.params;
  torch::Tensor y;
  if (!slice_.empty() && (slice_[idx].out.defined() || slice_[idx].in.defined())) {
    const Slice& sl = slice_[idx];
    torch::Tensor w, b;
    if (l.type == LayerType::kLinear) {
      const auto& fc = modules_[idx].get<torch::nn::Linear>();
      w = fc->weight, b = fc->bias;
    } else {
      const auto& conv = modules_[idx].get<torch::nn::Conv2d>();
      w = conv->weight, b = conv->bias;
    }
    if (sl.out.defined()) {
      w = w.index_select(0, sl.out);
      if (b.defined()) b = b.index_select(0, sl.out);
    }
    if (sl.in.defined()) w = w.index_select(1, sl.in);
    if (l.type == LayerType::kLinear) {
      y = torch::nn::functional::linear(x, w, b);
    } else {
      y = torch::conv2d(x, w, b, param(p, "stride", 1), param(p, "padding", 0));
    }
    if (sl.scale != 1) y = y * sl.scale;
    acts[num_inputs_ + idx] = y;
    return y;
  }
  switch (l.type) {
    case LayerType::kLinear: {
      const auto& fc = modules_[idx].get<torch::nn::Linear>();
      y = nn::linear(x, fc->weight, fc->bias);
      break;
    }
    case LayerType::kConv2d:
      y = packed_conv_[idx].forward(*modules_[idx].get<torch::nn::Conv2d>(), x, keep_blocked);
      break;
    case LayerType::kBatchNorm:
    case LayerType::kDropout:
    case LayerType::kLRN:
      y = modules_[idx].forward(x);
      break;
    case LayerType::kReLU:
      y = relu_inference(x, planned && relu_in_place_[idx], !keep_blocked);
      break;
    case LayerType::kMaxPool2d: {
      int64_t k = param(p, "kernel", 2);
      y = max_pool2d_inference(x, k, param(p, "stride", k), param(p, "padding", 0), !keep_blocked);
      break;
    }
    case LayerType::kAvgPool2d: {
      int64_t k = param(p, "kernel", 2);
      y = torch::avg_pool2d(x, k, param(p, "stride", k), param(p, "padding", 0));
      break;
    }
    case LayerType::kFlatten:
      y = x.flatten(1);
      break;
    case LayerType::kSoftmax:
      y = torch::softmax(x, -1);
      break;
    case LayerType::kAggregate: {
      std::vector<torch::Tensor> xs;
      for (int s : ins) xs.push_back(acts[s]);
      std::string op = p.value("op", "max");
      if (op == "concat")
        y = torch::cat(xs, 1);
      else if (op == "avg")
        y = torch::stack(xs, 0).mean(0);
      else
        y = std::get<0>(torch::stack(xs, 0).max(0));
      break;
    }
  }
  if (!unit_mask_.empty() && unit_mask_[idx].defined()) y = y * unit_mask_[idx];
  acts[num_inputs_ + idx] = y;
  return y;
}

Status GraphImpl::set_unit_masks(const std::map<std::string, torch::Tensor>& masks) {
  std::vector<torch::Tensor> out;
  if (!masks.empty()) out.resize(spec_.layers.size());
  for (const auto& [name, m] : masks) {
    auto it = std::find_if(spec_.layers.begin(), spec_.layers.end(),
                           [&](const model::LayerSpec& l) { return l.name == name; });
    if (it == spec_.layers.end())
      return Status::invalid_argument("unit mask for unknown layer '" + name + "'");
    const auto& shape = it->out_shape;
    if (shape.empty() || m.dim() != 1 || m.scalar_type() != torch::kFloat32 ||
        m.size(0) != shape[0])
      return Status::invalid_argument("unit mask for layer '" + name + "' must be F32 [" +
                                      std::to_string(shape.empty() ? 0 : shape[0]) + "]");
    std::vector<int64_t> view(shape.size() + 1, 1);
    view[1] = shape[0];
    out[it - spec_.layers.begin()] = m.detach().reshape(view).contiguous();
  }
  unit_mask_ = std::move(out);
  slice_.clear();
  return Status::ok();
}

Status GraphImpl::set_unit_selection(const std::map<std::string, UnitSelection>& selection) {
  std::vector<Slice> out(spec_.layers.size());
  std::map<std::string, const UnitSelection*> pending;
  for (const auto& [name, sel] : selection) pending[name] = &sel;
  auto index = [](const std::vector<int64_t>& v) {
    return torch::tensor(v, torch::TensorOptions().dtype(torch::kInt64));
  };
  // Per node: the kept indices along dim 1 of its output when a thinned layer's units reach it.
  std::map<std::string, std::vector<int64_t>> carried;
  for (size_t li = 0; li < spec_.layers.size(); ++li) {
    const model::LayerSpec& l = spec_.layers[li];
    const std::vector<int64_t>* in_kept = nullptr;
    for (const auto& in : l.inputs)
      if (auto it = carried.find(in); it != carried.end()) in_kept = &it->second;
    const bool weighted = l.type == LayerType::kConv2d || l.type == LayerType::kLinear;
    auto sel = pending.find(l.name);
    if (sel != pending.end() && !weighted)
      return Status::invalid_argument("unit selection for layer '" + l.name +
                                      "', which is not conv2d or linear");
    if (weighted) {
      if (in_kept) out[li].in = index(*in_kept);
      if (sel != pending.end()) {
        const auto& kept = sel->second->kept;
        const int64_t units = l.out_shape.empty() ? 0 : l.out_shape[0];
        for (size_t i = 0; i < kept.size(); ++i)
          if (kept[i] < 0 || kept[i] >= units || (i > 0 && kept[i] <= kept[i - 1]))
            return Status::invalid_argument("unit selection for layer '" + l.name +
                                            "' must be sorted distinct indices below " +
                                            std::to_string(units));
        if (kept.empty())
          return Status::invalid_argument("unit selection for layer '" + l.name +
                                          "' keeps no unit");
        out[li].out = index(kept);
        out[li].scale = sel->second->scale;
        carried[l.name] = kept;
        pending.erase(sel);
      }
      continue;
    }
    if (!in_kept) continue;
    switch (l.type) {
      case LayerType::kReLU:
      case LayerType::kMaxPool2d:
      case LayerType::kAvgPool2d:
      case LayerType::kDropout:
        carried[l.name] = *in_kept;
        break;
      case LayerType::kFlatten: {
        // Unit c of a [C, H, W] input becomes features c*H*W .. (c+1)*H*W - 1.
        int64_t per_unit = 1;
        if (const auto* src = spec_.layer(l.inputs[0]))
          for (size_t d = 1; d < src->out_shape.size(); ++d) per_unit *= src->out_shape[d];
        std::vector<int64_t> f;
        f.reserve(in_kept->size() * per_unit);
        for (int64_t c : *in_kept)
          for (int64_t j = 0; j < per_unit; ++j) f.push_back(c * per_unit + j);
        carried[l.name] = std::move(f);
        break;
      }
      default:
        return Status::invalid_argument(
            "layer '" + l.name + "' (" + std::string(model::layer_type_name(l.type)) +
            ") reads thinned units; a unit selection passes only through relu, pooling, "
            "dropout and flatten");
    }
  }
  if (!pending.empty())
    return Status::invalid_argument("unit selection for unknown layer '" + pending.begin()->first +
                                    "'");
  for (const auto& e : spec_.exits)
    if (carried.count(e.output))
      return Status::invalid_argument("exit '" + e.name + "' would output thinned units");
  unit_mask_.clear();
  slice_ = selection.empty() ? std::vector<Slice>{} : std::move(out);
  return Status::ok();
}

torch::Tensor GraphImpl::run_stage(int s, Activations& acts) {
  ++stage_runs_[s];
  std::optional<DenormalsAreZero> daz;
  if (!torch::GradMode::is_enabled()) daz.emplace();
  for (int li : stage_layers_[s]) run_layer(li, acts);
  return acts[stage_output_slot_[s]];
}

torch::Tensor GraphImpl::run_exit(int e, Activations& acts) {
  std::optional<DenormalsAreZero> daz;
  if (!torch::GradMode::is_enabled()) daz.emplace();
  for (int li : exit_layers_[e]) run_layer(li, acts);
  return acts[exit_output_slot_[e]];
}

void GraphImpl::set_stage_output(int s, Activations& acts, torch::Tensor value) const {
  acts[stage_output_slot_[s]] = std::move(value);
}

std::vector<torch::Tensor> GraphImpl::forward_all(const torch::Tensor& x) {
  auto acts = begin({x});
  std::vector<torch::Tensor> logits(spec_.exits.size());
  for (int s = 0; s < num_stages(); ++s) {
    run_stage(s, acts);
    for (int e = 0; e < num_exits(); ++e)
      if (spec_.exits[e].stage == s) logits[e] = run_exit(e, acts);
  }
  return logits;
}

void GraphImpl::reset_stage_runs() {
  std::fill(stage_runs_.begin(), stage_runs_.end(), 0);
}

torch::Tensor to_torch(const core::Tensor& t, bool borrow) {
  auto blob = torch::from_blob(const_cast<uint8_t*>(t.bytes.data()), t.shape,
                               torch::TensorOptions().dtype(torch::kFloat32));
  return borrow ? blob : blob.clone();
}

core::Tensor from_torch(const torch::Tensor& t) {
  auto c = t.detach().to(torch::kFloat32).contiguous();
  core::Tensor out{core::DType::kF32, c.sizes().vec(), {}};
  out.bytes.resize(c.numel() * sizeof(float));
  if (c.numel()) std::memcpy(out.bytes.data(), c.data_ptr<float>(), out.bytes.size());
  return out;
}

}  // namespace idn::nn
