#include "ondevice/section.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

namespace idn::ondevice {
namespace {

constexpr uint8_t kMagic[4] = {'I', 'D', 'N', 'B'};
constexpr uint8_t kVersion = 1;
constexpr int64_t kMaxLayers = 16, kMaxSide = 1024, kMaxOutputs = 4096;
constexpr int64_t kMaxWeightWords = int64_t{8} << 20;  // 64 MiB of weights

bool get_bit(std::span<const uint64_t> v, int64_t i) {
  return (v[i >> 6] >> (i & 63)) & 1;
}
void set_bit(std::span<uint64_t> v, int64_t i) {
  v[i >> 6] |= uint64_t{1} << (i & 63);
}

Shape output_of(LayerKind kind, int64_t outputs, Shape in) {
  if (kind == LayerKind::kConvP) return {outputs, (in.h - 1) / 2 + 1, (in.w - 1) / 2 + 1};
  return {outputs, 1, 1};
}

std::string at_layer(size_t i) {
  return "layer " + std::to_string(i) + ": ";
}

Status check_input(InputKind kind, Shape input) {
  if (kind != InputKind::kPixels && kind != InputKind::kBits)
    return Status::corruption("unknown input kind " + std::to_string(static_cast<int>(kind)));
  if (input.c < 1 || input.c > kMaxSide || input.h < 1 || input.h > kMaxSide || input.w < 1 ||
      input.w > kMaxSide)
    return Status::corruption("input shape " + std::to_string(input.c) + "x" +
                              std::to_string(input.h) + "x" + std::to_string(input.w) +
                              " is outside 1..1024 per dimension");
  return Status::ok();
}

Status check_layers(InputKind kind, Shape input, const std::vector<Layer>& layers,
                    std::vector<Shape>& shapes) {
  IDN_RETURN_IF_ERROR(check_input(kind, input));
  if (layers.empty() || static_cast<int64_t>(layers.size()) > kMaxLayers)
    return Status::corruption(std::to_string(layers.size()) + " layers, must be 1..16");
  shapes.assign(1, input);
  int64_t words = 0;
  for (size_t i = 0; i < layers.size(); ++i) {
    const Layer& l = layers[i];
    const Shape in = shapes.back();
    if (l.kind != LayerKind::kConvP && l.kind != LayerKind::kFcBits &&
        l.kind != LayerKind::kFcScores)
      return Status::corruption(at_layer(i) + "unknown kind " +
                                std::to_string(static_cast<int>(l.kind)));
    if (l.kind == LayerKind::kFcScores && i + 1 != layers.size())
      return Status::corruption(at_layer(i) + "FC scores must be the last layer");
    if (l.outputs < 1 || l.outputs > kMaxOutputs)
      return Status::corruption(at_layer(i) + std::to_string(l.outputs) +
                                " outputs, must be 1..4096");
    const int64_t fan_in = Section::fan_in(l.kind, in);
    const int64_t row = words_for(fan_in);
    words += l.outputs * row;
    if (words > kMaxWeightWords)
      return Status::limit_exceeded(at_layer(i) + "weights exceed 64 MiB");
    if (static_cast<int64_t>(l.weights.size()) != l.outputs * row)
      return Status::corruption(at_layer(i) + std::to_string(l.weights.size()) +
                                " weight words, the shape needs " +
                                std::to_string(l.outputs * row));
    if (fan_in % 64 != 0) {
      const uint64_t unused = ~uint64_t{0} << (fan_in % 64);
      for (int64_t o = 0; o < l.outputs; ++o)
        if (l.weights[static_cast<size_t>((o + 1) * row - 1)] & unused)
          return Status::corruption(at_layer(i) + "row " + std::to_string(o) +
                                    " sets bits past its " + std::to_string(fan_in) + " weights");
    }
    const bool scores = l.kind == LayerKind::kFcScores;
    const size_t want_thresholds = scores ? 0 : static_cast<size_t>(l.outputs);
    const size_t want_norms = scores ? static_cast<size_t>(l.outputs) : 0;
    if (l.thresholds.size() != want_thresholds || l.norms.size() != want_norms)
      return Status::corruption(at_layer(i) + "needs one " + (scores ? "score norm" : "threshold") +
                                " per output");
    for (const ScoreNorm& n : l.norms)
      if (!std::isfinite(n.mean) || !std::isfinite(n.std) || !(n.std > 0) ||
          !std::isfinite(n.gamma) || !std::isfinite(n.beta))
        return Status::corruption(at_layer(i) + "score norms must be finite with std > 0");
    shapes.push_back(output_of(l.kind, l.outputs, in));
  }
  return Status::ok();
}

class Reader {
 public:
  explicit Reader(ByteView b) : b_(b) {}
  bool take(void* out, size_t n) {
    if (b_.size() - pos_ < n) return false;
    std::memcpy(out, b_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  template <class T>
  bool le(T& v) {
    uint8_t raw[sizeof(T)];
    if (!take(raw, sizeof(T))) return false;
    std::make_unsigned_t<T> u = 0;
    for (size_t i = 0; i < sizeof(T); ++i)
      u |= static_cast<std::make_unsigned_t<T>>(raw[i]) << (8 * i);
    v = static_cast<T>(u);
    return true;
  }
  bool f32(float& v) {
    uint32_t u;
    if (!le(u)) return false;
    v = std::bit_cast<float>(u);
    return true;
  }
  size_t pos() const { return pos_; }
  size_t left() const { return b_.size() - pos_; }

 private:
  ByteView b_;
  size_t pos_ = 0;
};

template <class T>
void put_le(Bytes& out, T v) {
  auto u = static_cast<std::make_unsigned_t<T>>(v);
  for (size_t i = 0; i < sizeof(T); ++i) out.push_back(static_cast<uint8_t>(u >> (8 * i)));
}

// The layer input: either 8-bit pixels or packed bits.
struct Input {
  std::span<const uint8_t> pixels;
  std::span<const uint64_t> bits;
  bool is_pixels() const { return !pixels.empty(); }
};

// Dot products of every output row with the input patch at one conv position (or with the whole
// input for FC), for pixel input: y = sum over valid positions of (+pixel or -pixel).
void dot_pixels(const Layer& l, int64_t fan_in, std::span<const int32_t> patch,
                std::span<const uint8_t> valid, std::span<int64_t> y) {
  const int64_t row = words_for(fan_in);
  for (int64_t o = 0; o < l.outputs; ++o) {
    std::span<const uint64_t> w(l.weights.data() + o * row, static_cast<size_t>(row));
    int64_t sum = 0;
    for (int64_t k = 0; k < fan_in; ++k)
      if (valid[static_cast<size_t>(k)]) sum += get_bit(w, k) ? patch[k] : -patch[k];
    y[static_cast<size_t>(o)] = sum;
  }
}

// For bit input: y = matches - mismatches over the masked (valid) positions.
void dot_bits(const Layer& l, int64_t fan_in, std::span<const uint64_t> patch,
              std::span<const uint64_t> mask, int64_t valid, std::span<int64_t> y) {
  const int64_t row = words_for(fan_in);
  for (int64_t o = 0; o < l.outputs; ++o) {
    const uint64_t* w = l.weights.data() + o * row;
    int64_t mismatches = 0;
    for (int64_t j = 0; j < row; ++j) mismatches += std::popcount((patch[j] ^ w[j]) & mask[j]);
    y[static_cast<size_t>(o)] = valid - 2 * mismatches;
  }
}

void run_convp(const Layer& l, Shape in, Shape out, const Input& x, LayerOutput& result) {
  const int64_t fan_in = in.c * 9, row = words_for(fan_in);
  std::vector<int32_t> pix_patch(x.is_pixels() ? fan_in : 0);
  std::vector<uint8_t> pix_valid(x.is_pixels() ? fan_in : 0);
  std::vector<uint64_t> patch(static_cast<size_t>(row)), mask(static_cast<size_t>(row));
  std::vector<int64_t> y(static_cast<size_t>(l.outputs)), best(static_cast<size_t>(l.outputs));
  for (int64_t py = 0; py < out.h; ++py) {
    for (int64_t px = 0; px < out.w; ++px) {
      std::fill(best.begin(), best.end(), std::numeric_limits<int64_t>::min());
      // Max-pool 3x3 s2 p1 over conv outputs: conv rows 2py-1..2py+1 inside the image.
      for (int64_t cy = 2 * py - 1; cy <= 2 * py + 1; ++cy) {
        for (int64_t cx = 2 * px - 1; cx <= 2 * px + 1; ++cx) {
          if (cy < 0 || cy >= in.h || cx < 0 || cx >= in.w) continue;
          std::fill(patch.begin(), patch.end(), 0);
          std::fill(mask.begin(), mask.end(), 0);
          int64_t valid = 0;
          for (int64_t c = 0; c < in.c; ++c) {
            for (int64_t ky = 0; ky < 3; ++ky) {
              for (int64_t kx = 0; kx < 3; ++kx) {
                const int64_t k = (c * 3 + ky) * 3 + kx, yy = cy + ky - 1, xx = cx + kx - 1;
                const bool inside = yy >= 0 && yy < in.h && xx >= 0 && xx < in.w;
                const int64_t src = (c * in.h + yy) * in.w + xx;
                if (x.is_pixels()) {
                  pix_valid[static_cast<size_t>(k)] = inside;
                  pix_patch[static_cast<size_t>(k)] =
                      inside ? x.pixels[static_cast<size_t>(src)] : 0;
                  continue;
                }
                if (!inside) continue;
                ++valid;
                set_bit(mask, k);
                if (get_bit(x.bits, src)) set_bit(patch, k);
              }
            }
          }
          if (x.is_pixels())
            dot_pixels(l, fan_in, pix_patch, pix_valid, y);
          else
            dot_bits(l, fan_in, patch, mask, valid, y);
          for (size_t o = 0; o < y.size(); ++o) best[o] = std::max(best[o], y[o]);
        }
      }
      for (int64_t o = 0; o < l.outputs; ++o)
        if (l.thresholds[static_cast<size_t>(o)].fires(best[static_cast<size_t>(o)]))
          set_bit(result.bits, (o * out.h + py) * out.w + px);
    }
  }
}

void run_fc(const Layer& l, Shape in, const Input& x, LayerOutput& result) {
  const int64_t fan_in = in.size();
  std::vector<int64_t> y(static_cast<size_t>(l.outputs));
  if (x.is_pixels()) {
    std::vector<int32_t> patch(x.pixels.begin(), x.pixels.end());
    std::vector<uint8_t> valid(static_cast<size_t>(fan_in), 1);
    dot_pixels(l, fan_in, patch, valid, y);
  } else {
    std::vector<uint64_t> mask(static_cast<size_t>(words_for(fan_in)), ~uint64_t{0});
    dot_bits(l, fan_in, x.bits, mask, fan_in, y);  // unused bits are 0 in input and weights
  }
  for (int64_t o = 0; o < l.outputs; ++o) {
    const int64_t v = y[static_cast<size_t>(o)];
    if (l.kind == LayerKind::kFcScores)
      result.scores.push_back(l.norms[static_cast<size_t>(o)].apply(v));
    else if (l.thresholds[static_cast<size_t>(o)].fires(v))
      set_bit(result.bits, o);
  }
}

}  // namespace

float ScoreNorm::apply(int64_t y) const {
  // Four separately rounded operations, the order the training-time block uses.
  float t = static_cast<float>(y) - mean;
  t = t / std;
  t = t * gamma;
  return t + beta;
}

Result<Threshold> fold_threshold(const std::function<bool(int64_t)>& bit, int64_t lo, int64_t hi) {
  if (lo > hi || lo <= std::numeric_limits<int32_t>::min() ||
      hi >= std::numeric_limits<int32_t>::max())
    return Status::invalid_argument("fold_threshold: range must be a non-empty part of int32");
  const bool first = bit(lo);
  int64_t changes = 0, change_at = 0;
  bool prev = first;
  for (int64_t y = lo + 1; y <= hi; ++y) {
    const bool b = bit(y);
    if (b != prev) {
      ++changes;
      change_at = y;
    }
    prev = b;
  }
  if (changes > 1)
    return Status::invalid_argument("fold_threshold: the activation changes " +
                                    std::to_string(changes) + " times in [" + std::to_string(lo) +
                                    ", " + std::to_string(hi) + "], not a threshold");
  Threshold t;
  if (changes == 0) {
    t.t = static_cast<int32_t>(first ? lo : hi + 1);  // always 1: y >= lo; never: y >= hi + 1
  } else if (!first) {
    t.t = static_cast<int32_t>(change_at);  // 0 ... 0 1 ... 1
  } else {
    t.below = true;
    t.t = static_cast<int32_t>(change_at - 1);  // 1 ... 1 0 ... 0
  }
  return t;
}

Result<Section> Section::make(InputKind input_kind, Shape input, std::vector<Layer> layers) {
  Section s;
  IDN_RETURN_IF_ERROR(check_layers(input_kind, input, layers, s.shapes_));
  s.input_kind_ = input_kind;
  s.input_ = input;
  s.layers_ = std::move(layers);
  return s;
}

Result<Section> Section::parse(ByteView bytes) {
  auto bad = [](const std::string& m) { return Status::corruption("packed section: " + m); };
  Reader r(bytes);
  uint8_t magic[4], version, kind;
  uint16_t count, c, h, w;
  if (!r.take(magic, 4) || std::memcmp(magic, kMagic, 4) != 0)
    return bad("not a packed section (magic)");
  if (!r.le(version) || !r.le(kind) || !r.le(count) || !r.le(c) || !r.le(h) || !r.le(w))
    return bad("truncated header");
  if (version != kVersion)
    return Status::unsupported("packed section: version " + std::to_string(version) +
                               " (this build reads version 1)");
  if (count < 1 || count > kMaxLayers) return bad(std::to_string(count) + " layers, must be 1..16");
  const Shape input{c, h, w};
  // Check the header before sizing anything from it.
  if (Status st = check_input(static_cast<InputKind>(kind), input); !st.is_ok())
    return bad(st.message());
  std::vector<Layer> layers;
  Shape in = input;
  int64_t total_words = 0;
  for (size_t i = 0; i < count; ++i) {
    uint8_t lk, reserved;
    uint16_t outputs;
    if (!r.le(lk) || !r.le(reserved) || !r.le(outputs)) return bad(at_layer(i) + "truncated");
    if (lk < 1 || lk > 3) return bad(at_layer(i) + "unknown kind " + std::to_string(lk));
    if (lk == static_cast<uint8_t>(LayerKind::kFcScores) && i + 1 != count)
      return bad(at_layer(i) + "FC scores must be the last layer");
    if (reserved != 0) return bad(at_layer(i) + "reserved byte is not 0");
    if (outputs < 1 || outputs > kMaxOutputs)
      return bad(at_layer(i) + std::to_string(outputs) + " outputs, must be 1..4096");
    Layer l;
    l.kind = static_cast<LayerKind>(lk);
    l.outputs = outputs;
    const int64_t words = outputs * words_for(fan_in(l.kind, in));
    total_words += words;
    if (total_words > kMaxWeightWords)
      return Status::limit_exceeded("packed section: weights exceed 64 MiB");
    if (r.left() / 8 < static_cast<size_t>(words)) return bad(at_layer(i) + "truncated weights");
    l.weights.resize(static_cast<size_t>(words));
    for (auto& word : l.weights) r.le(word);
    for (int64_t o = 0; o < outputs; ++o) {
      if (l.kind == LayerKind::kFcScores) {
        ScoreNorm n;
        if (!r.f32(n.mean) || !r.f32(n.std) || !r.f32(n.gamma) || !r.f32(n.beta))
          return bad(at_layer(i) + "truncated score norms");
        l.norms.push_back(n);
      } else {
        Threshold t;
        uint8_t below;
        if (!r.le(t.t) || !r.le(below)) return bad(at_layer(i) + "truncated thresholds");
        if (below > 1)
          return bad(at_layer(i) + "threshold direction " + std::to_string(below) +
                     " is not 0 or 1");
        t.below = below == 1;
        l.thresholds.push_back(t);
      }
    }
    in = output_of(l.kind, l.outputs, in);
    layers.push_back(std::move(l));
  }
  if (r.left() != 0) return bad(std::to_string(r.left()) + " bytes after the last layer");
  auto s = make(static_cast<InputKind>(kind), input, std::move(layers));
  if (!s.ok()) return bad(s.status().message());
  return s;
}

Bytes Section::serialize() const {
  Bytes out(std::begin(kMagic), std::end(kMagic));
  out.push_back(kVersion);
  out.push_back(static_cast<uint8_t>(input_kind_));
  put_le(out, static_cast<uint16_t>(layers_.size()));
  put_le(out, static_cast<uint16_t>(input_.c));
  put_le(out, static_cast<uint16_t>(input_.h));
  put_le(out, static_cast<uint16_t>(input_.w));
  for (const Layer& l : layers_) {
    out.push_back(static_cast<uint8_t>(l.kind));
    out.push_back(0);
    put_le(out, static_cast<uint16_t>(l.outputs));
    for (uint64_t word : l.weights) put_le(out, word);
    for (const Threshold& t : l.thresholds) {
      put_le(out, t.t);
      out.push_back(t.below ? 1 : 0);
    }
    for (const ScoreNorm& n : l.norms)
      for (float f : {n.mean, n.std, n.gamma, n.beta}) put_le(out, std::bit_cast<uint32_t>(f));
  }
  return out;
}

Result<std::vector<LayerOutput>> Section::run_pixels(std::span<const uint8_t> pixels) const {
  if (input_kind_ != InputKind::kPixels)
    return Status::invalid_argument("this section reads bits, not pixels");
  if (static_cast<int64_t>(pixels.size()) != input_.size())
    return Status::invalid_argument("input has " + std::to_string(pixels.size()) +
                                    " pixels, the section needs " + std::to_string(input_.size()));
  return run(pixels, {});
}

Result<std::vector<LayerOutput>> Section::run_bits(std::span<const uint64_t> bits) const {
  if (input_kind_ != InputKind::kBits)
    return Status::invalid_argument("this section reads pixels, not bits");
  const int64_t n = input_.size();
  if (static_cast<int64_t>(bits.size()) != words_for(n))
    return Status::invalid_argument("input has " + std::to_string(bits.size()) +
                                    " words, the section needs " + std::to_string(words_for(n)));
  if (n % 64 != 0 && (bits.back() & (~uint64_t{0} << (n % 64))))
    return Status::invalid_argument("input sets bits past its " + std::to_string(n));
  return run({}, bits);
}

Result<DeviceOutput> Section::run_device(std::span<const uint8_t> pixels) const {
  int64_t last_conv = -1;
  for (size_t l = 0; l < layers_.size(); ++l)
    if (layers_[l].kind == LayerKind::kConvP) last_conv = static_cast<int64_t>(l);
  if (last_conv < 0 || layers_.back().kind != LayerKind::kFcScores)
    return Status::unsupported("a device section needs a ConvP layer and ends in FC scores");
  IDN_ASSIGN_OR_RETURN(auto outs, run_pixels(pixels));
  DeviceOutput d;
  auto& conv = outs[static_cast<size_t>(last_conv)];
  d.feature_shape = conv.shape;
  d.features = std::move(conv.bits);
  d.scores = std::move(outs.back().scores);
  return d;
}

Bytes pack_bytes(std::span<const uint64_t> words, int64_t bits) {
  Bytes out(static_cast<size_t>((bits + 7) / 8));
  for (size_t i = 0; i < out.size(); ++i)
    out[i] = static_cast<uint8_t>(words[i / 8] >> (8 * (i % 8)));
  return out;
}

Result<std::vector<uint64_t>> unpack_bytes(ByteView bytes, int64_t bits) {
  if (bits < 0 || bytes.size() != static_cast<size_t>((bits + 7) / 8))
    return Status::invalid_argument("packed bits: " + std::to_string(bytes.size()) +
                                    " bytes, expected " + std::to_string((bits + 7) / 8) + " for " +
                                    std::to_string(bits) + " values");
  if (bits % 8 != 0 && (bytes.back() >> (bits % 8)) != 0)
    return Status::invalid_argument("packed bits: the unused bits of the last byte are not 0");
  std::vector<uint64_t> words(static_cast<size_t>(words_for(bits)), 0);
  for (size_t i = 0; i < bytes.size(); ++i)
    words[i / 8] |= static_cast<uint64_t>(bytes[i]) << (8 * (i % 8));
  return words;
}

Result<std::vector<LayerOutput>> Section::run(std::span<const uint8_t> pixels,
                                              std::span<const uint64_t> bits) const {
  std::vector<LayerOutput> outs;
  outs.reserve(layers_.size());
  for (size_t i = 0; i < layers_.size(); ++i) {
    const Layer& l = layers_[i];
    const Shape in = shapes_[i], out = shapes_[i + 1];
    Input x;
    if (i == 0) {
      x.pixels = pixels;
      x.bits = bits;
    } else {
      x.bits = outs.back().bits;
    }
    LayerOutput result;
    result.shape = out;
    if (l.kind != LayerKind::kFcScores)
      result.bits.assign(static_cast<size_t>(words_for(out.size())), 0);
    if (l.kind == LayerKind::kConvP)
      run_convp(l, in, out, x, result);
    else
      run_fc(l, in, x, result);
    outs.push_back(std::move(result));
  }
  return outs;
}

int64_t Section::param_bytes() const {
  int64_t bytes = 0;
  for (const Layer& l : layers_)
    bytes += static_cast<int64_t>(l.weights.size()) * 8 +
             static_cast<int64_t>(l.thresholds.size()) * 5 +
             static_cast<int64_t>(l.norms.size()) * 16;
  return bytes;
}

int64_t Section::activation_bytes() const {
  auto buffer = [&](size_t i, bool output) -> int64_t {
    const Shape s = shapes_[i];
    if (i == 0 && input_kind_ == InputKind::kPixels) return s.size();
    if (output && layers_[i - 1].kind == LayerKind::kFcScores) return s.size() * 4;
    return words_for(s.size()) * 8;
  };
  int64_t most = 0;
  for (size_t i = 0; i < layers_.size(); ++i) {
    int64_t b = buffer(i, false) + buffer(i + 1, true);
    if (layers_[i].kind == LayerKind::kConvP) {
      // The patch (bits and mask, or pixels and validity) and the running maxima.
      const int64_t fan = fan_in(LayerKind::kConvP, shapes_[i]);
      b += (i == 0 && input_kind_ == InputKind::kPixels) ? fan * 5 : words_for(fan) * 16;
      b += layers_[i].outputs * 8;
    }
    most = std::max(most, b);
  }
  return most;
}

}  // namespace idn::ondevice
