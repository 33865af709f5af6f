#include "p2p/identify.h"

#include "p2p/protobuf_lite.h"

namespace idn::p2p {

Bytes encode_identify(const IdentifyInfo& info) {
  Bytes out;
  if (!info.public_key.empty()) pb::append_bytes_field(1, info.public_key, out);
  for (const auto& a : info.listen_addrs) pb::append_bytes_field(2, a.to_bytes(), out);
  for (const auto& p : info.protocols) pb::append_string_field(3, p, out);
  if (info.observed_addr) pb::append_bytes_field(4, info.observed_addr->to_bytes(), out);
  pb::append_string_field(5, info.protocol_version, out);
  pb::append_string_field(6, info.agent_version, out);
  if (!info.signed_peer_record.empty()) pb::append_bytes_field(8, info.signed_peer_record, out);
  return out;
}

Result<IdentifyInfo> decode_identify(ByteView bytes) {
  IdentifyInfo info;
  Status st = pb::for_each_field(bytes, [&](const pb::Field& f) {
    if (f.wire_type != 2) return Status::ok();
    switch (f.number) {
      case 1:
        info.public_key.assign(f.bytes.begin(), f.bytes.end());
        break;
      case 2:
        if (auto a = core::Multiaddr::from_bytes(f.bytes); a.ok()) {
          info.listen_addrs.push_back(std::move(*a));
        }
        break;
      case 3:
        info.protocols.push_back(to_string(f.bytes));
        break;
      case 4:
        if (auto a = core::Multiaddr::from_bytes(f.bytes); a.ok()) info.observed_addr = *a;
        break;
      case 5:
        info.protocol_version = to_string(f.bytes);
        break;
      case 6:
        info.agent_version = to_string(f.bytes);
        break;
      case 8:
        info.signed_peer_record.assign(f.bytes.begin(), f.bytes.end());
        break;
      default:
        break;
    }
    return Status::ok();
  });
  if (!st.is_ok()) return st.with_context("identify message");
  return info;
}

}  // namespace idn::p2p
