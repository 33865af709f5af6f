#include "ondevice/section.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

namespace idn::ondevice {
namespace {

using ::testing::HasSubstr;

// The float simulation of a binary section: +-1 weights as floats, zero-padded conv, max-pool,
// ((y - mean) / std) * gamma + beta, then sign (>= 0 is +1). Written from the definition, apart
// from the packed code.
struct FloatLayer {
  LayerKind kind;
  int64_t outputs;
  std::vector<float> w;  // outputs x fan_in, +-1
  std::vector<ScoreNorm> bn;
};

float bn_of(const ScoreNorm& n, float y) {
  float t = y - n.mean;
  t = t / n.std;
  t = t * n.gamma;
  return t + n.beta;
}

// Returns each layer's output as floats (+-1 for bits, scores for the last FC scores).
std::vector<std::vector<float>> simulate(const std::vector<FloatLayer>& layers, Shape in,
                                         std::vector<float> x) {
  std::vector<std::vector<float>> outs;
  for (const auto& l : layers) {
    std::vector<float> y;
    if (l.kind == LayerKind::kConvP) {
      const int64_t oh = (in.h - 1) / 2 + 1, ow = (in.w - 1) / 2 + 1, fan = in.c * 9;
      std::vector<float> conv(static_cast<size_t>(l.outputs * in.h * in.w));
      for (int64_t o = 0; o < l.outputs; ++o)
        for (int64_t r = 0; r < in.h; ++r)
          for (int64_t c = 0; c < in.w; ++c) {
            float s = 0;
            for (int64_t ch = 0; ch < in.c; ++ch)
              for (int64_t ky = 0; ky < 3; ++ky)
                for (int64_t kx = 0; kx < 3; ++kx) {
                  const int64_t rr = r + ky - 1, cc = c + kx - 1;
                  const float v = (rr < 0 || rr >= in.h || cc < 0 || cc >= in.w)
                                      ? 0.0f
                                      : x[(ch * in.h + rr) * in.w + cc];
                  s += l.w[o * fan + (ch * 3 + ky) * 3 + kx] * v;
                }
            conv[(o * in.h + r) * in.w + c] = s;
          }
      for (int64_t o = 0; o < l.outputs; ++o)
        for (int64_t r = 0; r < oh; ++r)
          for (int64_t c = 0; c < ow; ++c) {
            float m = -INFINITY;
            for (int64_t rr = 2 * r - 1; rr <= 2 * r + 1; ++rr)
              for (int64_t cc = 2 * c - 1; cc <= 2 * c + 1; ++cc)
                if (rr >= 0 && rr < in.h && cc >= 0 && cc < in.w)
                  m = std::max(m, conv[(o * in.h + rr) * in.w + cc]);
            y.push_back(bn_of(l.bn[o], m) >= 0 ? 1.0f : -1.0f);
          }
      in = {l.outputs, oh, ow};
    } else {
      const int64_t fan = in.size();
      for (int64_t o = 0; o < l.outputs; ++o) {
        float s = 0;
        for (int64_t i = 0; i < fan; ++i) s += l.w[o * fan + i] * x[i];
        const float v = bn_of(l.bn[o], s);
        y.push_back(l.kind == LayerKind::kFcScores ? v : (v >= 0 ? 1.0f : -1.0f));
      }
      in = {l.outputs, 1, 1};
    }
    outs.push_back(y);
    x = y;
  }
  return outs;
}

// Packs a float layer: weight signs into words, BN + sign folded by scanning the same formula.
Layer pack(const FloatLayer& f, Shape in, bool pixels) {
  Layer l;
  l.kind = f.kind;
  l.outputs = f.outputs;
  const int64_t fan = Section::fan_in(f.kind, in), row = words_for(fan);
  l.weights.assign(static_cast<size_t>(f.outputs * row), 0);
  for (int64_t o = 0; o < f.outputs; ++o)
    for (int64_t i = 0; i < fan; ++i)
      if (f.w[o * fan + i] > 0) l.weights[o * row + i / 64] |= uint64_t{1} << (i % 64);
  const int64_t range = fan * (pixels ? 255 : 1);
  for (const ScoreNorm& n : f.bn) {
    if (f.kind == LayerKind::kFcScores) {
      l.norms.push_back(n);
      continue;
    }
    auto t = fold_threshold([&](int64_t y) { return bn_of(n, static_cast<float>(y)) >= 0; }, -range,
                            range);
    EXPECT_TRUE(t.ok()) << t.status().to_string();
    l.thresholds.push_back(*t);
  }
  return l;
}

// Random BN parameters with the edge cases: integer means (BN output exactly +-0 at y = mean),
// negative and zero scales, -0 shifts.
ScoreNorm random_bn(std::mt19937& rng, int64_t range) {
  std::uniform_int_distribution<int> pick(0, 5);
  std::uniform_real_distribution<float> u(-1, 1);
  ScoreNorm n;
  n.mean = pick(rng) < 3 ? std::round(u(rng) * range * 0.3f) : u(rng) * range * 0.3f;
  n.std = 0.25f + std::abs(u(rng)) * range * 0.1f;
  const int g = pick(rng);
  n.gamma = g == 0 ? 0.0f : (g < 3 ? -1.0f : 1.0f) * (0.1f + std::abs(u(rng)));
  const int b = pick(rng);
  n.beta = b == 0 ? 0.0f : (b == 1 ? -0.0f : u(rng));
  return n;
}

FloatLayer random_layer(std::mt19937& rng, LayerKind kind, int64_t outputs, Shape in, bool pixels) {
  FloatLayer f{kind, outputs, {}, {}};
  const int64_t fan = Section::fan_in(kind, in);
  std::bernoulli_distribution coin(0.5);
  for (int64_t i = 0; i < outputs * fan; ++i) f.w.push_back(coin(rng) ? 1.0f : -1.0f);
  for (int64_t o = 0; o < outputs; ++o)
    f.bn.push_back(random_bn(rng, fan * (pixels ? 255 : 1) / 8 + 1));
  return f;
}

std::vector<float> unpack(const LayerOutput& out) {
  if (!out.bits.empty() || out.scores.empty()) {
    std::vector<float> v;
    for (int64_t i = 0; i < out.shape.size(); ++i)
      v.push_back((out.bits[i / 64] >> (i % 64)) & 1 ? 1.0f : -1.0f);
    return v;
  }
  return out.scores;
}

struct Net {
  std::vector<FloatLayer> floats;
  Section section;
};

Net random_net(uint32_t seed, InputKind kind, Shape in,
               std::vector<std::pair<LayerKind, int64_t>> spec) {
  std::mt19937 rng(seed);
  std::vector<FloatLayer> floats;
  std::vector<Layer> layers;
  Shape s = in;
  for (size_t i = 0; i < spec.size(); ++i) {
    const bool pixels = i == 0 && kind == InputKind::kPixels;
    floats.push_back(random_layer(rng, spec[i].first, spec[i].second, s, pixels));
    layers.push_back(pack(floats.back(), s, pixels));
    s = spec[i].first == LayerKind::kConvP
            ? Shape{spec[i].second, (s.h - 1) / 2 + 1, (s.w - 1) / 2 + 1}
            : Shape{spec[i].second, 1, 1};
  }
  auto section = Section::make(kind, in, layers);
  EXPECT_TRUE(section.ok()) << section.status().to_string();
  return {floats, *section};
}

void expect_bitwise_equal(const std::vector<float>& a, const std::vector<float>& b,
                          const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i)
    ASSERT_EQ(std::memcmp(&a[i], &b[i], 4), 0)
        << what << " element " << i << ": " << a[i] << " vs " << b[i];
}

TEST(SectionTest, FcBitsIsXnorPopcountByHand) {
  // Weights +1 -1 +1 (bits 101), input +1 +1 -1 (bits 011): y = 1 - 1 - 1 = -1.
  Layer l{LayerKind::kFcBits, 2, {0b101, 0b101}, {{-1, false}, {0, false}}, {}};
  auto s = Section::make(InputKind::kBits, {3, 1, 1}, {l});
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  auto out = s->run_bits(std::vector<uint64_t>{0b011});
  ASSERT_TRUE(out.ok());
  EXPECT_EQ((*out)[0].bits, std::vector<uint64_t>{0b01});  // -1 >= -1, not -1 >= 0
}

TEST(SectionTest, ThresholdFoldingFindsTheCrossingAndRefusesNonMonotoneActivations) {
  auto up = fold_threshold([](int64_t y) { return y >= 3; }, -10, 10);
  ASSERT_TRUE(up.ok());
  EXPECT_EQ(*up, (Threshold{3, false}));
  auto down = fold_threshold([](int64_t y) { return y <= -2; }, -10, 10);
  EXPECT_EQ(*down, (Threshold{-2, true}));
  auto always = *fold_threshold([](int64_t) { return true; }, -10, 10);
  auto never = *fold_threshold([](int64_t) { return false; }, -10, 10);
  for (int64_t y = -10; y <= 10; ++y) {
    EXPECT_TRUE(always.fires(y));
    EXPECT_FALSE(never.fires(y));
  }
  EXPECT_THAT(fold_threshold([](int64_t y) { return y % 2 == 0; }, -10, 10).status().message(),
              HasSubstr("not a threshold"));
}

TEST(SectionTest, PackedPixelSectionEqualsTheFloatSimulationBitForBit) {
  // The dissertation's device (§4.5.1): ConvP on a 32x32 RGB view, then FC to 3 class scores;
  // and a deeper one with a binary ConvP and an FC bits layer on odd sizes.
  struct Case {
    Shape in;
    std::vector<std::pair<LayerKind, int64_t>> spec;
  };
  const std::vector<Case> cases = {
      {{3, 32, 32}, {{LayerKind::kConvP, 4}, {LayerKind::kFcScores, 3}}},
      {{2, 9, 7},
       {{LayerKind::kConvP, 5},
        {LayerKind::kConvP, 3},
        {LayerKind::kFcBits, 70},
        {LayerKind::kFcScores, 4}}},
      {{1, 5, 5}, {{LayerKind::kFcBits, 9}, {LayerKind::kFcScores, 2}}},
  };
  std::mt19937 rng(42);
  for (size_t ci = 0; ci < cases.size(); ++ci) {
    for (uint32_t seed = 0; seed < 6; ++seed) {
      Net net = random_net(seed * 31 + ci, InputKind::kPixels, cases[ci].in, cases[ci].spec);
      for (int sample = 0; sample < 5; ++sample) {
        std::vector<uint8_t> px(static_cast<size_t>(cases[ci].in.size()));
        std::uniform_int_distribution<int> pixel(0, 255);
        for (auto& p : px)
          p = sample == 0 ? 0 : (sample == 1 ? 255 : static_cast<uint8_t>(pixel(rng)));
        auto out = net.section.run_pixels(px);
        ASSERT_TRUE(out.ok()) << out.status().to_string();
        auto want = simulate(net.floats, cases[ci].in, std::vector<float>(px.begin(), px.end()));
        for (size_t l = 0; l < want.size(); ++l)
          expect_bitwise_equal(unpack((*out)[l]), want[l],
                               "case " + std::to_string(ci) + " seed " + std::to_string(seed) +
                                   " layer " + std::to_string(l));
      }
    }
  }
}

// What a DDNN device peer answers: the last ConvP's bits and the scores of one run, equal to
// the float simulation, and its bits through the wire's byte packing and back.
TEST(SectionTest, DeviceOutputIsTheLastConvPBitsAndTheScoresBitForBit) {
  const Shape in{3, 11, 9};
  const std::vector<std::pair<LayerKind, int64_t>> spec = {
      {LayerKind::kConvP, 5}, {LayerKind::kConvP, 3}, {LayerKind::kFcScores, 3}};
  std::mt19937 rng(5);
  for (uint32_t seed = 0; seed < 4; ++seed) {
    Net net = random_net(seed, InputKind::kPixels, in, spec);
    std::vector<uint8_t> px(static_cast<size_t>(in.size()));
    for (auto& p : px) p = static_cast<uint8_t>(std::uniform_int_distribution<int>(0, 255)(rng));
    auto d = net.section.run_device(px);
    ASSERT_TRUE(d.ok()) << d.status().to_string();
    auto want = simulate(net.floats, in, std::vector<float>(px.begin(), px.end()));
    EXPECT_EQ(d->feature_shape, (Shape{3, 3, 3}));
    LayerOutput features{d->feature_shape, d->features, {}};
    expect_bitwise_equal(unpack(features), want[1], "features");
    expect_bitwise_equal(d->scores, want[2], "scores");
    const int64_t n = d->feature_shape.size();  // 27 bits: a partial last byte
    Bytes wire = pack_bytes(d->features, n);
    ASSERT_EQ(wire.size(), 4u);
    for (int64_t i = 0; i < n; ++i)
      EXPECT_EQ((wire[i / 8] >> (i % 8)) & 1, (want[1][i] > 0 ? 1 : 0)) << "bit " << i;
    auto back = unpack_bytes(wire, n);
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, d->features);
  }
  EXPECT_THAT(unpack_bytes(Bytes{0xFF}, 7).status().message(), HasSubstr("unused bits"));
  EXPECT_THAT(unpack_bytes(Bytes{0, 0}, 7).status().message(), HasSubstr("expected 1"));
  Net fc_only = random_net(1, InputKind::kPixels, {1, 5, 5}, {{LayerKind::kFcScores, 2}});
  EXPECT_EQ(fc_only.section.run_device(std::vector<uint8_t>(25)).status().code(),
            Code::kUnsupported);
}

TEST(SectionTest, PackedBitSectionEqualsTheFloatSimulationBitForBit) {
  const Shape in{70, 6, 5};  // 70 channels: patches span two words
  std::mt19937 rng(7);
  for (uint32_t seed = 0; seed < 5; ++seed) {
    Net net =
        random_net(seed, InputKind::kBits, in,
                   {{LayerKind::kConvP, 6}, {LayerKind::kFcBits, 65}, {LayerKind::kFcScores, 3}});
    for (int sample = 0; sample < 5; ++sample) {
      std::vector<uint64_t> bits(static_cast<size_t>(words_for(in.size())), 0);
      std::vector<float> x;
      std::bernoulli_distribution coin(sample == 0 ? 0.0 : (sample == 1 ? 1.0 : 0.5));
      for (int64_t i = 0; i < in.size(); ++i) {
        const bool b = coin(rng);
        if (b) bits[i / 64] |= uint64_t{1} << (i % 64);
        x.push_back(b ? 1.0f : -1.0f);
      }
      auto out = net.section.run_bits(bits);
      ASSERT_TRUE(out.ok()) << out.status().to_string();
      auto want = simulate(net.floats, in, x);
      for (size_t l = 0; l < want.size(); ++l)
        expect_bitwise_equal(unpack((*out)[l]), want[l], "layer " + std::to_string(l));
    }
  }
}

TEST(SectionTest, DissertationSizedDeviceFitsTwoKilobytes) {
  // §4.5.7: "the NN layers stored on an end device require under 2 KB". A 32x32 RGB view, one
  // ConvP of f filters, FC to 3 classes: 4 filters -> 484 bytes, 8 -> 920, 12 -> 1356.
  for (auto [filters, bytes] : {std::pair{4, 484}, {8, 920}, {12, 1356}}) {
    Net net = random_net(1, InputKind::kPixels, {3, 32, 32},
                         {{LayerKind::kConvP, filters}, {LayerKind::kFcScores, 3}});
    EXPECT_EQ(net.section.param_bytes(), bytes) << filters << " filters";
    EXPECT_LT(net.section.param_bytes(), 2048);
    // The largest buffers: the 3 KB view itself, the conv's packed output and its patch.
    EXPECT_EQ(net.section.activation_bytes(),
              3072 + words_for(filters * 256) * 8 + 27 * 5 + filters * 8);
  }
}

class SectionBytesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    net_ =
        random_net(3, InputKind::kPixels, {2, 9, 7},
                   {{LayerKind::kConvP, 5}, {LayerKind::kFcBits, 70}, {LayerKind::kFcScores, 4}});
    bytes_ = net_.section.serialize();
  }
  Status parse_error(const Bytes& b) { return Section::parse(b).status(); }
  // Offsets in the format: header 14 bytes; layer 0 (ConvP, 5 outputs, fan-in 18): 4 + 5 x 8
  // weight bytes, then 5 x 5 threshold bytes.
  static constexpr size_t kLayer0 = 14, kWeights0 = kLayer0 + 4, kThresholds0 = kWeights0 + 40;

  Net net_;
  Bytes bytes_;
};

TEST_F(SectionBytesTest, RoundTripsExactly) {
  auto back = Section::parse(bytes_);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(back->layers(), net_.section.layers());
  EXPECT_EQ(back->input_shape(), net_.section.input_shape());
  EXPECT_EQ(back->serialize(), bytes_);
}

TEST_F(SectionBytesTest, EveryTruncationAndTrailingBytesAreRefused) {
  for (size_t n = 0; n < bytes_.size(); ++n) {
    Status st = parse_error(Bytes(bytes_.begin(), bytes_.begin() + n));
    ASSERT_EQ(st.code(), Code::kCorruption) << n;
    ASSERT_FALSE(st.message().empty());
  }
  Bytes longer = bytes_;
  longer.push_back(0);
  EXPECT_THAT(parse_error(longer).message(), HasSubstr("1 bytes after the last layer"));
}

TEST_F(SectionBytesTest, MalformedFieldsAreRefusedWithTheirReason) {
  auto with = [&](size_t at, uint8_t v) {
    Bytes b = bytes_;
    b[at] = v;
    return parse_error(b);
  };
  EXPECT_THAT(with(0, 'X').message(), HasSubstr("magic"));
  EXPECT_EQ(with(4, 2).code(), Code::kUnsupported);
  EXPECT_THAT(with(5, 7).message(), HasSubstr("input kind"));
  EXPECT_THAT(with(6, 0).message(), HasSubstr("0 layers"));
  EXPECT_THAT(with(8, 0).message(), HasSubstr("outside 1..1024"));
  EXPECT_THAT(with(kLayer0, 9).message(), HasSubstr("unknown kind 9"));
  EXPECT_THAT(with(kLayer0, 3).message(), HasSubstr("FC scores must be the last layer"));
  EXPECT_THAT(with(kLayer0 + 1, 1).message(), HasSubstr("reserved"));
  EXPECT_THAT(with(kLayer0 + 2, 0).message(), HasSubstr("0 outputs"));
  // Fan-in 18: bits 18..63 of each row are unused and must be 0.
  EXPECT_THAT(with(kWeights0 + 3, 0x80).message(), HasSubstr("past its 18 weights"));
  EXPECT_THAT(with(kThresholds0 + 4, 2).message(), HasSubstr("direction 2"));
  // The last layer's last norm: beta = NaN, then std = 0.
  Bytes b = bytes_;
  const uint32_t nan = 0x7fc00000;
  std::memcpy(b.data() + b.size() - 4, &nan, 4);
  EXPECT_THAT(parse_error(b).message(), HasSubstr("finite"));
  b = bytes_;
  std::memset(b.data() + b.size() - 12, 0, 4);
  EXPECT_THAT(parse_error(b).message(), HasSubstr("std > 0"));
}

TEST_F(SectionBytesTest, RunRefusesInputsOfTheWrongSizeOrKind) {
  EXPECT_EQ(net_.section.run_pixels(std::vector<uint8_t>(125)).status().code(),
            Code::kInvalidArgument);
  EXPECT_THAT(net_.section.run_bits(std::vector<uint64_t>(2)).status().message(),
              HasSubstr("reads pixels"));
  Net bits = random_net(1, InputKind::kBits, {1, 1, 3}, {{LayerKind::kFcBits, 2}});
  EXPECT_THAT(bits.section.run_bits(std::vector<uint64_t>{0b1000}).status().message(),
              HasSubstr("past its 3"));
  EXPECT_TRUE(bits.section.run_bits(std::vector<uint64_t>{0b111}).ok());
}

}  // namespace
}  // namespace idn::ondevice
