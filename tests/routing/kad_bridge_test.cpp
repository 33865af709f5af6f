#include "routing/kad_bridge.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include "core/multiaddr.h"
#include "identity/keys.h"
#include "p2p/connection.h"
#include "p2p/p2p_test_util.h"

namespace idn::routing {
namespace {

namespace asio = boost::asio;

identity::PeerId peer_from(uint8_t b) {
  Bytes seed(32, b);
  return identity::PeerId::from_public_key(identity::KeyPair::from_seed(seed).value().public_key());
}

// The bytes js-libp2p's @libp2p/kad-dht 16 sends for GET_PROVIDERS of a sha2-256 multihash:
// type 3, key (field 2), clusterLevelRaw absent.
TEST(KadMessage, DecodesAGetProvidersRequest) {
  Bytes key = core::Multihash::compute(core::HashCode::kSha2_256, as_bytes("svc")).value().bytes();
  Bytes wire = {0x08, 0x03, 0x12, static_cast<uint8_t>(key.size())};
  wire.insert(wire.end(), key.begin(), key.end());
  auto m = decode_kad_message(wire);
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  EXPECT_EQ(m->type, KadType::kGetProviders);
  EXPECT_EQ(m->key, key);
  EXPECT_TRUE(m->providers.empty());
}

TEST(KadMessage, RoundTripsPeers) {
  KadMessage m;
  m.type = KadType::kGetProviders;
  m.key = {1, 2, 3};
  m.cluster_level = -1;
  KadPeer p;
  p.id = peer_from(1).bytes();
  p.addrs.push_back(core::Multiaddr::parse("/ip4/127.0.0.1/tcp/4001").value().to_bytes());
  p.connection = 1;
  m.providers.push_back(p);
  m.closer.push_back(p);
  auto d = decode_kad_message(encode_kad_message(m));
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  EXPECT_EQ(d->type, m.type);
  EXPECT_EQ(d->key, m.key);
  EXPECT_EQ(d->cluster_level, -1);
  ASSERT_EQ(d->providers.size(), 1u);
  EXPECT_EQ(d->providers[0].id, p.id);
  EXPECT_EQ(d->providers[0].addrs, p.addrs);
  EXPECT_EQ(d->providers[0].connection, 1u);
  EXPECT_EQ(d->closer.size(), 1u);
}

TEST(KadMessage, RefusesMalformedInput) {
  EXPECT_FALSE(decode_kad_message(Bytes{0x08}).ok());              // truncated varint
  EXPECT_FALSE(decode_kad_message(Bytes{0x08, 0x09}).ok());        // unknown type
  EXPECT_FALSE(decode_kad_message(Bytes{0x12, 0x05, 0x01}).ok());  // key longer than the input
  EXPECT_FALSE(decode_kad_message(Bytes{0x4a, 0x02, 0x18, 0x01}).ok());  // provider without ID
  EXPECT_TRUE(decode_kad_message(Bytes{}).ok());  // PUT_VALUE with nothing: well formed
}

std::optional<KadMessage> answer(const KadMessage& req, KadProviderLookup lookup, size_t max) {
  asio::io_context io;
  auto f = asio::co_spawn(io, answer_kad_request(req, lookup, nullptr, max), asio::use_future);
  io.run();
  return f.get();
}

TEST(KadBridge, AnswersGetProvidersFromTheLookup) {
  auto svc = core::Multihash::compute(core::HashCode::kSha2_256, as_bytes("svc")).value();
  auto a = peer_from(1), b = peer_from(2);
  size_t asked = 0;
  KadProviderLookup lookup = [&](core::Multihash key,
                                 size_t n) -> p2p::awaitable<std::vector<PeerInfo>> {
    asked = n;
    EXPECT_EQ(key, svc);
    std::vector<PeerInfo> out;
    out.push_back({a,
                   {core::Multiaddr::parse("/ip4/127.0.0.1/tcp/1/p2p/" + a.to_string()).value()},
                   std::nullopt});
    out.push_back({b, {}, std::nullopt});
    co_return out;
  };
  KadMessage req;
  req.type = KadType::kGetProviders;
  req.key = svc.bytes();
  auto r = answer(req, lookup, 1);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->type, KadType::kGetProviders);
  EXPECT_EQ(r->key, svc.bytes());
  EXPECT_EQ(asked, 1u);
  ASSERT_EQ(r->providers.size(), 1u);
  EXPECT_EQ(r->providers[0].id, a.bytes());
  // The trailing /p2p goes: the ID has its own field.
  ASSERT_EQ(r->providers[0].addrs.size(), 1u);
  EXPECT_EQ(core::Multiaddr::from_bytes(r->providers[0].addrs[0]).value().to_string(),
            "/ip4/127.0.0.1/tcp/1");
  EXPECT_TRUE(r->closer.empty());
}

TEST(KadBridge, AnswersFindNodeWithNobodyAndRefusesStores) {
  KadMessage req;
  req.type = KadType::kFindNode;
  req.key = peer_from(3).bytes();
  auto r = answer(req, nullptr, 20);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->type, KadType::kFindNode);
  EXPECT_TRUE(r->closer.empty());
  req.type = KadType::kGetProviders;
  req.key = {0xff};  // not a multihash: nobody provides it
  r = answer(req, nullptr, 20);
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(r->providers.empty());
  req.type = KadType::kAddProvider;
  EXPECT_FALSE(answer(req, nullptr, 20).has_value());
  req.type = KadType::kPutValue;
  EXPECT_FALSE(answer(req, nullptr, 20).has_value());
}

// The bridge on a real Host: a client (another Host, as a js-libp2p node would) opens
// /ipfs/kad/1.0.0, asks GET_PROVIDERS and FIND_NODE on one stream, and a malformed or refused
// request resets its stream without harming the next.
TEST(KadBridge, ServesRequestsOnAHostAndResetsBadStreams) {
  using namespace p2p::testing;
  using namespace std::chrono_literals;
  Loop loop;
  auto a = make_host(loop), b = make_host(loop);
  auto addr = loop.call([&] { return a->listen(loopback()); });
  ASSERT_TRUE(addr.ok()) << addr.status().to_string();
  auto svc = core::Multihash::compute(core::HashCode::kSha2_256, as_bytes("svc")).value();
  auto provider = peer_from(7);
  auto provider_addr = core::Multiaddr::parse("/ip4/127.0.0.1/tcp/4001/ws").value();
  KadProviderLookup lookup = [&](core::Multihash key,
                                 size_t) -> p2p::awaitable<std::vector<PeerInfo>> {
    std::vector<PeerInfo> out;
    if (key == svc) out.push_back({provider, {provider_addr}, std::nullopt});
    co_return out;
  };
  KadBridge* bridge = loop.call([&] {
    auto* k = new KadBridge(*a, lookup);
    k->attach();
    return k;
  });
  auto dialled = loop.run([&] { return b->dial(*addr); });
  ASSERT_TRUE(dialled.ok()) << dialled.status().to_string();
  ASSERT_TRUE(loop.run([&] { return b->wait_for_peer(a->id(), 10s, true); }));
  auto info = loop.call([&] { return b->peer_info(a->id()); });
  ASSERT_TRUE(info && info->identify);
  const auto& protos = info->identify->protocols;
  EXPECT_NE(std::find(protos.begin(), protos.end(), std::string(kKadProtocolId)), protos.end());

  // One stream, two requests, then our close: the bridge closes its side too.
  auto answers = loop.run([&]() -> p2p::awaitable<std::vector<KadMessage>> {
    std::vector<KadMessage> out;
    auto s = co_await b->new_stream(a->id(), std::string(kKadProtocolId));
    if (!s.ok()) co_return out;
    KadMessage req;
    req.type = KadType::kGetProviders;
    req.key = svc.bytes();
    for (KadType t : {KadType::kGetProviders, KadType::kFindNode}) {
      req.type = t;
      if (!(co_await p2p::write_length_prefixed(**s, encode_kad_message(req))).is_ok())
        co_return out;
      auto bytes = co_await p2p::read_length_prefixed(**s, kMaxKadMessage);
      if (!bytes.ok()) co_return out;
      auto m = decode_kad_message(*bytes);
      if (m.ok()) out.push_back(*m);
    }
    (void)co_await (*s)->close_write();
    auto eof = co_await p2p::read_length_prefixed(**s, kMaxKadMessage);
    if (eof.status().code() == Code::kNotFound) out.push_back(KadMessage{});  // a clean end
    co_return out;
  });
  ASSERT_EQ(answers.size(), 3u);
  EXPECT_EQ(answers[0].type, KadType::kGetProviders);
  ASSERT_EQ(answers[0].providers.size(), 1u);
  EXPECT_EQ(answers[0].providers[0].id, provider.bytes());
  ASSERT_EQ(answers[0].providers[0].addrs.size(), 1u);
  EXPECT_EQ(answers[0].providers[0].addrs[0], provider_addr.to_bytes());
  EXPECT_EQ(answers[1].type, KadType::kFindNode);
  EXPECT_TRUE(answers[1].closer.empty());

  // A malformed request (unknown type) and a refused one (ADD_PROVIDER): each stream is reset.
  for (Bytes payload : {Bytes{0x08, 0x09}, Bytes{0x08, 0x02}}) {
    Status st = loop.run([&]() -> p2p::awaitable<Status> {
      auto s = co_await b->new_stream(a->id(), std::string(kKadProtocolId));
      if (!s.ok()) co_return s.status();
      if (Status w = co_await p2p::write_length_prefixed(**s, payload); !w.is_ok()) co_return w;
      auto r = co_await p2p::read_length_prefixed(**s, kMaxKadMessage);
      co_return r.ok() ? Status::ok() : r.status();
    });
    EXPECT_FALSE(st.is_ok());
    EXPECT_NE(st.code(), Code::kNotFound) << "a clean close, not a reset: " << st.to_string();
  }
  auto stats = loop.call([&] { return bridge->stats(); });
  EXPECT_EQ(stats.busy, 0u);
  EXPECT_EQ(stats.get_providers, 1u);
  EXPECT_EQ(stats.find_node, 1u);
  EXPECT_EQ(stats.malformed, 1u);
  EXPECT_EQ(stats.refused, 1u);
  loop.call([&] {
    delete bridge;
    return 0;
  });

  // With no lookup allowed at once, GET_PROVIDERS is answered at once with nobody.
  KadBridgeConfig none;
  none.max_concurrent_lookups = 0;
  bridge = loop.call([&] {
    auto* k = new KadBridge(*a, lookup, none);
    k->attach();
    return k;
  });
  auto busy = loop.run([&]() -> p2p::awaitable<Result<KadMessage>> {
    auto s = co_await b->new_stream(a->id(), std::string(kKadProtocolId));
    if (!s.ok()) co_return s.status();
    KadMessage req;
    req.type = KadType::kGetProviders;
    req.key = svc.bytes();
    if (Status w = co_await p2p::write_length_prefixed(**s, encode_kad_message(req)); !w.is_ok())
      co_return w;
    auto bytes = co_await p2p::read_length_prefixed(**s, kMaxKadMessage);
    if (!bytes.ok()) co_return bytes.status();
    co_return decode_kad_message(*bytes);
  });
  ASSERT_TRUE(busy.ok()) << busy.status().to_string();
  EXPECT_TRUE(busy->providers.empty());
  EXPECT_EQ(loop.call([&] { return bridge->stats().busy; }), 1u);
  loop.call([&] {
    delete bridge;
    return 0;
  });
}

// ADD_PROVIDER is taken when the peer announces itself and the node accepts it (a relay
// reservation, in the node); announcing another peer, or one the node does not accept, resets.
TEST(KadBridge, TakesAddProviderOnlyForTheSenderItself) {
  using namespace p2p::testing;
  using namespace std::chrono_literals;
  Loop loop;
  auto a = make_host(loop), b = make_host(loop);
  auto addr = loop.call([&] { return a->listen(loopback()); });
  ASSERT_TRUE(addr.ok()) << addr.status().to_string();
  auto svc = core::Multihash::compute(core::HashCode::kSha2_256, as_bytes("svc")).value();
  auto other = core::Multihash::compute(core::HashCode::kSha2_256, as_bytes("other")).value();
  std::vector<std::pair<identity::PeerId, core::Multihash>> taken;
  KadAddProvider add = [&](const identity::PeerId& from, const core::Multihash& key) {
    if (key != svc) return false;
    taken.emplace_back(from, key);
    return true;
  };
  KadBridge* bridge = loop.call([&] {
    auto* k = new KadBridge(*a, KadProviderLookup{}, KadBridgeConfig{}, add);
    k->attach();
    return k;
  });
  ASSERT_TRUE(loop.run([&] { return b->dial(*addr); }).ok());
  // Sends one ADD_PROVIDER, closes, and reads: a clean end (NotFound) when it was taken.
  auto announce = [&](const core::Multihash& key, const identity::PeerId& who) {
    return loop.run([&]() -> p2p::awaitable<Status> {
      auto s = co_await b->new_stream(a->id(), std::string(kKadProtocolId));
      if (!s.ok()) co_return s.status();
      KadMessage req;
      req.type = KadType::kAddProvider;
      req.key = key.bytes();
      req.providers.push_back(KadPeer{who.bytes(), {}, 0});
      if (Status w = co_await p2p::write_length_prefixed(**s, encode_kad_message(req)); !w.is_ok())
        co_return w;
      (void)co_await (*s)->close_write();
      auto r = co_await p2p::read_length_prefixed(**s, kMaxKadMessage);
      co_return r.ok() ? Status::internal("an answer to ADD_PROVIDER") : r.status();
    });
  };
  EXPECT_EQ(announce(svc, b->id()).code(), Code::kNotFound);
  ASSERT_EQ(taken.size(), 1u);
  EXPECT_EQ(taken[0].first, b->id());
  EXPECT_NE(announce(svc, peer_from(9)).code(), Code::kNotFound);  // someone else: reset
  EXPECT_NE(announce(other, b->id()).code(), Code::kNotFound);     // not accepted: reset
  EXPECT_EQ(taken.size(), 1u);
  auto stats = loop.call([&] { return bridge->stats(); });
  EXPECT_EQ(stats.add_provider, 1u);
  EXPECT_EQ(stats.refused, 2u);
  loop.call([&] {
    delete bridge;
    return 0;
  });
}

}  // namespace
}  // namespace idn::routing
