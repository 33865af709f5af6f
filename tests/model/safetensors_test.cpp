#include "model/safetensors.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "model/file_io.h"

namespace idn::model {
namespace {

using ::testing::HasSubstr;

// Builds a file by hand: 8-byte little-endian length, the header text verbatim, the data.
Bytes hand_file(std::string_view header, const Bytes& data) {
  Bytes out;
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(n >> (8 * i)));
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

Bytes f32_bytes(std::initializer_list<float> v) {
  Bytes b(v.size() * 4);
  std::memcpy(b.data(), std::data(v), b.size());
  return b;
}

Status parse_error(std::string_view header, const Bytes& data) {
  return parse_safetensors(hand_file(header, data)).status();
}

TEST(SafetensorsTest, HandAssembledFileParsesToExpectedTensors) {
  // Header and data written out byte by byte, as the spec describes.
  const std::string header =
      R"({"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},)"
      R"("n":{"dtype":"I64","shape":[],"data_offsets":[16,24]},)"
      R"("m":{"dtype":"U8","shape":[3],"data_offsets":[24,27]}})";
  Bytes data = f32_bytes({1.0f, -2.0f, 0.5f, 3.25f});
  for (uint8_t b : {7, 0, 0, 0, 0, 0, 0, 0}) data.push_back(b);  // I64 7
  for (uint8_t b : {9, 8, 255}) data.push_back(b);
  auto st = parse_safetensors(hand_file(header, data));
  ASSERT_TRUE(st.ok()) << st.status().to_string();
  ASSERT_EQ(st->tensors.size(), 3u);
  EXPECT_EQ(st->metadata, (std::map<std::string, std::string>{{"format", "pt"}}));
  const core::Tensor& w = st->tensors.at("w");
  EXPECT_EQ(w.dtype, core::DType::kF32);
  EXPECT_EQ(w.shape, (std::vector<int64_t>{2, 2}));
  EXPECT_THAT(std::vector<float>(w.f32().begin(), w.f32().end()),
              ::testing::ElementsAre(1.0f, -2.0f, 0.5f, 3.25f));
  const core::Tensor& n = st->tensors.at("n");
  EXPECT_EQ(n.dtype, core::DType::kI64);
  EXPECT_TRUE(n.shape.empty());
  EXPECT_EQ(n.bytes, (Bytes{7, 0, 0, 0, 0, 0, 0, 0}));
  EXPECT_EQ(st->tensors.at("m").bytes, (Bytes{9, 8, 255}));
}

TEST(SafetensorsTest, AcceptsHeaderPaddedWithSpacesAndTensorsListedInAnyOrder) {
  std::string header =
      R"({"b":{"dtype":"U8","shape":[1],"data_offsets":[1,2]},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})";
  header.append((8 - header.size() % 8) % 8 + 8, ' ');
  auto st = parse_safetensors(hand_file(header, Bytes{10, 20}));
  ASSERT_TRUE(st.ok()) << st.status().to_string();
  EXPECT_EQ(st->tensors.at("a").bytes, Bytes{10});
  EXPECT_EQ(st->tensors.at("b").bytes, Bytes{20});
}

TEST(SafetensorsTest, SerializeSingleTensorIsByteExact) {
  std::map<std::string, core::Tensor> t;
  t["attn.0"] = core::Tensor::f32({1, 2, 3}, std::vector<float>{0, 1, 2, 3, 4, 5});
  auto out = serialize_safetensors(t);
  ASSERT_TRUE(out.ok());
  // 64-byte header: already aligned, so no padding.
  Bytes expected = {64, 0, 0, 0, 0, 0, 0, 0};
  std::string h = R"({"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}})";
  ASSERT_EQ(h.size(), 64u);
  expected.insert(expected.end(), h.begin(), h.end());
  Bytes d = f32_bytes({0, 1, 2, 3, 4, 5});
  expected.insert(expected.end(), d.begin(), d.end());
  EXPECT_EQ(*out, expected);
}

TEST(SafetensorsTest, SerializePadsHeaderWithSpacesToEightBytes) {
  std::map<std::string, core::Tensor> t;
  t["attn0"] = core::Tensor::f32({1, 1, 2, 3}, std::vector<float>{0, 1, 2, 3, 4, 5});
  auto out = serialize_safetensors(t);
  ASSERT_TRUE(out.ok());
  std::string h = R"({"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}})";
  ASSERT_EQ(h.size(), 65u);
  h += "       ";  // 7 spaces -> 72
  Bytes expected = {72, 0, 0, 0, 0, 0, 0, 0};
  expected.insert(expected.end(), h.begin(), h.end());
  Bytes d = f32_bytes({0, 1, 2, 3, 4, 5});
  expected.insert(expected.end(), d.begin(), d.end());
  EXPECT_EQ(*out, expected);
}

TEST(SafetensorsTest, SerializeEmptyAndMetadataOnlyAreByteExact) {
  auto empty = serialize_safetensors({});
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(*empty, (Bytes{8, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '}));

  auto meta = serialize_safetensors({}, {{"framework", "pt"}});
  ASSERT_TRUE(meta.ok());
  std::string h = R"({"__metadata__":{"framework":"pt"}}     )";
  Bytes expected = {40, 0, 0, 0, 0, 0, 0, 0};
  expected.insert(expected.end(), h.begin(), h.end());
  EXPECT_EQ(*meta, expected);
  auto back = parse_safetensors(*meta);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->metadata.at("framework"), "pt");
}

TEST(SafetensorsTest, WriteOrderIsAlignmentDescendingThenName) {
  std::map<std::string, core::Tensor> t;
  t["a"] = core::Tensor::zeros(core::DType::kU8, {3});
  t["b"] = core::Tensor::zeros(core::DType::kF32, {1});
  t["c"] = core::Tensor::zeros(core::DType::kI64, {1});
  t["d"] = core::Tensor::zeros(core::DType::kF32, {2});
  t["e"] = core::Tensor::zeros(core::DType::kF64, {1});
  t["f"] = core::Tensor::zeros(core::DType::kBF16, {1});
  EXPECT_EQ(safetensors_write_order(t), (std::vector<std::string>{"c", "e", "b", "d", "f", "a"}));
  t["b"].bytes = f32_bytes({1.5f});
  auto out = serialize_safetensors(t);
  ASSERT_TRUE(out.ok());
  std::string h = R"({"c":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},)"
                  R"("e":{"dtype":"F64","shape":[1],"data_offsets":[8,16]},)"
                  R"("b":{"dtype":"F32","shape":[1],"data_offsets":[16,20]},)"
                  R"("d":{"dtype":"F32","shape":[2],"data_offsets":[20,28]},)"
                  R"("f":{"dtype":"BF16","shape":[1],"data_offsets":[28,30]},)"
                  R"("a":{"dtype":"U8","shape":[3],"data_offsets":[30,33]}})";
  h.append((8 - h.size() % 8) % 8, ' ');
  Bytes data(33, 0);
  std::memcpy(data.data() + 16, f32_bytes({1.5f}).data(), 4);
  EXPECT_EQ(*out, hand_file(h, data));
}

TEST(SafetensorsTest, RoundTripIsBitExact) {
  std::map<std::string, core::Tensor> t;
  t["conv.weight"] = core::Tensor::f32(
      {2, 1, 2, 2}, std::vector<float>{1e-38f, -0.0f, 3.14159f, 1e30f, -7, 0.1f, 0.2f, 0.3f});
  t["conv.bias"] = core::Tensor::f32({2}, std::vector<float>{0.25f, -0.25f});
  t["empty"] = core::Tensor::zeros(core::DType::kF32, {0, 3});
  core::Tensor odd = core::Tensor::zeros(core::DType::kI16, {3});
  odd.bytes = {1, 2, 3, 4, 5, 6};
  t["odd"] = odd;
  std::map<std::string, std::string> meta{{"k", "v \"quoted\" \xc3\xa9\n"}};
  auto bytes = serialize_safetensors(t, meta);
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(((*bytes)[0] | ((*bytes)[1] << 8)) % 8, 0);
  auto back = parse_safetensors(*bytes);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(back->tensors, t);
  EXPECT_EQ(back->metadata, meta);
  auto again = serialize_safetensors(back->tensors, back->metadata);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *bytes);
}

TEST(SafetensorsTest, SaveAndLoadFileAtomically) {
  auto dir = std::filesystem::path(IDN_BINARY_DIR) / "tmp" / "safetensors_test";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::map<std::string, core::Tensor> t;
  t["x"] = core::Tensor::f32({3}, std::vector<float>{1, 2, 3});
  ASSERT_TRUE(save_safetensors(dir / "w.safetensors", t).is_ok());
  auto back = load_safetensors(dir / "w.safetensors");
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->tensors, t);
  size_t files = 0;
  for ([[maybe_unused]] auto& e : std::filesystem::directory_iterator(dir)) ++files;
  EXPECT_EQ(files, 1u) << "no temp file may be left behind";
  auto missing = load_safetensors(dir / "nope.safetensors");
  EXPECT_EQ(missing.status().code(), Code::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("nope.safetensors"));
}

TEST(SafetensorsTest, SerializeRejectsInconsistentTensorAndBadNames) {
  std::map<std::string, core::Tensor> t;
  t["bad"] = core::Tensor::f32({2}, std::vector<float>{1});
  auto out = serialize_safetensors(t);
  ASSERT_FALSE(out.ok());
  EXPECT_THAT(out.status().message(), HasSubstr("'bad'"));

  std::map<std::string, core::Tensor> u;
  u["\xff\xfe"] = core::Tensor::f32({1}, std::vector<float>{1});
  EXPECT_THAT(serialize_safetensors(u).status().message(), HasSubstr("UTF-8"));
  std::map<std::string, core::Tensor> m;
  m["__metadata__"] = core::Tensor::f32({1}, std::vector<float>{1});
  EXPECT_FALSE(serialize_safetensors(m).ok());
}

TEST(SafetensorsTest, RejectsTooShortFile) {
  auto st = parse_safetensors(Bytes{1, 2, 3});
  EXPECT_EQ(st.status().code(), Code::kCorruption);
  EXPECT_THAT(st.status().message(), HasSubstr("too short"));
}

TEST(SafetensorsTest, RejectsHeaderLengthBeyondFileSize) {
  Bytes f = hand_file("{}      ", {});
  f[0] = 200;  // claims a 200-byte header in a 16-byte file
  auto st = parse_safetensors(f);
  EXPECT_EQ(st.status().code(), Code::kCorruption);
  EXPECT_THAT(st.status().message(), HasSubstr("exceeds file size 16"));
}

TEST(SafetensorsTest, RejectsHeaderLongerThan100MB) {
  Bytes f = hand_file("{}      ", {});
  uint64_t n = 100'000'001;
  for (int i = 0; i < 8; ++i) f[i] = static_cast<uint8_t>(n >> (8 * i));
  auto st = parse_safetensors(f);
  EXPECT_EQ(st.status().code(), Code::kLimitExceeded);
  EXPECT_THAT(st.status().message(), HasSubstr("100000000"));
}

TEST(SafetensorsTest, RejectsInvalidJson) {
  EXPECT_THAT(parse_error(R"({"a":{"dtype":"F32",)", {}).message(), HasSubstr("not valid JSON"));
  EXPECT_THAT(parse_error("[]      ", {}).message(), HasSubstr("'{'"));
  EXPECT_THAT(parse_error("{\"\xff\":1}", {}).message(), HasSubstr("not valid JSON"));
}

TEST(SafetensorsTest, RejectsUnknownDtypeNamingTensor) {
  Status st = parse_error(R"({"w":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}})", Bytes(4));
  EXPECT_THAT(st.message(), HasSubstr("tensor 'w'"));
  EXPECT_THAT(st.message(), HasSubstr("F33"));
}

TEST(SafetensorsTest, RejectsShapeOffsetsMismatch) {
  Status st =
      parse_error(R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}})", Bytes(20));
  EXPECT_THAT(st.message(), HasSubstr("tensor 'w'"));
  EXPECT_THAT(st.message(), HasSubstr("needs 24 bytes"));
}

TEST(SafetensorsTest, RejectsOverlappingOffsets) {
  Status st = parse_error(
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
      Bytes(12));
  EXPECT_EQ(st.code(), Code::kCorruption);
  EXPECT_THAT(st.message(), HasSubstr("'b'"));
  EXPECT_THAT(st.message(), HasSubstr("overlaps tensor 'a'"));
}

TEST(SafetensorsTest, RejectsGapBetweenTensorsAndAtStart) {
  Status gap = parse_error(
      R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
      Bytes(12));
  EXPECT_THAT(gap.message(), HasSubstr("gap of 4 bytes"));
  EXPECT_THAT(gap.message(), HasSubstr("'b'"));
  Status start = parse_error(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", Bytes(8));
  EXPECT_THAT(start.message(), HasSubstr("before tensor 'a'"));
}

TEST(SafetensorsTest, RejectsOutOfBoundsAndTrailingBytes) {
  Status oob = parse_error(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", Bytes(6));
  EXPECT_THAT(oob.message(), HasSubstr("tensor 'a'"));
  EXPECT_THAT(oob.message(), HasSubstr("past the end"));
  Status trailing =
      parse_error(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", Bytes(9));
  EXPECT_THAT(trailing.message(), HasSubstr("cover only 4"));
}

TEST(SafetensorsTest, RejectsDuplicateNames) {
  Status st = parse_error(
      R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",
      Bytes(2));
  EXPECT_THAT(st.message(), HasSubstr("header: key \"a\" appears more than once"));
}

TEST(SafetensorsTest, RejectsDeeplyNestedHeader) {
  std::string h = R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":)" +
                  std::string(50, '[') + std::string(50, ']') + "}}";
  EXPECT_THAT(parse_error(h, Bytes(1)).message(), HasSubstr("nests 52 levels"));
}

TEST(SafetensorsTest, RejectsMalformedEntries) {
  EXPECT_THAT(
      parse_error(R"({"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,0]}})", {}).message(),
      HasSubstr("tensor 'a'"));
  EXPECT_THAT(parse_error(R"({"a":{"dtype":"U8","shape":[1]}})", {}).message(),
              HasSubstr("data_offsets"));
  EXPECT_THAT(
      parse_error(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[1,0]}})", Bytes(1)).message(),
      HasSubstr("end before"));
  EXPECT_THAT(parse_error(R"({"a":3})", {}).message(), HasSubstr("tensor 'a'"));
  EXPECT_THAT(parse_error(R"({"__metadata__":{"k":1}})", {}).message(), HasSubstr("'k'"));
  EXPECT_THAT(
      parse_error(R"({"a":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}})",
                  {})
          .message(),
      HasSubstr("too many elements"));
}

TEST(SafetensorsTest, FuzzSeedCorpusParses) {
  const auto dir = std::filesystem::path(IDN_SOURCE_DIR) / "fuzz/corpus/safetensors";
  int checked = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    auto st = load_safetensors(e.path());
    EXPECT_TRUE(st.ok()) << e.path() << ": " << st.status().to_string();
    ++checked;
  }
  EXPECT_GE(checked, 5);
}

}  // namespace
}  // namespace idn::model
