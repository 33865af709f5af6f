// A plain tensor value (dtype, shape, bytes) for everything outside the ML layers: the wire,
// the store and the safetensors codec carry this, never a LibTorch tensor. Row-major,
// little-endian, contiguous.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/bytes.h"
#include "core/status.h"

namespace idn::core {

// Append-only: values travel on the wire and in files.
enum class DType : uint8_t {
  kF32 = 0,
  kF64 = 1,
  kF16 = 2,
  kBF16 = 3,
  kI64 = 4,
  kI32 = 5,
  kI16 = 6,
  kI8 = 7,
  kU8 = 8,
  kBool = 9,
};

size_t dtype_size(DType d);
// The safetensors spelling: "F32", "I64", "BOOL", ...
std::string_view dtype_name(DType d);
Result<DType> parse_dtype(std::string_view name);

struct Tensor {
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  Bytes bytes;

  // Product of the shape (1 for a scalar). Does not check for overflow; validate() does.
  int64_t numel() const;
  // Checks that shape dims are non-negative, numel fits, and bytes.size() matches.
  Status validate() const;

  static Tensor f32(std::vector<int64_t> shape, std::span<const float> values);
  static Tensor zeros(DType dtype, std::vector<int64_t> shape);
  // Views of the data; the caller must have checked dtype (asserted in debug builds).
  std::span<const float> f32() const;
  std::span<float> f32_mut();

  bool operator==(const Tensor&) const = default;
};

// "[1, 28, 28]"
std::string shape_string(std::span<const int64_t> shape);

}  // namespace idn::core
