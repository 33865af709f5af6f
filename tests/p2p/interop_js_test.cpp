// Interop with a stock js-libp2p node (interop/js_peer.mjs: TCP or WebSocket + noise + yamux +
// identify + ping): it dials us, and we dial it, over each transport. Skipped when node or
// interop/node_modules is missing.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "support/json_lines_child.h"

#include "p2p/host.h"
#include "p2p_test_util.h"

extern char** environ;

namespace idn::p2p {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
using testing::Loop;
using testing::make_host;

constexpr std::string_view kEcho = "/interop/echo/1.0.0";

std::string interop_dir() {
  return std::string(IDN_SOURCE_DIR) + "/interop";
}

bool have_node() {
  if (!std::filesystem::exists(interop_dir() + "/node_modules/libp2p")) return false;
  return std::system("node --version > /dev/null 2>&1") == 0;
}

using Child = idn::testing::JsonLinesChild;

awaitable<void> echo_handler(std::shared_ptr<Stream> s) {
  std::vector<uint8_t> buf(16 * 1024);
  while (true) {
    auto n = co_await s->read_some(buf);
    if (!n.ok() || *n == 0) break;
    if (!(co_await s->write(ByteView(buf.data(), *n))).is_ok()) break;
  }
  (void)co_await s->close_write();
}

// `ws`: over WebSocket (@libp2p/websockets), else TCP.
void js_dials_us_identifies_pings_and_echoes(bool ws) {
  Loop loop;
  auto h = make_host(loop);
  const auto listen = ws ? *core::Multiaddr::parse("/ip4/127.0.0.1/tcp/0/ws") : testing::loopback();
  loop.call([&] {
    h->set_handler(std::string(kEcho), echo_handler);
    return h->listen(listen).ok();
  });
  auto addr = loop.call([&] { return h->listen_addrs().at(0).to_string(); });
  EXPECT_EQ(addr.find("/ws/") != std::string::npos, ws) << addr;
  Child js({"node", interop_dir() + "/js_peer.mjs", "dial", addr, "--pings", "3", "--echo-bytes",
            "300000"});
  ASSERT_TRUE(js.ok());
  auto ident = js.wait_event("identify", 30s);
  ASSERT_TRUE(ident.has_value()) << "js peer printed no identify event";
  ASSERT_EQ((*ident)["event"], "identify") << ident->dump();
  EXPECT_EQ((*ident)["peer_id"], h->id().to_string());
  EXPECT_EQ((*ident)["public_key"], hex_encode(h->key().public_key().to_protobuf()));
  EXPECT_EQ((*ident)["agent"], "idn/0.1.0");
  auto protos = (*ident)["protocols"];
  EXPECT_NE(std::find(protos.begin(), protos.end(), "/ipfs/ping/1.0.0"), protos.end());
  EXPECT_NE(std::find(protos.begin(), protos.end(), std::string(kEcho)), protos.end());
  ASSERT_TRUE((*ident)["observed_addr"].is_string());
  EXPECT_EQ(std::string((*ident)["observed_addr"]).ends_with("/ws"), ws) << ident->dump();
  auto done = js.wait_event("done", 30s);
  ASSERT_TRUE(done.has_value());
  ASSERT_EQ((*done)["event"], "done") << done->dump();
  int pings = 0, echoes = 0;
  for (auto& j : js.seen) {
    if (j["event"] == "ping") ++pings;
    if (j["event"] == "echo") ++echoes;
  }
  EXPECT_EQ(pings, 3);
  EXPECT_EQ(echoes, 1);
  EXPECT_GE(h->stats().handshakes_ok, 1u);
  EXPECT_EQ(h->stats().handshakes_failed, 0u);
}

TEST(InteropJsTest, JsDialsUsIdentifiesPingsAndEchoes) {
  if (!have_node()) GTEST_SKIP() << "node or interop/node_modules missing (run scripts/setup)";
  js_dials_us_identifies_pings_and_echoes(false);
}

TEST(InteropJsTest, JsDialsUsOverWebSocketIdentifiesPingsAndEchoes) {
  if (!have_node()) GTEST_SKIP() << "node or interop/node_modules missing (run scripts/setup)";
  js_dials_us_identifies_pings_and_echoes(true);
}

void we_dial_js_identify_ping_and_echo(bool ws) {
  std::vector<std::string> args{"node", interop_dir() + "/js_peer.mjs", "listen"};
  if (ws) args.push_back("--ws");
  Child js(args);
  ASSERT_TRUE(js.ok());
  auto ready = js.wait_event("listening", 30s);
  ASSERT_TRUE(ready.has_value() && (*ready)["event"] == "listening");
  std::string js_addr = (*ready)["addrs"][0];
  EXPECT_EQ(js_addr.find("/ws/") != std::string::npos, ws) << js_addr;
  auto js_id = identity::PeerId::parse(std::string((*ready)["peer_id"]));
  ASSERT_TRUE(js_id.ok());

  Loop loop;
  auto h = make_host(loop);
  loop.call([&] { return h->listen(testing::loopback()).ok(); });
  auto ma = core::Multiaddr::parse(js_addr);
  ASSERT_TRUE(ma.ok()) << js_addr;
  auto r = loop.run([&]() { return h->dial(*ma); });
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(*r, *js_id);
  ASSERT_TRUE(loop.run([&]() { return h->wait_for_peer(*js_id, 10s, true); }));
  auto info = loop.call([&] { return h->peer_info(*js_id); });
  ASSERT_TRUE(info && info->identify);
  EXPECT_NE(info->identify->agent_version.find("js-libp2p"), std::string::npos)
      << info->identify->agent_version;
  auto& protos = info->identify->protocols;
  EXPECT_NE(std::find(protos.begin(), protos.end(), "/ipfs/ping/1.0.0"), protos.end());
  ASSERT_TRUE(info->identify->observed_addr.has_value());

  for (int i = 0; i < 3; ++i) {
    auto rtt = loop.run([&]() { return h->ping(*js_id); });
    ASSERT_TRUE(rtt.ok()) << rtt.status().to_string();
  }
  // Echo 300 KB (more than one yamux window) through the js peer.
  auto echoed = loop.run([&]() -> awaitable<Result<Bytes>> {
    auto s = co_await h->new_stream(*js_id, std::string(kEcho));
    if (!s.ok()) co_return s.status();
    Bytes data(300000);
    for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 7);
    auto ex = co_await asio::this_coro::executor;
    auto write_status = std::make_shared<Status>(Status::internal("writer did not finish"));
    asio::co_spawn(
        ex,
        [s = *s, data, write_status]() -> awaitable<void> {
          Status st = co_await s->write(data);
          if (st.is_ok()) st = co_await s->close_write();
          *write_status = st;
        },
        asio::detached);
    Bytes got;
    std::vector<uint8_t> buf(16384);
    while (true) {
      auto n = co_await (*s)->read_some(buf);
      if (!n.ok()) co_return n.status();
      if (*n == 0) break;
      got.insert(got.end(), buf.begin(), buf.begin() + *n);
    }
    if (!write_status->is_ok()) co_return *write_status;
    if (got != data)
      co_return Status::corruption("echo differs, got " + std::to_string(got.size()));
    co_return got;
  });
  ASSERT_TRUE(echoed.ok()) << echoed.status().to_string();

  // The js side identified us.
  auto seen = js.wait_event("identified", 20s);
  ASSERT_TRUE(seen.has_value());
  ASSERT_EQ((*seen)["event"], "identified") << seen->dump();
  EXPECT_EQ((*seen)["peer_id"], h->id().to_string());
  EXPECT_EQ((*seen)["agent"], "idn/0.1.0");
}

TEST(InteropJsTest, WeDialJsIdentifyPingAndEcho) {
  if (!have_node()) GTEST_SKIP() << "node or interop/node_modules missing (run scripts/setup)";
  we_dial_js_identify_ping_and_echo(false);
}

TEST(InteropJsTest, WeDialJsOverWebSocketIdentifyPingAndEcho) {
  if (!have_node()) GTEST_SKIP() << "node or interop/node_modules missing (run scripts/setup)";
  we_dial_js_identify_ping_and_echo(true);
}

}  // namespace
}  // namespace idn::p2p
