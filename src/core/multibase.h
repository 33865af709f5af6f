// Multibase: self-describing text encodings of bytes (one prefix character names the base).
// IDN writes base32 lower ('b', CIDs) and base58btc ('z', peer IDs); it also reads base16,
// base32 upper and base64/base64url so that strings from other IPFS tools parse.
#pragma once

#include <string>
#include <string_view>

#include "core/bytes.h"
#include "core/status.h"

namespace idn::core {

enum class Multibase : char {
  kBase16 = 'f',       // lower-case hex
  kBase16Upper = 'F',  // upper-case hex
  kBase32 = 'b',       // RFC 4648 alphabet, lower case, no padding
  kBase32Upper = 'B',  // RFC 4648 alphabet, upper case, no padding
  kBase58Btc = 'z',    // bitcoin alphabet
  kBase64 = 'm',       // RFC 4648 standard alphabet, no padding
  kBase64Url = 'u',    // RFC 4648 URL-safe alphabet, no padding
};

// Prefix character + encoding.
std::string multibase_encode(Multibase base, ByteView data);
// Dispatches on the prefix. Errors: InvalidArgument (empty, unknown prefix, bad digit, or
// non-canonical trailing bits).
Result<Bytes> multibase_decode(std::string_view text);
// The base `text` claims to be in, if its prefix is one we know.
Result<Multibase> multibase_of(std::string_view text);

// The bare encodings, without prefix.
std::string base58btc_encode(ByteView data);
Result<Bytes> base58btc_decode(std::string_view text);
std::string base32_encode(ByteView data, bool upper = false);
// Accepts either case (the multibase spec asks decoders to be case-insensitive for base32/16).
Result<Bytes> base32_decode(std::string_view text);
std::string base64_encode(ByteView data, bool url);
Result<Bytes> base64_decode(std::string_view text, bool url);
Result<Bytes> base16_decode(std::string_view text);

}  // namespace idn::core
