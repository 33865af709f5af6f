#include "store/unixfs.h"

#include "core/varint.h"
#include "p2p/protobuf_lite.h"

namespace idn::store {

Bytes encode_unixfs(const UnixfsData& d) {
  Bytes out;
  p2p::pb::append_varint_field(1, uint64_t(d.type), out);
  if (d.data && !d.data->empty()) p2p::pb::append_bytes_field(2, *d.data, out);
  std::optional<uint64_t> filesize = d.filesize;
  if (!filesize && (d.type == UnixfsType::kFile || d.type == UnixfsType::kRaw)) {
    filesize = unixfs_content_size(d);
  }
  if (filesize) p2p::pb::append_varint_field(3, *filesize, out);
  for (uint64_t b : d.blocksizes) p2p::pb::append_varint_field(4, b, out);
  if (d.hash_type) p2p::pb::append_varint_field(5, *d.hash_type, out);
  if (d.fanout) p2p::pb::append_varint_field(6, *d.fanout, out);
  if (d.mode) p2p::pb::append_varint_field(7, *d.mode, out);
  return out;
}

Result<UnixfsData> decode_unixfs(ByteView bytes) {
  UnixfsData d;
  bool have_type = false;
  Status st = p2p::pb::for_each_field(bytes, [&](const p2p::pb::Field& f) -> Status {
    auto want_varint = [&]() -> Status {
      return f.wire_type == 0 ? Status::ok()
                              : Status::corruption("unixfs: field " + std::to_string(f.number) +
                                                   " must be a varint");
    };
    switch (f.number) {
      case 1:
        IDN_RETURN_IF_ERROR(want_varint());
        if (f.varint > 5)
          return Status::corruption("unixfs: unknown Type " + std::to_string(f.varint));
        d.type = UnixfsType(f.varint);
        have_type = true;
        return Status::ok();
      case 2:
        if (f.wire_type != 2) return Status::corruption("unixfs: Data must be bytes");
        d.data = Bytes(f.bytes.begin(), f.bytes.end());
        return Status::ok();
      case 3:
        IDN_RETURN_IF_ERROR(want_varint());
        d.filesize = f.varint;
        return Status::ok();
      case 4:
        if (f.wire_type == 0) {
          d.blocksizes.push_back(f.varint);
          return Status::ok();
        }
        if (f.wire_type == 2) {  // packed encoding, legal in proto2 readers
          size_t pos = 0;
          while (pos < f.bytes.size()) {
            auto v = core::parse_uvarint(f.bytes.subspan(pos));
            if (v.error != core::UvarintError::kNone) {
              return Status::corruption("unixfs: bad packed blocksizes");
            }
            d.blocksizes.push_back(v.value);
            pos += v.size;
          }
          return Status::ok();
        }
        return Status::corruption("unixfs: bad blocksizes encoding");
      case 5:
        IDN_RETURN_IF_ERROR(want_varint());
        d.hash_type = f.varint;
        return Status::ok();
      case 6:
        IDN_RETURN_IF_ERROR(want_varint());
        d.fanout = f.varint;
        return Status::ok();
      case 7:
        IDN_RETURN_IF_ERROR(want_varint());
        d.mode = static_cast<uint32_t>(f.varint);
        return Status::ok();
      default:
        return Status::ok();
    }
  });
  if (!st.is_ok()) return st;
  if (!have_type) return Status::corruption("unixfs: missing Type");
  return d;
}

uint64_t unixfs_content_size(const UnixfsData& d) {
  uint64_t n = d.data ? d.data->size() : 0;
  for (uint64_t b : d.blocksizes) n += b;
  return n;
}

}  // namespace idn::store
