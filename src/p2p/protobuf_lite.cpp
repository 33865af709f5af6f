#include "p2p/protobuf_lite.h"

#include "core/varint.h"

namespace idn::p2p::pb {

void append_bytes_field(uint32_t field, ByteView value, Bytes& out) {
  core::append_uvarint(uint64_t{field} << 3 | 2, out);
  core::append_uvarint(value.size(), out);
  out.insert(out.end(), value.begin(), value.end());
}

void append_varint_field(uint32_t field, uint64_t value, Bytes& out) {
  core::append_uvarint(uint64_t{field} << 3, out);
  core::append_uvarint(value, out);
}

namespace {
// Protobuf varints may be up to 10 bytes (64 bits); multiformats caps at 9. Decode here.
bool read_varint(ByteView in, size_t& pos, uint64_t& v) {
  v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (pos >= in.size()) return false;
    uint8_t b = in[pos++];
    v |= uint64_t{b & 0x7fu} << shift;
    if (!(b & 0x80)) return true;
  }
  return false;
}
}  // namespace

Status for_each_field(ByteView msg, const std::function<Status(const Field&)>& on) {
  size_t pos = 0;
  while (pos < msg.size()) {
    uint64_t key = 0;
    if (!read_varint(msg, pos, key)) return Status::corruption("protobuf: malformed field key");
    Field f;
    f.number = static_cast<uint32_t>(key >> 3);
    f.wire_type = static_cast<uint32_t>(key & 7);
    if (f.number == 0 || (key >> 3) > 0x1fffffff) {
      return Status::corruption("protobuf: invalid field number");
    }
    switch (f.wire_type) {
      case 0:
        if (!read_varint(msg, pos, f.varint)) return Status::corruption("protobuf: bad varint");
        break;
      case 1:
        if (msg.size() - pos < 8) return Status::corruption("protobuf: truncated fixed64");
        pos += 8;
        continue;
      case 2: {
        uint64_t len = 0;
        if (!read_varint(msg, pos, len) || len > msg.size() - pos) {
          return Status::corruption("protobuf: truncated length-delimited field");
        }
        f.bytes = msg.subspan(pos, len);
        pos += len;
        break;
      }
      case 5:
        if (msg.size() - pos < 4) return Status::corruption("protobuf: truncated fixed32");
        pos += 4;
        continue;
      default:
        return Status::corruption("protobuf: unsupported wire type " + std::to_string(f.wire_type));
    }
    IDN_RETURN_IF_ERROR(on(f));
  }
  return Status::ok();
}

}  // namespace idn::p2p::pb
