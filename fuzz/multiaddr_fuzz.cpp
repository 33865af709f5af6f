// Fuzzes multiaddr parsing in both forms: never a crash, and every accepted address round-trips
// (binary -> text -> binary is the identity; text is canonical after one round).
// fuzz-deps: idn_core
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/multiaddr.h"
#include "fuzz_check.h"

using namespace idn;
using namespace idn::core;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ByteView in(data, size);
  if (auto m = Multiaddr::from_bytes(in); m.ok()) {
    Bytes b = m->to_bytes();
    CHECK(b.size() == size && std::equal(b.begin(), b.end(), in.begin()));
    auto t = Multiaddr::parse(m->to_string());
    CHECK(t.ok());
    CHECK(*t == *m);
    (void)m->tcp_port();
    (void)m->ip();
    (void)m->host();
    (void)m->peer_multihash();
    (void)m->decapsulate(Protocol::kTcp);
  }
  std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto m = Multiaddr::parse(text); m.ok()) {
    auto b = Multiaddr::from_bytes(m->to_bytes());
    CHECK(b.ok());
    CHECK(*b == *m);
    std::string canon = m->to_string();
    auto again = Multiaddr::parse(canon);
    CHECK(again.ok());
    CHECK(again->to_string() == canon);
    CHECK(m->encapsulate(*m).decapsulate(*m) == *m);
  }
  return 0;
}
