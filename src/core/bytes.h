// Byte buffers and views used across IDN, and small helpers to move between them and text.
#pragma once

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

std::string hex_encode(ByteView b);
// Accepts upper or lower case; returns false on odd length or a non-hex digit.
bool hex_decode(std::string_view hex, Bytes& out);

}  // namespace idn
