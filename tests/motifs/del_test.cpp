#include "motifs/del.h"

#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <random>

#include <gtest/gtest.h>

#include "daimon/labels.h"
#include "motifs/del_attack.h"

namespace idn::motifs {
namespace {

using daimon::Label;

std::vector<Label> test_labels(size_t m, uint32_t classes, uint64_t seed) {
  std::mt19937_64 rng(seed);
  return daimon::random_labels(m, classes, rng);
}

DelOptions small_options(DelEncoding e) {
  DelOptions o;
  o.classes = 10;
  o.n = 32;
  o.hidden = 128;
  o.encoding = e;
  o.epochs = 12;
  o.samples_per_epoch = 1024;
  o.batch = 32;
  o.test_samples = 256;
  o.seed = 3;
  return o;
}

// A one-hot DEL for `xt` trained briefly (the checks that use it need no accuracy).
Result<Del> quick_del(const std::vector<Label>& xt, uint32_t classes, int epochs, int64_t samples) {
  DelOptions o = small_options(DelEncoding::kOneHot);
  o.classes = classes;
  o.epochs = epochs;
  o.samples_per_epoch = samples;
  return train_del(xt, o);
}

// Mean |e - d| over fresh GENERATEDATA samples whose error is below `max_error` (near x_t).
double mean_gap_near(Del& del, const std::vector<Label>& xt, double max_error, int samples) {
  std::mt19937_64 rng(99);
  auto yt = del.embed(xt);
  EXPECT_TRUE(yt.ok());
  double sum = 0;
  int count = 0;
  while (count < samples) {
    auto x = daimon::generate_data(xt, del.classes(), rng);
    double e = *daimon::error(*x, xt);
    if (e >= max_error) continue;
    auto y = del.embed(*x);
    sum += std::abs(e - *daimon::distance(*y, *yt));
    ++count;
  }
  return sum / count;
}

// A DEL learned on a small m preserves the error near x_t: the loss falls, and for label
// vectors within 30 % error of x_t, |e - d| averages under 0.05 (an untrained MLP's is ~0.3).
TEST(Del, LearnsToPreserveTheErrorNearTheTestLabels) {
  const auto xt = test_labels(200, 10, 1);
  std::vector<DelEpoch> epochs;
  auto del = train_del(xt, small_options(DelEncoding::kOneHot),
                       [&](const DelEpoch& e) { epochs.push_back(e); });
  ASSERT_TRUE(del.ok()) << del.status().to_string();
  ASSERT_EQ(epochs.size(), 12u);
  EXPECT_LT(epochs.back().test_loss, 0.5 * epochs.front().test_loss);
  EXPECT_LT(mean_gap_near(*del, xt, 0.3, 200), 0.05);
  // d(f(x_t), f(x_t)) = 0 = e(x_t, x_t).
  auto yt = del->embed(xt);
  EXPECT_NEAR(*daimon::distance(*yt, *yt), 0.0, 1e-6);
}

// The package is the function: saved and loaded, it embeds exactly as the trained one.
TEST(Del, APackageSavedAndLoadedEmbedsTheSame) {
  const auto xt = test_labels(50, 4, 2);
  DelOptions o = small_options(DelEncoding::kValue);
  o.classes = 4;
  o.epochs = 2;
  o.samples_per_epoch = 64;
  auto del = train_del(xt, o);
  ASSERT_TRUE(del.ok()) << del.status().to_string();
  auto dir = std::filesystem::temp_directory_path() / "idn-del-roundtrip";
  std::filesystem::remove_all(dir);
  ASSERT_TRUE(model::save_package(del->package(), dir).is_ok());
  auto loaded = Del::load(dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status().to_string();
  EXPECT_EQ(loaded->m(), 50);
  EXPECT_EQ(loaded->classes(), 4u);
  EXPECT_EQ(loaded->encoding(), DelEncoding::kValue);
  std::mt19937_64 rng(5);
  for (int i = 0; i < 5; ++i) {
    auto x = daimon::random_labels(50, 4, rng);
    auto a = del->embed(x), b = loaded->embed(x);
    ASSERT_TRUE(a.ok() && b.ok());
    for (size_t k = 0; k < a->size(); ++k) EXPECT_FLOAT_EQ((*a)[k], (*b)[k]);
  }
  std::filesystem::remove_all(dir);
}

TEST(Del, RejectsLabelVectorsOfTheWrongSizeOrClass) {
  const auto xt = test_labels(20, 3, 4);
  auto del = quick_del(xt, 3, 1, 32);
  ASSERT_TRUE(del.ok());
  EXPECT_FALSE(del->embed(std::vector<Label>(19, 0)).ok());
  std::vector<Label> bad(20, 0);
  bad[7] = 3;
  auto r = del->embed(bad);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("position 7"), std::string::npos);
  std::vector<Label> xt_bad = xt;
  xt_bad[0] = 9;
  EXPECT_FALSE(quick_del(xt_bad, 3, 1, 32).ok());
}

// §6.4, Fig. 6.5's contrast: trained on label vectors near x_t the inverse network recovers x_t;
// trained on random label vectors it stays near chance (1 - 1/C).
TEST(DelInverseAttack, RecoversXtOnlyFromDataNearIt) {
  const auto xt = test_labels(60, 4, 6);
  auto del = quick_del(xt, 4, 4, 256);
  ASSERT_TRUE(del.ok());
  InverseAttackOptions a;
  a.epochs = 8;
  a.samples_per_epoch = 256;
  a.batch = 32;
  a.hidden = 64;
  a.data = InverseData::kNearby;
  auto nearby = inverse_attack(*del, xt, a);
  a.data = InverseData::kRandom;
  auto random = inverse_attack(*del, xt, a);
  ASSERT_TRUE(nearby.ok() && random.ok());
  ASSERT_EQ(nearby->size(), 8u);
  EXPECT_LT(nearby->back(), 0.1);
  EXPECT_GT(random->back(), 0.5);
}

}  // namespace
}  // namespace idn::motifs
