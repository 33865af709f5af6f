// Fuzzes the IDX reader (raw and gzip): whatever the bytes, parsing never crashes or inflates
// past its limit, and an accepted raw file re-encodes to exactly its bytes.
// fuzz-deps: idn_data idn_core
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "data/dataset.h"
#include "data/gzip.h"
#include "data/idx.h"
#include "fuzz_check.h"

using namespace idn;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr uint64_t kLimit = 16 << 20;  // keeps gzip bombs within the fuzzer's memory budget
  ByteView in(data, size);
  auto arr = data::parse_idx(in, 0, kLimit);
  if (!arr.ok()) {
    CHECK(!arr.status().message().empty());
    return 0;
  }
  CHECK(arr->data.size() <= kLimit);
  if (!data::is_gzip(in)) {
    Bytes again = data::encode_idx(*arr);
    CHECK(again.size() == size && std::equal(again.begin(), again.end(), data));
  }
  if (arr->dims.size() == 3 && arr->dims[0] <= (1 << 16)) {
    // Pair the images with made-up labels: conversion must hold for any accepted shape.
    data::IdxArray labels{{arr->dims[0]}, Bytes(static_cast<size_t>(arr->dims[0]), 1)};
    auto d = data::dataset_from_idx(*arr, labels);
    CHECK(d.ok() && d->images.size() == arr->data.size());
  }
  return 0;
}
