// The Inference Service Engine on four real nodes on 127.0.0.1 (§7.4): O publishes the tiny
// B-LeNet; C1 and C2 use it, so it is on their need lists (O uses it too, but a node's need
// list leaves out what it hosts itself), and their requests count as demand; H runs with auto_host
// and k = 1 and hosts nothing, until the demand makes it fetch, load and provide the service and
// answer requests; once the demand stops, H tears it down after T_s and withdraws its record.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "client/blocking.h"
#include "node/model_host.h"
#include "node/node_test_util.h"
#include "node/swap_agent.h"
#include "routing/dht_routing.h"
#include "support/tiny_model.h"

namespace idn::node {
namespace {

using namespace std::chrono_literals;
using testing::RunningNode;

Config config(const std::vector<core::Multiaddr>& boot) {
  Config c = testing::peer_config(boot);
  c.ise.need_idle = 1s;  // our need list forgets a service 1 s after our last request
  return c;
}

// Polls `cond` (each call a round trip to a node's io thread) until it holds or `limit` passes.
template <class F>
bool eventually(F cond, std::chrono::seconds limit = 30s) {
  auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until)
    if (cond()) return true;
  return cond();
}

bool hosts(RunningNode& n, const core::Multihash& sid) {
  return n.on_io<bool>([&]() -> p2p::awaitable<bool> { co_return n->models().hosts(sid); });
}

// Whether a DHT lookup from `n` names `peer` as a provider of `sid`.
bool dht_names(RunningNode& n, const core::Multihash& sid, const identity::PeerId& peer) {
  auto found = n.on_io<Result<std::vector<identity::PeerId>>>(
      [&]() { return n->models().providers(sid, 8, {}); });
  return found.ok() && std::find(found->begin(), found->end(), peer) != found->end();
}

// /status of `n`, read on its io thread.
nlohmann::json status_of(RunningNode& n) {
  return nlohmann::json::parse(
      n.on_io<std::string>([&]() -> p2p::awaitable<std::string> { co_return n->status_json(); }));
}

TEST(Ise, DemandFromThreePeersMakesTheFourthHostTheServiceUntilTheDemandStops) {
  const auto pkg = idn::testing::tiny_package("b-lenet");
  auto images = motifs::to_samples(idn::testing::tiny_data().test.x);
  RunningNode o(config({}));
  ASSERT_TRUE(o);
  Config hc = config(o->listen_addrs());
  hc.ise.auto_host = true;
  hc.ise.k = 1;
  hc.ise.min_service_period = 3s;
  RunningNode h(hc);
  ASSERT_TRUE(h);
  std::vector<core::Multiaddr> both = o->listen_addrs();
  for (const auto& a : h->listen_addrs()) both.push_back(a);
  RunningNode c1(config(both)), c2(config(both));
  ASSERT_TRUE(c1 && c2);
  for (RunningNode* n : {&h, &c1, &c2}) ASSERT_TRUE((*n)->routing()->wait_connected(20s).is_ok());
  // Published once the DHT has other nodes to store the provider record.
  auto pub = o.on_io<Result<Published>>([&]() { return o->models().publish(pkg, "test"); });
  ASSERT_TRUE(pub.ok()) << pub.status().to_string();
  const core::Multihash sid = pub->service_id;
  ASSERT_TRUE(eventually([&] { return dht_names(c1, sid, o->id()); }));
  // O only hosts the service; H waits for demand, with nothing to host.
  EXPECT_FALSE(hosts(h, sid));
  auto ask = [&](RunningNode& n) {
    auto s = n.on_io<std::shared_ptr<client::Session>>(
        [&]() -> p2p::awaitable<std::shared_ptr<client::Session>> {
          client::SessionOptions so;
          so.deadline = 10s;
          co_return n->session(sid, so);
        });
    return client::infer_blocking(*s, images[0]);
  };
  auto keep_asking = [&] {
    for (RunningNode* n : {&c1, &c2}) {
      auto got = ask(*n);
      if (!got.ok()) ADD_FAILURE() << got.status().to_string();
    }
    // O's session: it serves itself, so the service stays off O's need list.
    o.on_io<bool>([&]() -> p2p::awaitable<bool> {
      (void)o->session(sid);
      co_return true;
    });
  };
  ASSERT_TRUE(eventually([&] {
    keep_asking();
    return hosts(h, sid);
  })) << status_of(h).dump();
  // O just used it too, but serves itself: it is not on O's need list.
  EXPECT_TRUE(status_of(o)["ise"]["need_list"].empty()) << status_of(o).dump();

  // H answers requests for it, and the DHT names it as a provider.
  auto from_h = c1.on_io<std::shared_ptr<client::Session>>(
      [&]() -> p2p::awaitable<std::shared_ptr<client::Session>> {
        client::SessionOptions so;
        so.deadline = 10s;
        co_return std::make_shared<client::Session>(c1->io().get_executor(), c1->host(),
                                                    client::fixed_providers({h->id()}), sid, so);
      });
  auto got = client::infer_blocking(*from_h, images[1]);
  ASSERT_TRUE(got.ok()) << got.status().to_string();
  EXPECT_EQ(got->peer, h->id());
  EXPECT_TRUE(eventually([&] {
    keep_asking();  // the demand goes on until this is checked
    return dht_names(c2, sid, h->id());
  }));
  auto status = status_of(h);
  ASSERT_TRUE(status.contains("ise"));
  EXPECT_EQ(status["ise"]["started"], 1);
  ASSERT_FALSE(status["ise"]["queue"].empty());
  EXPECT_EQ(status["ise"]["queue"][0]["why"], "rank 1 of the top 1");
  // Each peer's demand counts its volume (c_i >= 1), and a need list comes with its counts.
  const auto& top = status["ise"]["queue"][0];
  EXPECT_GE(top["requests"].get<double>(), top["peers"].get<double>()) << top.dump();
  EXPECT_TRUE(top.contains("providers")) << top.dump();
  auto c1_ise = status_of(c1)["ise"];
  EXPECT_EQ(c1_ise["need_counts"].size(), c1_ise["need_list"].size()) << c1_ise.dump();

  // The demand stops: need lists fade after need_idle (1 s), then T_s (3 s) ends H's service.
  const auto stopped_asking = std::chrono::steady_clock::now();
  ASSERT_TRUE(eventually([&] { return !hosts(h, sid); })) << status_of(h).dump();
  EXPECT_GE(std::chrono::steady_clock::now() - stopped_asking, 1s);
  // (The engines go first; the teardown counts once the DHT withdrawal returned.)
  EXPECT_TRUE(eventually([&] { return status_of(h)["ise"]["stopped"] == 1; }));
  // Its record is withdrawn; O still provides, and C1 learns H's have list is empty.
  EXPECT_TRUE(eventually([&] { return !dht_names(c2, sid, h->id()); }));
  EXPECT_TRUE(dht_names(c2, sid, o->id()));
  EXPECT_TRUE(eventually([&] {
    return c1.on_io<bool>([&]() -> p2p::awaitable<bool> {
      co_return c1->swap()->peers_hosting(sid).size() == 1;  // O only
    });
  }));
}

// initModel across peers: C asks for 2 of 3 idle nodes (auto_host, k = 1); exactly 2 come to
// host the service, a session then gets its answers from them, and a node at capacity says no
// with its reason.
TEST(Ise, InitModelWithNpeers2MakesExactlyTwoOfThreeIdleNodesHostTheService) {
  const auto pkg = idn::testing::tiny_package("b-lenet");
  const auto other_pkg = idn::testing::tiny_package("b-alexnet");
  auto images = motifs::to_samples(idn::testing::tiny_data().test.x);
  RunningNode o(config({}));
  ASSERT_TRUE(o);
  Config ic = config(o->listen_addrs());
  ic.ise.auto_host = true;
  ic.ise.k = 1;
  std::vector<std::unique_ptr<RunningNode>> idle;
  std::vector<core::Multiaddr> idle_addrs;
  for (int i = 0; i < 3; ++i) {
    idle.push_back(std::make_unique<RunningNode>(ic));
    ASSERT_TRUE(*idle.back());
    for (const auto& a : (*idle.back())->listen_addrs()) idle_addrs.push_back(a);
  }
  RunningNode c(config(idle_addrs));
  ASSERT_TRUE(c);
  for (auto& n : idle) ASSERT_TRUE((*n)->routing()->wait_connected(20s).is_ok());
  ASSERT_TRUE(c->routing()->wait_connected(20s).is_ok());
  auto pub = o.on_io<Result<Published>>([&]() { return o->models().publish(pkg, "test"); });
  ASSERT_TRUE(pub.ok()) << pub.status().to_string();
  const core::Multihash sid = pub->service_id;
  // (Checked from an idle node: C stays connected to the three idle nodes only.)
  ASSERT_TRUE(eventually([&] { return dht_names(*idle[0], sid, o->id()); }));
  ASSERT_TRUE(eventually([&] {
    return c.on_io<size_t>([&]() -> p2p::awaitable<size_t> {
      co_return c->swap()->online_peers().size();
    }) == 3;
  }));

  auto out = c.on_io<Result<InitOutcome>>([&]() {
    return c->init_model(sid, Node::InitOptions{2, std::chrono::milliseconds(60'000)});
  });
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  EXPECT_EQ(out->hosting.size(), 2u);
  EXPECT_TRUE(out->refused.empty()) << out->refused.front().second;
  size_t hosting = 0;
  for (auto& n : idle) hosting += hosts(*n, sid) ? 1 : 0;
  EXPECT_EQ(hosting, 2u);
  for (const auto& p : out->hosting) {
    auto it = std::find_if(idle.begin(), idle.end(), [&](auto& n) { return (**n).id() == p; });
    ASSERT_NE(it, idle.end());
    EXPECT_TRUE(hosts(**it, sid));
  }
  // Each of the two answers C's requests.
  for (const auto& p : out->hosting) {
    auto s = c.on_io<std::shared_ptr<client::Session>>(
        [&]() -> p2p::awaitable<std::shared_ptr<client::Session>> {
          client::SessionOptions so;
          so.deadline = 10s;
          co_return std::make_shared<client::Session>(c->io().get_executor(), c->host(),
                                                      client::fixed_providers({p}), sid, so);
        });
    auto got = client::infer_blocking(*s, images[0]);
    ASSERT_TRUE(got.ok()) << got.status().to_string();
    EXPECT_EQ(got->peer, p);
  }
  // Asked again for 3: the two count, and the third now hosts it too.
  out = c.on_io<Result<InitOutcome>>([&]() {
    return c->init_model(sid, Node::InitOptions{3, std::chrono::milliseconds(60'000)});
  });
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  EXPECT_EQ(out->hosting.size(), 3u);
  // Every idle node is now full (k = 1): a second service is refused, with the rank as why.
  auto pub2 = o.on_io<Result<Published>>([&]() { return o->models().publish(other_pkg, "two"); });
  ASSERT_TRUE(pub2.ok()) << pub2.status().to_string();
  auto full = c.on_io<Result<InitOutcome>>([&]() {
    return c->init_model(pub2->service_id, Node::InitOptions{1, std::chrono::milliseconds(30'000)});
  });
  ASSERT_TRUE(full.ok()) << full.status().to_string();
  EXPECT_TRUE(full->hosting.empty());
  ASSERT_EQ(full->refused.size(), 3u);
  for (const auto& [peer, why] : full->refused)
    EXPECT_NE(why.find("top 1"), std::string::npos) << why;

  // A descriptor sent with the request must be one and name the service asked for; each peer
  // says why not (before it weighs capacity).
  auto text = ise::canonical_json(pub->descriptor);
  ASSERT_TRUE(text.ok());
  for (const auto& [descriptor, reason] :
       {std::pair<std::string, std::string>{*text, "the descriptor's service ID is"},
        std::pair<std::string, std::string>{"{\"format\": 1", "bad descriptor"}}) {
    auto refused = c.on_io<Result<InitOutcome>>([&]() {
      return c->init_model(pub2->service_id,
                           Node::InitOptions{1, std::chrono::milliseconds(30'000), descriptor});
    });
    ASSERT_TRUE(refused.ok()) << refused.status().to_string();
    ASSERT_EQ(refused->refused.size(), 3u);
    for (const auto& [peer, why] : refused->refused)
      EXPECT_NE(why.find(reason), std::string::npos) << why;
  }
}

}  // namespace
}  // namespace idn::node
