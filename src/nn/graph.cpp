#include "nn/graph.h"

#include <algorithm>
#include <cstring>
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

torch::Tensor GraphImpl::run_layer(int idx, Activations& acts) {
  const auto& l = spec_.layers[idx];
  const auto& ins = layer_inputs_[idx];
  const torch::Tensor& x = acts[ins[0]];
  const auto& p = l.params;
  torch::Tensor y;
  switch (l.type) {
    case LayerType::kLinear: {
      const auto& fc = modules_[idx].get<torch::nn::Linear>();
      y = nn::linear(x, fc->weight, fc->bias);
      break;
    }
    case LayerType::kConv2d:
      y = packed_conv_[idx].forward(*modules_[idx].get<torch::nn::Conv2d>(), x);
      break;
    case LayerType::kBatchNorm:
    case LayerType::kDropout:
    case LayerType::kLRN:
      y = modules_[idx].forward(x);
      break;
    case LayerType::kReLU:
      y = torch::relu(x);
      break;
    case LayerType::kMaxPool2d: {
      int64_t k = param(p, "kernel", 2);
      y = nn::max_pool2d(x, k, param(p, "stride", k), param(p, "padding", 0));
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
  return Status::ok();
}

torch::Tensor GraphImpl::run_stage(int s, Activations& acts) {
  ++stage_runs_[s];
  for (int li : stage_layers_[s]) run_layer(li, acts);
  return acts[stage_output_slot_[s]];
}

torch::Tensor GraphImpl::run_exit(int e, Activations& acts) {
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
