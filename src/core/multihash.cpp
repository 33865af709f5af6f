#include "core/multihash.h"

#include <openssl/evp.h>

#include <cstdio>
#include <cstdlib>
#include <optional>

#include "core/varint.h"

namespace idn::core {
namespace {

template <size_t N>
std::array<uint8_t, N> evp_digest(const EVP_MD* md, ByteView data) {
  std::array<uint8_t, N> out{};
  unsigned int len = 0;
  // EVP_Digest only fails on allocation failure; a zero digest would then be caught by every
  // comparison, so treat it as fatal rather than threading a Status through every caller.
  if (EVP_Digest(data.data(), data.size(), out.data(), &len, md, nullptr) != 1 || len != N) {
    std::abort();
  }
  return out;
}

// Output size of the hash functions we can compute.
std::optional<size_t> native_size(uint64_t code) {
  switch (static_cast<HashCode>(code)) {
    case HashCode::kSha2_256:
    case HashCode::kSha3_256:
      return 32;
    case HashCode::kSha2_512:
      return 64;
    case HashCode::kIdentity:
      return std::nullopt;
  }
  return std::nullopt;
}

}  // namespace

std::array<uint8_t, 32> sha256(ByteView data) {
  return evp_digest<32>(EVP_sha256(), data);
}
std::array<uint8_t, 32> sha3_256(ByteView data) {
  return evp_digest<32>(EVP_sha3_256(), data);
}
std::array<uint8_t, 64> sha512(ByteView data) {
  return evp_digest<64>(EVP_sha512(), data);
}

std::string hash_code_name(uint64_t code) {
  switch (static_cast<HashCode>(code)) {
    case HashCode::kIdentity:
      return "identity";
    case HashCode::kSha2_256:
      return "sha2-256";
    case HashCode::kSha2_512:
      return "sha2-512";
    case HashCode::kSha3_256:
      return "sha3-256";
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(code));
  return buf;
}

Result<Multihash> Multihash::wrap(uint64_t code, ByteView digest) {
  if (code > kMaxUvarintValue) return Status::invalid_argument("multihash code exceeds 2^63-1");
  if (digest.size() > kMaxMultihashDigest) {
    return Status::limit_exceeded("multihash digest of " + std::to_string(digest.size()) +
                                  " bytes exceeds the limit of " +
                                  std::to_string(kMaxMultihashDigest));
  }
  // Truncated digests are legal multihash but would let a short (even empty) digest "verify"
  // any data, so for the functions we compute we insist on the full output.
  if (auto n = native_size(code); n && digest.size() != *n) {
    return Status::invalid_argument(hash_code_name(code) + " digest is " +
                                    std::to_string(digest.size()) + " bytes; expected " +
                                    std::to_string(*n));
  }
  Bytes b;
  b.reserve(uvarint_size(code) + uvarint_size(digest.size()) + digest.size());
  append_uvarint(code, b);
  append_uvarint(digest.size(), b);
  size_t off = b.size();
  b.insert(b.end(), digest.begin(), digest.end());
  return Multihash(code, off, std::move(b));
}

Result<Multihash> Multihash::compute(HashCode code, ByteView data) {
  switch (code) {
    case HashCode::kIdentity:
      return wrap(0, data);
    case HashCode::kSha2_256:
      return wrap(uint64_t(code), sha256(data));
    case HashCode::kSha2_512:
      return wrap(uint64_t(code), sha512(data));
    case HashCode::kSha3_256:
      return wrap(uint64_t(code), sha3_256(data));
  }
  return Status::unsupported("cannot compute hash " + hash_code_name(uint64_t(code)));
}

Multihash Multihash::sha2_256(ByteView data) {
  return std::move(wrap(uint64_t(HashCode::kSha2_256), sha256(data))).value();
}

Multihash Multihash::identity(ByteView data) {
  auto r = wrap(0, data);
  if (!r.ok()) std::abort();  // precondition violated: caller passed oversized data
  return std::move(r).value();
}

Result<Multihash> Multihash::read_prefix(ByteView in, size_t& consumed) {
  auto code = decode_uvarint(in);
  if (!code.ok()) return code.status().with_context("multihash code");
  auto len = decode_uvarint(in.subspan(code->size));
  if (!len.ok()) return len.status().with_context("multihash length");
  size_t header = code->size + len->size;
  if (len->value > in.size() - header) {
    return Status::corruption("multihash declares a " + std::to_string(len->value) +
                              "-byte digest but only " + std::to_string(in.size() - header) +
                              " bytes follow");
  }
  auto r = wrap(code->value, in.subspan(header, static_cast<size_t>(len->value)));
  if (!r.ok()) return Status::corruption(r.status().message());
  consumed = header + static_cast<size_t>(len->value);
  return r;
}

Result<Multihash> Multihash::from_bytes(ByteView bytes) {
  size_t used = 0;
  IDN_ASSIGN_OR_RETURN(Multihash m, read_prefix(bytes, used));
  if (used != bytes.size()) {
    return Status::corruption("multihash is followed by " + std::to_string(bytes.size() - used) +
                              " unexpected bytes");
  }
  return m;
}

Result<Multihash> Multihash::parse(std::string_view text) {
  if (text.empty()) return Status::invalid_argument("empty multihash string");
  // Bare base58btc ("Qm...", "12D3KooW...") predates multibase and is how multihashes are
  // usually written, so it wins; multibase prefixes are base58 digits too, so a string that is
  // not a bare multihash is tried as multibase.
  if (auto raw = base58btc_decode(text); raw.ok()) {
    if (auto m = from_bytes(*raw); m.ok()) return m;
  }
  auto raw = multibase_decode(text);
  if (!raw.ok()) {
    return Status::invalid_argument("multihash text is neither bare base58btc nor multibase: " +
                                    raw.status().message());
  }
  auto m = from_bytes(*raw);
  if (!m.ok()) return Status::invalid_argument("multihash text: " + m.status().message());
  return m;
}

std::string Multihash::to_base58() const {
  return base58btc_encode(bytes_);
}

std::string Multihash::to_string(Multibase base) const {
  return multibase_encode(base, bytes_);
}

bool Multihash::matches(ByteView data) const {
  auto code = static_cast<HashCode>(code_);
  if (code_ != 0 && !native_size(code_)) return false;
  auto full = compute(code, data);
  if (!full.ok()) return false;
  return full->bytes_ == bytes_;
}

}  // namespace idn::core
