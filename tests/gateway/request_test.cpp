#include "gateway/request.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <jpeglib.h>
#include <png.h>
#include <zlib.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "gateway/openapi.h"

namespace idn::gateway {
namespace {

using ::testing::HasSubstr;

ise::TensorType image_input(std::vector<int64_t> shape) {
  return {"image", core::DType::kF32, std::move(shape)};
}

std::string png_bytes(uint32_t w, uint32_t h, uint32_t format, const std::vector<uint8_t>& px) {
  png_image img{};
  img.version = PNG_IMAGE_VERSION;
  img.width = w;
  img.height = h;
  img.format = format;
  png_alloc_size_t size = 0;
  EXPECT_TRUE(png_image_write_to_memory(&img, nullptr, &size, 0, px.data(), 0, nullptr));
  std::string out(size, '\0');
  EXPECT_TRUE(png_image_write_to_memory(&img, out.data(), &size, 0, px.data(), 0, nullptr));
  out.resize(size);
  return out;
}

std::string jpeg_bytes(uint32_t w, uint32_t h, const std::vector<uint8_t>& gray) {
  jpeg_compress_struct c{};
  jpeg_error_mgr err{};
  c.err = jpeg_std_error(&err);
  jpeg_create_compress(&c);
  unsigned char* buf = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&c, &buf, &size);
  c.image_width = w;
  c.image_height = h;
  c.input_components = 1;
  c.in_color_space = JCS_GRAYSCALE;
  jpeg_set_defaults(&c);
  jpeg_set_quality(&c, 100, TRUE);
  jpeg_start_compress(&c, TRUE);
  while (c.next_scanline < c.image_height) {
    JSAMPROW row = const_cast<uint8_t*>(gray.data()) + size_t{c.next_scanline} * w;
    jpeg_write_scanlines(&c, &row, 1);
  }
  jpeg_finish_compress(&c);
  std::string out(reinterpret_cast<char*>(buf), size);
  jpeg_destroy_compress(&c);
  std::free(buf);
  return out;
}

std::vector<uint8_t> ramp(size_t n) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>((i * 37) % 256);
  return v;
}

TEST(ParseInferJson, AcceptsTheInputWithOptions) {
  auto in = image_input({1, 2, 2});
  auto p = parse_infer_json(
      R"({"input":{"shape":[1,2,2],"data":[0,0.5,1,-2e3]},"fanout":3,"deadline_ms":700})", in);
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  EXPECT_EQ(p->fanout, 3u);
  EXPECT_EQ(p->deadline.count(), 700);
  EXPECT_EQ(p->input.shape, (std::vector<int64_t>{1, 2, 2}));
  auto v = p->input.f32();
  EXPECT_EQ(std::vector<float>(v.begin(), v.end()), (std::vector<float>{0, 0.5f, 1, -2000}));
  auto d = parse_infer_json(R"({"input":{"shape":[1,2,2],"data":[1,2,3,4]}})", in);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->fanout, kDefaultFanout);
  EXPECT_EQ(d->deadline, kDefaultDeadline);
}

TEST(ParseInferJson, RefusesBadBodiesWithOneLineReasons) {
  auto in = image_input({1, 2, 2});
  const std::pair<const char*, const char*> cases[] = {
      {"{\"input\":", "malformed JSON"},
      {"[1,2]", "JSON object"},
      {R"({"input":{"shape":[1,2,2],"data":[1,2,3,4]},"input":{}})", "malformed JSON"},
      {R"({"fanout":2})", "\"input\""},
      {R"({"input":{"shape":[2,2],"data":[1,2,3,4]}})", "does not match"},
      {R"({"input":{"shape":[1,2,3],"data":[1,2,3,4,5,6]}})", "does not match"},
      {R"({"input":{"shape":[2147483648,2147483648,2147483648],"data":[]}})", "too large"},
      {R"({"input":{"shape":[1,-2,2],"data":[]}})", "integers"},
      {R"({"input":{"shape":[1,2,2],"data":[1,2,3]}})", "needs 4"},
      {R"({"input":{"shape":[1,2,2],"data":[1,2,3,"x"]}})", "numbers"},
      {R"({"input":{"shape":[1,2,2],"data":[1,2,3,1e39]}})", "finite"},
      {R"({"input":{"shape":[1,2,2],"data":[1,2,3,4]},"fanout":0})", "fanout"},
      {R"({"input":{"shape":[1,2,2],"data":[1,2,3,4]},"fanout":17})", "fanout"},
      {R"({"input":{"shape":[1,2,2],"data":[1,2,3,4]},"deadline_ms":1.5})", "deadline_ms"},
      {R"({"input":{"shape":[1,2,2],"data":[1,2,3,4]},"extra":1})", "unknown key"},
      {R"({"input":{"shape":[1,2,2],"data":[[[1]]]}})", "malformed JSON"},  // too deep
  };
  for (const auto& [body, reason] : cases) {
    auto p = parse_infer_json(body, in);
    ASSERT_FALSE(p.ok()) << body;
    EXPECT_EQ(p.status().code(), Code::kInvalidArgument) << body;
    EXPECT_THAT(p.status().message(), HasSubstr(reason)) << body;
    EXPECT_EQ(p.status().message().find('\n'), std::string::npos) << body;
  }
}

TEST(ParseInferQuery, ReadsFanoutAndDeadline) {
  InferParams p;
  ASSERT_TRUE(parse_infer_query("fanout=4&deadline_ms=900", p).is_ok());
  EXPECT_EQ(p.fanout, 4u);
  EXPECT_EQ(p.deadline.count(), 900);
  EXPECT_FALSE(parse_infer_query("fanout=x", p).is_ok());
  EXPECT_FALSE(parse_infer_query("fanout=99", p).is_ok());
  EXPECT_FALSE(parse_infer_query("color=red", p).is_ok());
}

TEST(DecodeImage, GrayPngOfTheInputSizeIsItsPixelsOver255) {
  auto px = ramp(28 * 28);
  auto t = decode_image_input(png_bytes(28, 28, PNG_FORMAT_GRAY, px), "image/png",
                              image_input({1, 28, 28}));
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  ASSERT_EQ(t->shape, (std::vector<int64_t>{1, 28, 28}));
  auto v = t->f32();
  for (size_t i = 0; i < px.size(); ++i) ASSERT_EQ(v[i], px[i] / 255.0f) << i;
}

TEST(DecodeImage, RgbPngBecomesGrayAndIsResampled) {
  // A uniform RGB image stays uniform whatever the resampling.
  std::vector<uint8_t> px(56 * 40 * 3);
  for (size_t i = 0; i < px.size(); i += 3) px[i] = px[i + 1] = px[i + 2] = 200;
  auto t = decode_image_input(png_bytes(56, 40, PNG_FORMAT_RGB, px), "image/png",
                              image_input({1, 28, 28}));
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  for (float v : t->f32()) ASSERT_NEAR(v, 200 / 255.0f, 1e-5);
  // And to three channels: [3, H, W], planar.
  auto c = decode_image_input(png_bytes(56, 40, PNG_FORMAT_RGB, px), "image/png",
                              image_input({3, 8, 8}));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->numel(), 3 * 8 * 8);
}

TEST(DecodeImage, JpegDecodes) {
  std::vector<uint8_t> px(28 * 28, 128);
  auto t = decode_image_input(jpeg_bytes(28, 28, px), "image/jpeg", image_input({1, 28, 28}));
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  for (float v : t->f32()) ASSERT_NEAR(v, 128 / 255.0f, 2 / 255.0f);
}

TEST(DecodeImage, RefusesCorruptTruncatedHugeAndUnsupportedImages) {
  auto in = image_input({1, 28, 28});
  std::string png = png_bytes(28, 28, PNG_FORMAT_GRAY, ramp(28 * 28));
  std::string jpg = jpeg_bytes(28, 28, ramp(28 * 28));
  std::string flipped = png;
  flipped[png.size() / 2] ^= 0x55;  // inside the IDAT chunk: its CRC no longer matches
  // A PNG header claiming 100000 x 100000 pixels (CRC fixed up so only the size is wrong).
  std::string huge = png_bytes(1, 1, PNG_FORMAT_GRAY, {0});
  const std::pair<std::string, std::string> cases[] = {
      {png.substr(0, png.size() / 2), "image/png"},
      {flipped, "image/png"},
      {"not a png", "image/png"},
      {jpg.substr(0, jpg.size() / 2), "image/jpeg"},
      {"\xff\xd8 garbage", "image/jpeg"},
      {png, "image/gif"},
  };
  for (const auto& [bytes, type] : cases) {
    auto t = decode_image_input(bytes, type, in);
    ASSERT_FALSE(t.ok()) << type << " " << bytes.size();
    EXPECT_EQ(t.status().code(), Code::kInvalidArgument);
    EXPECT_EQ(t.status().message().find('\n'), std::string::npos);
  }
  // The size is checked before anything is decoded.
  huge.replace(16, 8, std::string("\x00\x01\x86\xa0\x00\x01\x86\xa0", 8));
  uint32_t crc =
      static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(huge.data() + 12), 17));
  for (int i = 0; i < 4; ++i) huge[29 + i] = static_cast<char>(crc >> (24 - 8 * i));
  auto h = decode_png(huge, 1);
  ASSERT_FALSE(h.ok());
  EXPECT_THAT(h.status().message(), HasSubstr("at most"));
  // A service whose input is not an image.
  auto not_image = decode_image_input(png, "image/png", image_input({10}));
  ASSERT_FALSE(not_image.ok());
  EXPECT_THAT(not_image.status().message(), HasSubstr("not an image"));
}

TEST(OpenApi, TheBuiltInDescriptionIsJsonNamingEveryRoute) {
  auto doc = nlohmann::json::parse(openapi_json());
  EXPECT_EQ(doc["openapi"].get<std::string>().substr(0, 2), "3.");
  for (const char* path :
       {"/idn/v1/services/{id}", "/idn/v1/services/{id}/infer", "/idn/v1/openapi.json"})
    EXPECT_TRUE(doc["paths"].contains(path)) << path;
}

}  // namespace
}  // namespace idn::gateway
