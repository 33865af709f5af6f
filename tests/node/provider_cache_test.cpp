// The provider cache is one per node and service: sessions of the same service share it, and
// however many requests start at once, one DHT lookup fills it (a lookup per request made a
// burst of them hang in OpenDHT for minutes). ComputeSwap is off on the requester, so no have
// list names the provider and the DHT is the only source.
#include <gtest/gtest.h>

#include <latch>
#include <thread>
#include <vector>

#include "client/blocking.h"
#include "node/model_host.h"
#include "node/node_test_util.h"
#include "routing/dht_routing.h"
#include "support/tiny_model.h"

namespace idn::node {
namespace {

using namespace std::chrono_literals;
using testing::RunningNode;

TEST(ProviderCache, EightNewSessionsRequestingAtOnceShareOneDhtLookup) {
  const auto pkg = idn::testing::tiny_package("b-lenet");
  auto images = motifs::to_samples(idn::testing::tiny_data().test.x);
  RunningNode p(testing::peer_config({}));
  ASSERT_TRUE(p);
  Config cc = testing::peer_config(p->listen_addrs());
  cc.swap.enabled = false;
  RunningNode c(cc);
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->routing()->wait_connected(20s).is_ok());
  auto pub = p.on_io<Result<Published>>([&]() { return p->models().publish(pkg, "test"); });
  ASSERT_TRUE(pub.ok()) << pub.status().to_string();
  // Until the record is stored, lookups find nothing (and are not what this test counts).
  auto until = std::chrono::steady_clock::now() + 20s;
  bool found = false;
  while (!found && std::chrono::steady_clock::now() < until) {
    auto f = c.on_io<Result<std::vector<identity::PeerId>>>(
        [&]() { return c->models().providers(pub->service_id, 1, {}); });
    found = f.ok() && !f->empty();
  }
  ASSERT_TRUE(found);

  constexpr int kSessions = 8;
  std::vector<std::shared_ptr<client::Session>> sessions;
  for (int i = 0; i < kSessions; ++i) {
    sessions.push_back(c.on_io<std::shared_ptr<client::Session>>(
        [&]() -> p2p::awaitable<std::shared_ptr<client::Session>> {
          client::SessionOptions so;
          so.deadline = 10s;
          co_return c->session(pub->service_id, so);
        }));
  }
  const uint64_t before = c->routing()->counters().lookups;
  std::latch go(kSessions);
  std::vector<Status> results(kSessions);
  std::vector<std::thread> threads;
  for (int i = 0; i < kSessions; ++i) {
    threads.emplace_back([&, i] {
      go.arrive_and_wait();
      auto got = client::infer_blocking(*sessions[i], images[i]);
      results[i] = got.ok() ? Status::ok() : got.status();
    });
  }
  for (auto& t : threads) t.join();
  for (const Status& s : results) EXPECT_TRUE(s.is_ok()) << s.to_string();
  EXPECT_EQ(c->routing()->counters().lookups - before, 1u);
}

}  // namespace
}  // namespace idn::node
