#include "data/gzip.h"

#include <zlib.h>

#include <algorithm>
#include <climits>
#include <string>

namespace idn::data {

bool is_gzip(ByteView b) {
  return b.size() >= 2 && b[0] == 0x1f && b[1] == 0x8b;
}

Result<Bytes> gunzip(ByteView in, uint64_t max_output) {
  z_stream zs{};
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK)  // 16: expect a gzip header
    return Status::internal("zlib inflateInit2 failed");
  Bytes out;
  size_t consumed = 0;
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    if (zs.avail_in == 0) {
      size_t chunk = std::min<size_t>(in.size() - consumed, UINT_MAX);
      zs.next_in = const_cast<Bytef*>(in.data() + consumed);
      zs.avail_in = static_cast<uInt>(chunk);
      consumed += chunk;
    }
    if (out.size() >= max_output) {
      inflateEnd(&zs);
      return Status::limit_exceeded("gzip data expands past the limit of " +
                                    std::to_string(max_output) + " bytes");
    }
    size_t old = out.size();
    size_t grow = std::min<uint64_t>(std::max<size_t>(old, 1 << 16), max_output - old);
    out.resize(old + grow);
    zs.next_out = out.data() + old;
    zs.avail_out = static_cast<uInt>(std::min<size_t>(grow, UINT_MAX));
    rc = inflate(&zs, Z_NO_FLUSH);
    out.resize(old + (std::min<size_t>(grow, UINT_MAX) - zs.avail_out));
    if (rc == Z_STREAM_END) break;
    if (rc == Z_BUF_ERROR && zs.avail_in == 0 && consumed == in.size()) {
      inflateEnd(&zs);
      return Status::corruption("gzip stream is truncated (" + std::to_string(in.size()) +
                                " compressed bytes)");
    }
    if (rc != Z_OK && rc != Z_BUF_ERROR) {
      std::string why = zs.msg ? zs.msg : "error " + std::to_string(rc);
      inflateEnd(&zs);
      return Status::corruption("gzip data is corrupt: " + why);
    }
  }
  size_t trailing = zs.avail_in + (in.size() - consumed);
  inflateEnd(&zs);
  if (trailing != 0)
    return Status::corruption("gzip stream is followed by " + std::to_string(trailing) +
                              " unexpected bytes");
  return out;
}

}  // namespace idn::data
