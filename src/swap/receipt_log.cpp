#include "swap/receipt_log.h"

#include <fmt/format.h>

#include <algorithm>

namespace idn::swap {
namespace {

bool same(ByteView a, ByteView b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin());
}

void put_u64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

uint64_t get_u64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= uint64_t{p[i]} << (8 * i);
  return v;
}

constexpr size_t kFixed = 1 + 4 * 8 + 1;  // flags, four u64, service length

}  // namespace

Result<LogRecord> log_record_of(ByteView self, ByteView peer, const HeldReceipt& h) {
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
  return LogRecord{.request_id = r.request_id,
                   .operations = r.operations,
                   .unix_ms = r.unix_ms,
                   .sequence = h.sequence,
                   .we_served = we_served,
                   .service = std::make_shared<const Bytes>(r.service_id)};
}

HeldReceipt held_receipt_of(ByteView self, ByteView peer, const LogRecord& r) {
  HeldReceipt h;
  h.receipt.request_id = r.request_id;
  h.receipt.operations = r.operations;
  h.receipt.unix_ms = r.unix_ms;
  h.receipt.service_id = *r.service;
  ByteView server = r.we_served ? self : peer, signer = r.we_served ? peer : self;
  h.receipt.server.assign(server.begin(), server.end());
  h.receipt.signer.assign(signer.begin(), signer.end());
  h.sequence = r.sequence;
  return h;
}

void append_log_records(Bytes& out, std::span<const LogRecord> rs) {
  size_t size = out.size();
  for (const auto& r : rs) size += kFixed + r.service->size();
  out.reserve(size);
  for (const auto& r : rs) {
    const size_t at = out.size();
    out.resize(at + kFixed);
    uint8_t* p = out.data() + at;
    p[0] = r.we_served ? kLogWeServed : 0;
    put_u64(p + 1, r.request_id);
    put_u64(p + 9, r.operations);
    put_u64(p + 17, r.unix_ms);
    put_u64(p + 25, r.sequence);
    p[kFixed - 1] = static_cast<uint8_t>(r.service->size());
    out.insert(out.end(), r.service->begin(), r.service->end());
  }
}

Result<std::vector<LogRecord>> decode_log_records(ByteView blob) {
  std::vector<LogRecord> out;
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
    const size_t service_len = p[kFixed - 1];
    if (blob.size() - at - kFixed < service_len) {
      return Status::corruption(
          fmt::format("receipt log truncated at byte {} of {}", at, blob.size()));
    }
    ByteView service(p + kFixed, service_len);
    LogRecord r{.request_id = get_u64(p + 1),
                .operations = get_u64(p + 9),
                .unix_ms = get_u64(p + 17),
                .sequence = get_u64(p + 25),
                .we_served = (p[0] & kLogWeServed) != 0,
                .service = !out.empty() && same(*out.back().service, service)
                               ? out.back().service
                               : std::make_shared<const Bytes>(service.begin(), service.end())};
    out.push_back(std::move(r));
    at += kFixed + service_len;
  }
  return out;
}

Result<Bytes> encode_receipt_log(ByteView self, ByteView peer, std::span<const HeldReceipt> rs) {
  std::vector<LogRecord> records;
  records.reserve(rs.size());
  for (const auto& h : rs) {
    IDN_ASSIGN_OR_RETURN(auto r, log_record_of(self, peer, h));
    records.push_back(std::move(r));
  }
  Bytes out;
  append_log_records(out, records);
  return out;
}

Result<std::vector<HeldReceipt>> decode_receipt_log(ByteView self, ByteView peer, ByteView blob) {
  IDN_ASSIGN_OR_RETURN(auto records, decode_log_records(blob));
  std::vector<HeldReceipt> out;
  out.reserve(records.size());
  for (const auto& r : records) out.push_back(held_receipt_of(self, peer, r));
  return out;
}

}  // namespace idn::swap
