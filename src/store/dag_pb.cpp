#include "store/dag_pb.h"

#include <algorithm>

#include "core/varint.h"

namespace idn::store {

namespace {

void put_bytes(uint32_t field, ByteView v, Bytes& out) {
  core::append_uvarint(uint64_t{field} << 3 | 2, out);
  core::append_uvarint(v.size(), out);
  out.insert(out.end(), v.begin(), v.end());
}

Bytes encode_link(const PbLink& l) {
  Bytes out;
  put_bytes(1, l.cid.to_bytes(), out);
  if (l.name) put_bytes(2, as_bytes(*l.name), out);
  if (l.tsize) {
    core::append_uvarint(3 << 3, out);
    core::append_uvarint(*l.tsize, out);
  }
  return out;
}

// Protobuf varint (up to 10 bytes); the multiformats decoder caps at 9 and the spec allows 64
// bits, so keep a local reader.
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

bool read_bytes(ByteView in, size_t& pos, ByteView& out) {
  uint64_t len = 0;
  if (!read_varint(in, pos, len) || len > in.size() - pos) return false;
  out = in.subspan(pos, len);
  pos += len;
  return true;
}

Result<PbLink> decode_link(ByteView in) {
  size_t pos = 0;
  uint32_t last = 0;
  std::optional<core::Cid> cid;
  PbLink link{core::Cid::of(core::Multicodec::kRaw, {}), std::nullopt, std::nullopt};
  while (pos < in.size()) {
    uint64_t key = 0;
    if (!read_varint(in, pos, key)) return Status::corruption("dag-pb link: malformed field key");
    uint32_t field = static_cast<uint32_t>(key >> 3), wire = static_cast<uint32_t>(key & 7);
    if (field <= last) return Status::corruption("dag-pb link: fields out of order or repeated");
    last = field;
    if (field == 1 || field == 2) {
      if (wire != 2) return Status::corruption("dag-pb link: Hash/Name must be bytes");
      ByteView v;
      if (!read_bytes(in, pos, v)) return Status::corruption("dag-pb link: truncated field");
      if (field == 1) {
        auto c = core::Cid::from_bytes(v);
        if (!c.ok()) return c.status().with_context("dag-pb link Hash");
        cid = *c;
      } else {
        link.name = to_string(v);
      }
    } else if (field == 3) {
      if (wire != 0) return Status::corruption("dag-pb link: Tsize must be a varint");
      uint64_t t = 0;
      if (!read_varint(in, pos, t)) return Status::corruption("dag-pb link: bad Tsize");
      link.tsize = t;
    } else {
      return Status::corruption("dag-pb link: unknown field " + std::to_string(field));
    }
  }
  if (!cid) return Status::corruption("dag-pb link: missing Hash");
  link.cid = *cid;
  return link;
}

}  // namespace

Bytes encode_dag_pb(const PbNode& node) {
  Bytes out;
  for (const auto& l : node.links) put_bytes(2, encode_link(l), out);
  if (node.data) put_bytes(1, *node.data, out);
  return out;
}

Result<PbNode> decode_dag_pb(ByteView in) {
  PbNode node;
  size_t pos = 0;
  while (pos < in.size()) {
    uint64_t key = 0;
    if (!read_varint(in, pos, key)) return Status::corruption("dag-pb: malformed field key");
    uint32_t field = static_cast<uint32_t>(key >> 3), wire = static_cast<uint32_t>(key & 7);
    if (wire != 2) return Status::corruption("dag-pb: PBNode fields must be bytes");
    ByteView v;
    if (!read_bytes(in, pos, v)) return Status::corruption("dag-pb: truncated field");
    if (field == 2) {
      if (node.data) return Status::corruption("dag-pb: Links after Data");
      IDN_ASSIGN_OR_RETURN(auto link, decode_link(v));
      node.links.push_back(std::move(link));
    } else if (field == 1) {
      if (node.data) return Status::corruption("dag-pb: duplicate Data");
      node.data = Bytes(v.begin(), v.end());
    } else {
      return Status::corruption("dag-pb: unknown PBNode field " + std::to_string(field));
    }
  }
  return node;
}

void sort_links_by_name(std::vector<PbLink>& links) {
  std::stable_sort(links.begin(), links.end(), [](const PbLink& a, const PbLink& b) {
    // std::string compares as unsigned char via char_traits<char>::compare (memcmp semantics).
    return a.name.value_or("") < b.name.value_or("");
  });
}

}  // namespace idn::store
