// Fuzzes IDN's own wire messages (/idn/swap/1.0.0, /idn/infer/1.0.0): whatever the bytes,
// decoding never crashes and either fails with PeerMisbehaved or yields a message whose
// encoding is a fixed point (encode -> decode -> encode gives the same bytes). The same input
// is also read as a stream of length-prefixed frames, the way the dispatcher reads it. The seed
// corpus includes requests with several inputs (input_views) and with a sample reference only,
// and a keep-alive stream: a keep_open request, then one that inherits its service ID, exit
// rule and deadline (absent on the wire), and an answer that says stream_open.
// fuzz-deps: idn_protocol idn_proto idn_core
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "core/varint.h"
#include "fuzz_check.h"
#include "protocol/messages.h"

using namespace idn;
using namespace idn::protocol;

namespace {

template <class Decode>
void round_trip(ByteView in, Decode decode, const DecodeLimits& limits) {
  auto m = decode(in, limits);
  if (!m.ok()) {
    CHECK(m.status().code() == Code::kPeerMisbehaved);
    return;
  }
  Bytes once = encode(*m);
  auto again = decode(ByteView(once), limits);
  CHECK(again.ok());
  Bytes twice = encode(*again);
  CHECK(once == twice);
  CHECK(!message_name(*again).empty());
}

void decode_any(ByteView in, uint8_t which, const DecodeLimits& limits) {
  switch (which % 3) {
    case 0:
      round_trip(in, decode_swap, limits);
      break;
    case 1:
      round_trip(in, decode_infer_client, limits);
      break;
    default:
      round_trip(in, decode_infer_server, limits);
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint8_t which = data[0];
  // Small limits some of the time, so the limit checks themselves get exercised.
  DecodeLimits limits;
  if (data[1] & 1) {
    limits.max_id_bytes = 8;
    limits.max_list_entries = 4;
    limits.max_tensor_rank = 2;
    limits.max_text_bytes = 16;
    limits.max_evidence_receipts = 1;
    limits.max_batch_receipts = 1;
    limits.max_signature_bytes = 32;
    limits.max_inputs = 1;
  }
  ByteView body(data + 2, size - 2);
  decode_any(body, which, limits);

  core::FrameDecoder frames(1 << 20);  // rpc::kMaxSwapMessage
  if (!frames.push(body).is_ok()) return 0;
  while (auto frame = frames.pop()) decode_any(ByteView(*frame), which, limits);
  return 0;
}
