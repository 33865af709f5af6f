// The HTTP gateway's request bodies, torch- and network-free so they can be fuzzed: the JSON
// form {"input":{"shape":[...],"data":[...]},"fanout":2,"deadline_ms":500}, and PNG / JPEG
// images (libpng, libjpeg-turbo) converted to a service's input as its descriptor says.
// Every function is pure and thread-safe.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "ise/service_descriptor.h"

namespace idn::gateway {

// An infer request's body: a 224x224x3 input written as JSON numbers is ~2 MB; more is 413.
inline constexpr size_t kMaxInferBody = 4 * 1024 * 1024;
// A decoded image may have at most this many pixels (a small PNG can claim a huge size: the
// header is checked before anything is decoded).
inline constexpr uint64_t kMaxImagePixels = uint64_t{4096} * 4096;
// Peers asked at once: more than a handful only multiplies the network's work.
inline constexpr size_t kMaxFanout = 16;
inline constexpr size_t kDefaultFanout = 2;
inline constexpr std::chrono::milliseconds kDefaultDeadline{2000};
inline constexpr std::chrono::milliseconds kMaxDeadline{60000};
// Nesting a well-formed body needs (object, input object, arrays).
inline constexpr int kMaxJsonDepth = 4;

struct InferParams {
  core::Tensor input;
  size_t fanout = kDefaultFanout;
  std::chrono::milliseconds deadline = kDefaultDeadline;
};

// The JSON body, checked against the service's input (shape equal to `input.shape`, finite
// numbers, no unknown keys). Errors: InvalidArgument with a one-line reason.
Result<InferParams> parse_infer_json(std::string_view body, const ise::TensorType& input);

// fanout and deadline_ms from a query string ("fanout=2&deadline_ms=500"; other keys are
// refused), for image bodies. `out.input` is left as it is. Errors: InvalidArgument.
Status parse_infer_query(std::string_view query, InferParams& out);

// An 8-bit image, rows top to bottom, channels interleaved (1: gray, 3: RGB).
struct Image {
  uint32_t width = 0, height = 0, channels = 0;
  std::vector<uint8_t> pixels;
};

// Decodes PNG (any bit depth, palette, alpha composited on black) or JPEG bytes to gray
// (`channels` 1) or RGB (3). Errors: InvalidArgument (corrupt, truncated or too large).
Result<Image> decode_png(std::string_view bytes, uint32_t channels);
Result<Image> decode_jpeg(std::string_view bytes, uint32_t channels);

// The service input an image becomes: the descriptor's input is [C, H, W] or [H, W] F32 with C
// 1 (gray) or 3 (RGB); the image is resampled to H x W (triangle filter, widened when
// shrinking) and scaled to [0, 1]. Normalisation (mean/std) is not the descriptor's: the
// package carries it and the engine applies it, so raw [0, 1] pixels are what a service takes.
// Errors: InvalidArgument (the service's input is not an image).
Result<core::Tensor> image_to_input(const Image& img, const ise::TensorType& input);

// decode_png / decode_jpeg by media type ("image/png", "image/jpeg"), then image_to_input.
// Errors: InvalidArgument (unsupported type, bad image, input not an image).
Result<core::Tensor> decode_image_input(std::string_view bytes, std::string_view media_type,
                                        const ise::TensorType& input);

}  // namespace idn::gateway
