#include "core/multibase.h"

#include <array>
#include <cctype>

namespace idn::core {
namespace {

constexpr std::string_view kBase58Alphabet =
    "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
constexpr std::string_view kBase32Lower = "abcdefghijklmnopqrstuvwxyz234567";
constexpr std::string_view kBase32Upper = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
constexpr std::string_view kBase64Std =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr std::string_view kBase64Url =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

// Reverse lookup table: -1 for characters outside the alphabet.
std::array<int8_t, 256> reverse_table(std::string_view alphabet) {
  std::array<int8_t, 256> t;
  t.fill(-1);
  for (size_t i = 0; i < alphabet.size(); ++i) t[static_cast<uint8_t>(alphabet[i])] = int8_t(i);
  return t;
}

Status bad_digit(std::string_view base, std::string_view text, size_t pos) {
  unsigned char c = static_cast<unsigned char>(text[pos]);
  std::string shown =
      std::isprint(c) ? std::string(1, static_cast<char>(c)) : "\\x" + hex_encode(ByteView(&c, 1));
  return Status::invalid_argument("invalid " + std::string(base) + " character '" + shown +
                                  "' at position " + std::to_string(pos));
}

// Decodes a power-of-two base (bits per digit = 5 or 6) without padding. Trailing bits must be
// zero and the length must be one an encoder can produce, so each byte string has exactly one
// text form.
Result<Bytes> decode_bits(std::string_view text, const std::array<int8_t, 256>& table, int bits,
                          std::string_view name) {
  Bytes out;
  out.reserve(text.size() * bits / 8);
  uint32_t acc = 0;
  int have = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    int v = table[static_cast<uint8_t>(text[i])];
    if (v < 0) return bad_digit(name, text, i);
    acc = (acc << bits) | uint32_t(v);
    have += bits;
    if (have >= 8) {
      have -= 8;
      out.push_back(static_cast<uint8_t>(acc >> have));
      acc &= (1u << have) - 1;
    }
  }
  if (have >= bits) {
    return Status::invalid_argument(std::string(name) + " text has an impossible length " +
                                    std::to_string(text.size()));
  }
  if (acc != 0) {
    return Status::invalid_argument(std::string(name) + " text has non-zero trailing bits");
  }
  return out;
}

std::string encode_bits(ByteView data, std::string_view alphabet, int bits) {
  std::string out;
  out.reserve((data.size() * 8 + bits - 1) / bits);
  uint32_t acc = 0;
  int have = 0;
  const uint32_t mask = (1u << bits) - 1;
  for (uint8_t b : data) {
    acc = (acc << 8) | b;
    have += 8;
    while (have >= bits) {
      have -= bits;
      out.push_back(alphabet[(acc >> have) & mask]);
    }
    acc &= (1u << have) - 1;
  }
  if (have > 0) out.push_back(alphabet[(acc << (bits - have)) & mask]);
  return out;
}

}  // namespace

std::string base58btc_encode(ByteView data) {
  size_t zeros = 0;
  while (zeros < data.size() && data[zeros] == 0) ++zeros;
  // Big-endian base-58 digits of the number, built by repeated multiply-add (log(256)/log(58)
  // ~ 1.37 digits per byte).
  std::vector<uint8_t> digits((data.size() - zeros) * 138 / 100 + 1, 0);
  size_t len = 0;
  for (size_t i = zeros; i < data.size(); ++i) {
    uint32_t carry = data[i];
    size_t j = 0;
    for (auto it = digits.rbegin(); (carry != 0 || j < len) && it != digits.rend(); ++it, ++j) {
      carry += 256u * *it;
      *it = static_cast<uint8_t>(carry % 58);
      carry /= 58;
    }
    len = j;
  }
  std::string out(zeros, '1');
  for (size_t i = digits.size() - len; i < digits.size(); ++i)
    out.push_back(kBase58Alphabet[digits[i]]);
  return out;
}

Result<Bytes> base58btc_decode(std::string_view text) {
  static const auto table = reverse_table(kBase58Alphabet);
  size_t ones = 0;
  while (ones < text.size() && text[ones] == '1') ++ones;
  std::vector<uint8_t> bytes((text.size() - ones) * 733 / 1000 + 1, 0);  // log(58)/log(256)
  size_t len = 0;
  for (size_t i = ones; i < text.size(); ++i) {
    int v = table[static_cast<uint8_t>(text[i])];
    if (v < 0) return bad_digit("base58btc", text, i);
    uint32_t carry = uint32_t(v);
    size_t j = 0;
    for (auto it = bytes.rbegin(); (carry != 0 || j < len) && it != bytes.rend(); ++it, ++j) {
      carry += 58u * *it;
      *it = static_cast<uint8_t>(carry & 0xff);
      carry >>= 8;
    }
    len = j;
  }
  Bytes out(ones, 0);
  out.insert(out.end(), bytes.end() - static_cast<ptrdiff_t>(len), bytes.end());
  return out;
}

std::string base32_encode(ByteView data, bool upper) {
  return encode_bits(data, upper ? kBase32Upper : kBase32Lower, 5);
}

Result<Bytes> base32_decode(std::string_view text) {
  static const auto table = [] {
    auto t = reverse_table(kBase32Lower);
    for (size_t i = 0; i < kBase32Upper.size(); ++i)
      t[static_cast<uint8_t>(kBase32Upper[i])] = int8_t(i);
    return t;
  }();
  return decode_bits(text, table, 5, "base32");
}

std::string base64_encode(ByteView data, bool url) {
  return encode_bits(data, url ? kBase64Url : kBase64Std, 6);
}

Result<Bytes> base64_decode(std::string_view text, bool url) {
  static const auto std_table = reverse_table(kBase64Std);
  static const auto url_table = reverse_table(kBase64Url);
  return decode_bits(text, url ? url_table : std_table, 6, url ? "base64url" : "base64");
}

Result<Bytes> base16_decode(std::string_view text) {
  Bytes out;
  if (text.size() % 2 != 0) {
    return Status::invalid_argument("base16 text has odd length " + std::to_string(text.size()));
  }
  if (!hex_decode(text, out)) return Status::invalid_argument("base16 text has a non-hex digit");
  return out;
}

std::string multibase_encode(Multibase base, ByteView data) {
  std::string out(1, static_cast<char>(base));
  switch (base) {
    case Multibase::kBase16:
      out += hex_encode(data);
      break;
    case Multibase::kBase16Upper:
      for (char c : hex_encode(data)) out.push_back(static_cast<char>(std::toupper(c)));
      break;
    case Multibase::kBase32:
      out += base32_encode(data, false);
      break;
    case Multibase::kBase32Upper:
      out += base32_encode(data, true);
      break;
    case Multibase::kBase58Btc:
      out += base58btc_encode(data);
      break;
    case Multibase::kBase64:
      out += base64_encode(data, false);
      break;
    case Multibase::kBase64Url:
      out += base64_encode(data, true);
      break;
  }
  return out;
}

Result<Multibase> multibase_of(std::string_view text) {
  if (text.empty()) return Status::invalid_argument("empty multibase string");
  switch (text[0]) {
    case 'f':
      return Multibase::kBase16;
    case 'F':
      return Multibase::kBase16Upper;
    case 'b':
      return Multibase::kBase32;
    case 'B':
      return Multibase::kBase32Upper;
    case 'z':
      return Multibase::kBase58Btc;
    case 'm':
      return Multibase::kBase64;
    case 'u':
      return Multibase::kBase64Url;
  }
  unsigned char c = static_cast<unsigned char>(text[0]);
  return Status::invalid_argument(
      "unsupported multibase prefix '" +
      (std::isprint(c) ? std::string(1, text[0]) : "\\x" + hex_encode(ByteView(&c, 1))) +
      "' (supported: f F b B z m u)");
}

Result<Bytes> multibase_decode(std::string_view text) {
  IDN_ASSIGN_OR_RETURN(Multibase base, multibase_of(text));
  std::string_view body = text.substr(1);
  switch (base) {
    case Multibase::kBase16:
    case Multibase::kBase16Upper:
      return base16_decode(body);
    case Multibase::kBase32:
    case Multibase::kBase32Upper:
      return base32_decode(body);
    case Multibase::kBase58Btc:
      return base58btc_decode(body);
    case Multibase::kBase64:
      return base64_decode(body, false);
    case Multibase::kBase64Url:
      return base64_decode(body, true);
  }
  return Status::internal("unhandled multibase");
}

}  // namespace idn::core
