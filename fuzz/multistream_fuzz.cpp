// Fuzzes multistream-select: arbitrary bytes (in arbitrary chunks) into the listener and dialer
// state machines never crash, and every message the parser accepts re-encodes to the same bytes.
// fuzz-deps: idn_core idn_identity idn_p2p
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "fuzz_check.h"
#include "p2p/multistream.h"

using namespace idn;
using namespace idn::p2p::multistream;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t chunk = 1 + data[0] % 16;
  ByteView in(data + 1, size - 1);

  if (auto p = parse_message(in); p.ok() && p->has_value()) {
    Bytes again = encode_message((*p)->message);
    CHECK(again.size() == (*p)->consumed);
    CHECK(std::equal(again.begin(), again.end(), in.begin()));
  }

  Listener l([](std::string_view p) { return !p.empty() && p[0] == '/' && p.size() < 8; });
  Dialer d({"/a", "/b/1.0.0"});
  bool l_ok = true, d_ok = true;
  for (size_t pos = 0; pos < in.size(); pos += chunk) {
    ByteView part = in.subspan(pos, std::min(chunk, in.size() - pos));
    if (l_ok) l_ok = l.feed(part).is_ok();
    if (d_ok) d_ok = d.feed(part).is_ok();
    (void)l.take_output();
    (void)d.take_output();
  }
  if (l.done()) CHECK(!l.protocol().empty());
  if (d.done()) CHECK(d.protocol() == "/a" || d.protocol() == "/b/1.0.0");
  (void)l.take_leftover();
  (void)d.take_leftover();
  return 0;
}
