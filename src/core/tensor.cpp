#include "core/tensor.h"

#include <cassert>
#include <cstring>
#include <limits>

namespace idn::core {

size_t dtype_size(DType d) {
  switch (d) {
    case DType::kF64:
    case DType::kI64:
      return 8;
    case DType::kF32:
    case DType::kI32:
      return 4;
    case DType::kF16:
    case DType::kBF16:
    case DType::kI16:
      return 2;
    case DType::kI8:
    case DType::kU8:
    case DType::kBool:
      return 1;
  }
  return 0;
}

std::string_view dtype_name(DType d) {
  switch (d) {
    case DType::kF32:
      return "F32";
    case DType::kF64:
      return "F64";
    case DType::kF16:
      return "F16";
    case DType::kBF16:
      return "BF16";
    case DType::kI64:
      return "I64";
    case DType::kI32:
      return "I32";
    case DType::kI16:
      return "I16";
    case DType::kI8:
      return "I8";
    case DType::kU8:
      return "U8";
    case DType::kBool:
      return "BOOL";
  }
  return "?";
}

Result<DType> parse_dtype(std::string_view name) {
  for (int i = 0; i <= static_cast<int>(DType::kBool); ++i) {
    auto d = static_cast<DType>(i);
    if (dtype_name(d) == name) return d;
  }
  return Status::unsupported("unknown dtype '" + std::string(name) +
                             "' (expected one of F32 F64 F16 BF16 I64 I32 I16 I8 U8 BOOL)");
}

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

Status Tensor::validate() const {
  uint64_t n = 1;
  constexpr uint64_t kMax = uint64_t{1} << 48;
  for (int64_t d : shape) {
    if (d < 0)
      return Status::invalid_argument("negative dimension in shape " + shape_string(shape));
    if (d != 0 && n > kMax / static_cast<uint64_t>(d))
      return Status::limit_exceeded("shape " + shape_string(shape) + " has too many elements");
    n *= static_cast<uint64_t>(d);
  }
  if (n * dtype_size(dtype) != bytes.size())
    return Status::invalid_argument("tensor of shape " + shape_string(shape) + " and dtype " +
                                    std::string(dtype_name(dtype)) + " needs " +
                                    std::to_string(n * dtype_size(dtype)) + " bytes, has " +
                                    std::to_string(bytes.size()));
  return Status::ok();
}

Tensor Tensor::f32(std::vector<int64_t> shape, std::span<const float> values) {
  Tensor t{DType::kF32, std::move(shape), {}};
  t.bytes.resize(values.size() * sizeof(float));
  if (!values.empty()) std::memcpy(t.bytes.data(), values.data(), t.bytes.size());
  return t;
}

Tensor Tensor::zeros(DType dtype, std::vector<int64_t> shape) {
  Tensor t{dtype, std::move(shape), {}};
  t.bytes.assign(static_cast<size_t>(t.numel()) * dtype_size(dtype), 0);
  return t;
}

std::span<const float> Tensor::f32() const {
  assert(dtype == DType::kF32);
  return {reinterpret_cast<const float*>(bytes.data()), bytes.size() / sizeof(float)};
}

std::span<float> Tensor::f32_mut() {
  assert(dtype == DType::kF32);
  return {reinterpret_cast<float*>(bytes.data()), bytes.size() / sizeof(float)};
}

std::string shape_string(std::span<const int64_t> shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

}  // namespace idn::core
