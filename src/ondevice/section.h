// A DDNN device section (§4.5.1, Fig. 4.3) in the form a tiny sensor runs: binary weights
// bit-packed in uint64 words, each batch norm + sign folded into an integer threshold, evaluated
// with XNOR/popcount in plain C++ (no LibTorch). Immutable once made: run() may be called from
// many threads at once.
//
// Layers, in order: ConvP (binary conv 3x3 s1 p1 without bias, max-pool 3x3 s2 p1, threshold),
// FC bits (binary linear without bias, threshold) and, last only, FC scores (binary linear, then
// score = ((y - mean) / std) * gamma + beta in float, four separate IEEE operations: the local
// exit's class scores). The first layer reads 8-bit pixels (y = sum of +-pixel) or bits; every
// later layer reads the previous layer's bits, flattened channel-major (C x H x W, torch's
// order). A bit is 1 for +1 and 0 for -1; bit i of a vector is bit i % 64 of word i / 64, and
// the unused bits of a row's last word are 0. Zero padding counts as 0 (the dot product runs
// over the positions inside the image only).
//
// Byte format (little-endian; `parse` refuses anything else, `serialize` writes it):
//   "IDNB"  u8 version (1)  u8 input kind (0 pixels, 1 bits)  u16 layer count (1..16)
//   u16 channels  u16 height  u16 width                       (the input, each 1..1024)
//   per layer: u8 kind (1 ConvP, 2 FC bits, 3 FC scores)  u8 0  u16 outputs (1..4096)
//              outputs x ceil(fan_in / 64) u64 weight words, row by row
//              kinds 1, 2: outputs x (i32 threshold, u8 0: bit = y >= t, 1: bit = y <= t)
//              kind 3:     outputs x (f32 mean, f32 std > 0, f32 gamma, f32 beta), finite
// fan_in is channels x 9 for ConvP and channels x height x width for FC; nothing may follow.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "core/bytes.h"
#include "core/status.h"

namespace idn::ondevice {

// Append-only: values are stored in packed sections.
enum class InputKind : uint8_t { kPixels = 0, kBits = 1 };
enum class LayerKind : uint8_t { kConvP = 1, kFcBits = 2, kFcScores = 3 };

// sign(BN(y)) for an integer pre-activation y, as a comparison.
struct Threshold {
  int32_t t = 0;
  bool below = false;  // false: bit = y >= t; true: bit = y <= t (a negative BN scale)
  bool fires(int64_t y) const { return below ? y <= t : y >= t; }
  bool operator==(const Threshold&) const = default;
};

// The float step of an FC scores layer.
struct ScoreNorm {
  float mean = 0, std = 1, gamma = 1, beta = 0;
  float apply(int64_t y) const;
  bool operator==(const ScoreNorm&) const = default;
};

// Folds `bit(y)` (e.g. BN followed by sign, evaluated in the training framework's own float
// arithmetic) over every integer y in [lo, hi] into a Threshold. Fails when the set of y with
// bit(y) true is not {y >= t} or {y <= t} within the range (bit is then not a monotone
// function of y and no threshold reproduces it).
Result<Threshold> fold_threshold(const std::function<bool(int64_t)>& bit, int64_t lo, int64_t hi);

struct Shape {
  int64_t c = 0, h = 0, w = 0;
  int64_t size() const { return c * h * w; }
  bool operator==(const Shape&) const = default;
};

struct Layer {
  LayerKind kind = LayerKind::kConvP;
  int64_t outputs = 0;
  std::vector<uint64_t> weights;      // outputs rows of words_per_row(fan_in) words
  std::vector<Threshold> thresholds;  // kConvP, kFcBits: one per output
  std::vector<ScoreNorm> norms;       // kFcScores: one per output
  bool operator==(const Layer&) const = default;
};

inline int64_t words_for(int64_t bits) {
  return (bits + 63) / 64;
}

// One layer's output: packed bits (ConvP, FC bits) or float scores (FC scores).
struct LayerOutput {
  Shape shape;
  std::vector<uint64_t> bits;  // words_for(shape.size()) words, unused bits 0
  std::vector<float> scores;
};

// A DDNN device's answer for one sample, from one run: the local exit's class scores (what it
// sends the local aggregator) and the last ConvP layer's bits (what goes upward when the sample
// does not exit locally, §4.4).
struct DeviceOutput {
  Shape feature_shape;
  std::vector<uint64_t> features;  // words_for(feature_shape.size()) words, unused bits 0
  std::vector<float> scores;
};

// Packed bits as bytes on the wire: ceil(bits / 8) bytes, bit i of the vector in bit i % 8 of
// byte i / 8 (the words' little-endian bytes, cut to length). `unpack_bytes` refuses a size
// other than ceil(bits / 8) and set bits past `bits` (InvalidArgument).
Bytes pack_bytes(std::span<const uint64_t> words, int64_t bits);
Result<std::vector<uint64_t>> unpack_bytes(ByteView bytes, int64_t bits);

class Section {
 public:
  // Checks every size, the layer order and the padding bits; the same rules as parse().
  static Result<Section> make(InputKind input_kind, Shape input, std::vector<Layer> layers);
  static Result<Section> parse(ByteView bytes);
  Bytes serialize() const;

  // Runs one sample and returns every layer's output (the last ConvP's bits are what a DDNN
  // device sends the cloud; the FC scores what it sends the local aggregator). `pixels` is
  // C x H x W; `bits` holds words_for(C * H * W) words with the unused bits 0.
  Result<std::vector<LayerOutput>> run_pixels(std::span<const uint8_t> pixels) const;
  Result<std::vector<LayerOutput>> run_bits(std::span<const uint64_t> bits) const;
  // run_pixels, keeping the last ConvP's bits and the scores. Unsupported when the
  // section has no ConvP layer or does not end in FC scores; errors of run_pixels.
  Result<DeviceOutput> run_device(std::span<const uint8_t> pixels) const;

  InputKind input_kind() const { return input_kind_; }
  Shape input_shape() const { return input_; }
  const std::vector<Layer>& layers() const { return layers_; }
  Shape output_shape(size_t layer) const { return shapes_[layer + 1]; }
  static int64_t fan_in(LayerKind kind, Shape in) {
    return kind == LayerKind::kConvP ? in.c * 9 : in.size();
  }

  // What a device stores: weight words and thresholds / norms, as in the byte format, without
  // the headers.
  int64_t param_bytes() const;
  // The largest input + output buffer of any layer while running (8-bit pixels, packed bits,
  // 4-byte scores), plus the one patch the conv gathers.
  int64_t activation_bytes() const;

 private:
  Result<std::vector<LayerOutput>> run(std::span<const uint8_t> pixels,
                                       std::span<const uint64_t> bits) const;

  InputKind input_kind_ = InputKind::kBits;
  Shape input_;
  std::vector<Layer> layers_;
  std::vector<Shape> shapes_;  // input, then each layer's output
};

}  // namespace idn::ondevice
