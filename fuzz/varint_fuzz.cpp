// Fuzzes uvarint parsing and length-prefixed framing: whatever the bytes, decoding never crashes,
// accepted varints re-encode to the bytes they came from, and the streaming FrameDecoder yields
// exactly the frames the one-shot decoder finds, however the stream is chunked.
// fuzz-deps: idn_core
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "core/varint.h"
#include "fuzz_check.h"

using namespace idn;
using namespace idn::core;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  ByteView in(data, size);

  UvarintParse p = parse_uvarint(in);
  if (p.error == UvarintError::kNone) {
    Bytes again = encode_uvarint(p.value);
    CHECK(again.size() == p.size);
    CHECK(std::equal(again.begin(), again.end(), in.begin()));
    CHECK(uvarint_size(p.value) == p.size);
  }

  // First byte picks the frame limit and the chunk size; the rest is the stream.
  const size_t max_frame = data[0] * 4u;
  const size_t chunk = (data[0] % 7) + 1;
  ByteView stream = in.subspan(1);

  std::vector<Bytes> oneshot;
  Status oneshot_end;
  size_t pos = 0;
  while (pos < stream.size()) {
    size_t used = 0;
    auto f = decode_length_prefixed(stream.subspan(pos), max_frame, &used);
    if (!f.ok()) {
      oneshot_end = f.status();
      break;
    }
    CHECK(used > 0 && used <= stream.size() - pos);
    CHECK(f->size() <= max_frame);
    Bytes re = encode_length_prefixed(*f);
    CHECK(re.size() == used && std::equal(re.begin(), re.end(), stream.begin() + pos));
    oneshot.push_back(std::move(*f));
    pos += used;
  }

  FrameDecoder dec(max_frame);
  std::vector<Bytes> streamed;
  for (size_t off = 0; off < stream.size(); off += chunk) {
    Status s = dec.push(stream.subspan(off, std::min(chunk, stream.size() - off)));
    while (auto f = dec.pop()) streamed.push_back(std::move(*f));
    if (!s.is_ok()) break;
  }
  if (dec.failed()) {
    // A hard error (bad header, oversized frame) is one the one-shot decoder also hit, at a
    // point after the frames the streaming decoder delivered.
    CHECK(oneshot_end.code() == dec.status().code());
    CHECK(streamed.size() <= oneshot.size());
  } else {
    CHECK(streamed == oneshot);
  }
  for (size_t i = 0; i < streamed.size(); ++i) CHECK(streamed[i] == oneshot[i]);
  return 0;
}
