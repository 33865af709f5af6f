// The IDX format of (Fashion-)MNIST: big-endian magic (0, 0, type, ndims), ndims big-endian
// u32 sizes, then the values. Only unsigned-byte data (type 0x08) is used; files may be raw
// or gzipped (detected by the 1f 8b magic).
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

#include "core/bytes.h"
#include "core/status.h"

namespace idn::data {

inline constexpr uint32_t kIdxImagesMagic = 0x00000803;  // u8, 3 dims: count, rows, cols
inline constexpr uint32_t kIdxLabelsMagic = 0x00000801;  // u8, 1 dim: count
// Decompressed-size cap: the FashionMNIST training images are 47 MB.
inline constexpr uint64_t kMaxIdxBytes = uint64_t{1} << 30;

struct IdxArray {
  std::vector<int64_t> dims;
  Bytes data;  // row-major u8 values, product(dims) bytes
};

// Parses an in-memory IDX file (raw or gzip). expected_magic 0 accepts any u8 IDX with 1-4
// dims; otherwise the magic must match exactly. Never reads past `bytes`.
Result<IdxArray> parse_idx(ByteView bytes, uint32_t expected_magic = 0,
                           uint64_t max_bytes = kMaxIdxBytes);
// Reads and parses a file; NotFound names the path.
Result<IdxArray> read_idx(const std::filesystem::path& path, uint32_t expected_magic = 0);
// The raw (uncompressed) IDX encoding of a u8 array: for tests, seeds and exports.
Bytes encode_idx(const IdxArray& array);

}  // namespace idn::data
