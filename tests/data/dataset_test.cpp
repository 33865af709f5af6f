#include "data/dataset.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>

#include "data/sampling.h"
#include "data/test_util.h"

namespace idn::data {
namespace {

using ::testing::HasSubstr;

// n samples of 1x1x1 whose pixel value is the sample index: splits are easy to trace.
Dataset indexed(int64_t n) {
  Dataset d;
  d.n = n;
  d.c = d.h = d.w = 1;
  for (int64_t i = 0; i < n; ++i) {
    d.images.push_back(static_cast<float>(i));
    d.labels.push_back(i % 10);
  }
  return d;
}

std::vector<int64_t> ids(const Dataset& d) {
  std::vector<int64_t> v;
  for (float x : d.images) v.push_back(static_cast<int64_t>(x));
  return v;
}

void write_fake_fashion(const std::filesystem::path& dir, int64_t images, int64_t labels,
                        uint8_t max_label = 9) {
  IdxArray img{{images, 4, 4}, Bytes(static_cast<size_t>(images * 16))};
  for (size_t i = 0; i < img.data.size(); ++i) img.data[i] = static_cast<uint8_t>(i * 17);
  IdxArray lab{{labels}, Bytes(static_cast<size_t>(labels))};
  for (size_t i = 0; i < lab.data.size(); ++i) lab.data[i] = static_cast<uint8_t>(i % 10);
  if (!lab.data.empty()) lab.data.back() = max_label;
  testing::write_bytes(dir / "train-images-idx3-ubyte.gz", testing::gzip(encode_idx(img)));
  testing::write_bytes(dir / "train-labels-idx1-ubyte.gz", testing::gzip(encode_idx(lab)));
}

TEST(DatasetTest, LoadsFashionMnistLayoutScaledToUnitRange) {
  auto dir = testing::temp_dir("fake_fashion");
  write_fake_fashion(dir, 5, 5);
  auto d = load_fashion_mnist(dir, Split::kTrain);
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  EXPECT_EQ(d->n, 5);
  EXPECT_EQ(d->c, 1);
  EXPECT_EQ(d->h, 4);
  EXPECT_EQ(d->w, 4);
  ASSERT_EQ(d->images.size(), 80u);
  EXPECT_FLOAT_EQ(d->images[1], 17.0f / 255.0f);
  EXPECT_FLOAT_EQ(d->image(1)[0], static_cast<uint8_t>(16 * 17) / 255.0f);
  EXPECT_EQ(d->labels, (std::vector<int64_t>{0, 1, 2, 3, 9}));
}

TEST(DatasetTest, ImageAndLabelCountMismatchIsAnError) {
  auto dir = testing::temp_dir("fake_mismatch");
  write_fake_fashion(dir, 5, 4);
  auto st = load_fashion_mnist(dir, Split::kTrain).status();
  EXPECT_EQ(st.code(), Code::kCorruption);
  EXPECT_THAT(st.message(), HasSubstr("images file has 5 images but labels file has 4 labels"));
}

TEST(DatasetTest, LabelOutOfRangeIsAnError) {
  auto dir = testing::temp_dir("fake_label");
  write_fake_fashion(dir, 3, 3, 10);
  EXPECT_THAT(load_fashion_mnist(dir, Split::kTrain).status().message(),
              HasSubstr("label 10 of sample 2 is outside 0..9"));
}

TEST(DatasetTest, MissingFilesNameThePath) {
  auto dir = testing::temp_dir("fake_missing");
  auto st = load_fashion_mnist(dir, Split::kTest).status();
  EXPECT_EQ(st.code(), Code::kNotFound);
  EXPECT_THAT(st.message(), HasSubstr((dir / "t10k-images-idx3-ubyte.gz").string()));
  EXPECT_THAT(st.message(), ::testing::Not(HasSubstr("apt-get")));
}

TEST(DatasetTest, DefaultDirIsWhereDebianInstallsIt) {
  EXPECT_EQ(default_fashion_mnist_dir(), "/usr/share/datasets/fashion-mnist");
  EXPECT_EQ(fashion_mnist_class_names()[0], "T-shirt/top");
  EXPECT_EQ(fashion_mnist_class_names()[9], "Ankle boot");
}

TEST(DatasetTest, RealFashionMnistIfInstalled) {
  if (!std::filesystem::exists(default_fashion_mnist_dir() / "train-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  auto train = load_fashion_mnist(default_fashion_mnist_dir(), Split::kTrain);
  ASSERT_TRUE(train.ok()) << train.status().to_string();
  auto test = load_fashion_mnist(default_fashion_mnist_dir(), Split::kTest);
  ASSERT_TRUE(test.ok()) << test.status().to_string();
  EXPECT_EQ(train->n, 60000);
  EXPECT_EQ(test->n, 10000);
  for (const Dataset* d : {&*train, &*test}) {
    EXPECT_EQ(d->c, 1);
    EXPECT_EQ(d->h, 28);
    EXPECT_EQ(d->w, 28);
    EXPECT_EQ(d->images.size(), static_cast<size_t>(d->n * 784));
    std::vector<int64_t> per_class(10, 0);
    for (int64_t l : d->labels) {
      ASSERT_GE(l, 0);
      ASSERT_LE(l, 9);
      ++per_class[l];
    }
    for (int64_t count : per_class) EXPECT_EQ(count, d->n / 10);  // FashionMNIST is balanced
    auto [lo, hi] = std::minmax_element(d->images.begin(), d->images.end());
    EXPECT_EQ(*lo, 0.0f);
    EXPECT_EQ(*hi, 1.0f);
  }
}

TEST(DatasetTest, SplitIsDeterministicDisjointAndComplete) {
  Dataset d = indexed(100);
  auto a = split_train_validation(d, 20, 7);
  auto b = split_train_validation(d, 20, 7);
  auto c = split_train_validation(d, 20, 8);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(a->validation.n, 20);
  EXPECT_EQ(a->train.n, 80);
  EXPECT_EQ(ids(a->validation), ids(b->validation));
  EXPECT_EQ(ids(a->train), ids(b->train));
  EXPECT_NE(ids(a->validation), ids(c->validation));
  std::set<int64_t> all;
  for (int64_t i : ids(a->validation)) all.insert(i);
  for (int64_t i : ids(a->train)) EXPECT_TRUE(all.insert(i).second) << i << " in both";
  EXPECT_EQ(all.size(), 100u);
  auto v = ids(a->validation);
  EXPECT_TRUE(std::is_sorted(v.begin(), v.end()));
  for (int64_t k = 0; k < a->train.n; ++k)
    EXPECT_EQ(a->train.labels[k], static_cast<int64_t>(a->train.images[k]) % 10);
  EXPECT_FALSE(split_train_validation(d, 101, 7).ok());
}

TEST(DatasetTest, SubsetsFirstAndRandom) {
  Dataset d = indexed(50);
  EXPECT_EQ(ids(take_first(d, 3)), (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(take_first(d, 500).n, 50);
  auto r1 = take_random(d, 10, 3), r2 = take_random(d, 10, 3);
  ASSERT_TRUE(r1.ok() && r2.ok());
  EXPECT_EQ(ids(*r1), ids(*r2));
  auto v = ids(*r1);
  EXPECT_EQ(std::set<int64_t>(v.begin(), v.end()).size(), 10u);
  EXPECT_FALSE(take_random(d, 51, 3).ok());
  std::vector<int64_t> bad = {0, 50};
  EXPECT_THAT(select(d, bad).status().message(), HasSubstr("index 50"));
}

TEST(SamplingTest, BatchesCoverEveryIndexOnceAndAreDeterministic) {
  auto a = shuffled_batches(103, 10, 42);
  auto b = shuffled_batches(103, 10, 42);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, shuffled_batches(103, 10, 43));
  ASSERT_EQ(a.size(), 11u);
  EXPECT_EQ(a.back().size(), 3u);
  std::vector<int64_t> seen;
  for (const auto& batch : a) seen.insert(seen.end(), batch.begin(), batch.end());
  std::sort(seen.begin(), seen.end());
  for (int64_t i = 0; i < 103; ++i) EXPECT_EQ(seen[i], i);
  auto dropped = shuffled_batches(103, 10, 42, /*drop_last=*/true);
  EXPECT_EQ(dropped.size(), 10u);
  EXPECT_TRUE(shuffled_batches(0, 10, 1).empty());
}

TEST(SamplingTest, UniformBelowStaysInRangeAndHitsEveryValue) {
  std::mt19937_64 rng(1);
  std::vector<int> hits(7, 0);
  for (int i = 0; i < 7000; ++i) {
    uint64_t x = uniform_below(rng, 7);
    ASSERT_LT(x, 7u);
    ++hits[x];
  }
  for (int h : hits) EXPECT_GT(h, 800);
  // Fixed output for a fixed seed: the sequence must not depend on the standard library.
  std::mt19937_64 a(5);
  std::vector<int64_t> p = permutation(5, a);
  std::mt19937_64 b(5);
  EXPECT_EQ(p, permutation(5, b));
}

}  // namespace
}  // namespace idn::data
