// Fuzzes yamux two ways: (1) arbitrary frames into a session whose streams the fuzzer also
// reads, writes, closes and releases; (2) a two-sided simulation where the input is a script of
// operations on a client and a server session connected back to back: every byte written on a
// stream must arrive, in order, on the other side, and no sender exceeds the window.
// fuzz-deps: idn_core idn_identity idn_p2p
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>

#include "fuzz_check.h"
#include "p2p/yamux.h"

using namespace idn;
using namespace idn::p2p::yamux;

static void raw_frames(ByteView in) {
  SessionLimits lim;
  lim.max_streams = 8;
  Session s(false, lim);
  uint8_t buf[1024];
  size_t pos = 0;
  while (pos < in.size() && !s.failed()) {
    size_t n = 1 + in[pos] % 64;
    ByteView part = in.subspan(pos + 1, std::min(n, in.size() - pos - 1));
    pos += 1 + part.size();
    if (!s.feed(part).is_ok()) break;
    while (auto id = s.accept()) {
      (void)s.read(*id, buf);
      (void)s.write(*id, ByteView(buf, 10));
      if (*id % 3 == 0) (void)s.close_write(*id);
      if (*id % 5 == 0) s.release(*id);
    }
    CHECK(s.num_streams() <= lim.max_streams);
    (void)s.take_output();
  }
}

static void two_sided(ByteView in) {
  Session c(true), s(false);
  std::map<uint32_t, Bytes> sent, got;  // keyed by stream id (same on both sides)
  std::map<uint32_t, uint32_t> seq;
  auto pump = [&] {
    for (int i = 0; i < 8; ++i) {
      Bytes x = c.take_output(), y = s.take_output();
      if (x.empty() && y.empty()) return;
      CHECK(s.feed(x).is_ok());
      CHECK(c.feed(y).is_ok());
      while (s.accept()) {
      }
    }
  };
  uint8_t buf[4096];
  for (size_t i = 0; i + 1 < in.size(); i += 2) {
    uint8_t op = in[i] % 5, arg = in[i + 1];
    switch (op) {
      case 0:
        if (auto id = c.open_stream(); id.ok()) sent[*id];
        break;
      case 1:
        if (!sent.empty()) {
          auto it = std::next(sent.begin(), arg % sent.size());
          Bytes data(static_cast<size_t>(arg) * 257);
          for (auto& b : data) b = static_cast<uint8_t>(seq[it->first]++);
          auto n = c.write(it->first, data);
          CHECK(n.ok());
          CHECK(*n <= data.size());
          it->second.insert(it->second.end(), data.begin(), data.begin() + *n);
        }
        break;
      case 2:
        pump();
        break;
      case 3:
        for (auto& [id, bytes] : sent) {
          size_t n = s.read(id, std::span<uint8_t>(buf, 1 + arg * 16 % sizeof buf));
          got[id].insert(got[id].end(), buf, buf + n);
        }
        break;
      case 4:
        c.ping(arg);
        break;
    }
  }
  pump();
  for (auto& [id, bytes] : sent) {
    size_t n;
    while ((n = s.read(id, buf)) > 0) got[id].insert(got[id].end(), buf, buf + n);
    pump();
    while ((n = s.read(id, buf)) > 0) got[id].insert(got[id].end(), buf, buf + n);
    CHECK(got[id].size() <= bytes.size());
    CHECK(std::equal(got[id].begin(), got[id].end(), bytes.begin()));
  }
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  ByteView in(data + 1, size - 1);
  if (data[0] & 1) {
    raw_frames(in);
  } else {
    two_sided(in);
  }
  return 0;
}
