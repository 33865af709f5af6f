#include "routing/kad_bridge.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include "core/multiaddr.h"
#include "identity/keys.h"

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

}  // namespace
}  // namespace idn::routing
