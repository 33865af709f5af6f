#include "motifs/ddnn.h"

#include <algorithm>
#include <cctype>
#include <limits>
#include <map>
#include <set>

#include "model/file_io.h"
#include "model/safetensors.h"
#include "model/strict_json.h"
#include "nn/binary_export.h"
#include "nn/graph.h"

namespace idn::motifs {
namespace {

namespace fs = std::filesystem;

int64_t pooled(int64_t s, int64_t blocks) {
  for (int64_t i = 0; i < blocks; ++i) s = (s - 1) / 2 + 1;
  return s;
}

// Channels after aggregating k inputs of `c` channels.
int64_t aggregated(Aggregation op, int64_t k, int64_t c) {
  return op == Aggregation::kConcat ? k * c : c;
}

std::shared_ptr<torch::nn::Module> holder(torch::nn::Module& parent, const std::string& name) {
  return parent.register_module(name, std::make_shared<torch::nn::Module>());
}

std::vector<nn::ConvP> conv_stack(torch::nn::Module& parent, int64_t in, int64_t filters,
                                  int64_t blocks) {
  std::vector<nn::ConvP> out;
  for (int64_t i = 0; i < blocks; ++i) {
    nn::ConvPOptions o;
    o.in_channels = i == 0 ? in : filters;
    o.out_channels = filters;
    out.push_back(parent.register_module("conv" + std::to_string(i), nn::ConvP(o)));
  }
  return out;
}

nn::Fc scores_fc(torch::nn::Module& parent, const std::string& name, int64_t in, int64_t classes) {
  nn::FcOptions o;
  o.in_features = in;
  o.out_features = classes;
  o.activation = nn::Activation::kNone;
  return parent.register_module(name, nn::Fc(o));
}

torch::Tensor run_convs(std::vector<nn::ConvP>& convs, torch::Tensor x) {
  for (auto& c : convs) x = c->forward(x);
  return x;
}

}  // namespace

torch::Tensor aggregate(Aggregation op, const torch::Tensor& x, const torch::Tensor& present) {
  TORCH_CHECK(x.dim() >= 3 && present.dim() == 2 && present.size(0) == x.size(0) &&
                  present.size(1) == x.size(1),
              "aggregate: x [N, K, D, ...] and present [N, K] expected");
  auto shape = present.sizes().vec();
  shape.resize(static_cast<size_t>(x.dim()), 1);
  const auto mask = present.to(torch::kBool).view(shape);
  std::vector<int64_t> reduced(static_cast<size_t>(x.dim() - 1), 1);  // [N, 1, ...]
  reduced[0] = x.size(0);
  switch (op) {
    case Aggregation::kMax: {
      const auto m =
          torch::where(mask, x,
                       torch::full({}, -std::numeric_limits<float>::infinity(), x.options()))
              .amax(1);
      return torch::where(present.to(torch::kBool).any(1).view(reduced), m,
                          torch::zeros({}, x.options()));
    }
    case Aggregation::kAverage: {
      const auto count = present.to(x.scalar_type()).sum(1).clamp_min(1);
      return (x * mask.to(x.scalar_type())).sum(1) / count.view(reduced);
    }
    case Aggregation::kConcat: {
      auto out = (x * mask.to(x.scalar_type()));
      auto flat = out.sizes().vec();
      flat.erase(flat.begin() + 1);
      flat[1] = x.size(1) * x.size(2);
      return out.reshape(flat);
    }
  }
  return x;
}

DdnnImpl::DdnnImpl(DdnnConfig config) : config_(std::move(config)) {
  const auto& c = config_;
  const int64_t n = c.devices();
  const auto feat = device_feature_shape(c);
  for (int64_t d = 0; d < n; ++d) {
    auto h = holder(*this, "device" + std::to_string(d));
    device_convs_.push_back(conv_stack(*h, c.channels, c.device_filters, c.device_blocks));
    if (c.has_local()) device_fc_.push_back(scores_fc(*h, "fc", feat.size(), c.classes));
  }
  if (c.has_local() && c.local == Aggregation::kConcat)
    local_map_ = scores_fc(*this, "local_map", n * c.classes, c.classes);
  int64_t cloud_in = feat.c, cloud_size = feat.h, cloud_k = n;
  if (c.has_edge()) {
    const int64_t es = pooled(feat.h, c.edge_blocks);
    for (int64_t g = 0; g < c.edges; ++g) {
      auto [first, last] = c.edge_devices(g);
      auto h = holder(*this, "edge" + std::to_string(g));
      edge_convs_.push_back(
          conv_stack(*h, aggregated(c.edge, last - first, feat.c), c.edge_filters, c.edge_blocks));
      edge_fc_.push_back(scores_fc(*h, "fc", c.edge_filters * es * es, c.classes));
    }
    if (c.edges > 1 && c.local == Aggregation::kConcat)
      edge_map_ = scores_fc(*this, "edge_map", c.edges * c.classes, c.classes);
    cloud_in = c.edge_filters;
    cloud_size = es;
    cloud_k = c.edges;
  }
  auto h = holder(*this, "cloud");
  cloud_convs_ =
      conv_stack(*h, aggregated(c.cloud, cloud_k, cloud_in), c.cloud_filters, c.cloud_blocks);
  const int64_t cs = pooled(cloud_size, c.cloud_blocks);
  cloud_fc_ = scores_fc(*h, "fc", c.cloud_filters * cs * cs, c.classes);
}

DdnnImpl::DeviceOut DdnnImpl::device_forward(int64_t d, const torch::Tensor& view) {
  DeviceOut out;
  out.features = run_convs(device_convs_.at(static_cast<size_t>(d)), view);
  if (config_.has_local()) out.scores = device_fc_[static_cast<size_t>(d)]->forward(out.features);
  return out;
}

torch::Tensor DdnnImpl::local_forward(const torch::Tensor& scores, const torch::Tensor& present) {
  auto a = aggregate(config_.local, scores, present);
  return local_map_ ? local_map_->forward(a) : a;
}

DdnnImpl::EdgeOut DdnnImpl::edge_forward(int64_t g, const torch::Tensor& features,
                                         const torch::Tensor& present) {
  EdgeOut out;
  out.features =
      run_convs(edge_convs_.at(static_cast<size_t>(g)), aggregate(config_.edge, features, present));
  out.scores = edge_fc_[static_cast<size_t>(g)]->forward(out.features);
  return out;
}

torch::Tensor DdnnImpl::edge_exit(const torch::Tensor& scores, const torch::Tensor& present) {
  if (config_.edges == 1) return scores.select(1, 0);
  auto a = aggregate(config_.local, scores, present);
  return edge_map_ ? edge_map_->forward(a) : a;
}

torch::Tensor DdnnImpl::cloud_forward(const torch::Tensor& features, const torch::Tensor& present) {
  return cloud_fc_->forward(run_convs(cloud_convs_, aggregate(config_.cloud, features, present)));
}

// An absent view neither costs a device run nor enters batch norm's statistics: the device runs
// on the present rows and the others are 0. In training a lone row cannot be batch-normalised,
// so then every row runs (the absent ones stay masked by the aggregations).
DdnnImpl::DeviceOut DdnnImpl::device_rows(int64_t d, const torch::Tensor& view,
                                          const torch::Tensor& rows) {
  const int64_t n = view.size(0);
  const auto idx = rows.nonzero().squeeze(1);
  const int64_t k = idx.size(0);
  if (k == n || (is_training() && k == 1)) return device_forward(d, view);
  const auto feat = device_feature_shape(config_);
  auto zeros = [&](std::vector<int64_t> shape) { return torch::zeros(shape, view.options()); };
  DeviceOut out;
  if (k == 0) {
    out.features = zeros({n, feat.c, feat.h, feat.w});
    if (config_.has_local()) out.scores = zeros({n, config_.classes});
    return out;
  }
  auto o = device_forward(d, view.index_select(0, idx));
  out.features = zeros({n, feat.c, feat.h, feat.w}).index_copy(0, idx, o.features);
  if (o.scores.defined()) out.scores = zeros({n, config_.classes}).index_copy(0, idx, o.scores);
  return out;
}

DdnnOutput DdnnImpl::forward(const torch::Tensor& views, const torch::Tensor& present) {
  const auto& c = config_;
  TORCH_CHECK(views.dim() == 5 && views.size(1) == c.devices() && present.dim() == 2 &&
                  present.size(0) == views.size(0) && present.size(1) == c.devices(),
              "Ddnn::forward: views [N, devices, C, H, W] and present [N, devices] expected");
  DdnnOutput out;
  out.present = present.to(torch::kBool);
  for (int64_t d = 0; d < c.devices(); ++d) {
    auto o = device_rows(d, views.select(1, d), out.present.select(1, d));
    out.device_features.push_back(o.features);
    if (o.scores.defined()) out.device_scores.push_back(o.scores);
  }
  if (c.has_local()) out.local = local_forward(torch::stack(out.device_scores, 1), out.present);
  auto features = torch::stack(out.device_features, 1);
  if (!c.has_edge()) {
    out.cloud = cloud_forward(features, out.present);
    return out;
  }
  std::vector<torch::Tensor> edge_features, edge_scores, edge_present;
  for (int64_t g = 0; g < c.edges; ++g) {
    auto [first, last] = c.edge_devices(g);
    const auto p = out.present.narrow(1, first, last - first);
    auto e = edge_forward(g, features.narrow(1, first, last - first), p);
    edge_features.push_back(e.features);
    edge_scores.push_back(e.scores);
    edge_present.push_back(p.any(1));
  }
  const auto ep = torch::stack(edge_present, 1);
  out.edge = edge_exit(torch::stack(edge_scores, 1), ep);
  out.cloud = cloud_forward(torch::stack(edge_features, 1), ep);
  return out;
}

void DdnnImpl::clip_weights() {
  for (auto& m : modules(/*include_self=*/false)) {
    if (auto* conv = m->as<nn::ConvPImpl>()) conv->clip_weights();
    if (auto* fc = m->as<nn::FcImpl>()) fc->clip_weights();
  }
}

std::vector<nn::SectionBlock> DdnnImpl::device_blocks(int64_t d) const {
  std::vector<nn::SectionBlock> out;
  for (const auto& c : device_convs_.at(static_cast<size_t>(d))) out.emplace_back(c);
  if (config_.has_local()) out.emplace_back(device_fc_[static_cast<size_t>(d)]);
  return out;
}

bool exits_at(double normalized_entropy, double threshold) {
  if (threshold >= 1) return true;
  if (threshold <= 0) return false;
  return normalized_entropy <= threshold;
}

namespace {

nlohmann::json sections_json(const DdnnConfig& c) {
  auto shape = [](ondevice::Shape s) { return std::vector<int64_t>{s.c, s.h, s.w}; };
  const auto feat = device_feature_shape(c);
  nlohmann::json sections = nlohmann::json::array();
  for (int64_t d = 0; d < c.devices(); ++d) {
    const std::string name = "device" + std::to_string(d);
    nlohmann::json s = {{"name", name},
                        {"role", c.letter == 'a' ? "sensor" : "device"},
                        {"view", c.views[static_cast<size_t>(d)]},
                        {"inputs",
                         {{{"name", "view"},
                           {"shape", {c.channels, c.size, c.size}},
                           {"values", "pixels 0..255"}}}}};
    if (c.letter == 'a') {
      s["weights_prefixes"] = nlohmann::json::array();
      s["outputs"] = {{{"name", "view"}, {"shape", {c.channels, c.size, c.size}}}};
    } else {
      s["weights_prefixes"] = {name + "."};
      s["outputs"] = {{{"name", "features"}, {"shape", shape(feat)}, {"values", "+-1 bits"}},
                      {{"name", "scores"}, {"shape", {c.classes}}}};
      s["ondevice"] = name + ".idnb";
    }
    sections.push_back(s);
  }
  if (c.has_local())
    sections.push_back(
        {{"name", "local"},
         {"role", "local_aggregator"},
         {"aggregation", aggregation_name(c.local)},
         {"weights_prefixes",
          c.local == Aggregation::kConcat ? nlohmann::json{"local_map."} : nlohmann::json::array()},
         {"inputs", {{{"name", "device scores"}, {"shape", {c.devices(), c.classes}}}}},
         {"outputs", {{{"name", "scores"}, {"shape", {c.classes}}}}}});
  for (int64_t g = 0; g < c.edges; ++g) {
    auto [first, last] = c.edge_devices(g);
    const std::string name = "edge" + std::to_string(g);
    sections.push_back(
        {{"name", name},
         {"role", "edge"},
         {"aggregation", aggregation_name(c.edge)},
         {"devices", {first, last}},
         {"weights_prefixes", {name + "."}},
         {"inputs",
          {{{"name", "device features"}, {"shape", {last - first, feat.c, feat.h, feat.w}}}}}});
  }
  if (c.edges > 1)
    sections.push_back(
        {{"name", "edge"},
         {"role", "edge_aggregator"},
         {"aggregation", aggregation_name(c.local)},
         {"weights_prefixes", c.local == Aggregation::kConcat ? nlohmann::json{"edge_map."}
                                                              : nlohmann::json::array()}});
  nlohmann::json cloud_prefixes = {"cloud."};
  if (c.letter == 'a') cloud_prefixes.push_back("device0.");
  sections.push_back({{"name", "cloud"},
                      {"role", "cloud"},
                      {"aggregation", aggregation_name(c.cloud)},
                      {"weights_prefixes", cloud_prefixes},
                      {"outputs", {{{"name", "scores"}, {"shape", {c.classes}}}}}});
  return sections;
}

std::map<std::string, torch::Tensor> state_of(DdnnImpl& m) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : m.named_parameters()) out[p.key()] = p.value();
  for (const auto& b : m.named_buffers()) out[b.key()] = b.value();
  return out;
}

}  // namespace

Status save_ddnn(const DdnnPackage& package, const std::filesystem::path& dir) {
  if (!package.model) return Status::invalid_argument("save_ddnn: no model");
  auto& m = *package.model.ptr();
  const auto& c = m.config();
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Status::io_error("cannot create " + dir.string() + ": " + ec.message());
  std::map<std::string, core::Tensor> weights;
  for (const auto& [name, t] : state_of(m)) weights[name] = nn::from_torch(t.detach());
  if (Status s = model::save_safetensors(dir / "weights.safetensors", weights); !s.is_ok())
    return s;
  nlohmann::json sections = sections_json(c);
  if (c.has_local()) {
    for (int64_t d = 0; d < c.devices(); ++d) {
      auto section = nn::export_section(m.device_blocks(d), ondevice::InputKind::kPixels,
                                        {c.channels, c.size, c.size});
      if (!section.ok()) return section.status().with_context("device " + std::to_string(d));
      const auto bytes = section->serialize();
      if (Status s =
              model::write_file_atomic(dir / ("device" + std::to_string(d) + ".idnb"), bytes);
          !s.is_ok())
        return s;
      sections[static_cast<size_t>(d)]["param_bytes"] = section->param_bytes();
      sections[static_cast<size_t>(d)]["activation_bytes"] = section->activation_bytes();
    }
  }
  nlohmann::json j = {
      {"format", "idn-ddnn"},
      {"version", 1},
      {"name", package.name},
      {"motif", "ddnn"},
      {"config", to_json(c)},
      {"thresholds", {{"local", package.thresholds.local}, {"edge", package.thresholds.edge}}},
      {"labels", package.labels},
      {"sections", sections},
      {"training", package.training},
      {"evaluation", package.evaluation}};
  return model::write_file_atomic(dir / kDdnnManifestFile, to_bytes(j.dump(2) + "\n"));
}

Result<DdnnPackage> load_ddnn(const std::filesystem::path& dir) {
  auto text = model::read_file(dir / kDdnnManifestFile, 16 << 20);
  if (!text.ok()) return text.status().with_context(kDdnnManifestFile);
  auto bad = [](const std::string& m) {
    return Status::corruption(std::string(kDdnnManifestFile) + ": " + m);
  };
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text->begin(), text->end());
  } catch (const nlohmann::json::exception& e) {
    return bad(std::string("not JSON: ") + e.what());
  }
  DdnnPackage p;
  DdnnConfig config;
  try {
    if (!j.is_object() || j.value("format", "") != "idn-ddnn" || j.value("version", 0) != 1)
      return bad("not an idn-ddnn version 1 manifest");
    auto c = ddnn_config_from_json(j.at("config"));
    if (!c.ok()) return bad(c.status().message());
    config = *c;
    p.name = j.at("name").get<std::string>();
    p.thresholds.local = j.at("thresholds").at("local").get<double>();
    p.thresholds.edge = j.at("thresholds").at("edge").get<double>();
    p.labels = j.at("labels").get<std::vector<std::string>>();
    p.training = j.value("training", nlohmann::json::object());
    p.evaluation = j.value("evaluation", nlohmann::json::object());
  } catch (const nlohmann::json::exception& e) {
    return bad(e.what());
  }
  auto st = model::load_safetensors(dir / "weights.safetensors");
  if (!st.ok()) return st.status().with_context("weights.safetensors");
  p.model = Ddnn(config);
  auto state = state_of(*p.model);
  for (const auto& [name, t] : st->tensors)
    if (!state.count(name))
      return Status::corruption("weights.safetensors: unexpected tensor '" + name + "'");
  {
    torch::NoGradGuard no_grad;
    for (auto& [name, t] : state) {
      auto it = st->tensors.find(name);
      if (it == st->tensors.end())
        return Status::corruption("weights.safetensors: missing '" + name + "'");
      if (it->second.dtype != core::DType::kF32 || it->second.shape != t.sizes().vec())
        return Status::corruption("weights.safetensors: '" + name + "' should be F32 " +
                                  core::shape_string(t.sizes().vec()));
      t.copy_(nn::to_torch(it->second));
    }
  }
  p.model->eval();
  if (config.has_local()) {
    for (int64_t d = 0; d < config.devices(); ++d) {
      const std::string file = "device" + std::to_string(d) + ".idnb";
      auto bytes = model::read_file(dir / file, 16 << 20);
      if (!bytes.ok()) return bytes.status().with_context(file);
      auto stored = ondevice::Section::parse(*bytes);
      if (!stored.ok()) return stored.status().with_context(file);
      auto fresh = nn::export_section(p.model->device_blocks(d), ondevice::InputKind::kPixels,
                                      {config.channels, config.size, config.size});
      if (!fresh.ok()) return fresh.status().with_context(file);
      if (fresh->serialize() != *bytes)
        return Status::corruption(file + ": differs from device " + std::to_string(d) +
                                  "'s section in weights.safetensors");
    }
  }
  return p;
}

}  // namespace idn::motifs
