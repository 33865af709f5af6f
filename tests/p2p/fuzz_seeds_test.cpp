// The seed corpora of fuzz/yamux_fuzz.cpp and fuzz/noise_fuzz.cpp (fuzz/corpus/yamux, noise):
// real yamux frames and Noise XX handshake messages laid out the way each target reads its
// input. The tests check that the checked-in seeds still reach past the parsers (a seed the
// code refuses at once teaches the fuzzer nothing). IDN_WRITE_FUZZ_SEEDS=1 regenerates them:
//   IDN_WRITE_FUZZ_SEEDS=1 build/tests/p2p_tests --gtest_filter='FuzzSeeds*'
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "p2p/secure_channel.h"
#include "p2p/yamux.h"

namespace idn::p2p {
namespace {

namespace fs = std::filesystem;

fs::path corpus(const std::string& name) {
  return fs::path(IDN_SOURCE_DIR) / "fuzz/corpus" / name;
}

bool regenerate() {
  const char* v = std::getenv("IDN_WRITE_FUZZ_SEEDS");
  return v != nullptr && std::string(v) == "1";
}

void write_seed(const fs::path& dir, const std::string& name, ByteView bytes) {
  fs::create_directories(dir);
  std::ofstream f(dir / name, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(f.good()) << (dir / name);
}

std::map<std::string, Bytes> read_corpus(const fs::path& dir) {
  std::map<std::string, Bytes> out;
  if (!fs::exists(dir)) return out;
  for (const auto& e : fs::directory_iterator(dir)) {
    std::ifstream f(e.path(), std::ios::binary);
    out[e.path().filename().string()] =
        Bytes(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  }
  return out;
}

// ----------------------------------------------------------------------------------- yamux
// yamux_fuzz: byte 0 odd -> raw_frames: chunks [n-1][n bytes] (n <= 64) fed to a server
// session; byte 0 even -> two_sided: (op, arg) pairs driving a client/server pair.

Bytes raw_seed(ByteView frames) {
  Bytes out{1};
  for (size_t pos = 0; pos < frames.size(); pos += 64) {
    size_t n = std::min<size_t>(64, frames.size() - pos);
    out.push_back(static_cast<uint8_t>(n - 1));
    out.insert(out.end(), frames.begin() + static_cast<std::ptrdiff_t>(pos),
               frames.begin() + static_cast<std::ptrdiff_t>(pos + n));
  }
  return out;
}

std::map<std::string, Bytes> yamux_seeds() {
  using namespace yamux;
  std::map<std::string, Bytes> seeds;
  {  // A client's stream: SYN, data, FIN.
    Session c(true);
    uint32_t id = *c.open_stream();
    (void)c.write(id, as_bytes("hello over yamux"));
    (void)c.close_write(id);
    seeds["raw_open_write_fin"] = raw_seed(c.take_output());
  }
  {  // Three streams interleaved, one reset, one window update.
    Session c(true);
    uint32_t a = *c.open_stream(), b = *c.open_stream(), d = *c.open_stream();
    (void)c.write(a, as_bytes("first"));
    (void)c.write(b, Bytes(300, 0x42));
    c.reset(d);
    (void)c.write(a, as_bytes("second"));
    (void)c.close_write(b);
    Bytes out = c.take_output();
    append_header(Header{0, FrameType::kWindowUpdate, 0, a, 4096}, out);
    seeds["raw_three_streams_rst"] = raw_seed(out);
  }
  {  // Ping, pong and GoAway on stream 0.
    Session c(true);
    c.ping(0xdeadbeef);
    Bytes out = c.take_output();
    append_header(Header{0, FrameType::kPing, kAck, 0, 7}, out);
    append_header(Header{0, FrameType::kGoAway, 0, 0, 0}, out);
    seeds["raw_ping_goaway"] = raw_seed(out);
  }
  {  // A Data frame that opens the stream itself (SYN on Data, as js-libp2p may send).
    Bytes out;
    Bytes payload(40, 0x61);
    append_header(Header{0, FrameType::kData, kSyn, 1, static_cast<uint32_t>(payload.size())}, out);
    out.insert(out.end(), payload.begin(), payload.end());
    append_header(Header{0, FrameType::kData, kFin, 1, 0}, out);
    seeds["raw_data_syn_fin"] = raw_seed(out);
  }
  // two_sided scripts: 0 open, 1 write arg*257 bytes, 2 pump, 3 read, 4 ping.
  seeds["two_sided_small"] = Bytes{0, 0, 0, 1, 5, 2, 0, 3, 10, 4, 7, 2, 0, 3, 255};
  seeds["two_sided_two_streams"] =
      Bytes{2, 0, 0, 0, 1, 1, 200, 1, 201, 2, 0, 3, 40, 3, 41, 2, 0, 4, 1, 2, 0, 3, 255};
  {  // Enough bulk on one stream to run its window dry, then reads that grow it.
    Bytes s{0, 0, 0};
    for (int i = 0; i < 6; ++i) s.insert(s.end(), {1, 255});
    for (int i = 0; i < 4; ++i) s.insert(s.end(), {2, 0, 3, 255, 3, 255, 3, 255});
    seeds["two_sided_window"] = s;
  }
  return seeds;
}

TEST(FuzzSeedsTest, YamuxSeedsAreValidSessionsTheTargetGetsPastTheParser) {
  const fs::path dir = corpus("yamux");
  if (regenerate()) {
    for (const auto& [name, bytes] : yamux_seeds()) write_seed(dir, name, bytes);
  }
  auto seeds = read_corpus(dir);
  ASSERT_GE(seeds.size(), 5u) << "no yamux seeds in " << dir;
  int raw = 0, scripts = 0;
  for (const auto& [name, in] : seeds) {
    ASSERT_FALSE(in.empty()) << name;
    if (!(in[0] & 1)) {
      ++scripts;
      continue;
    }
    // Undo the target's chunking; the frames must be accepted and open at least one stream.
    Bytes frames;
    for (size_t pos = 1; pos < in.size();) {
      size_t n = std::min<size_t>(1 + in[pos] % 64, in.size() - pos - 1);
      frames.insert(frames.end(), in.begin() + static_cast<std::ptrdiff_t>(pos + 1),
                    in.begin() + static_cast<std::ptrdiff_t>(pos + 1 + n));
      pos += 1 + n;
    }
    yamux::Session s(false);
    EXPECT_TRUE(s.feed(frames).is_ok()) << name;
    EXPECT_FALSE(s.failed()) << name;
    ++raw;
  }
  EXPECT_GE(raw, 3);
  EXPECT_GE(scripts, 2);
}

// ----------------------------------------------------------------------------------- Noise
// noise_fuzz: the whole input goes to decode_noise_payload and, as message 2, to an initiator;
// it is also cut at data[0] * size / 256 into m1 (message 1 for a responder) and m2 (its
// message 3, or a payload for the responder's message 2).

struct Handshake {
  Bytes msg1, msg2, msg3, payload;
};

Handshake real_handshake() {
  auto ki = identity::KeyPair::generate();
  auto kr = identity::KeyPair::generate();
  NoiseSecurity init(*ki, true), resp(*kr, false);
  Handshake h;
  h.msg1 = *init.start();
  h.msg2 = **resp.on_message(h.msg1);
  h.msg3 = **init.on_message(h.msg2);
  EXPECT_TRUE(resp.on_message(h.msg3).ok());
  EXPECT_TRUE(init.complete() && resp.complete());
  Bytes spub(32, 9);
  Bytes msg = to_bytes(kNoiseSignaturePrefix);
  msg.insert(msg.end(), spub.begin(), spub.end());
  h.payload = encode_noise_payload({ki->public_key().to_protobuf(), ki->sign(msg)});
  return h;
}

size_t noise_cut(ByteView in) {
  return in.empty() ? 0 : in[0] * in.size() / 256;
}

// message 1 followed by `rest`, from a handshake whose ephemeral key's first byte makes the
// target cut exactly after message 1 (found by retrying: about one handshake in 256 fits).
Bytes msg1_then(const std::function<Bytes(const Handshake&)>& rest) {
  for (int i = 0; i < 20000; ++i) {
    Handshake h = real_handshake();
    Bytes in = h.msg1;
    Bytes r = rest(h);
    in.insert(in.end(), r.begin(), r.end());
    if (noise_cut(in) == h.msg1.size()) return in;
  }
  ADD_FAILURE() << "no handshake with a fitting first byte";
  return {};
}

std::map<std::string, Bytes> noise_seeds() {
  std::map<std::string, Bytes> seeds;
  Handshake h = real_handshake();
  seeds["msg2"] = h.msg2;
  seeds["payload"] = h.payload;
  seeds["msg1_msg3"] = msg1_then([](const Handshake& x) { return x.msg3; });
  seeds["msg1_payload"] = msg1_then([](const Handshake& x) { return x.payload; });
  seeds["msg1_short"] = msg1_then([](const Handshake&) { return Bytes{0}; });
  return seeds;
}

TEST(FuzzSeedsTest, NoiseSeedsAreRealHandshakeMessagesCutWhereTheTargetCutsThem) {
  const fs::path dir = corpus("noise");
  if (regenerate()) {
    for (const auto& [name, bytes] : noise_seeds()) write_seed(dir, name, bytes);
  }
  auto seeds = read_corpus(dir);
  ASSERT_GE(seeds.size(), 5u) << "no Noise seeds in " << dir;
  const auto key = *identity::KeyPair::from_seed(Bytes(32, 7));
  int payloads = 0, accepted_msg1 = 0, msg2_sized = 0;
  for (const auto& [name, in] : seeds) {
    if (decode_noise_payload(in).ok()) ++payloads;
    ByteView m1 = ByteView(in).subspan(0, noise_cut(in));
    NoiseSecurity resp(key, false);
    if (resp.on_message(m1).ok()) {
      ++accepted_msg1;
      // A message 3 from another handshake must still be refused (the target checks this).
      EXPECT_FALSE(resp.on_message(ByteView(in).subspan(m1.size())).ok()) << name;
    }
    // e (32) + encrypted s (48) + encrypted payload (>= 16): the shape of message 2.
    if (in.size() > 96 && !decode_noise_payload(in).ok() && m1.size() != 32) ++msg2_sized;
  }
  EXPECT_GE(payloads, 1);
  EXPECT_GE(accepted_msg1, 3);
  EXPECT_GE(msg2_sized, 1);
}

}  // namespace
}  // namespace idn::p2p
