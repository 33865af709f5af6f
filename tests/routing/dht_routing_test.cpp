// DHT routing on 5-8 OpenDHT nodes bound to 127.0.0.1 with ephemeral ports.
#include "routing/dht_routing.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <future>

#include <opendht.h>
#include <opendht/network_utils.h>

namespace idn::routing {
namespace {

using namespace std::chrono_literals;

constexpr auto kOp = 20s;  // upper bound for one DHT operation on loopback

identity::KeyPair fresh_key() {
  return identity::KeyPair::generate().value();
}

core::Multihash service(std::string_view name) {
  return core::Multihash::sha2_256(as_bytes(name));
}

RoutingConfig loopback_config() {
  RoutingConfig c;
  c.listen_address = "127.0.0.1";
  c.port = 0;
  return c;
}

class Network {
 public:
  // n nodes; node i bootstraps from node 0 and node i-1.
  explicit Network(size_t n, RoutingConfig base = loopback_config()) : base_(std::move(base)) {
    for (size_t i = 0; i < n; ++i) add(base_);
    for (auto& node : nodes) {
      Status s = node->wait_connected(kOp);
      EXPECT_TRUE(s.is_ok()) << s.to_string();
    }
  }
  DhtRouting& add(RoutingConfig cfg) {
    if (!nodes.empty()) cfg.bootstrap.push_back(nodes.front()->endpoint());
    if (nodes.size() > 1) cfg.bootstrap.push_back(nodes.back()->endpoint());
    auto r = DhtRouting::start(fresh_key(), std::move(cfg));
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    nodes.push_back(std::move(r).value());
    return *nodes.back();
  }
  DhtRouting& operator[](size_t i) { return *nodes.at(i); }
  std::vector<std::unique_ptr<DhtRouting>> nodes;

 private:
  RoutingConfig base_;
};

// Repeats a DHT query until `pred` holds or the deadline passes; each try is a full lookup,
// which paces the loop.
template <class F>
bool eventually(F pred, std::chrono::steady_clock::duration within = kOp) {
  auto deadline = std::chrono::steady_clock::now() + within;
  while (std::chrono::steady_clock::now() < deadline)
    if (pred()) return true;
  return false;
}

std::vector<identity::PeerId> ids(const std::vector<PeerInfo>& ps) {
  std::vector<identity::PeerId> out;
  for (const auto& p : ps) out.push_back(p.id);
  return out;
}

// A plain OpenDHT node (no IDN checks) that joins the network and puts raw bytes: the attacker.
class RawNode {
 public:
  explicit RawNode(const std::string& bootstrap_port) {
    dht::DhtRunner::Config rc;
    rc.dht_config.node_config.network = defaults::kNetworkId;
    rc.threaded = true;
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
    dht::DhtRunner::Context ctx;
    ctx.sock = std::make_unique<dht::net::UdpSocket>(
        dht::SockAddr(reinterpret_cast<const sockaddr*>(&sin), sizeof sin), dht::SockAddr{});
    runner_.run(rc, std::move(ctx));
    runner_.bootstrap("127.0.0.1", bootstrap_port);
  }
  ~RawNode() {
    runner_.shutdown({}, true);
    runner_.join();
  }
  bool put(RecordKind kind, ByteView key, const Bytes& data, uint64_t value_id) {
    Bytes dk = DhtRouting::dht_key(kind, key);
    std::promise<bool> done;
    auto f = done.get_future();
    runner_.put(
        dht::InfoHash(dk.data(), dk.size()),
        std::make_shared<dht::Value>(DhtRouting::value_type_id(), data.data(), data.size(),
                                     value_id),
        [&done](bool ok, const std::vector<std::shared_ptr<dht::Node>>&) { done.set_value(ok); });
    return f.wait_for(kOp) == std::future_status::ready && f.get();
  }

 private:
  dht::DhtRunner runner_;
};

TEST(DhtRouting, ProvidersAreFoundNearestFirstByMeasuredRtt) {
  Network net(8);
  auto key = service("fashion-mnist b-lenet");
  ASSERT_TRUE(provide_sync(net[2], key, kOp).is_ok());
  ASSERT_TRUE(provide_sync(net[5], key, kOp).is_ok());
  auto id2 = net[2].peer_id(), id5 = net[5].peer_id();
  net[7].set_rtt_lookup([&](const identity::PeerId& p) -> std::optional<std::chrono::microseconds> {
    if (p == id2) return 900us;
    if (p == id5) return 150us;
    return std::nullopt;
  });
  std::vector<PeerInfo> found;
  ASSERT_TRUE(eventually([&] {
    auto r = find_providers_sync(net[7], key, 10, kOp);
    if (r.ok()) found = *r;
    return found.size() == 2;
  }));
  EXPECT_EQ(ids(found), (std::vector<identity::PeerId>{id5, id2}));
  ASSERT_TRUE(found[0].rtt.has_value());
  EXPECT_EQ(*found[0].rtt, 150us);
  auto one = find_providers_sync(net[7], key, 1, kOp);
  ASSERT_TRUE(one.ok()) << one.status().to_string();
  ASSERT_EQ(one->size(), 1u);
  EXPECT_EQ(one->front().id, id5);
  auto none = find_providers_sync(net[3], service("nobody provides this"), 5, kOp);
  ASSERT_TRUE(none.ok()) << none.status().to_string();
  EXPECT_TRUE(none->empty());
}

TEST(DhtRouting, SetValueThenGetValueReturnsTheNewest) {
  Network net(5);
  auto key = service("metadata");
  ASSERT_TRUE(set_value_sync(net[1], key, as_bytes("first"), kOp).is_ok());
  ASSERT_TRUE(eventually([&] {
    auto r = get_value_sync(net[4], key, kOp);
    return r.ok() && *r == to_bytes("first");
  }));
  ASSERT_TRUE(set_value_sync(net[1], key, as_bytes("second"), kOp).is_ok());
  ASSERT_TRUE(eventually([&] {
    auto r = get_value_sync(net[3], key, kOp);
    return r.ok() && *r == to_bytes("second");
  }));
  auto missing = get_value_sync(net[2], service("unset"), kOp);
  EXPECT_EQ(missing.status().code(), Code::kNotFound);
  Bytes big(defaults::kMaxValueSize + 1, 1);
  EXPECT_EQ(set_value_sync(net[1], key, big, kOp).code(), Code::kInvalidArgument);
}

TEST(DhtRouting, FindPeerReturnsThePublishedAddresses) {
  Network net(5);
  RoutingConfig cfg = loopback_config();
  auto addr = core::Multiaddr::parse("/ip4/127.0.0.1/tcp/4001").value();
  cfg.addresses = {addr};
  DhtRouting& target = net.add(cfg);
  ASSERT_TRUE(target.wait_connected(kOp).is_ok());
  PeerInfo info{target.peer_id(), {}, std::nullopt};
  ASSERT_TRUE(eventually([&] {
    auto r = find_peer_sync(net[1], target.peer_id(), kOp);
    if (r.ok()) info = *r;
    return r.ok();
  }));
  EXPECT_EQ(info.id, target.peer_id());
  ASSERT_EQ(info.addrs.size(), 1u);
  EXPECT_EQ(info.addrs[0].to_string(), "/ip4/127.0.0.1/tcp/4001");
  // Peers publish only after set_addresses; a peer with none is not found.
  auto quiet = find_peer_sync(net[1], net[2].peer_id(), kOp);
  EXPECT_EQ(quiet.status().code(), Code::kNotFound);
}

TEST(DhtRouting, ANodeThatPublishesBeforeJoiningIsFoundAfterJoining) {
  Network net(5);
  RoutingConfig cfg = loopback_config();  // no bootstrap: alone at first
  cfg.addresses = {core::Multiaddr::parse("/ip4/127.0.0.1/tcp/4002").value()};
  auto late = DhtRouting::start(fresh_key(), cfg);
  ASSERT_TRUE(late.ok()) << late.status().to_string();
  ASSERT_TRUE((*late)->bootstrap(net[0].endpoint()).is_ok());
  ASSERT_TRUE((*late)->wait_connected(kOp).is_ok());
  ASSERT_TRUE(eventually([&] { return find_peer_sync(net[3], (*late)->peer_id(), kOp).ok(); }));
}

TEST(DhtRouting, ForgedProviderRecordIsIgnoredAndCounted) {
  Network net(5);
  auto key = service("victim service");
  ASSERT_TRUE(provide_sync(net[1], key, kOp).is_ok());
  RawNode attacker(std::to_string(net[0].port()));
  // The attacker claims to be net[4] providing the service, signing with its own key.
  auto mallory = fresh_key();
  Record forged =
      sign_record(mallory, RecordKind::kProvider, key.bytes(), {}, 1, Clock::now() + 30min).value();
  forged.peer_id = net[4].peer_id().bytes();
  forged.signature = mallory.sign(forged.signing_bytes());
  ASSERT_TRUE(attacker.put(RecordKind::kProvider, key.bytes(), encode_record(forged), 42));
  // And a genuine record of mallory's, tampered after signing.
  Record tampered =
      sign_record(mallory, RecordKind::kProvider, key.bytes(), {}, 1, Clock::now() + 30min).value();
  tampered.expires_unix_ms += 1;
  ASSERT_TRUE(attacker.put(RecordKind::kProvider, key.bytes(), encode_record(tampered), 43));
  std::vector<PeerInfo> found;
  ASSERT_TRUE(eventually([&] {
    auto r = find_providers_sync(net[3], key, 10, kOp);
    if (r.ok()) found = *r;
    return r.ok() && !found.empty() && net[3].counters().records_forged >= 2;
  }));
  EXPECT_EQ(ids(found), std::vector<identity::PeerId>{net[1].peer_id()});
}

Status provide_relayed_sync(DhtRouting& r, const core::Multihash& key,
                            std::vector<RelayedPeer> peers) {
  std::promise<Status> done;
  auto f = done.get_future();
  r.provide_relayed(key, std::move(peers), [&done](Status s) { done.set_value(std::move(s)); });
  if (f.wait_for(kOp) != std::future_status::ready) return Status::timeout("provide_relayed");
  return f.get();
}

core::Multiaddr circuit(const identity::PeerId& relay, const identity::PeerId& peer) {
  return core::Multiaddr::parse("/ip4/127.0.0.1/tcp/4001/p2p/" + relay.to_string() +
                                "/p2p-circuit/p2p/" + peer.to_string())
      .value();
}

const PeerInfo* named(const std::vector<PeerInfo>& ps, const identity::PeerId& id) {
  for (const auto& p : ps)
    if (p.id == id) return &p;
  return nullptr;
}

TEST(DhtRouting, RelayedPeersAreFoundAtTheirCircuitAddressesUntilWithdrawn) {
  Network net(5);
  auto key = service("a browser's service");
  DhtRouting& relay = net[1];
  auto r = relay.peer_id();
  auto browser = identity::PeerId::from_public_key(fresh_key().public_key());
  // The relay provides the service itself too: both records coexist.
  ASSERT_TRUE(provide_sync(relay, key, kOp).is_ok());
  // It relays for a browser, and (as a reader skips itself) for net[3].
  ASSERT_TRUE(provide_relayed_sync(relay, key,
                                   {{browser, {circuit(r, browser)}},
                                    {net[3].peer_id(), {circuit(r, net[3].peer_id())}}})
                  .is_ok());
  std::vector<PeerInfo> found;
  ASSERT_TRUE(eventually([&] {
    auto f = find_providers_sync(net[4], key, 10, kOp);
    if (f.ok()) found = *f;
    return found.size() == 3;
  }));
  ASSERT_NE(named(found, r), nullptr);
  const PeerInfo* b = named(found, browser);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->addrs, std::vector<core::Multiaddr>{circuit(r, browser)});
  ASSERT_TRUE(eventually([&] {
    auto f = find_providers_sync(net[3], key, 10, kOp);
    return f.ok() && f->size() == 2 && named(*f, browser) && !named(*f, net[3].peer_id());
  }));
  // A relay cannot announce an address that is not its own circuit.
  EXPECT_EQ(
      provide_relayed_sync(relay, key, {{browser, {circuit(net[2].peer_id(), browser)}}}).code(),
      Code::kInvalidArgument);
  // The last relayed peer gone: the record is withdrawn; the relay's own record stays.
  ASSERT_TRUE(provide_relayed_sync(relay, key, {}).is_ok());
  ASSERT_TRUE(eventually([&] {
    auto f = find_providers_sync(net[4], key, 10, kOp);
    return f.ok() && ids(*f) == std::vector<identity::PeerId>{r};
  }));
  EXPECT_TRUE(provide_relayed_sync(relay, key, {}).is_ok()) << "withdrawing twice is fine";
}

TEST(DhtRouting, RelayedRecordClaimingAnotherRelaysCircuitIsRefusedAndCounted) {
  Network net(5);
  auto key = service("hijacked service");
  ASSERT_TRUE(provide_sync(net[1], key, kOp).is_ok());
  RawNode attacker(std::to_string(net[0].port()));
  auto mallory = fresh_key();
  auto m = identity::PeerId::from_public_key(mallory.public_key());
  auto victim = net[2].peer_id();
  auto put = [&](std::vector<RelayedPeer> peers, uint64_t seq) {
    Bytes v = encode_relayed(peers).value();
    Record rec =
        sign_record(mallory, RecordKind::kRelayed, key.bytes(), v, seq, Clock::now() + 30min)
            .value();
    return attacker.put(RecordKind::kProvider, key.bytes(), encode_record(rec),
                        DhtRouting::value_id(RecordKind::kRelayed, m.bytes()));
  };
  // Mallory claims net[2] is reachable through net[1]'s relay (it would steer clients there).
  ASSERT_TRUE(put({{victim, {circuit(net[1].peer_id(), victim)}}}, 1));
  std::vector<PeerInfo> found;
  ASSERT_TRUE(eventually([&] {
    auto f = find_providers_sync(net[3], key, 10, kOp);
    if (f.ok()) found = *f;
    return f.ok() && !found.empty() && net[3].counters().relayed_refused >= 1;
  }));
  EXPECT_EQ(ids(found), std::vector<identity::PeerId>{net[1].peer_id()});
  // And one naming itself as relayed.
  ASSERT_TRUE(put({{m, {circuit(m, m)}}}, 2));
  ASSERT_TRUE(eventually([&] {
    auto f = find_providers_sync(net[4], key, 10, kOp);
    return f.ok() && ids(*f) == std::vector<identity::PeerId>{net[1].peer_id()} &&
           net[4].counters().relayed_refused >= 1;
  }));
}

TEST(DhtRouting, ReplayedOlderValueIsIgnoredAndCounted) {
  Network net(5);
  auto key = service("replay me");
  auto signer = fresh_key();
  Record v1 = sign_record(signer, RecordKind::kValue, key.bytes(), as_bytes("old"), 10,
                          Clock::now() + 30min)
                  .value();
  Record v2 = sign_record(signer, RecordKind::kValue, key.bytes(), as_bytes("new"), 11,
                          Clock::now() + 30min)
                  .value();
  RawNode relay(std::to_string(net[0].port()));
  ASSERT_TRUE(relay.put(RecordKind::kValue, key.bytes(), encode_record(v2), 7));
  ASSERT_TRUE(eventually([&] {
    auto r = get_value_sync(net[2], key, kOp);
    return r.ok() && *r == to_bytes("new");
  }));
  // The old record, replayed under another value id (ids are not authenticated).
  ASSERT_TRUE(relay.put(RecordKind::kValue, key.bytes(), encode_record(v1), 8));
  ASSERT_TRUE(eventually([&] {
    auto r = get_value_sync(net[2], key, kOp);
    EXPECT_TRUE(r.ok() && *r == to_bytes("new"));
    return net[2].counters().records_replayed >= 1;
  }));
}

TEST(DhtRouting, RecordsOfAStoppedProviderDisappearAfterExpiry) {
  RoutingConfig cfg = loopback_config();
  cfg.record_ttl = 3s;
  Network net(5, cfg);
  auto key = service("short lived");
  ASSERT_TRUE(provide_sync(net[1], key, kOp).is_ok());
  ASSERT_TRUE(eventually([&] {
    auto r = find_providers_sync(net[3], key, 5, kOp);
    return r.ok() && r->size() == 1;
  }));
  // Refreshing keeps the record alive past its TTL while the provider runs.
  ASSERT_TRUE(eventually([&] { return net[1].counters().records_refreshed >= 4; }, 10s));
  auto alive = find_providers_sync(net[3], key, 5, kOp);
  ASSERT_TRUE(alive.ok());
  EXPECT_EQ(alive->size(), 1u);
  // A crash: no tombstone; the record must age out within the TTL.
  auto stopped_at = std::chrono::steady_clock::now();
  net[1].shutdown(/*withdraw=*/false);
  ASSERT_TRUE(eventually([&] {
    auto r = find_providers_sync(net[3], key, 5, kOp);
    return r.ok() && r->empty();
  }));
  EXPECT_LT(std::chrono::steady_clock::now() - stopped_at, cfg.record_ttl + 5s);
}

TEST(DhtRouting, CleanShutdownWithdrawsProviderRecords) {
  Network net(5);  // default TTL (an hour): only the tombstone can make it disappear quickly
  auto key = service("withdrawn");
  ASSERT_TRUE(provide_sync(net[1], key, kOp).is_ok());
  ASSERT_TRUE(provide_sync(net[2], key, kOp).is_ok());
  ASSERT_TRUE(eventually([&] {
    auto r = find_providers_sync(net[3], key, 5, kOp);
    return r.ok() && r->size() == 2;
  }));
  net[1].shutdown(/*withdraw=*/true);
  std::vector<PeerInfo> left;
  ASSERT_TRUE(eventually([&] {
    auto r = find_providers_sync(net[3], key, 5, kOp);
    if (r.ok()) left = *r;
    return r.ok() && left.size() == 1;
  }));
  EXPECT_EQ(left[0].id, net[2].peer_id());
  EXPECT_GE(net[3].counters().records_withdrawn, 1u);
}

TEST(DhtRouting, ReaderWithALaterClockSeesRecordsAsExpired) {
  Network net(5);
  auto later = std::make_shared<std::atomic<int64_t>>(0);
  RoutingConfig cfg = loopback_config();
  cfg.clock = [later] { return Clock::now() + std::chrono::hours(*later); };
  DhtRouting& reader = net.add(cfg);
  ASSERT_TRUE(reader.wait_connected(kOp).is_ok());
  auto key = service("ages");
  ASSERT_TRUE(provide_sync(net[1], key, kOp).is_ok());
  ASSERT_TRUE(eventually([&] {
    auto r = find_providers_sync(reader, key, 5, kOp);
    return r.ok() && r->size() == 1;
  }));
  *later = 2;  // past the one-hour TTL
  auto r = find_providers_sync(reader, key, 5, kOp);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->empty());
  EXPECT_GE(reader.counters().records_expired, 1u);
}

TEST(DhtRouting, IncomingPutsArePerPeerRateLimited) {
  RoutingConfig cfg = loopback_config();
  cfg.put_rate_per_second = 1;
  cfg.put_burst = 3;
  Network net(5, cfg);
  RawNode flooder(std::to_string(net[0].port()));
  auto signer = fresh_key();
  for (uint64_t i = 0; i < 40; ++i) {
    auto key = service("flood " + std::to_string(i));
    Record r =
        sign_record(signer, RecordKind::kValue, key.bytes(), as_bytes("x"), 1, Clock::now() + 30min)
            .value();
    flooder.put(RecordKind::kValue, key.bytes(), encode_record(r), 1);
  }
  uint64_t limited = 0, published = 0;
  for (auto& n : net.nodes) limited += n->counters().puts_rate_limited;
  EXPECT_GT(limited, 0u) << "40 puts from one peer at 1/s (burst 3) were all stored";
  // Honest traffic from a node is not starved by the flooder's bucket.
  EXPECT_TRUE(set_value_sync(net[2], service("honest"), as_bytes("ok"), kOp).is_ok());
  for (auto& n : net.nodes) published += n->counters().records_published;
  EXPECT_GE(published, 1u);
}

TEST(DhtRouting, RejectsBadConfiguration) {
  RoutingConfig c = loopback_config();
  c.listen_address = "not-an-ip";
  EXPECT_EQ(DhtRouting::start(fresh_key(), c).status().code(), Code::kInvalidArgument);
  c = loopback_config();
  c.bootstrap = {"127.0.0.1"};
  EXPECT_EQ(DhtRouting::start(fresh_key(), c).status().code(), Code::kInvalidArgument);
  c = loopback_config();
  c.record_ttl = 10ms;
  EXPECT_EQ(DhtRouting::start(fresh_key(), c).status().code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace idn::routing
