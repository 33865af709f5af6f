#include "core/cid.h"

#include <cstdio>

#include "core/varint.h"

namespace idn::core {

std::string multicodec_name(uint64_t codec) {
  switch (static_cast<Multicodec>(codec)) {
    case Multicodec::kRaw:
      return "raw";
    case Multicodec::kDagPb:
      return "dag-pb";
    case Multicodec::kDagCbor:
      return "dag-cbor";
    case Multicodec::kLibp2pKey:
      return "libp2p-key";
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(codec));
  return buf;
}

Cid Cid::v1(uint64_t codec, Multihash hash) {
  return Cid(1, codec, std::move(hash));
}

Result<Cid> Cid::v0(Multihash hash) {
  if (hash.code() != uint64_t(HashCode::kSha2_256)) {
    return Status::invalid_argument("CIDv0 requires a sha2-256 multihash, got " +
                                    hash_code_name(hash.code()));
  }
  return Cid(0, uint64_t(Multicodec::kDagPb), std::move(hash));
}

Cid Cid::of(Multicodec codec, ByteView data) {
  return v1(codec, Multihash::sha2_256(data));
}

Result<Cid> Cid::read_prefix(ByteView in, size_t& consumed) {
  if (in.size() >= 2 && in[0] == 0x12 && in[1] == 0x20) {
    size_t used = 0;
    IDN_ASSIGN_OR_RETURN(Multihash mh, Multihash::read_prefix(in, used));
    consumed = used;
    return Cid(0, uint64_t(Multicodec::kDagPb), std::move(mh));
  }
  auto version = decode_uvarint(in);
  if (!version.ok()) return version.status().with_context("CID version");
  if (version->value != 1) {
    if (version->value == 0) {
      return Status::corruption("CIDv0 must be a bare sha2-256 multihash, not version-prefixed");
    }
    return Status::unsupported("CID version " + std::to_string(version->value) +
                               " is not supported (only 0 and 1 exist)");
  }
  auto codec = decode_uvarint(in.subspan(version->size));
  if (!codec.ok()) return codec.status().with_context("CID codec");
  size_t header = version->size + codec->size;
  size_t used = 0;
  auto mh = Multihash::read_prefix(in.subspan(header), used);
  if (!mh.ok()) return mh.status().with_context("CID");
  consumed = header + used;
  return Cid(1, codec->value, std::move(mh).value());
}

Result<Cid> Cid::from_bytes(ByteView bytes) {
  size_t used = 0;
  IDN_ASSIGN_OR_RETURN(Cid c, read_prefix(bytes, used));
  if (used != bytes.size()) {
    return Status::corruption("CID is followed by " + std::to_string(bytes.size() - used) +
                              " unexpected bytes");
  }
  return c;
}

Result<Cid> Cid::parse(std::string_view text) {
  auto fail = [&](const Status& s) {
    return Status::invalid_argument("CID '" + std::string(text.substr(0, 100)) +
                                    "': " + s.message());
  };
  if (text.size() == 46 && text.starts_with("Qm")) {
    auto raw = base58btc_decode(text);
    if (!raw.ok()) return fail(raw.status());
    auto mh = Multihash::from_bytes(*raw);
    if (!mh.ok()) return fail(mh.status());
    auto c = v0(std::move(mh).value());
    if (!c.ok()) return fail(c.status());
    return c;
  }
  auto raw = multibase_decode(text);
  if (!raw.ok()) return fail(raw.status());
  auto c = from_bytes(*raw);
  if (!c.ok()) return fail(c.status());
  if (c->version() == 0)
    return fail(Status::invalid_argument("CIDv0 must be written in base58btc"));
  return c;
}

Bytes Cid::to_bytes() const {
  if (version_ == 0) return hash_.bytes();
  Bytes out;
  out.reserve(2 + uvarint_size(codec_) + hash_.bytes().size());
  append_uvarint(1, out);
  append_uvarint(codec_, out);
  out.insert(out.end(), hash_.bytes().begin(), hash_.bytes().end());
  return out;
}

std::string Cid::to_string() const {
  if (version_ == 0) return hash_.to_base58();
  return multibase_encode(Multibase::kBase32, to_bytes());
}

std::string Cid::to_string(Multibase base) const {
  return multibase_encode(base, to_v1().to_bytes());
}

}  // namespace idn::core
