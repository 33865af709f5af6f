// Dialling through a circuit relay from C++ (p2p/circuit_transport.h) to a stock js-libp2p peer
// that listens through our relay (interop/relay_peer.mjs, @libp2p/circuit-relay-v2): Noise and
// yamux end to end through the splice. Skipped when node or interop/node_modules is missing.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "support/json_lines_child.h"

#include "p2p/circuit_transport.h"
#include "p2p/host.h"
#include "p2p/relay.h"
#include "p2p_test_util.h"

namespace idn::p2p {
namespace {

using namespace std::chrono_literals;
using testing::Loop;
using testing::make_host;

std::string interop_dir() {
  return std::string(IDN_SOURCE_DIR) + "/interop";
}

bool have_node() {
  if (!std::filesystem::exists(interop_dir() + "/node_modules/@libp2p/circuit-relay-v2"))
    return false;
  return std::system("node --version > /dev/null 2>&1") == 0;
}

TEST(CircuitAddrTest, SplitsRelayAndPeerAndRefusesOtherShapes) {
  const std::string relay = "12D3KooWP9uqVUa2CbidtSEzCXyRuJVLm67vDKs4VNzHSA7RQ6bG";
  const std::string peer = "12D3KooWC3mpxk2278imbhMMRyzHjKFBMmuv3hSqCEsG6rY5dXyF";
  auto c = parse_circuit_addr(*core::Multiaddr::parse("/ip4/127.0.0.1/tcp/4001/ws/p2p/" + relay +
                                                      "/p2p-circuit/p2p/" + peer));
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(c->relay.to_string(), "/ip4/127.0.0.1/tcp/4001/ws/p2p/" + relay);
  EXPECT_EQ(c->relay_id.to_string(), relay);
  EXPECT_EQ(c->peer.to_string(), peer);
  for (std::string bad : {"/ip4/127.0.0.1/tcp/4001/p2p/" + relay + "/p2p-circuit",
                          "/ip4/127.0.0.1/tcp/4001/p2p-circuit/p2p/" + peer,
                          "/ip4/127.0.0.1/tcp/4001/p2p/" + relay + "/p2p-circuit/p2p/" + peer +
                              "/p2p-circuit/p2p/" + peer,
                          "/ip4/127.0.0.1/tcp/4001/p2p/" + relay}) {
    auto r = parse_circuit_addr(*core::Multiaddr::parse(bad));
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << bad;
  }
}

TEST(RelayInteropJsTest, WeDialAJsPeerThroughOurRelayPingAndEcho) {
  if (!have_node()) GTEST_SKIP() << "node or interop/node_modules missing (run scripts/setup)";
  Loop loop;
  auto r = make_host(loop), d = make_host(loop);
  auto relay = loop.call([&] {
    auto* s = new relay::RelayService(*r, relay::RelayConfig{});
    s->attach();
    return s;
  });
  ASSERT_TRUE(loop.call([&] { return r->listen(testing::loopback()); }).ok());
  const std::string raddr = loop.call([&] { return r->listen_addrs().at(0).to_string(); });

  idn::testing::JsonLinesChild js({"node", interop_dir() + "/relay_peer.mjs", "listen", raddr});
  ASSERT_TRUE(js.ok());
  auto ready = js.wait_event("listening", 30s);
  ASSERT_TRUE(ready.has_value() && (*ready)["event"] == "listening") << ready->dump();
  auto js_id = identity::PeerId::parse(std::string((*ready)["peer_id"]));
  ASSERT_TRUE(js_id.ok());
  EXPECT_TRUE(loop.call([&] { return relay->has_reservation(*js_id); }));

  auto circuit = core::Multiaddr::parse(raddr + "/p2p-circuit/p2p/" + js_id->to_string());
  ASSERT_TRUE(circuit.ok());
  auto dialled = loop.run([&] { return d->dial(*circuit); });
  ASSERT_TRUE(dialled.ok()) << dialled.status().to_string();
  EXPECT_EQ(*dialled, *js_id);
  ASSERT_TRUE(loop.run([&] { return d->wait_for_peer(*js_id, 10s, true); }));
  auto info = loop.call([&] { return d->peer_info(*js_id); });
  ASSERT_TRUE(info && info->identify);
  EXPECT_NE(info->identify->agent_version.find("js-libp2p"), std::string::npos);
  EXPECT_NE(info->remote_addr.to_string().find("/p2p-circuit"), std::string::npos);
  for (int i = 0; i < 3; ++i) {
    auto rtt = loop.run([&] { return d->ping(*js_id); });
    ASSERT_TRUE(rtt.ok()) << rtt.status().to_string();
  }
  // 300 KB through the js echo: more than a yamux window on every leg.
  auto echoed = loop.run([&]() -> awaitable<Result<Bytes>> {
    auto s = co_await d->new_stream(*js_id, "/interop/echo/1.0.0");
    if (!s.ok()) co_return s.status();
    Bytes data(300000);
    for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 7 + i / 997);
    auto ex = co_await asio::this_coro::executor;
    asio::co_spawn(
        ex,
        [s = *s, data]() -> awaitable<void> {
          if ((co_await s->write(data)).is_ok()) (void)co_await s->close_write();
        },
        asio::detached);
    Bytes got, buf(16384);
    for (;;) {
      auto n = co_await (*s)->read_some(buf);
      if (!n.ok()) co_return n.status();
      if (*n == 0) break;
      got.insert(got.end(), buf.begin(), buf.begin() + *n);
    }
    if (got != data) co_return Status::corruption("echo differs: " + std::to_string(got.size()));
    co_return got;
  });
  ASSERT_TRUE(echoed.ok()) << echoed.status().to_string();
  auto seen = js.wait_event("relayed", 10s);
  ASSERT_TRUE(seen.has_value() && (*seen)["event"] == "relayed");
  EXPECT_EQ((*seen)["peer_id"], d->id().to_string());
  EXPECT_EQ((*seen)["limited"], false);

  // A peer without a reservation: the relay's NO_RESERVATION comes back as the dial's error.
  auto nobody = core::Multiaddr::parse(raddr + "/p2p-circuit/p2p/" + d->id().to_string());
  auto e = make_host(loop);
  auto refused = loop.run([&] { return e->dial(*nobody); });
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("NO_RESERVATION"), std::string::npos)
      << refused.status().to_string();
  loop.call([&] {
    delete relay;
    return 0;
  });
}

}  // namespace
}  // namespace idn::p2p
