#include "gateway/request.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <jpeglib.h>
#include <png.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <limits>

#include "model/strict_json.h"

namespace idn::gateway {

namespace {

using nlohmann::json;

// InvalidArgument with a one-line message: parts of it (keys, parser positions) come from the
// request, and a reason goes back to the client as one line.
Status bad(std::string m) {
  for (char& c : m) {
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
  }
  return Status::invalid_argument(std::move(m));
}

// Parses a positive integer field within [1, max].
Result<int64_t> bounded_int(const json& v, std::string_view name, int64_t max) {
  if (!v.is_number_integer())
    return bad(fmt::format("\"{}\" must be an integer in [1, {}]", name, max));
  int64_t x = v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX) ? INT64_MAX
                                                                                : v.get<int64_t>();
  if (x < 1 || x > max) return bad(fmt::format("\"{}\" must be in [1, {}], not {}", name, max, x));
  return x;
}

Result<int64_t> parse_query_int(std::string_view text, std::string_view name, int64_t max) {
  int64_t x = 0;
  if (text.empty() || text.size() > 18)
    return bad(fmt::format("query {} must be an integer in [1, {}]", name, max));
  for (char c : text) {
    if (c < '0' || c > '9')
      return bad(fmt::format("query {} must be an integer in [1, {}]", name, max));
    x = x * 10 + (c - '0');
  }
  if (x < 1 || x > max)
    return bad(fmt::format("query {} must be in [1, {}], not {}", name, max, x));
  return x;
}

// The image geometry a service input asks for: [C, H, W] or [H, W] F32 with C 1 or 3.
struct Geometry {
  uint32_t channels = 0, height = 0, width = 0;
};

Result<Geometry> image_geometry(const ise::TensorType& input) {
  const auto& s = input.shape;
  Geometry g;
  bool ok = input.dtype == core::DType::kF32;
  if (ok && s.size() == 3 && (s[0] == 1 || s[0] == 3)) {
    g.channels = static_cast<uint32_t>(s[0]);
    ok = s[1] > 0 && s[2] > 0 && s[1] <= 4096 && s[2] <= 4096;
    if (ok) g.height = static_cast<uint32_t>(s[1]), g.width = static_cast<uint32_t>(s[2]);
  } else if (ok && s.size() == 2) {
    g.channels = 1;
    ok = s[0] > 0 && s[1] > 0 && s[0] <= 4096 && s[1] <= 4096;
    if (ok) g.height = static_cast<uint32_t>(s[0]), g.width = static_cast<uint32_t>(s[1]);
  } else {
    ok = false;
  }
  if (!ok)
    return bad(fmt::format("the service's input {} {} is not an image ([C, H, W] with C 1 or 3)",
                           core::dtype_name(input.dtype), fmt::join(s, "x")));
  return g;
}

// Resampling weights of one axis (PIL's bilinear: a triangle filter, widened by the scale when
// shrinking so every input pixel counts). Equal sizes give the identity.
struct Taps {
  std::vector<uint32_t> first;
  std::vector<std::vector<float>> weights;
};

Taps taps(uint32_t in, uint32_t out) {
  Taps t;
  double scale = static_cast<double>(in) / out;
  double support = std::max(scale, 1.0);
  for (uint32_t i = 0; i < out; ++i) {
    double center = (i + 0.5) * scale;
    int64_t lo = std::max<int64_t>(0, static_cast<int64_t>(std::floor(center - support)));
    int64_t hi = std::min<int64_t>(in, static_cast<int64_t>(std::ceil(center + support)));
    std::vector<float> w;
    double sum = 0;
    for (int64_t x = lo; x < hi; ++x) {
      double v = std::max(0.0, 1.0 - std::abs((x + 0.5 - center) / support));
      w.push_back(static_cast<float>(v));
      sum += v;
    }
    for (auto& v : w) v = static_cast<float>(v / sum);
    t.first.push_back(static_cast<uint32_t>(lo));
    t.weights.push_back(std::move(w));
  }
  return t;
}

struct JpegError {
  jpeg_error_mgr mgr;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void jpeg_fail(j_common_ptr cinfo) {
  auto* e = reinterpret_cast<JpegError*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, e->message);
  std::longjmp(e->jump, 1);
}

// Warnings (level -1) are about corrupt data libjpeg would paper over (a truncated file decodes
// as grey): a request with such an image is refused like any bad image.
void jpeg_message(j_common_ptr cinfo, int level) {
  if (level < 0) jpeg_fail(cinfo);
}

// Decodes into *out; false with err->message set when libjpeg failed. libjpeg reports errors by
// longjmp back into this frame, so nothing here has a destructor: the caller owns every object.
bool jpeg_decode(jpeg_decompress_struct* cinfo, JpegError* err, std::string_view bytes,
                 uint32_t channels, Image* out) {
  cinfo->err = jpeg_std_error(&err->mgr);
  err->mgr.error_exit = jpeg_fail;
  err->mgr.emit_message = jpeg_message;
  if (setjmp(err->jump)) return false;
  jpeg_create_decompress(cinfo);
  jpeg_mem_src(cinfo, reinterpret_cast<const unsigned char*>(bytes.data()),
               static_cast<unsigned long>(bytes.size()));
  jpeg_read_header(cinfo, TRUE);
  if (uint64_t{cinfo->image_width} * cinfo->image_height > kMaxImagePixels) {
    std::snprintf(err->message, sizeof err->message, "%ux%u pixels; at most %llu pixels",
                  cinfo->image_width, cinfo->image_height,
                  static_cast<unsigned long long>(kMaxImagePixels));
    return false;
  }
  cinfo->out_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_start_decompress(cinfo);
  out->width = cinfo->output_width;
  out->height = cinfo->output_height;
  out->channels = channels;
  out->pixels.resize(size_t{out->width} * out->height * channels);
  while (cinfo->output_scanline < cinfo->output_height) {
    JSAMPROW row = out->pixels.data() + size_t{cinfo->output_scanline} * out->width * channels;
    jpeg_read_scanlines(cinfo, &row, 1);
  }
  jpeg_finish_decompress(cinfo);
  return true;
}

}  // namespace

Result<InferParams> parse_infer_json(std::string_view body, const ise::TensorType& input) {
  auto doc = model::parse_json_strict(body, kMaxJsonDepth);
  if (!doc.ok()) return bad("malformed JSON: " + doc.status().message());
  const json& j = *doc;
  if (!j.is_object()) return bad("the body must be a JSON object with \"input\"");
  InferParams p;
  for (const auto& [key, v] : j.items()) {
    if (key == "fanout") {
      IDN_ASSIGN_OR_RETURN(auto f, bounded_int(v, key, kMaxFanout));
      p.fanout = static_cast<size_t>(f);
    } else if (key == "deadline_ms") {
      IDN_ASSIGN_OR_RETURN(auto d, bounded_int(v, key, kMaxDeadline.count()));
      p.deadline = std::chrono::milliseconds(d);
    } else if (key != "input") {
      return bad(fmt::format("unknown key \"{}\" (expected input, fanout, deadline_ms)", key));
    }
  }
  auto in = j.find("input");
  if (in == j.end() || !in->is_object())
    return bad("\"input\" must be an object {\"shape\":[...],\"data\":[...]}");
  for (const auto& [key, v] : in->items()) {
    if (key != "shape" && key != "data")
      return bad(fmt::format("unknown key \"input.{}\" (expected shape, data)", key));
  }
  auto shape_it = in->find("shape");
  auto data_it = in->find("data");
  if (shape_it == in->end() || !shape_it->is_array())
    return bad("\"input.shape\" must be an array of positive integers");
  if (data_it == in->end() || !data_it->is_array())
    return bad("\"input.data\" must be an array of numbers");
  if (shape_it->size() > ise::kMaxRank)
    return bad(fmt::format("\"input.shape\" has {} dimensions; at most {}", shape_it->size(),
                           ise::kMaxRank));
  std::vector<int64_t> shape;
  uint64_t numel = 1;
  for (const auto& d : *shape_it) {
    if (!d.is_number_unsigned() || d.get<uint64_t>() < 1 || d.get<uint64_t>() > (uint64_t{1} << 31))
      return bad("\"input.shape\" must hold integers in [1, 2^31]");
    shape.push_back(d.get<int64_t>());
    numel *= static_cast<uint64_t>(shape.back());
    if (numel > (uint64_t{1} << 40)) return bad("\"input.shape\" is too large");
  }
  if (shape != input.shape)
    return bad(fmt::format("\"input.shape\" [{}] does not match the service's input [{}]",
                           fmt::join(shape, ","), fmt::join(input.shape, ",")));
  if (input.dtype != core::DType::kF32)
    return bad(fmt::format("the service's input is {}; JSON input must be F32",
                           core::dtype_name(input.dtype)));
  if (data_it->size() != numel)
    return bad(fmt::format("\"input.data\" has {} numbers; shape [{}] needs {}", data_it->size(),
                           fmt::join(shape, ","), numel));
  std::vector<float> values;
  values.reserve(numel);
  for (const auto& v : *data_it) {
    if (!v.is_number()) return bad("\"input.data\" must hold only numbers");
    double x = v.get<double>();
    if (!std::isfinite(x) || std::abs(x) > FLT_MAX)
      return bad("\"input.data\" must hold finite 32-bit floats");
    values.push_back(static_cast<float>(x));
  }
  p.input = core::Tensor::f32(std::move(shape), values);
  return p;
}

Status parse_infer_query(std::string_view query, InferParams& out) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    std::string_view key = pair.substr(0, eq);
    std::string_view value =
        eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1);
    if (key == "fanout") {
      IDN_ASSIGN_OR_RETURN(auto f, parse_query_int(value, key, kMaxFanout));
      out.fanout = static_cast<size_t>(f);
    } else if (key == "deadline_ms") {
      IDN_ASSIGN_OR_RETURN(auto d, parse_query_int(value, key, kMaxDeadline.count()));
      out.deadline = std::chrono::milliseconds(d);
    } else {
      return bad(fmt::format("unknown query parameter \"{}\" (expected fanout, deadline_ms)",
                             key.substr(0, 64)));
    }
  }
  return Status::ok();
}

Result<Image> decode_png(std::string_view bytes, uint32_t channels) {
  if (channels != 1 && channels != 3) return bad("an image is decoded to 1 or 3 channels");
  png_image img{};
  img.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&img, bytes.data(), bytes.size()))
    return bad(fmt::format("bad PNG: {}", img.message));
  if (uint64_t{img.width} * img.height > kMaxImagePixels) {
    png_image_free(&img);
    return bad(fmt::format("PNG of {}x{} pixels; at most {} pixels", img.width, img.height,
                           kMaxImagePixels));
  }
  img.format = channels == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
  Image out;
  out.width = img.width;
  out.height = img.height;
  out.channels = channels;
  out.pixels.assign(PNG_IMAGE_SIZE(img), 0);  // black: what alpha is composited onto
  if (!png_image_finish_read(&img, nullptr, out.pixels.data(), 0, nullptr))
    return bad(fmt::format("bad PNG: {}", img.message));
  return out;
}

Result<Image> decode_jpeg(std::string_view bytes, uint32_t channels) {
  if (channels != 1 && channels != 3) return bad("an image is decoded to 1 or 3 channels");
  Image out;
  jpeg_decompress_struct cinfo{};
  JpegError err{};
  bool ok = jpeg_decode(&cinfo, &err, bytes, channels, &out);
  jpeg_destroy_decompress(&cinfo);
  if (!ok) return bad(fmt::format("bad JPEG: {}", err.message));
  return out;
}

Result<core::Tensor> image_to_input(const Image& img, const ise::TensorType& input) {
  IDN_ASSIGN_OR_RETURN(auto g, image_geometry(input));
  if (img.channels != g.channels || img.width == 0 || img.height == 0 ||
      img.pixels.size() != size_t{img.width} * img.height * img.channels)
    return bad("image does not match its own geometry");
  const uint32_t c = g.channels;
  // Rows first (input rows -> output rows), then columns, in float.
  Taps ty = taps(img.height, g.height), tx = taps(img.width, g.width);
  std::vector<float> rows(size_t{g.height} * img.width * c, 0.0f);
  for (uint32_t y = 0; y < g.height; ++y) {
    for (size_t k = 0; k < ty.weights[y].size(); ++k) {
      const uint8_t* src = img.pixels.data() + size_t{ty.first[y] + k} * img.width * c;
      float w = ty.weights[y][k];
      float* dst = rows.data() + size_t{y} * img.width * c;
      for (size_t i = 0; i < size_t{img.width} * c; ++i) dst[i] += w * src[i];
    }
  }
  std::vector<float> planar(size_t{c} * g.height * g.width);
  for (uint32_t y = 0; y < g.height; ++y) {
    for (uint32_t x = 0; x < g.width; ++x) {
      for (uint32_t ch = 0; ch < c; ++ch) {
        float v = 0;
        for (size_t k = 0; k < tx.weights[x].size(); ++k)
          v += tx.weights[x][k] * rows[(size_t{y} * img.width + tx.first[x] + k) * c + ch];
        v = std::clamp(v, 0.0f, 255.0f);
        planar[(size_t{ch} * g.height + y) * g.width + x] = v / 255.0f;
      }
    }
  }
  return core::Tensor::f32(input.shape, planar);
}

Result<core::Tensor> decode_image_input(std::string_view bytes, std::string_view media_type,
                                        const ise::TensorType& input) {
  IDN_ASSIGN_OR_RETURN(auto g, image_geometry(input));
  if (media_type != "image/png" && media_type != "image/jpeg") {
    return bad(
        fmt::format("unsupported content type \"{}\": send application/json, image/png "
                    "or image/jpeg",
                    media_type.substr(0, 64)));
  }
  auto img =
      media_type == "image/png" ? decode_png(bytes, g.channels) : decode_jpeg(bytes, g.channels);
  if (!img.ok()) return img.status();
  return image_to_input(*img, input);
}

}  // namespace idn::gateway
