// Fuzzes the packed device-section parser: whatever the bytes, parsing never crashes, an accepted
// section re-serialises to exactly its bytes and runs on an all-zero input.
// fuzz-deps: idn_ondevice idn_core
#include <cstddef>
#include <cstdint>
#include <vector>

#include "fuzz_check.h"
#include "ondevice/section.h"

using namespace idn;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto s = ondevice::Section::parse(ByteView(data, size));
  if (!s.ok()) {
    CHECK(!s.status().message().empty());
    return 0;
  }
  Bytes again = s->serialize();
  CHECK(again.size() == size && std::equal(again.begin(), again.end(), data));
  const int64_t n = s->input_shape().size();
  if (n > (1 << 16) || s->param_bytes() > (1 << 20)) return 0;  // keep each run fast
  auto out = s->input_kind() == ondevice::InputKind::kPixels
                 ? s->run_pixels(std::vector<uint8_t>(static_cast<size_t>(n)))
                 : s->run_bits(std::vector<uint64_t>(static_cast<size_t>(ondevice::words_for(n))));
  CHECK(out.ok() && out->size() == s->layers().size());
  return 0;
}
