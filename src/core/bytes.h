// Byte buffers and views used across IDN, and small helpers to move between them and text.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace idn {

using Bytes = std::vector<uint8_t>;
using ByteView = std::span<const uint8_t>;

inline ByteView as_bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}
inline std::string to_string(ByteView b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}
inline Bytes to_bytes(std::string_view s) {
  return {s.begin(), s.end()};
}

// Hash-map keys that are peer IDs or multihashes (both end in hash or public-key bytes): the
// last 8 bytes, mixed. Transparent: lookups by ByteView copy nothing. Fixed
// (unseeded), so iteration order, and with it a seeded simulation, is reproducible.
struct BytesHash {
  using is_transparent = void;
  size_t operator()(ByteView b) const {
    uint64_t h = b.size();
    const size_t n = std::min<size_t>(b.size(), 8);
    for (size_t i = 0; i < n; ++i) h = (h << 8) | b[b.size() - n + i];
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return size_t(h);
  }
};
struct BytesEqual {
  using is_transparent = void;
  bool operator()(ByteView a, ByteView b) const {
    return std::equal(a.begin(), a.end(), b.begin(), b.end());
  }
};

std::string hex_encode(ByteView b);
// Accepts upper or lower case; returns false on odd length or a non-hex digit.
bool hex_decode(std::string_view hex, Bytes& out);

}  // namespace idn
