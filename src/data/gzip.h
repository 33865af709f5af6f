// In-memory gzip decompression (zlib), bounded so a small hostile file cannot expand into
// gigabytes. Used for the gzipped IDX files Debian ships.
#pragma once

#include <cstdint>

#include "core/bytes.h"
#include "core/status.h"

namespace idn::data {

// True if the bytes start with the gzip magic 1f 8b.
bool is_gzip(ByteView bytes);

// Decompresses one gzip stream. Corruption on a damaged or truncated stream or trailing bytes;
// LimitExceeded if the output would exceed max_output bytes.
Result<Bytes> gunzip(ByteView compressed, uint64_t max_output);

}  // namespace idn::data
