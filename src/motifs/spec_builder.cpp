#include "motifs/spec_builder.h"

namespace idn::motifs {

using model::LayerType;

SpecBuilder::SpecBuilder(std::string name, std::string motif) {
  spec_.name = std::move(name);
  spec_.motif = std::move(motif);
}

SpecBuilder& SpecBuilder::input(std::string name, std::vector<int64_t> shape) {
  spec_.inputs.push_back({name, core::DType::kF32, std::move(shape)});
  last_ = stage_last_ = std::move(name);
  return *this;
}

SpecBuilder& SpecBuilder::stage(std::string name) {
  spec_.stages.push_back({std::move(name), {}, "", 0});
  last_ = stage_last_;
  in_exit_ = false;
  return *this;
}

SpecBuilder& SpecBuilder::exit(std::string name, std::string from) {
  model::ExitSpec e;
  e.name = std::move(name);
  e.stage = static_cast<int>(spec_.stages.size()) - 1;
  e.output = from.empty() ? stage_last_ : from;
  spec_.exits.push_back(std::move(e));
  last_ = spec_.exits.back().output;
  in_exit_ = true;
  return *this;
}

SpecBuilder& SpecBuilder::add(std::string name, LayerType type, nlohmann::json params) {
  model::LayerSpec l;
  l.name = name;
  l.type = type;
  l.inputs = {last_};
  l.params = std::move(params);
  spec_.layers.push_back(std::move(l));
  if (in_exit_) {
    spec_.exits.back().layers.push_back(name);
    spec_.exits.back().output = name;
  } else {
    spec_.stages.back().layers.push_back(name);
    spec_.stages.back().output = name;
    stage_last_ = name;
  }
  last_ = std::move(name);
  return *this;
}

SpecBuilder& SpecBuilder::conv(std::string name, int64_t in, int64_t out, int64_t kernel,
                               int64_t stride, int64_t padding) {
  return add(std::move(name), LayerType::kConv2d,
             {{"in_channels", in},
              {"out_channels", out},
              {"kernel", kernel},
              {"stride", stride},
              {"padding", padding},
              {"bias", true}});
}
SpecBuilder& SpecBuilder::linear(std::string name, int64_t in, int64_t out) {
  return add(std::move(name), LayerType::kLinear,
             {{"in_features", in}, {"out_features", out}, {"bias", true}});
}
SpecBuilder& SpecBuilder::relu(std::string name) {
  return add(std::move(name), LayerType::kReLU, nlohmann::json::object());
}
SpecBuilder& SpecBuilder::maxpool(std::string name, int64_t kernel, int64_t stride,
                                  int64_t padding) {
  return add(std::move(name), LayerType::kMaxPool2d,
             {{"kernel", kernel}, {"stride", stride ? stride : kernel}, {"padding", padding}});
}
SpecBuilder& SpecBuilder::avgpool(std::string name, int64_t kernel, int64_t stride,
                                  int64_t padding) {
  return add(std::move(name), LayerType::kAvgPool2d,
             {{"kernel", kernel}, {"stride", stride ? stride : kernel}, {"padding", padding}});
}
SpecBuilder& SpecBuilder::batchnorm(std::string name, int64_t features) {
  return add(std::move(name), LayerType::kBatchNorm, {{"num_features", features}});
}
SpecBuilder& SpecBuilder::dropout(std::string name, double p) {
  return add(std::move(name), LayerType::kDropout, {{"p", p}});
}
SpecBuilder& SpecBuilder::flatten(std::string name) {
  return add(std::move(name), LayerType::kFlatten, nlohmann::json::object());
}
SpecBuilder& SpecBuilder::lrn(std::string name, int64_t size) {
  return add(std::move(name), LayerType::kLRN,
             {{"size", size}, {"alpha", 1e-4}, {"beta", 0.75}, {"k", 1.0}});
}

SpecBuilder& SpecBuilder::labels(std::vector<std::string> labels) {
  spec_.labels = std::move(labels);
  return *this;
}
SpecBuilder& SpecBuilder::preprocess(std::vector<float> mean, std::vector<float> std) {
  spec_.preprocess_mean = std::move(mean);
  spec_.preprocess_std = std::move(std);
  return *this;
}

Result<model::ModelSpec> SpecBuilder::build() {
  IDN_RETURN_IF_ERROR(model::validate_model_spec(spec_));
  return spec_;
}

}  // namespace idn::motifs
