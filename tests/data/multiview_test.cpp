#include "data/multiview.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "data/test_util.h"

namespace idn::data {
namespace {

using ::testing::HasSubstr;

// A FashionMNIST stand-in: 10 random 28x28 images for each of the default classes 2, 4, 5 and
// a few of another class that must never be picked.
Dataset fake_source() {
  Dataset d;
  d.c = 1;
  d.h = d.w = 28;
  uint64_t s = 7;
  for (int64_t label : {2, 4, 5, 9}) {
    for (int i = 0; i < 10; ++i) {
      for (int p = 0; p < 28 * 28; ++p) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        d.images.push_back(static_cast<float>(s >> 40) / static_cast<float>(1 << 24));
      }
      d.labels.push_back(label);
      ++d.n;
    }
  }
  return d;
}

MultiViewDataset generate(int64_t samples, uint64_t seed) {
  MultiViewOptions o;
  o.samples = samples;
  o.seed = seed;
  auto d = generate_multiview(fake_source(), o);
  EXPECT_TRUE(d.ok()) << d.status().to_string();
  return *d;
}

TEST(MultiViewTest, SameSeedSameDataAndSampleIDependsOnlyOnSeedAndI) {
  const auto a = generate(60, 3), b = generate(60, 3), c = generate(60, 4),
             longer = generate(90, 3);
  EXPECT_EQ(a.pixels, b.pixels);
  EXPECT_EQ(a.view_labels, b.view_labels);
  EXPECT_NE(a.pixels, c.pixels);
  ASSERT_EQ(a.n, 60);
  EXPECT_TRUE(std::equal(a.pixels.begin(), a.pixels.end(), longer.pixels.begin()));
  EXPECT_TRUE(std::equal(a.labels.begin(), a.labels.end(), longer.labels.begin()));
}

TEST(MultiViewTest, ShapesAndLabelsFollowMvmc) {
  const auto d = generate(200, 1);
  EXPECT_EQ(d.views, 6);
  EXPECT_EQ(d.c, 3);
  EXPECT_EQ(d.h, 32);
  EXPECT_EQ(d.w, 32);
  EXPECT_EQ(d.class_names, (std::vector<std::string>{"Pullover", "Coat", "Sandal"}));
  for (int64_t i = 0; i < d.n; ++i) {
    ASSERT_GE(d.labels[i], 0);
    ASSERT_LT(d.labels[i], 3);
    int seen = 0;
    for (int64_t v = 0; v < d.views; ++v) {
      const auto view = d.view(i, v);
      const bool blank = std::all_of(view.begin(), view.end(), [](uint8_t p) { return p == 0; });
      if (d.present(i, v)) {
        ++seen;
        EXPECT_EQ(d.view_labels[i * d.views + v], d.labels[i]);
        EXPECT_FALSE(blank) << "sample " << i << " view " << v;
      } else {
        EXPECT_TRUE(blank) << "an absent view must be blank: sample " << i << " view " << v;
      }
    }
    EXPECT_GE(seen, 1) << "every sample is seen by at least one camera";
  }
}

TEST(MultiViewTest, PresenceRatesAndClassMixesMatchTheCameras) {
  const int64_t n = 4000;
  const auto d = generate(n, 11);
  const auto cams = default_cameras(3);
  std::vector<int64_t> per_class(3);
  std::vector<std::vector<int64_t>> seen(6, std::vector<int64_t>(3));
  for (int64_t i = 0; i < n; ++i) {
    ++per_class[d.labels[i]];
    for (int64_t v = 0; v < 6; ++v) seen[v][d.labels[i]] += d.present(i, v);
  }
  for (int64_t k = 0; k < 3; ++k) {
    // Classes are uniform: each within 4 sigma of n/3.
    EXPECT_NEAR(per_class[k], n / 3.0, 4 * std::sqrt(n * (1.0 / 3) * (2.0 / 3)));
    double none = 1;
    for (const auto& c : cams) none *= 1 - c.see_probability(k);
    for (int64_t v = 0; v < 6; ++v) {
      const double p = cams[v].see_probability(k) / (1 - none);
      const double rate = static_cast<double>(seen[v][k]) / per_class[k];
      EXPECT_NEAR(rate, p, 4 * std::sqrt(p * (1 - p) / per_class[k]))
          << "camera " << v << " class " << k;
    }
  }
  // Unequal class mixes: camera 1 sees mostly coats, camera 0 mostly pullovers.
  EXPECT_GT(seen[1][1], 1.5 * seen[1][0]);
  EXPECT_GT(seen[0][0], 1.4 * seen[0][1]);
}

TEST(MultiViewTest, CamerasSeeTheSameItemDifferently) {
  const auto d = generate(100, 5);
  int pairs = 0;
  for (int64_t i = 0; i < d.n; ++i) {
    for (int64_t a = 0; a < d.views; ++a) {
      for (int64_t b = a + 1; b < d.views; ++b) {
        if (!d.present(i, a) || !d.present(i, b)) continue;
        const auto va = d.view(i, a), vb = d.view(i, b);
        double diff = 0;
        for (size_t p = 0; p < va.size(); ++p) diff += std::abs(int(va[p]) - int(vb[p]));
        EXPECT_GT(diff / static_cast<double>(va.size()), 10.0)
            << "sample " << i << " views " << a << ", " << b;
        ++pairs;
      }
    }
  }
  EXPECT_GT(pairs, 100);
}

TEST(MultiViewTest, CameraDatasetScalesPixelsAndKeepsAbsentLabels) {
  const auto d = generate(20, 2);
  const Dataset cam = d.camera(3);
  ASSERT_EQ(cam.n, 20);
  EXPECT_EQ(cam.c, 3);
  for (int64_t i = 0; i < cam.n; ++i) {
    EXPECT_EQ(cam.labels[i], d.view_labels[i * 6 + 3]);
    EXPECT_FLOAT_EQ(cam.image(i)[100], d.view(i, 3)[100] / 255.0f);
  }
}

TEST(MultiViewTest, GeneratorRejectsBadOptions) {
  MultiViewOptions o;
  o.samples = 5;
  o.source_classes = {2, 7};  // 7 is not in the fake source
  EXPECT_THAT(generate_multiview(fake_source(), o).status().message(), HasSubstr("class 7"));
  o.source_classes = {2, 4};
  o.cameras = default_cameras(3);  // biases for three classes
  EXPECT_THAT(generate_multiview(fake_source(), o).status().message(), HasSubstr("class_bias"));
  o.cameras = default_cameras(2);
  for (auto& c : o.cameras) c.presence = 0;
  EXPECT_THAT(generate_multiview(fake_source(), o).status().message(), HasSubstr("no camera"));
  o.cameras = default_cameras(2);
  o.channels = 2;
  EXPECT_FALSE(generate_multiview(fake_source(), o).ok());
}

class MultiViewFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::temp_dir("multiview");
    data_ = generate(40, 9);
    ASSERT_TRUE(write_multiview(data_, dir_).is_ok());
  }
  void set_manifest(const std::string& key, const nlohmann::json& value) {
    std::ifstream in(dir_ / "manifest.json");
    auto m = nlohmann::json::parse(in);
    if (value.is_null())
      m.erase(key);
    else
      m[key] = value;
    std::ofstream(dir_ / "manifest.json", std::ios::trunc) << m.dump();
  }
  void poke(const char* file, size_t at, uint8_t value) {
    auto path = dir_ / file;
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(at));
    f.put(static_cast<char>(value));
  }
  Status read_error() { return read_multiview(dir_).status(); }

  std::filesystem::path dir_;
  MultiViewDataset data_;
};

TEST_F(MultiViewFilesTest, RoundTripsExactly) {
  auto back = read_multiview(dir_);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(back->n, data_.n);
  EXPECT_EQ(back->views, data_.views);
  EXPECT_EQ(back->c, data_.c);
  EXPECT_EQ(back->class_names, data_.class_names);
  EXPECT_EQ(back->pixels, data_.pixels);
  EXPECT_EQ(back->labels, data_.labels);
  EXPECT_EQ(back->view_labels, data_.view_labels);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "manifest.json.tmp"));
}

TEST_F(MultiViewFilesTest, MissingFilesAreNamed) {
  std::filesystem::remove(dir_ / "view_labels.i8");
  EXPECT_EQ(read_error().code(), Code::kNotFound);
  EXPECT_THAT(read_error().message(), HasSubstr("view_labels.i8"));
  std::filesystem::remove(dir_ / "manifest.json");
  EXPECT_EQ(read_error().code(), Code::kNotFound);
  EXPECT_THAT(read_error().message(), HasSubstr("manifest.json"));
}

TEST_F(MultiViewFilesTest, WrongSizesAreRefused) {
  std::filesystem::resize_file(dir_ / "pixels.u8", data_.pixels.size() - 1);
  EXPECT_EQ(read_error().code(), Code::kCorruption);
  EXPECT_THAT(read_error().message(), HasSubstr("pixels.u8"));
  std::filesystem::resize_file(dir_ / "pixels.u8", data_.pixels.size());
  EXPECT_TRUE(read_error().is_ok());
  set_manifest("samples", 41);
  EXPECT_THAT(read_error().message(), HasSubstr("need"));
}

TEST_F(MultiViewFilesTest, BadLabelsAreRefused) {
  poke("sample_labels.i8", 3, 3);  // three classes: 0..2
  EXPECT_THAT(read_error().message(), HasSubstr("sample 3 has label 3"));
  poke("sample_labels.i8", 3, static_cast<uint8_t>(data_.labels[3]));
  EXPECT_TRUE(read_error().is_ok());
  poke("view_labels.i8", 5 * 6 + 2, static_cast<uint8_t>((data_.labels[5] + 1) % 3));
  EXPECT_THAT(read_error().message(), HasSubstr("sample 5 view 2"));
  poke("view_labels.i8", 5 * 6 + 2, 0xFE);  // -2
  EXPECT_EQ(read_error().code(), Code::kCorruption);
}

TEST_F(MultiViewFilesTest, BadManifestsAreRefused) {
  set_manifest("format", "something-else");
  EXPECT_THAT(read_error().message(), HasSubstr("format"));
  set_manifest("format", "idn-multiview");
  set_manifest("version", 2);
  EXPECT_EQ(read_error().code(), Code::kUnsupported);
  set_manifest("version", 1);
  set_manifest("views", 0);
  EXPECT_THAT(read_error().message(), HasSubstr("\"views\" is 0"));
  set_manifest("views", "six");
  EXPECT_THAT(read_error().message(), HasSubstr("\"views\" must be an integer"));
  set_manifest("views", 6);
  set_manifest("classes", nlohmann::json::array());
  EXPECT_THAT(read_error().message(), HasSubstr("classes"));
  set_manifest("classes", nlohmann::json::array({"a", "b", "c"}));
  set_manifest("pixels", "../pixels.u8");
  EXPECT_THAT(read_error().message(), HasSubstr("not a plain file name"));
  set_manifest("pixels", nullptr);
  EXPECT_THAT(read_error().message(), HasSubstr("\"pixels\""));
  std::ofstream(dir_ / "manifest.json", std::ios::trunc) << "{not json";
  EXPECT_THAT(read_error().message(), HasSubstr("not a JSON object"));
}

}  // namespace
}  // namespace idn::data
