#include "swap/receipt_log.h"

#include <fmt/format.h>

#include <algorithm>

namespace idn::swap {
namespace {

bool same(ByteView a, ByteView b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin());
}

void put_u64(Bytes& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

uint64_t get_u64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= uint64_t{p[i]} << (8 * i);
  return v;
}

constexpr size_t kFixed = 1 + 4 * 8 + 1;  // flags, four u64, service length

}  // namespace

Result<Bytes> encode_receipt_log(ByteView self, ByteView peer, std::span<const HeldReceipt> rs) {
  Bytes out;
  out.reserve(rs.size() * (kFixed + 34));
  for (const auto& h : rs) {
    const protocol::Receipt& r = h.receipt;
    const bool we_served = same(r.server, self) && same(r.signer, peer);
    if (!we_served && !(same(r.server, peer) && same(r.signer, self))) {
      return Status::invalid_argument(
          fmt::format("receipt for request {} is not between this pair", r.request_id));
    }
    if (r.service_id.size() > kLogMaxService) {
      return Status::invalid_argument(
          fmt::format("receipt service ID of {} bytes", r.service_id.size()));
    }
    out.push_back(we_served ? kLogWeServed : 0);
    put_u64(out, r.request_id);
    put_u64(out, r.operations);
    put_u64(out, r.unix_ms);
    put_u64(out, h.sequence);
    out.push_back(static_cast<uint8_t>(r.service_id.size()));
    out.insert(out.end(), r.service_id.begin(), r.service_id.end());
  }
  return out;
}

Result<std::vector<HeldReceipt>> decode_receipt_log(ByteView self, ByteView peer, ByteView blob) {
  std::vector<HeldReceipt> out;
  size_t at = 0;
  while (at < blob.size()) {
    if (blob.size() - at < kFixed) {
      return Status::corruption(
          fmt::format("receipt log truncated at byte {} of {}", at, blob.size()));
    }
    const uint8_t* p = blob.data() + at;
    if ((p[0] & ~kLogWeServed) != 0) {
      return Status::corruption(
          fmt::format("receipt log record at byte {} has flags {:#x}", at, p[0]));
    }
    const bool we_served = (p[0] & kLogWeServed) != 0;
    const size_t service_len = p[kFixed - 1];
    if (blob.size() - at - kFixed < service_len) {
      return Status::corruption(
          fmt::format("receipt log truncated at byte {} of {}", at, blob.size()));
    }
    HeldReceipt h;
    h.receipt.request_id = get_u64(p + 1);
    h.receipt.operations = get_u64(p + 9);
    h.receipt.unix_ms = get_u64(p + 17);
    h.sequence = get_u64(p + 25);
    h.receipt.service_id.assign(p + kFixed, p + kFixed + service_len);
    h.receipt.server =
        Bytes(we_served ? self.begin() : peer.begin(), we_served ? self.end() : peer.end());
    h.receipt.signer =
        Bytes(we_served ? peer.begin() : self.begin(), we_served ? peer.end() : self.end());
    out.push_back(std::move(h));
    at += kFixed + service_len;
  }
  return out;
}

}  // namespace idn::swap
