#include "store/bitswap_message.h"

#include "core/varint.h"
#include "p2p/protobuf_lite.h"

namespace idn::store::bitswap {

namespace pb = p2p::pb;

Bytes cid_prefix(const core::Cid& cid) {
  Bytes out;
  core::append_uvarint(uint64_t(cid.version()), out);
  core::append_uvarint(cid.codec(), out);
  core::append_uvarint(cid.hash().code(), out);
  core::append_uvarint(cid.hash().digest().size(), out);
  return out;
}

Result<core::Cid> cid_from_prefix(ByteView prefix, ByteView data) {
  uint64_t v[4];
  size_t pos = 0;
  for (auto& x : v) {
    auto r = core::decode_uvarint(prefix.subspan(pos));
    if (!r.ok()) return Status::corruption("bitswap: malformed block prefix");
    x = r->value;
    pos += r->size;
  }
  if (pos != prefix.size()) return Status::corruption("bitswap: trailing bytes in block prefix");
  auto mh = core::Multihash::compute(core::HashCode(v[2]), data);
  if (!mh.ok()) return mh.status().with_context("bitswap block prefix");
  if (mh->digest().size() != v[3]) {
    return Status::unsupported("bitswap: truncated digests (prefix length " + std::to_string(v[3]) +
                               ") are not supported");
  }
  if (v[0] == 0) {
    if (v[1] != uint64_t(core::Multicodec::kDagPb)) {
      return Status::corruption("bitswap: CIDv0 prefix with codec other than dag-pb");
    }
    return core::Cid::v0(*mh);
  }
  if (v[0] != 1) return Status::unsupported("bitswap: CID version " + std::to_string(v[0]));
  return core::Cid::v1(v[1], *mh);
}

Bytes encode(const Message& m) {
  Bytes out;
  if (!m.wants.empty() || m.full_wantlist) {
    Bytes wl;
    for (const auto& w : m.wants) {
      Bytes e;
      pb::append_bytes_field(1, w.cid.to_bytes(), e);
      pb::append_varint_field(2, uint64_t(uint32_t(w.priority)), e);
      if (w.cancel) pb::append_varint_field(3, 1, e);
      if (w.type != WantType::kBlock) pb::append_varint_field(4, uint64_t(w.type), e);
      if (w.send_dont_have) pb::append_varint_field(5, 1, e);
      pb::append_bytes_field(1, e, wl);
    }
    if (m.full_wantlist) pb::append_varint_field(2, 1, wl);
    pb::append_bytes_field(1, wl, out);
  }
  for (const auto& b : m.blocks) {
    Bytes e;
    pb::append_bytes_field(1, cid_prefix(b.cid), e);
    pb::append_bytes_field(2, b.data, e);
    pb::append_bytes_field(3, e, out);
  }
  for (const auto& p : m.presences) {
    Bytes e;
    pb::append_bytes_field(1, p.cid.to_bytes(), e);
    pb::append_varint_field(2, uint64_t(p.type), e);
    pb::append_bytes_field(4, e, out);
  }
  if (m.pending_bytes > 0) pb::append_varint_field(5, uint64_t(m.pending_bytes), out);
  return out;
}

namespace {

Status need(const pb::Field& f, uint32_t wire) {
  if (f.wire_type == wire) return Status::ok();
  return Status::corruption("bitswap: field " + std::to_string(f.number) + " has wire type " +
                            std::to_string(f.wire_type));
}

Result<WantEntry> decode_entry(ByteView in) {
  std::optional<core::Cid> cid;
  WantEntry e{core::Cid::of(core::Multicodec::kRaw, {})};
  IDN_RETURN_IF_ERROR(pb::for_each_field(in, [&](const pb::Field& f) -> Status {
    switch (f.number) {
      case 1: {
        IDN_RETURN_IF_ERROR(need(f, 2));
        auto c = core::Cid::from_bytes(f.bytes);
        if (!c.ok()) return c.status().with_context("bitswap want");
        cid = *c;
        return Status::ok();
      }
      case 2:
        IDN_RETURN_IF_ERROR(need(f, 0));
        e.priority = int32_t(uint32_t(f.varint));
        return Status::ok();
      case 3:
        IDN_RETURN_IF_ERROR(need(f, 0));
        e.cancel = f.varint != 0;
        return Status::ok();
      case 4:
        IDN_RETURN_IF_ERROR(need(f, 0));
        if (f.varint > 1) return Status::corruption("bitswap: unknown wantType");
        e.type = WantType(f.varint);
        return Status::ok();
      case 5:
        IDN_RETURN_IF_ERROR(need(f, 0));
        e.send_dont_have = f.varint != 0;
        return Status::ok();
      default:
        return Status::ok();
    }
  }));
  if (!cid) return Status::corruption("bitswap: want entry without a CID");
  e.cid = *cid;
  return e;
}

}  // namespace

Result<Message> decode(ByteView bytes) {
  Message m;
  IDN_RETURN_IF_ERROR(pb::for_each_field(bytes, [&](const pb::Field& f) -> Status {
    switch (f.number) {
      case 1:  // wantlist
        IDN_RETURN_IF_ERROR(need(f, 2));
        return pb::for_each_field(f.bytes, [&](const pb::Field& w) -> Status {
          if (w.number == 1) {
            IDN_RETURN_IF_ERROR(need(w, 2));
            IDN_ASSIGN_OR_RETURN(WantEntry e, decode_entry(w.bytes));
            m.wants.push_back(std::move(e));
          } else if (w.number == 2) {
            IDN_RETURN_IF_ERROR(need(w, 0));
            m.full_wantlist = w.varint != 0;
          }
          return Status::ok();
        });
      case 2: {  // bitswap 1.0.0 blocks: CIDv0 implied
        IDN_RETURN_IF_ERROR(need(f, 2));
        auto c = core::Cid::v0(core::Multihash::sha2_256(f.bytes));
        if (c.ok()) m.blocks.push_back(Block{*c, Bytes(f.bytes.begin(), f.bytes.end())});
        return Status::ok();
      }
      case 3: {  // payload
        IDN_RETURN_IF_ERROR(need(f, 2));
        ByteView prefix, data;
        bool have_prefix = false;
        IDN_RETURN_IF_ERROR(pb::for_each_field(f.bytes, [&](const pb::Field& b) -> Status {
          if (b.wire_type != 2) return Status::ok();
          if (b.number == 1) {
            prefix = b.bytes;
            have_prefix = true;
          } else if (b.number == 2) {
            data = b.bytes;
          }
          return Status::ok();
        }));
        auto cid = have_prefix ? cid_from_prefix(prefix, data)
                               : Result<core::Cid>(Status::corruption("no prefix"));
        if (cid.ok()) {
          m.blocks.push_back(Block{*cid, Bytes(data.begin(), data.end())});
        } else {
          ++m.bad_blocks;
        }
        return Status::ok();
      }
      case 4: {  // block presences
        IDN_RETURN_IF_ERROR(need(f, 2));
        std::optional<core::Cid> cid;
        PresenceType type = PresenceType::kHave;
        IDN_RETURN_IF_ERROR(pb::for_each_field(f.bytes, [&](const pb::Field& p) -> Status {
          if (p.number == 1 && p.wire_type == 2) {
            auto c = core::Cid::from_bytes(p.bytes);
            if (!c.ok()) return c.status().with_context("bitswap presence");
            cid = *c;
          } else if (p.number == 2 && p.wire_type == 0) {
            if (p.varint > 1) return Status::corruption("bitswap: unknown presence type");
            type = PresenceType(p.varint);
          }
          return Status::ok();
        }));
        if (!cid) return Status::corruption("bitswap: presence without a CID");
        m.presences.push_back(Presence{*cid, type});
        return Status::ok();
      }
      case 5:
        IDN_RETURN_IF_ERROR(need(f, 0));
        m.pending_bytes = int32_t(uint32_t(f.varint));
        return Status::ok();
      default:
        return Status::ok();
    }
  }));
  return m;
}

}  // namespace idn::store::bitswap
