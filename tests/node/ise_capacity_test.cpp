// The ISE's derived k on real nodes ([ise] k = 0): a node whose memory budget cannot hold one
// copy of the model per worker refuses to host it and says why, while a node with room hosts
// it; /status's ise section shows k and the rule's numbers.
#include <gtest/gtest.h>

#include <algorithm>
#include <thread>
#include <vector>

#include "ise/service_descriptor.h"
#include "model/package.h"
#include "node/model_host.h"
#include "node/node_test_util.h"
#include "routing/dht_routing.h"
#include "support/tiny_model.h"

namespace idn::node {
namespace {

using namespace std::chrono_literals;
using testing::RunningNode;

constexpr uint64_t kMiB = 1024 * 1024;

nlohmann::json ise_status(RunningNode& n) {
  return nlohmann::json::parse(n.on_io<std::string>(
      [&]() -> p2p::awaitable<std::string> { co_return n->status_json(); }))["ise"];
}

TEST(IseCapacity, AModelThatDoesNotFitTheMemoryBudgetIsRefusedAndOneThatFitsIsHosted) {
  const auto pkg = idn::testing::tiny_package("b-lenet");
  auto loaded = model::load_package(pkg);
  ASSERT_TRUE(loaded.ok()) << loaded.status().to_string();
  const uint64_t bytes = ise::model_cost(loaded->spec).bytes;
  ASSERT_GT(bytes, 0u);
  const size_t cores = std::max<size_t>(1, std::thread::hardware_concurrency());

  RunningNode o(testing::peer_config({}));
  ASSERT_TRUE(o);
  // Small: 1 MiB, with enough workers that one copy each is more than that.
  Config sc = testing::peer_config(o->listen_addrs());
  sc.ise.auto_host = true;
  sc.ise.memory_budget_mb = 1;
  sc.serve.workers = kMiB / bytes + 1;
  RunningNode small(sc);
  // Roomy: 64 MiB, one worker.
  Config rc = testing::peer_config(o->listen_addrs());
  rc.ise.auto_host = true;
  rc.ise.memory_budget_mb = 64;
  RunningNode roomy(rc);
  ASSERT_TRUE(small && roomy);
  std::vector<core::Multiaddr> both = small->listen_addrs();
  for (const auto& a : roomy->listen_addrs()) both.push_back(a);
  RunningNode c(testing::peer_config(both));
  ASSERT_TRUE(c);
  for (RunningNode* n : {&small, &roomy, &c})
    ASSERT_TRUE((*n)->routing()->wait_connected(20s).is_ok());
  auto pub = o.on_io<Result<Published>>([&]() { return o->models().publish(pkg, "test"); });
  ASSERT_TRUE(pub.ok()) << pub.status().to_string();
  ASSERT_EQ(pub->descriptor.cost->bytes, bytes);
  const core::Multihash sid = pub->service_id;
  // Before any demand: the cores bound alone.
  EXPECT_EQ(ise_status(small)["k"], cores);
  EXPECT_EQ(ise_status(small)["k_rule"]["derived"], true);

  // Both are asked; the DHT may need a moment to hold O's record, so ask until both answered
  // from the descriptor (a refusal for want of providers says "initModel failed").
  std::string small_why;
  bool roomy_hosts = false;
  const auto until = std::chrono::steady_clock::now() + 60s;
  while (std::chrono::steady_clock::now() < until && (small_why.empty() || !roomy_hosts)) {
    auto out = c.on_io<Result<InitOutcome>>([&]() {
      return c->init_model(sid, Node::InitOptions{2, 10'000ms});
    });
    ASSERT_TRUE(out.ok()) << out.status().to_string();
    roomy_hosts = std::count(out->hosting.begin(), out->hosting.end(), roomy->id()) > 0;
    for (const auto& [peer, why] : out->refused)
      if (peer == small->id() && why.find("memory") != std::string::npos) small_why = why;
  }
  EXPECT_TRUE(roomy_hosts) << ise_status(roomy).dump();
  EXPECT_NE(small_why.find("more memory than this node's ISE budget"), std::string::npos)
      << small_why << "\n"
      << ise_status(small).dump();
  EXPECT_FALSE(
      small.on_io<bool>([&]() -> p2p::awaitable<bool> { co_return small->models().hosts(sid); }));

  auto s = ise_status(small);
  ASSERT_EQ(s["k_rule"]["too_big"].size(), 1u) << s.dump();
  EXPECT_EQ(s["k_rule"]["too_big"][0], ise::service_id_text(sid));
  EXPECT_EQ(s["k"], cores);  // what cannot fit at all does not shrink k
  auto r = ise_status(roomy);
  EXPECT_EQ(r["k"], std::min<uint64_t>(cores, 64 * kMiB / bytes)) << r.dump();
  EXPECT_EQ(r["k_rule"]["memory_budget_mb"], 64);
  EXPECT_EQ(r["k_rule"]["workers"], 1);
  EXPECT_TRUE(r["k_rule"]["too_big"].empty());
}

}  // namespace
}  // namespace idn::node
