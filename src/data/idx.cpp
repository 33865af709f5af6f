#include "data/idx.h"

#include <cstdio>
#include <fstream>
#include <string>

#include "core/tensor.h"
#include "data/gzip.h"

namespace idn::data {
namespace {

uint32_t read_be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

void append_be32(Bytes& out, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<uint8_t>(v >> s));
}

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

std::string magic_meaning(uint32_t magic) {
  if (magic == kIdxImagesMagic) return " (u8 images, 3 dims)";
  if (magic == kIdxLabelsMagic) return " (u8 labels, 1 dim)";
  return "";
}

}  // namespace

Result<IdxArray> parse_idx(ByteView bytes, uint32_t expected_magic, uint64_t max_bytes) {
  Bytes inflated;
  if (is_gzip(bytes)) {
    IDN_ASSIGN_OR_RETURN(inflated, gunzip(bytes, max_bytes));
    bytes = inflated;
  }
  if (bytes.size() < 4)
    return Status::corruption("truncated IDX file: " + std::to_string(bytes.size()) +
                              " bytes, shorter than the 4-byte magic");
  const uint32_t magic = read_be32(bytes.data());
  const int ndims = bytes[3];
  if (expected_magic != 0 && magic != expected_magic)
    return Status::corruption("bad IDX magic " + hex32(magic) + ", expected " +
                              hex32(expected_magic) + magic_meaning(expected_magic));
  if (bytes[0] != 0 || bytes[1] != 0 || ndims < 1 || ndims > 4)
    return Status::corruption("bad IDX magic " + hex32(magic) +
                              " (expected 00 00 <type> <1-4 dims>; is this an IDX file?)");
  if (bytes[2] != 0x08)
    return Status::unsupported("IDX element type " + hex32(bytes[2]) +
                               " is not supported (only 0x08, unsigned byte)");
  const size_t header = 4 + 4 * static_cast<size_t>(ndims);
  if (bytes.size() < header)
    return Status::corruption("truncated IDX file: " + std::to_string(bytes.size()) +
                              " bytes, but the header of a " + std::to_string(ndims) +
                              "-dim array needs " + std::to_string(header));
  IdxArray out;
  const uint64_t have = bytes.size() - header;
  uint64_t need = 1;
  bool too_big = false;
  for (int i = 0; i < ndims; ++i) {
    uint32_t d = read_be32(bytes.data() + 4 + 4 * i);
    out.dims.push_back(d);
    if (d != 0 && need > (uint64_t{1} << 62) / d) too_big = true;
    if (!too_big) need *= d;
  }
  if (too_big || need != have)
    return Status::corruption(std::string(need > have || too_big ? "truncated IDX file: " : "") +
                              "dims " + core::shape_string(out.dims) + " need " +
                              (too_big ? std::string("more than 2^62") : std::to_string(need)) +
                              " bytes of data but the file has " + std::to_string(have));
  out.data.assign(bytes.begin() + static_cast<std::ptrdiff_t>(header), bytes.end());
  return out;
}

Result<IdxArray> read_idx(const std::filesystem::path& path, uint32_t expected_magic) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec))
    return Status::not_found(path.string() + ": no such file");
  std::ifstream f(path, std::ios::binary);
  if (!f) return Status::io_error(path.string() + ": cannot open");
  f.seekg(0, std::ios::end);
  const std::streamoff size = f.tellg();
  f.seekg(0, std::ios::beg);
  if (size < 0) return Status::io_error(path.string() + ": cannot determine its size");
  Bytes bytes(static_cast<size_t>(size));
  if (!f.read(reinterpret_cast<char*>(bytes.data()), size))
    return Status::io_error(path.string() + ": read failed");
  auto arr = parse_idx(bytes, expected_magic);
  if (!arr.ok()) return arr.status().with_context(path.string());
  return arr;
}

Bytes encode_idx(const IdxArray& a) {
  Bytes out;
  append_be32(out, 0x00000800u | static_cast<uint32_t>(a.dims.size()));
  for (int64_t d : a.dims) append_be32(out, static_cast<uint32_t>(d));
  out.insert(out.end(), a.data.begin(), a.data.end());
  return out;
}

}  // namespace idn::data
