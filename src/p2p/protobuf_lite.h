// Just enough protobuf wire format for the small libp2p messages the p2p layer owns
// (NoiseHandshakePayload, Identify): length-delimited and varint fields, unknown fields
// skipped. IDN's own protocol messages use generated code from proto/.
#pragma once

#include <cstdint>
#include <functional>
#include <string_view>

#include "core/bytes.h"
#include "core/status.h"

namespace idn::p2p::pb {

void append_bytes_field(uint32_t field, ByteView value, Bytes& out);
inline void append_string_field(uint32_t field, std::string_view value, Bytes& out) {
  append_bytes_field(field, as_bytes(value), out);
}
void append_varint_field(uint32_t field, uint64_t value, Bytes& out);

// One decoded field. For wire type 0 `varint` is set; for type 2 `bytes` views the payload.
struct Field {
  uint32_t number = 0;
  uint32_t wire_type = 0;
  uint64_t varint = 0;
  ByteView bytes;
};

// Calls `on` for every field of `msg` in order (fixed32/fixed64 are skipped). Errors:
// Corruption for truncated or malformed input; or whatever `on` returns.
Status for_each_field(ByteView msg, const std::function<Status(const Field&)>& on);

}  // namespace idn::p2p::pb
