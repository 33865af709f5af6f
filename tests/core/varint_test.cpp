#include "core/varint.h"

#include <gtest/gtest.h>

#include <random>

namespace idn::core {
namespace {

Bytes h(std::string_view hex) {
  Bytes b;
  EXPECT_TRUE(hex_decode(hex, b)) << hex;
  return b;
}

// Examples from the multiformats unsigned-varint spec.
TEST(VarintTest, SpecExamplesEncodeAndDecode) {
  struct {
    uint64_t value;
    const char* hex;
  } cases[] = {{1, "01"},     {127, "7f"},
               {128, "8001"}, {255, "ff01"},
               {300, "ac02"}, {16384, "808001"},
               {0, "00"},     {0x7fffffffffffffffULL, "ffffffffffffffff7f"}};
  for (const auto& c : cases) {
    EXPECT_EQ(hex_encode(encode_uvarint(c.value)), c.hex) << c.value;
    auto d = decode_uvarint(h(c.hex));
    ASSERT_TRUE(d.ok()) << c.hex;
    EXPECT_EQ(d->value, c.value);
    EXPECT_EQ(d->size, std::string_view(c.hex).size() / 2);
    EXPECT_EQ(uvarint_size(c.value), d->size);
  }
}

TEST(VarintTest, RoundTripsRandomValuesAndPowersOfTwo) {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 2000; ++i) {
    uint64_t v = rng() >> (rng() % 63 + 1);
    Bytes b = encode_uvarint(v);
    auto d = decode_uvarint_exact(b);
    ASSERT_TRUE(d.ok());
    EXPECT_EQ(*d, v);
  }
  for (int s = 0; s < 63; ++s) {
    uint64_t v = uint64_t{1} << s;
    EXPECT_EQ(*decode_uvarint_exact(encode_uvarint(v)), v);
    EXPECT_EQ(*decode_uvarint_exact(encode_uvarint(v - 1)), v - 1);
  }
}

TEST(VarintTest, RejectsTruncatedOverlongAndNonMinimal) {
  EXPECT_EQ(parse_uvarint({}).error, UvarintError::kTruncated);
  EXPECT_EQ(parse_uvarint(h("80")).error, UvarintError::kTruncated);
  EXPECT_EQ(parse_uvarint(h("ffff")).error, UvarintError::kTruncated);
  // Ten bytes, and nine continuation bytes: both exceed the 9-byte cap.
  EXPECT_EQ(parse_uvarint(h("ffffffffffffffffff01")).error, UvarintError::kOverlong);
  EXPECT_EQ(parse_uvarint(h("808080808080808080")).error, UvarintError::kOverlong);
  // 0 and 1 padded with continuation bytes.
  EXPECT_EQ(parse_uvarint(h("8000")).error, UvarintError::kNonMinimal);
  EXPECT_EQ(parse_uvarint(h("818000")).error, UvarintError::kNonMinimal);
  for (const char* bad : {"", "80", "8000", "ffffffffffffffffff01"}) {
    auto d = decode_uvarint(h(bad));
    ASSERT_FALSE(d.ok()) << bad;
    EXPECT_EQ(d.status().code(), Code::kCorruption);
    EXPECT_FALSE(d.status().message().empty());
  }
  EXPECT_EQ(decode_uvarint_exact(h("0100")).status().code(), Code::kCorruption);
  EXPECT_FALSE(checked_encode_uvarint(uint64_t{1} << 63).ok());
  EXPECT_TRUE(checked_encode_uvarint(kMaxUvarintValue).ok());
}

TEST(VarintTest, DecodeReadsOnlyThePrefix) {
  auto d = decode_uvarint(h("ac02ffff"));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->value, 300u);
  EXPECT_EQ(d->size, 2u);
}

TEST(LengthPrefixedTest, EncodesLengthThenPayload) {
  EXPECT_EQ(hex_encode(encode_length_prefixed(as_bytes("hi"))), "026869");
  EXPECT_EQ(hex_encode(encode_length_prefixed({})), "00");
  Bytes big(300, 0xaa);
  Bytes f = encode_length_prefixed(big);
  EXPECT_EQ(f.size(), 302u);
  EXPECT_EQ(f[0], 0xac);
  EXPECT_EQ(f[1], 0x02);
}

TEST(LengthPrefixedTest, OneShotDecodeChecksLengthAndLimit) {
  size_t used = 0;
  auto r = decode_length_prefixed(h("0268696a"), 100, &used);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(to_string(*r), "hi");
  EXPECT_EQ(used, 3u);
  EXPECT_EQ(decode_length_prefixed(h("0568"), 100).status().code(), Code::kCorruption);
  EXPECT_EQ(decode_length_prefixed(h("056868686868"), 4).status().code(), Code::kLimitExceeded);
}

TEST(FrameDecoderTest, YieldsFramesFedOneByteAtATime) {
  Bytes stream;
  std::vector<std::string> msgs = {"", "a", std::string(200, 'x'), "hello"};
  for (const auto& m : msgs) append_length_prefixed(as_bytes(m), stream);
  FrameDecoder dec(1024);
  std::vector<std::string> got;
  for (uint8_t b : stream) {
    ASSERT_TRUE(dec.push(ByteView(&b, 1)).is_ok());
    while (auto f = dec.pop()) got.push_back(to_string(*f));
  }
  EXPECT_EQ(got, msgs);
  EXPECT_EQ(dec.buffered(), 0u);
}

TEST(FrameDecoderTest, YieldsSeveralFramesFromOneChunk) {
  Bytes stream;
  for (int i = 0; i < 1000; ++i) append_length_prefixed(as_bytes(std::to_string(i)), stream);
  stream.push_back(0x05);  // header of a frame whose payload has not arrived
  FrameDecoder dec(16);
  ASSERT_TRUE(dec.push(stream).is_ok());
  int n = 0;
  while (auto f = dec.pop()) EXPECT_EQ(to_string(*f), std::to_string(n++));
  EXPECT_EQ(n, 1000);
  EXPECT_EQ(dec.buffered(), 1u);
  ASSERT_TRUE(dec.push(as_bytes("abcde")).is_ok());
  auto last = dec.pop();
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(to_string(*last), "abcde");
}

TEST(FrameDecoderTest, RefusesOversizedFrameAsSoonAsHeaderArrives) {
  FrameDecoder dec(100);
  Bytes header = encode_uvarint(101);
  Status s = dec.push(header);
  EXPECT_EQ(s.code(), Code::kLimitExceeded);
  EXPECT_TRUE(dec.failed());
  EXPECT_FALSE(dec.pop().has_value());
  // The error is sticky: later bytes do not resurrect the stream.
  EXPECT_EQ(dec.push(as_bytes("x")).code(), Code::kLimitExceeded);
}

TEST(FrameDecoderTest, RefusesMalformedHeader) {
  FrameDecoder dec(100);
  EXPECT_EQ(dec.push(h("8000")).code(), Code::kCorruption);
  FrameDecoder dec2(1u << 30);
  EXPECT_EQ(dec2.push(h("ffffffffffffffffffff")).code(), Code::kCorruption);
}

TEST(FrameDecoderTest, FailedDecoderYieldsNothingEvenForEarlierFrames) {
  FrameDecoder dec(10);
  Bytes stream = encode_length_prefixed(as_bytes("ok"));
  Bytes bad = encode_uvarint(11);
  stream.insert(stream.end(), bad.begin(), bad.end());
  EXPECT_EQ(dec.push(stream).code(), Code::kLimitExceeded);
  EXPECT_FALSE(dec.pop().has_value());  // failed decoders yield nothing: close the stream
}

}  // namespace
}  // namespace idn::core
