// Fuzzes the HTTP gateway's request bodies (gateway/request.h; they arrive from any HTTP
// client): the first byte picks the JSON body, a PNG, a JPEG or the query string, the second
// the service input the body is checked against. Whatever the bytes, nothing crashes; an error
// is one line; an accepted body is exactly the service's input shape, finite, and an image's
// values lie in [0, 1].
// fuzz-deps: idn_gateway idn_ise idn_model idn_core
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_check.h"
#include "gateway/request.h"

using namespace idn;

namespace {

void check_error(const Status& s) {
  CHECK(!s.is_ok());
  CHECK(!s.message().empty());
  CHECK(s.message().find('\n') == std::string::npos);
}

void check_input(const core::Tensor& t, const ise::TensorType& in, bool unit) {
  CHECK(t.shape == in.shape);
  for (float v : t.f32()) {
    CHECK(std::isfinite(v));
    if (unit) CHECK(v >= 0.0f && v <= 1.0f);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint8_t mode = data[0] % 4;
  // Inputs a service may declare: FashionMNIST's, RGB, a plain [H, W], and one that is not an
  // image at all.
  static const ise::TensorType kInputs[] = {
      {"image", core::DType::kF32, {1, 28, 28}},
      {"image", core::DType::kF32, {3, 8, 5}},
      {"image", core::DType::kF32, {4, 4}},
      {"x", core::DType::kF32, {10}},
  };
  const ise::TensorType& in = kInputs[data[1] % 4];
  std::string_view body(reinterpret_cast<const char*>(data + 2), size - 2);
  switch (mode) {
    case 0: {
      auto p = gateway::parse_infer_json(body, in);
      if (!p.ok()) {
        check_error(p.status());
        break;
      }
      check_input(p->input, in, false);
      CHECK(p->fanout >= 1 && p->fanout <= gateway::kMaxFanout);
      CHECK(p->deadline.count() >= 1 && p->deadline <= gateway::kMaxDeadline);
      break;
    }
    case 1:
    case 2: {
      auto t = gateway::decode_image_input(body, mode == 1 ? "image/png" : "image/jpeg", in);
      if (!t.ok()) {
        check_error(t.status());
        break;
      }
      check_input(*t, in, true);
      auto img = mode == 1 ? gateway::decode_png(body, 1) : gateway::decode_jpeg(body, 1);
      if (img.ok()) {
        CHECK(uint64_t{img->width} * img->height <= gateway::kMaxImagePixels);
        CHECK(img->pixels.size() == size_t{img->width} * img->height);
      }
      break;
    }
    default: {
      gateway::InferParams p;
      Status s = gateway::parse_infer_query(body, p);
      if (!s.is_ok()) {
        check_error(s);
        break;
      }
      CHECK(p.fanout >= 1 && p.fanout <= gateway::kMaxFanout);
      break;
    }
  }
  return 0;
}
