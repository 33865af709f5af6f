#include "core/status.h"

#include <gtest/gtest.h>

#include "core/tensor.h"

namespace idn {
namespace {

Result<int> parse_positive(int v) {
  if (v <= 0) return Status::invalid_argument("value must be positive, got " + std::to_string(v));
  return v;
}

Result<int> doubled(int v) {
  IDN_ASSIGN_OR_RETURN(int x, parse_positive(v));
  return 2 * x;
}

TEST(StatusTest, ErrorsCarryCodeAndActionableMessage) {
  auto r = doubled(-3);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_EQ(r.status().to_string(), "Invalid argument: value must be positive, got -3");
  EXPECT_EQ(r.status().with_context("model.json").message(),
            "model.json: value must be positive, got -3");
}

TEST(StatusTest, ValuesPassThrough) {
  auto r = doubled(21);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 42);
  EXPECT_TRUE(r.status().is_ok());
}

TEST(TensorTest, ValidateChecksByteCountAgainstShapeAndDtype) {
  auto t = core::Tensor::f32({2, 3}, std::vector<float>(6, 1.f));
  EXPECT_TRUE(t.validate().is_ok());
  t.bytes.pop_back();
  EXPECT_EQ(t.validate().code(), Code::kInvalidArgument);
  core::Tensor neg{core::DType::kU8, {-1}, {}};
  EXPECT_FALSE(neg.validate().is_ok());
  core::Tensor huge{core::DType::kF32, {1 << 30, 1 << 30, 1 << 30}, {}};
  EXPECT_EQ(huge.validate().code(), Code::kLimitExceeded);
}

TEST(TensorTest, DtypeNamesRoundTripAndUnknownIsRefused) {
  for (auto d : {core::DType::kF32, core::DType::kBF16, core::DType::kBool, core::DType::kI64}) {
    auto p = core::parse_dtype(core::dtype_name(d));
    ASSERT_TRUE(p.ok());
    EXPECT_EQ(*p, d);
  }
  EXPECT_FALSE(core::parse_dtype("F128").ok());
}

}  // namespace
}  // namespace idn
