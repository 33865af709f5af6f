#include "nn/binary_export.h"

#include <string>

namespace idn::nn {
namespace {

// Evaluates `bn` in eval mode on every integer y in [-range, range] for every channel and folds
// each channel's sign into a threshold.
Result<std::vector<ondevice::Threshold>> fold(BlockNormImpl& bn, int64_t channels, int64_t range) {
  torch::NoGradGuard no_grad;
  const bool was_training = bn.is_training();
  bn.eval();
  auto y = torch::arange(-range, range + 1, torch::kFloat32).unsqueeze(1).expand({-1, channels});
  const auto fires = (bn.forward(y.contiguous()) >= 0).contiguous();
  bn.train(was_training);
  const auto a = fires.accessor<bool, 2>();
  std::vector<ondevice::Threshold> out;
  for (int64_t c = 0; c < channels; ++c) {
    auto t = ondevice::fold_threshold([&](int64_t v) { return a[v + range][c]; }, -range, range);
    if (!t.ok()) return t.status().with_context("output " + std::to_string(c));
    out.push_back(*t);
  }
  return out;
}

std::vector<uint64_t> pack_signs(const torch::Tensor& w, int64_t rows, int64_t fan_in) {
  const auto flat = w.detach().reshape({rows, fan_in}).contiguous();
  const auto a = flat.accessor<float, 2>();
  const int64_t words = ondevice::words_for(fan_in);
  std::vector<uint64_t> out(static_cast<size_t>(rows * words), 0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < fan_in; ++i)
      if (a[r][i] >= 0) out[static_cast<size_t>(r * words + i / 64)] |= uint64_t{1} << (i % 64);
  return out;
}

}  // namespace

Result<ondevice::Section> export_section(const std::vector<SectionBlock>& blocks,
                                         ondevice::InputKind kind, ondevice::Shape input) {
  std::vector<ondevice::Layer> layers;
  ondevice::Shape in = input;
  for (size_t i = 0; i < blocks.size(); ++i) {
    const std::string at = "block " + std::to_string(i) + ": ";
    const int64_t scale = (i == 0 && kind == ondevice::InputKind::kPixels) ? 255 : 1;
    ondevice::Layer l;
    BlockNormImpl* bn = nullptr;
    torch::Tensor weight;
    if (const auto* conv = std::get_if<ConvP>(&blocks[i])) {
      const auto& o = (*conv)->options;
      if (!o.binary_weights) return Status::invalid_argument(at + "ConvP has float weights");
      if (o.in_channels != in.c)
        return Status::invalid_argument(at + "ConvP reads " + std::to_string(o.in_channels) +
                                        " channels, its input has " + std::to_string(in.c));
      l.kind = ondevice::LayerKind::kConvP;
      l.outputs = o.out_channels;
      weight = (*conv)->weight;
      bn = conv->ptr()->bn.get();
    } else {
      const Fc& fc = std::get<Fc>(blocks[i]);
      const auto& o = fc->options;
      if (!o.binary_weights) return Status::invalid_argument(at + "FC has float weights");
      if (o.in_features != in.size())
        return Status::invalid_argument(at + "FC reads " + std::to_string(o.in_features) +
                                        " features, its input has " + std::to_string(in.size()));
      const bool scores = o.activation == Activation::kNone;
      if (scores && i + 1 != blocks.size())
        return Status::invalid_argument(at + "an FC without activation must be the last block");
      l.kind = scores ? ondevice::LayerKind::kFcScores : ondevice::LayerKind::kFcBits;
      l.outputs = o.out_features;
      weight = fc->weight;
      bn = fc.ptr()->bn.get();
    }
    const int64_t fan_in = ondevice::Section::fan_in(l.kind, in);
    l.weights = pack_signs(weight, l.outputs, fan_in);
    if (l.kind == ondevice::LayerKind::kFcScores) {
      torch::NoGradGuard no_grad;
      const auto mean = bn->running_mean.contiguous(), sd = bn->stddev().contiguous(),
                 gamma = bn->weight.contiguous(), beta = bn->bias.contiguous();
      for (int64_t o = 0; o < l.outputs; ++o)
        l.norms.push_back({mean[o].item<float>(), sd[o].item<float>(), gamma[o].item<float>(),
                           beta[o].item<float>()});
    } else {
      auto t = fold(*bn, l.outputs, fan_in * scale);
      if (!t.ok()) return t.status().with_context(at);
      l.thresholds = std::move(*t);
    }
    in = l.kind == ondevice::LayerKind::kConvP
             ? ondevice::Shape{l.outputs, (in.h - 1) / 2 + 1, (in.w - 1) / 2 + 1}
             : ondevice::Shape{l.outputs, 1, 1};
    layers.push_back(std::move(l));
  }
  auto s = ondevice::Section::make(kind, input, std::move(layers));
  if (!s.ok()) return s.status().with_context("export_section");
  return s;
}

}  // namespace idn::nn
