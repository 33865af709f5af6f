// Issue 14.6 on real nodes: 1,000 half-open connections from 127.0.0.1 (7 bytes of the
// multistream header, then silence) do not lock other peers out of a node that serves a
// model. A new peer from 127.0.0.2 identifies and pings within 1 s, and a client already
// connected keeps getting answers.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <vector>

#include "client/blocking.h"
#include "motifs/labeled_data.h"
#include "node/node_test_util.h"
#include "p2p/multistream.h"
#include "p2p/p2p_test_util.h"
#include "routing/dht_routing.h"
#include "support/tiny_model.h"

namespace idn::node {
namespace {

using namespace std::chrono_literals;
using testing::RunningNode;

constexpr int kHalfOpen = 1000;

Config config(const std::vector<core::Multiaddr>& boot) {
  Config c;
  c.listen = {core::Multiaddr::parse("/ip4/127.0.0.1/tcp/0").value()};
  c.bootstrap = boot;
  c.dht.record_ttl = 60s;
  return c;
}

// 1,000 client sockets here plus the node's side: raise the soft descriptor limit.
bool enough_descriptors(rlim_t want) {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return false;
  if (rl.rlim_cur >= want) return true;
  rl.rlim_cur = std::min(want, rl.rlim_max);
  return setrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur >= want;
}

// A TCP connection from 127.0.0.1 that sends `bytes` and then nothing; -1 on failure.
int half_open(uint16_t port, const Bytes& bytes) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0 ||
      ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(bytes.size())) {
    ::close(fd);
    return -1;
  }
  return fd;
}

template <class Pred>
bool eventually(Pred pred, std::chrono::seconds within) {
  auto until = std::chrono::steady_clock::now() + within;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::yield();
  }
  return true;
}

TEST(HandshakeFlood, HalfOpenConnectionsFromOneAddressDoNotLockOutOtherPeers) {
  ASSERT_TRUE(enough_descriptors(4 * kHalfOpen)) << "cannot raise RLIMIT_NOFILE";
  auto pkg = idn::testing::tiny_package("b-lenet");
  RunningNode provider(config({}));
  ASSERT_TRUE(provider);
  auto pub =
      provider.on_io<Result<Published>>([&]() { return provider->models().publish(pkg, "flood"); });
  ASSERT_TRUE(pub.ok()) << pub.status().to_string();
  RunningNode client(config(provider->listen_addrs()));
  ASSERT_TRUE(client->routing()->wait_connected(20s).is_ok());
  auto until = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < until) {
    auto found = client.on_io<Result<std::vector<identity::PeerId>>>(
        [&]() { return client->models().providers(pub->service_id, 1, {}); });
    if (found.ok() && !found->empty()) break;
  }
  client::SessionOptions o;
  o.deadline = 10s;
  auto session = client.on_io<std::shared_ptr<client::Session>>(
      [&]() -> p2p::awaitable<std::shared_ptr<client::Session>> {
        co_return client->session(pub->service_id, o);
      });
  auto image = motifs::to_samples(idn::testing::tiny_data().test.x).at(0);
  auto before = client::infer_blocking(*session, image);
  ASSERT_TRUE(before.ok()) << before.status().to_string();

  // The flood: 7 bytes of "\x13/multistream/1.0.0\n" on each of 1,000 connections, held.
  auto addr = provider->listen_addrs().at(0);
  Bytes hello = p2p::multistream::encode_message(p2p::multistream::kHeader);
  hello.resize(7);
  std::vector<int> fds;
  for (int i = 0; i < kHalfOpen; ++i) {
    int fd = half_open(*addr.tcp_port(), hello);
    ASSERT_GE(fd, 0) << "connection " << i << ": " << std::strerror(errno);
    fds.push_back(fd);
  }
  p2p::Host& h = provider->host();
  const auto limits = h.config().inbound_handshakes;
  // Every connection was seen: a few hold their address's handshake budget, the rest were
  // closed at once.
  ASSERT_TRUE(eventually(
      [&] {
        auto s = h.stats();
        return s.handshakes_pending + s.inbound_refused_per_address >= kHalfOpen;
      },
      20s))
      << "pending " << h.stats().handshakes_pending << ", refused "
      << h.stats().inbound_refused_per_address;
  EXPECT_EQ(h.stats().handshakes_pending, limits.max_pending_per_address);
  EXPECT_EQ(h.stats().inbound_refused_per_address, kHalfOpen - limits.max_pending_per_address);

  // A stock peer from another address: dial, identify, ping within 1 s.
  p2p::testing::Loop loop;
  p2p::HostConfig other;
  other.dial_from = boost::asio::ip::make_address("127.0.0.2");
  auto peer = p2p::testing::make_host(loop, other);
  const auto t0 = std::chrono::steady_clock::now();
  auto dialled = loop.run([&] { return peer->dial(addr); });
  ASSERT_TRUE(dialled.ok()) << dialled.status().to_string();
  EXPECT_TRUE(loop.run([&] { return peer->wait_for_peer(*dialled, 1s, true); }));
  auto rtt = loop.run([&] { return peer->ping(*dialled); });
  ASSERT_TRUE(rtt.ok()) << rtt.status().to_string();
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_LT(took, 1s) << "dial + identify + ping took "
                      << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                      << " ms";
  auto seen = provider.on_io<std::optional<p2p::PeerInfo>>(
      [&]() -> p2p::awaitable<std::optional<p2p::PeerInfo>> { co_return h.peer_info(peer->id()); });
  ASSERT_TRUE(seen.has_value());
  EXPECT_EQ(seen->remote_addr.ip(), "127.0.0.2");

  // The existing client is answered as usual while the flood is held.
  auto during = client::infer_blocking(*session, image);
  ASSERT_TRUE(during.ok()) << during.status().to_string();
  EXPECT_EQ(during->predicted, before->predicted);
  EXPECT_EQ(h.stats().handshakes_pending, limits.max_pending_per_address);  // still held

  // /metrics counts it.
  std::string metrics = provider->metrics().render();
  EXPECT_NE(metrics.find("idn_inbound_refused_total{limit=\"per_address\"} " +
                         std::to_string(kHalfOpen - limits.max_pending_per_address)),
            std::string::npos)
      << metrics;
  EXPECT_NE(
      metrics.find("idn_handshakes_pending " + std::to_string(limits.max_pending_per_address)),
      std::string::npos);
  for (int fd : fds) ::close(fd);
}

TEST(HandshakeFlood, TheBudgetIsConfiguredFromTheLimitsTable) {
  auto c = parse_config(R"([limits]
max_pending_handshakes = 100
max_pending_handshakes_per_address = 4
handshake_evictable_after_ms = 500
handshake_silent_evictable_after_ms = 100
)",
                        "node.toml");
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  p2p::HostConfig hc = host_config(c->limits);
  EXPECT_EQ(hc.inbound_handshakes.max_pending, 100u);
  EXPECT_EQ(hc.inbound_handshakes.max_pending_per_address, 4u);
  EXPECT_EQ(hc.inbound_handshakes.evictable_after, 500ms);
  EXPECT_EQ(hc.inbound_handshakes.silent_evictable_after, 100ms);
  // Unset: the defaults of p2p/defaults.h.
  p2p::HostConfig d = host_config(LimitsConfig{});
  EXPECT_EQ(d.inbound_handshakes.max_pending, p2p::defaults::kMaxPendingHandshakes);
  EXPECT_EQ(d.inbound_handshakes.max_pending_per_address,
            p2p::defaults::kMaxPendingHandshakesPerAddress);
  auto zero = parse_config("[limits]\nmax_pending_handshakes_per_address = 0", "node.toml");
  ASSERT_FALSE(zero.ok());
  EXPECT_NE(zero.status().to_string().find("out of range"), std::string::npos);
}

}  // namespace
}  // namespace idn::node
