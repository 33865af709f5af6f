// derive_k: the cores bound alone without costs; the memory budget over the largest service
// (one copy per worker) that fits; services larger than the whole budget are named, not counted.
#include "ise/capacity.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace idn::ise {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr uint64_t kMiB = 1024 * 1024;

Bytes id(uint8_t b) {
  return Bytes{b};
}

TEST(DeriveK, WithoutKnownCostsOnlyTheCoresBound) {
  DerivedK d = derive_k({8, 1024 * kMiB, 1}, {{id(1), std::nullopt}, {id(2), std::nullopt}});
  EXPECT_EQ(d.k, 8u);
  EXPECT_FALSE(d.largest_bytes.has_value());
  EXPECT_THAT(d.why, HasSubstr("no service's cost known"));
  EXPECT_EQ(derive_k({4, 0, 1}, {}).k, 4u);
  EXPECT_EQ(derive_k({0, 0, 1}, {}).k, 1u);  // a machine that reports no cores still hosts one
}

TEST(DeriveK, MemoryBudgetOverTheLargestServiceTimesWorkers) {
  // 1 GiB over the largest, 100 MiB x 2 workers: 5 services fit, fewer than 8 cores.
  DerivedK d =
      derive_k({8, 1024 * kMiB, 2}, {{id(1), 100 * kMiB}, {id(2), 10 * kMiB}, {id(3), {}}});
  EXPECT_EQ(d.k, 5u);
  EXPECT_EQ(d.largest_bytes, 200 * kMiB);
  EXPECT_TRUE(d.too_big.empty());
  EXPECT_THAT(d.why, HasSubstr("min(8 cores, 1024.0 MiB budget / 200.0 MiB"));
  // Plenty of memory: the cores bound wins.
  EXPECT_EQ(derive_k({3, 1024 * kMiB, 1}, {{id(1), kMiB}}).k, 3u);
}

TEST(DeriveK, AServiceLargerThanTheBudgetIsNamedAndDoesNotShrinkK) {
  DerivedK d = derive_k({8, 100 * kMiB, 1}, {{id(1), 500 * kMiB}, {id(2), 50 * kMiB}});
  EXPECT_EQ(d.k, 2u);
  EXPECT_THAT(d.too_big, ElementsAre(id(1)));
  EXPECT_THAT(d.why, HasSubstr("larger than the whole budget"));
  // Only too-big ones: the cores bound.
  EXPECT_EQ(derive_k({2, 100 * kMiB, 1}, {{id(1), 500 * kMiB}}).k, 2u);
}

TEST(DeriveK, ParameterFreeModelsCostNothing) {
  EXPECT_EQ(derive_k({6, 10 * kMiB, 4}, {{id(1), 0}}).k, 6u);
}

}  // namespace
}  // namespace idn::ise
