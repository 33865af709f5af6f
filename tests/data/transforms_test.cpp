#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "data/augment.h"
#include "data/normalize.h"

namespace idn::data {
namespace {

Dataset random_two_channel(int64_t n) {
  Dataset d;
  d.n = n;
  d.c = 2;
  d.h = 3;
  d.w = 4;
  std::mt19937_64 rng(9);
  for (int64_t i = 0; i < n * d.image_size(); ++i) {
    const bool ch1 = (i / 12) % 2 == 1;
    float u = static_cast<float>(rng() % 1000) / 1000.0f;
    d.images.push_back(ch1 ? 5.0f + 3.0f * u : 0.2f * u);
  }
  d.labels.assign(static_cast<size_t>(n), 0);
  return d;
}

TEST(NormalizeTest, StatsOfKnownValues) {
  Dataset d;
  d.n = 2;
  d.c = 1;
  d.h = 1;
  d.w = 2;
  d.images = {1, 3, 5, 7};
  d.labels = {0, 0};
  ChannelStats s = compute_channel_stats(d);
  EXPECT_FLOAT_EQ(s.mean[0], 4.0f);
  EXPECT_FLOAT_EQ(s.std[0], std::sqrt(5.0f));
}

TEST(NormalizeTest, NormalisedChannelsHaveZeroMeanUnitStd) {
  Dataset d = random_two_channel(200);
  ChannelStats before = compute_channel_stats(d);
  EXPECT_GT(before.mean[1], 5.0f);
  ASSERT_TRUE(normalize(d, before).is_ok());
  ChannelStats after = compute_channel_stats(d);
  for (int c = 0; c < 2; ++c) {
    EXPECT_NEAR(after.mean[c], 0.0f, 1e-4f);
    EXPECT_NEAR(after.std[c], 1.0f, 1e-4f);
  }
}

TEST(NormalizeTest, RejectsWrongChannelCountAndZeroStd) {
  Dataset d = random_two_channel(2);
  EXPECT_FALSE(normalize(d, ChannelStats{{0}, {1}}).is_ok());
  EXPECT_THAT(normalize(d, ChannelStats{{0, 0}, {1, 0}}).message(),
              ::testing::HasSubstr("channel 1"));
}

// 1 x 3 x 3 image with values 1..9.
const std::vector<float> kImg = {1, 2, 3, 4, 5, 6, 7, 8, 9};

TEST(AugmentTest, CropAtCentreOffsetIsIdentity) {
  std::vector<float> out(9);
  crop_padded(kImg, 1, 3, 3, 1, 1, 1, 0.0f, out);
  EXPECT_EQ(out, kImg);
}

TEST(AugmentTest, CropShiftsContentAndFillsPadding) {
  std::vector<float> out(9);
  crop_padded(kImg, 1, 3, 3, 1, 0, 0, -1.0f, out);  // window starts in the padding corner
  EXPECT_EQ(out, (std::vector<float>{-1, -1, -1, -1, 1, 2, -1, 4, 5}));
  crop_padded(kImg, 1, 3, 3, 1, 2, 2, 0.0f, out);  // window ends in the far padding corner
  EXPECT_EQ(out, (std::vector<float>{5, 6, 0, 8, 9, 0, 0, 0, 0}));
  crop_padded(kImg, 1, 3, 3, 2, 4, 2, 0.0f, out);  // two rows down, no horizontal shift
  EXPECT_EQ(out, (std::vector<float>{7, 8, 9, 0, 0, 0, 0, 0, 0}));
}

TEST(AugmentTest, FlipMirrorsEachRowOfEachChannel) {
  std::vector<float> img = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};  // 2 x 2 x 3
  flip_horizontal(img, 2, 2, 3);
  EXPECT_EQ(img, (std::vector<float>{3, 2, 1, 6, 5, 4, 9, 8, 7, 12, 11, 10}));
}

TEST(AugmentTest, NoOptionsIsIdentity) {
  std::mt19937_64 rng(1);
  std::vector<float> out(9);
  augment_image(kImg, 1, 3, 3, AugmentOptions{}, rng, out);
  EXPECT_EQ(out, kImg);
}

TEST(AugmentTest, SameSeedSameImagesAndEveryOutputIsAValidCrop) {
  AugmentOptions opt{.pad = 1, .hflip = true, .fill = 0.0f};
  std::mt19937_64 a(123), b(123), c(124);
  std::vector<std::vector<float>> outs_a, outs_c;
  std::set<std::vector<float>> distinct;
  for (int i = 0; i < 200; ++i) {
    std::vector<float> x(9), y(9), z(9);
    augment_image(kImg, 1, 3, 3, opt, a, x);
    augment_image(kImg, 1, 3, 3, opt, b, y);
    augment_image(kImg, 1, 3, 3, opt, c, z);
    EXPECT_EQ(x, y);
    outs_a.push_back(x);
    outs_c.push_back(z);
    distinct.insert(x);
    bool valid = false;
    for (int dy = 0; dy <= 2 && !valid; ++dy)
      for (int dx = 0; dx <= 2 && !valid; ++dx)
        for (bool flip : {false, true}) {
          std::vector<float> want(9);
          crop_padded(kImg, 1, 3, 3, 1, dy, dx, 0.0f, want);
          if (flip) flip_horizontal(want, 1, 3, 3);
          if (want == x) valid = true;
        }
    EXPECT_TRUE(valid) << "output " << i << " is not a padded crop (optionally flipped)";
  }
  EXPECT_NE(outs_a, outs_c);
  EXPECT_EQ(distinct.size(), 18u);  // 9 offsets x 2 flips, all reached
}

TEST(AugmentTest, MakeBatchGathersLabelsAndImages) {
  Dataset d;
  d.n = 3;
  d.c = 1;
  d.h = 1;
  d.w = 2;
  d.images = {1, 2, 3, 4, 5, 6};
  d.labels = {7, 8, 9};
  std::mt19937_64 rng(0);
  std::vector<float> images;
  std::vector<int64_t> labels;
  std::vector<int64_t> idx = {2, 0};
  make_batch(d, idx, AugmentOptions{}, rng, images, labels);
  EXPECT_EQ(images, (std::vector<float>{5, 6, 1, 2}));
  EXPECT_EQ(labels, (std::vector<int64_t>{9, 7}));
}

}  // namespace
}  // namespace idn::data
