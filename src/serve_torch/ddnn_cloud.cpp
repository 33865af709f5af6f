// The DDNN cloud section (serve/ddnn_sections.h) on LibTorch: motifs::Ddnn's cloud_forward on
// the present devices' unpacked features. Linking idn_serve_torch (whole, see src/CMakeLists.txt)
// registers it with serve/ before main; called by InferServer on its io executor.
#include <fmt/format.h>
#include <torch/torch.h>

#include "model/exit_criteria.h"
#include "motifs/ddnn.h"
#include "serve/ddnn_sections.h"

namespace idn::serve {
namespace {
using protocol::InferProgress;
using protocol::InferRequest;

// Softmax confidence and normalized entropy of scores, with the arithmetic §4.4's exits use.
void judge(std::span<const float> scores, InferProgress& p) {
  std::vector<float> probs(scores.size());
  model::softmax_with_temperature(scores, 1.0, probs);
  float top = 0;
  for (float v : probs) top = std::max(top, v);
  p.confidence = top;
  p.entropy = static_cast<float>(model::normalized_entropy(probs));
}

class CloudHandler final : public Handler {
 public:
  CloudHandler(DdnnInfo info, motifs::DdnnPackage package)
      : info_(std::move(info)), package_(std::move(package)) {
    const auto& c = package_.model->config();
    const int64_t k = c.cloud == motifs::Aggregation::kConcat ? c.devices() : 1;
    const int64_t in = k * info_.features.c, h = info_.features.h, w = info_.features.w;
    const int64_t oh = (h - 1) / 2 + 1, ow = (w - 1) / 2 + 1;
    operations_ = static_cast<uint64_t>(
        2 * (in * 9 * c.cloud_filters * h * w + c.cloud_filters * oh * ow * c.classes));
  }

  Status validate(const InferRequest& req) const override {
    if (req.has_input() || req.sample_ref)
      return Status::invalid_argument(
          "a DDNN cloud request carries the devices' features as inputs with input_views");
    if (req.inputs.empty()) return Status::invalid_argument("no device features (inputs)");
    if (req.start_stage != 0 || req.stop_after_stage)
      return Status::invalid_argument("a DDNN cloud section has one stage (0)");
    for (size_t i = 0; i < req.inputs.size(); ++i) {
      const auto& t = req.inputs[i];
      if (req.input_views[i] >= static_cast<uint32_t>(info_.devices))
        return Status::invalid_argument(
            fmt::format("input_views[{}] = {}: the package has {} devices", i, req.input_views[i],
                        info_.devices));
      if (t.dtype != core::DType::kU8 || t.shape != std::vector<int64_t>{info_.feature_bytes()})
        return Status::invalid_argument(
            fmt::format("inputs[{}] must be U8 [{}] (packed {}x{}x{} features), got {} {}", i,
                        info_.feature_bytes(), info_.features.c, info_.features.h, info_.features.w,
                        core::dtype_name(t.dtype), core::shape_string(t.shape)));
      if (auto u = ondevice::unpack_bytes(t.bytes, info_.feature_bits()); !u.ok())
        return Status::invalid_argument(fmt::format("inputs[{}]: {}", i, u.status().message()));
    }
    return Status::ok();
  }

  Result<std::vector<InferProgress>> run(const InferRequest& req) override {
    torch::NoGradGuard no_grad;
    const auto f = info_.features;
    auto features = torch::zeros({1, info_.devices, f.c, f.h, f.w}, torch::kFloat32);
    auto present = torch::zeros({1, info_.devices}, torch::kBool);
    for (size_t i = 0; i < req.inputs.size(); ++i) {
      IDN_ASSIGN_OR_RETURN(auto words,
                           ondevice::unpack_bytes(req.inputs[i].bytes, info_.feature_bits()));
      const int64_t d = req.input_views[i];
      float* x = features[0][d].data_ptr<float>();
      for (int64_t b = 0; b < info_.feature_bits(); ++b)
        x[b] = ((words[static_cast<size_t>(b / 64)] >> (b % 64)) & 1) ? 1.0f : -1.0f;
      present[0][d] = true;
    }
    auto scores = package_.model->cloud_forward(features, present).contiguous();
    std::vector<float> s(scores.data_ptr<float>(), scores.data_ptr<float>() + scores.numel());
    InferProgress p;
    p.output = core::Tensor::f32({static_cast<int64_t>(s.size())}, s);
    judge(s, p);
    p.operations = operations_;
    p.final = true;
    return std::vector<InferProgress>{std::move(p)};
  }

 private:
  DdnnInfo info_;
  motifs::DdnnPackage package_;
  uint64_t operations_ = 0;
};

Result<std::shared_ptr<Handler>> load(DdnnInfo info, const std::filesystem::path& dir) {
  IDN_ASSIGN_OR_RETURN(auto package, motifs::load_ddnn(dir));
  std::shared_ptr<Handler> h = std::make_shared<CloudHandler>(std::move(info), std::move(package));
  return h;
}

[[maybe_unused]] const bool registered = [] {
  register_ddnn_cloud(load);
  return true;
}();

}  // namespace
}  // namespace idn::serve
