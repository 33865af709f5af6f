// Fuzzes the libp2p Noise handshake: arbitrary bytes as handshake messages to a responder (first
// and third message) and an initiator (second message), and to the payload decoder. Every
// input is either refused with a Status or (impossible without the keys) accepted; never a
// crash.
// fuzz-deps: idn_core idn_identity idn_p2p
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "fuzz_check.h"
#include "p2p/secure_channel.h"

using namespace idn;
using namespace idn::p2p;

static const identity::KeyPair& key() {
  static const identity::KeyPair k = *identity::KeyPair::from_seed(Bytes(32, 7));
  return k;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ByteView in(data, size);
  (void)decode_noise_payload(in);

  // Split the input into two messages at a point chosen by the first byte.
  size_t cut = size > 0 ? data[0] * size / 256 : 0;
  ByteView m1 = in.subspan(0, cut), m2 = in.subspan(cut);

  {
    NoiseSecurity resp(key(), false);
    auto r1 = resp.on_message(m1);
    if (r1.ok()) {
      CHECK(r1->has_value());  // the responder always answers message 1
      auto r3 = resp.on_message(m2);
      CHECK(!r3.ok());  // forging message 3 needs the responder's ephemeral secret
      CHECK(!resp.complete());
    }
  }
  {
    NoiseSecurity init(key(), true);
    CHECK(init.start().ok());
    auto r2 = init.on_message(in);
    CHECK(!r2.ok());  // message 2 must decrypt under a DH with our fresh ephemeral key
    CHECK(!init.complete());
  }
  {
    auto s = noise::DhKeyPair::from_private(Bytes(32, 1));
    noise::XXHandshake hs(false, *s, {});
    if (hs.read_message(m1).ok()) (void)hs.write_message(m2);
  }
  return 0;
}
