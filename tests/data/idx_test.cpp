#include "data/idx.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "data/gzip.h"
#include "data/test_util.h"

namespace idn::data {
namespace {

using testing::gzip;
using ::testing::HasSubstr;

IdxArray two_images() {
  return {{2, 3, 2}, {0, 1, 2, 3, 4, 5, 250, 251, 252, 253, 254, 255}};
}

TEST(IdxTest, EncodeMatchesHandWrittenBytes) {
  Bytes raw = encode_idx(IdxArray{{3}, {7, 8, 9}});
  EXPECT_EQ(raw, (Bytes{0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9}));
}

TEST(IdxTest, RawImagesParse) {
  Bytes raw = encode_idx(two_images());
  ASSERT_EQ(raw.size(), 4u + 12 + 12);
  EXPECT_EQ(Bytes(raw.begin(), raw.begin() + 8), (Bytes{0, 0, 8, 3, 0, 0, 0, 2}));
  auto a = parse_idx(raw, kIdxImagesMagic);
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  EXPECT_EQ(a->dims, (std::vector<int64_t>{2, 3, 2}));
  EXPECT_EQ(a->data, two_images().data);
}

TEST(IdxTest, GzippedImagesParseToTheSameArray) {
  Bytes gz = gzip(encode_idx(two_images()));
  ASSERT_TRUE(is_gzip(gz));
  auto a = parse_idx(gz, kIdxImagesMagic);
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  EXPECT_EQ(a->dims, (std::vector<int64_t>{2, 3, 2}));
  EXPECT_EQ(a->data, two_images().data);
}

TEST(IdxTest, LabelsParse) {
  auto a = parse_idx(gzip(encode_idx(IdxArray{{4}, {9, 0, 3, 3}})), kIdxLabelsMagic);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->dims, (std::vector<int64_t>{4}));
  EXPECT_EQ(a->data, (Bytes{9, 0, 3, 3}));
}

TEST(IdxTest, TruncatedHeaderIsCorruption) {
  Bytes raw = encode_idx(two_images());
  auto st = parse_idx(ByteView(raw).first(6), kIdxImagesMagic).status();
  EXPECT_EQ(st.code(), Code::kCorruption);
  EXPECT_THAT(st.message(), HasSubstr("truncated IDX file: 6 bytes"));
  EXPECT_THAT(parse_idx(ByteView(raw).first(2)).status().message(), HasSubstr("truncated"));
}

TEST(IdxTest, TruncatedDataIsCorruption) {
  Bytes raw = encode_idx(two_images());
  raw.pop_back();
  auto st = parse_idx(raw, kIdxImagesMagic).status();
  EXPECT_EQ(st.code(), Code::kCorruption);
  EXPECT_THAT(st.message(),
              HasSubstr("truncated IDX file: dims [2, 3, 2] need 12 bytes of data but the file "
                        "has 11"));
}

TEST(IdxTest, TruncatedGzipIsCorruption) {
  Bytes gz = gzip(encode_idx(two_images()));
  gz.resize(gz.size() - 6);
  auto st = parse_idx(gz).status();
  EXPECT_EQ(st.code(), Code::kCorruption);
  EXPECT_THAT(st.message(), HasSubstr("gzip"));
}

TEST(IdxTest, CorruptGzipIsCorruption) {
  Bytes gz = gzip(encode_idx(two_images()));
  for (size_t i = 10; i < gz.size() - 8; ++i) gz[i] ^= 0x5a;
  EXPECT_EQ(parse_idx(gz).status().code(), Code::kCorruption);
}

TEST(IdxTest, BadMagicIsCorruption) {
  Bytes raw = encode_idx(two_images());
  raw[0] = 0x12;
  EXPECT_THAT(parse_idx(raw).status().message(), HasSubstr("bad IDX magic 0x12000803"));
  Bytes labels = encode_idx(IdxArray{{1}, {1}});
  auto st = parse_idx(labels, kIdxImagesMagic).status();
  EXPECT_EQ(st.code(), Code::kCorruption);
  EXPECT_THAT(st.message(), HasSubstr("bad IDX magic 0x00000801, expected 0x00000803"));
  Bytes zero_dims = {0, 0, 8, 0};
  EXPECT_THAT(parse_idx(zero_dims).status().message(), HasSubstr("bad IDX magic"));
}

TEST(IdxTest, UnsupportedElementType) {
  Bytes raw = {0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0};
  EXPECT_EQ(parse_idx(raw).status().code(), Code::kUnsupported);
}

TEST(IdxTest, DimsNotMatchingFileSize) {
  Bytes raw = encode_idx(two_images());
  raw.push_back(0);
  EXPECT_THAT(parse_idx(raw).status().message(),
              HasSubstr("need 12 bytes of data but the file has 13"));
  Bytes huge = {0,    0,    8,    4,    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1};
  EXPECT_THAT(parse_idx(huge).status().message(), HasSubstr("more than 2^62"));
}

TEST(IdxTest, GzipBombIsRefused) {
  IdxArray big{{1 << 20}, Bytes(1 << 20, 0)};
  auto st = parse_idx(gzip(encode_idx(big)), 0, 4096).status();
  EXPECT_EQ(st.code(), Code::kLimitExceeded);
}

TEST(IdxTest, MissingFileNamesThePath) {
  auto st = read_idx("/nonexistent/dir/train-images-idx3-ubyte.gz").status();
  EXPECT_EQ(st.code(), Code::kNotFound);
  EXPECT_THAT(st.message(), HasSubstr("/nonexistent/dir/train-images-idx3-ubyte.gz"));
}

TEST(IdxTest, ReadFromDiskPrefixesErrorsWithThePath) {
  auto dir = testing::temp_dir("idx_read");
  testing::write_bytes(dir / "ok.gz", gzip(encode_idx(two_images())));
  auto a = read_idx(dir / "ok.gz", kIdxImagesMagic);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->data, two_images().data);
  Bytes bad = {1, 2, 3, 4, 5};
  testing::write_bytes(dir / "bad", bad);
  EXPECT_THAT(read_idx(dir / "bad").status().message(), HasSubstr((dir / "bad").string() + ": "));
}

}  // namespace
}  // namespace idn::data
