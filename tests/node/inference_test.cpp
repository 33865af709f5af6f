// Inference over the network end to end, on real nodes on 127.0.0.1: three providers host the
// tiny B-LeNet (one published, two initModel'd from the DHT) and a client node runs sessions.
// Fan-out answers equal local inference; finish() really stops the peers' work; a provider
// killed mid-stream loses no request; bad inputs are refused clearly while serving goes on;
// split execution answers like the whole model does locally, with fewer bytes on the wire.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <future>
#include <memory>
#include <thread>
#include <vector>

#include "client/blocking.h"
#include "engine/engine.h"
#include "node/model_host.h"
#include "node/node_test_util.h"
#include "routing/dht_routing.h"
#include "serve/infer_server.h"
#include "support/tiny_model.h"

namespace idn::node {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testing::RunningNode;

Config config(const std::vector<core::Multiaddr>& boot, ServeConfig serve = {},
              std::chrono::microseconds busy_poll = 0us,
              std::chrono::microseconds poll_while_waiting = 0us) {
  Config c;
  c.serve = std::move(serve);
  c.busy_poll = busy_poll;
  c.poll_while_waiting = poll_while_waiting;
  c.listen = {core::Multiaddr::parse("/ip4/127.0.0.1/tcp/0").value()};
  c.bootstrap = boot;
  c.dht.record_ttl = 60s;
  return c;
}

// Three providers and a client, set up once for the suite (training and DHT joins cost
// seconds); tests that kill a provider start their own.
class Network {
 public:
  // Providers poll for `busy_poll` after work; the client polls for `client_poll` while its
  // requests await answers.
  explicit Network(size_t providers = 3, ServeConfig serve = {},
                   std::chrono::microseconds busy_poll = 0us,
                   std::chrono::microseconds client_poll = 0us) {
    pkg = idn::testing::tiny_package("b-lenet");
    for (size_t i = 0; i < providers; ++i) {
      nodes.push_back(std::make_unique<RunningNode>(config(boot, serve, busy_poll)));
      if (boot.empty()) boot = (*nodes.back())->listen_addrs();
    }
    for (size_t i = 1; i < nodes.size(); ++i)
      EXPECT_TRUE((*nodes[i])->routing()->wait_connected(20s).is_ok());
    RunningNode& a = *nodes[0];
    auto pub = a.on_io<Result<Published>>([&]() { return a->models().publish(pkg, "test"); });
    EXPECT_TRUE(pub.ok()) << pub.status().to_string();
    sid = pub->service_id;
    for (size_t i = 1; i < nodes.size(); ++i) {
      RunningNode& n = *nodes[i];
      Status st = n.on_io<Status>([&]() { return n->models().init_model(*sid); });
      EXPECT_TRUE(st.is_ok()) << st.to_string();
    }
    client = std::make_unique<RunningNode>(config(boot, {}, 0us, client_poll));
    EXPECT_TRUE((*client)->routing()->wait_connected(20s).is_ok());
    // Provider records reach the DHT within milliseconds on loopback; wait for all of them.
    auto until = std::chrono::steady_clock::now() + 20s;
    while (std::chrono::steady_clock::now() < until) {
      auto found = client->on_io<Result<std::vector<identity::PeerId>>>(
          [&]() { return (*client)->models().providers(*sid, nodes.size(), {}); });
      if (found.ok() && found->size() == nodes.size()) break;
    }
  }

  std::shared_ptr<client::Session> session(client::SessionOptions o) {
    RunningNode& c = *client;
    return c.on_io<std::shared_ptr<client::Session>>(
        [&]() -> p2p::awaitable<std::shared_ptr<client::Session>> {
          co_return c->session(*sid, o);
        });
  }
  serve::InferServer& server(size_t i) { return (*nodes[i])->server(); }

  fs::path pkg;
  std::vector<core::Multiaddr> boot;
  std::vector<std::unique_ptr<RunningNode>> nodes;
  std::unique_ptr<RunningNode> client;
  std::optional<core::Multihash> sid;
};

std::vector<core::Tensor> test_images(size_t n) {
  auto all = motifs::to_samples(idn::testing::tiny_data().test.x);
  all.resize(std::min(n, all.size()));
  return all;
}

TEST(Inference, FanOutToThreePeersAnswersLikeLocalInferenceOfTheSamePackage) {
  Network net;
  auto local = engine::Engine::load(net.pkg);
  ASSERT_TRUE(local.ok());
  client::SessionOptions o;
  o.fanout = 3;
  o.deadline = 10s;
  auto s = net.session(o);
  for (const auto& x : test_images(20)) {
    auto want = (*local)->infer(x);
    ASSERT_TRUE(want.ok());
    auto got = client::infer_blocking(*s, x);
    ASSERT_TRUE(got.ok()) << got.status().to_string();
    EXPECT_EQ(got->predicted, want->predicted);
    EXPECT_EQ(got->exit_index, static_cast<uint32_t>(want->exit_index));
    EXPECT_NEAR(got->confidence, want->confidence, 1e-4);
    EXPECT_FALSE(got->local);
  }
  // All three peers were asked (fan-out), and every request completed somewhere.
  uint64_t served = 0;
  for (size_t i = 0; i < 3; ++i) {
    auto st = net.server(i).stats();
    EXPECT_GT(st.requests, 0u) << "peer " << i << " was never asked";
    served += st.completed + st.cancelled;
  }
  EXPECT_GE(served, 20u);
}

// The latency options together: busy-polling io threads, the model run inline on the
// provider's io thread, the blocking stream fed through its channel. Answers must not change.
TEST(Inference, PollingNodesWithInlineRunsAnswerLikeLocalInference) {
  ServeConfig serve;
  serve.inline_below = 10s;  // the tiny model always counts as cheap, however loaded CI is
  Network net(1, serve, 200us, 200us);
  auto local = engine::Engine::load(net.pkg);
  ASSERT_TRUE(local.ok());
  client::SessionOptions o;
  o.deadline = 10s;
  auto s = net.session(o);
  size_t events = 0;
  for (const auto& x : test_images(30)) {
    auto want = (*local)->infer(x);
    ASSERT_TRUE(want.ok());
    auto stream = client::infer_stream_blocking(*s, x);
    std::optional<client::Event> last;
    for (const auto& ev : stream) {
      last = ev;
      ++events;
    }
    auto sum = stream.summary();
    ASSERT_TRUE(sum.status.is_ok()) << sum.status.to_string();
    ASSERT_TRUE(last.has_value());
    EXPECT_EQ(last->predicted, want->predicted);
    EXPECT_EQ(last->exit_index, static_cast<uint32_t>(want->exit_index));
    EXPECT_GT(sum.bytes_sent, 3000u);  // the 28x28 float image and its framing
    EXPECT_GT(sum.bytes_received, 0u);
  }
  EXPECT_GE(events, 30u);
  auto st = net.server(0).stats();
  EXPECT_EQ(st.completed, 30u);
  EXPECT_GE(st.inlined, 28u);  // all but the first one or two (which measure the model)
  // Every request left the count the client polls by (else it would poll forever).
  // (A request leaves it when its coroutine ends, just after its final answer went out.)
  auto until = std::chrono::steady_clock::now() + 10s;
  while ((*net.client)->requests_in_flight() != 0 && std::chrono::steady_clock::now() < until)
    std::this_thread::yield();
  EXPECT_EQ((*net.client)->requests_in_flight(), 0);
}

TEST(Inference, FinishStopsTheRemoteComputation) {
  // The provider's worker stops before stage 1 until the test lets it go: by then the client
  // has seen exit 0 and called finish().
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  ServeConfig serve;
  serve.before_stage = [released](const core::Multihash&, int stage, size_t) {
    if (stage == 1) released.wait();
  };
  Network net(1, serve);
  client::SessionOptions o;
  o.fanout = 1;
  o.deadline = 20s;
  // Run to the last exit: a request that is not stopped runs every stage.
  o.exit_rule.criterion = protocol::ExitCriterion::kLastExit;
  auto s = net.session(o);
  auto before = net.server(0).stage_runs(*net.sid);
  ASSERT_GE(before.size(), 2u);
  auto stream = client::infer_stream_blocking(*s, test_images(1)[0]);
  auto first = stream.next();
  ASSERT_TRUE(first.has_value()) << stream.summary().status.to_string();
  EXPECT_EQ(first->exit_index, 0u);
  stream.finish();
  EXPECT_FALSE(stream.next().has_value());
  // The Cancel reaches the provider, which ends the request...
  auto until = std::chrono::steady_clock::now() + 20s;
  while (net.server(0).stats().cancelled < 1 && std::chrono::steady_clock::now() < until)
    std::this_thread::yield();
  release.set_value();
  EXPECT_EQ(net.server(0).stats().cancelled, 1u);
  EXPECT_EQ(net.server(0).stats().completed, 0u);
  // ...and once the worker moves on, the stage counter shows stage 1 never ran. (The request
  // left stats().running when the Cancel decided it; the worker publishes a batch's stage
  // counters, every stage at once, when the batch is over.)
  until = std::chrono::steady_clock::now() + 20s;
  auto after = net.server(0).stage_runs(*net.sid);
  while (after[0] == before[0] && std::chrono::steady_clock::now() < until) {
    std::this_thread::yield();
    after = net.server(0).stage_runs(*net.sid);
  }
  EXPECT_EQ(after[0], before[0] + 1);
  EXPECT_EQ(after[1], before[1]) << "stage 1 ran after the requester finished";
  auto sum = stream.summary();
  ASSERT_EQ(sum.peers.size(), 1u);
  EXPECT_EQ(sum.peers[0].outcome, client::PeerReport::Outcome::kFinishedEarly);
}

TEST(Inference, KillingOneOfThreeProvidersDuringAStreamOf200RequestsLosesNone) {
  Network net;
  client::SessionOptions o;
  o.fanout = 2;
  o.deadline = 10s;
  auto s = net.session(o);
  auto images = test_images(50);
  int lost = 0;
  std::thread killer;
  for (int i = 0; i < 200; ++i) {
    auto stream = client::infer_stream_blocking(*s, images[i % images.size()]);
    if (i == 60) killer = std::thread([&] { net.nodes[1].reset(); });  // mid-stream
    std::optional<client::Event> last;
    for (const auto& ev : stream) last = ev;
    if (!last || !stream.summary().status.is_ok()) ++lost;
  }
  killer.join();
  EXPECT_EQ(lost, 0);
}

TEST(Inference, MalformedInputIsRefusedClearlyAndTheNodeKeepsServing) {
  Network net(1);
  client::SessionOptions o;
  o.fanout = 1;
  o.deadline = 5s;
  auto s = net.session(o);
  // Wrong shape: a 3x32x32 image for a 1x28x28 model.
  auto bad = core::Tensor::f32({3, 32, 32}, std::vector<float>(3 * 32 * 32, 0.5f));
  auto r = client::infer_blocking(*s, bad);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().to_string().find("shape"), std::string::npos) << r.status().to_string();
  // Non-finite values.
  auto x = test_images(1)[0];
  auto nan = x;
  nan.f32_mut()[5] = std::nanf("");
  auto r2 = client::infer_blocking(*s, nan);
  ASSERT_FALSE(r2.ok());
  EXPECT_EQ(net.server(0).stats().invalid, 2u);
  // And a good request right after is answered.
  auto good = client::infer_blocking(*s, x);
  EXPECT_TRUE(good.ok()) << good.status().to_string();
}

TEST(Inference, SplitExecutionAnswersLikeTheWholeModelAndSendsNothingForAConfidentLocalExit) {
  Network net(1);
  RunningNode& c = *net.client;
  // The client needs the package to run stage 0 itself.
  Status st = c.on_io<Status>([&]() { return c->models().init_model(*net.sid); });
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  // A strict rule, so some samples leave the client and some do not.
  protocol::ExitRule rule{protocol::ExitCriterion::kConfidence, 0.95f};
  auto prefix = c->local_prefix(*net.sid, 0, rule);
  ASSERT_TRUE(prefix.ok()) << prefix.status().to_string();
  auto local = engine::Engine::load(net.pkg);
  ASSERT_TRUE(local.ok());
  client::SessionOptions o;
  o.fanout = 1;
  o.deadline = 10s;
  o.local_prefix = *prefix;
  o.exit_rule = rule;
  auto s = net.session(o);
  int remote = 0, at_home = 0;
  for (const auto& x : test_images(40)) {
    auto want = (*local)->infer(x, engine::ExitRule{model::ExitCriterion::kConfidence, 0.95});
    ASSERT_TRUE(want.ok());
    auto stream = client::infer_stream_blocking(*s, x);
    std::optional<client::Event> last;
    for (const auto& ev : stream) last = ev;
    ASSERT_TRUE(last.has_value()) << stream.summary().status.to_string();
    EXPECT_EQ(last->predicted, want->predicted);
    EXPECT_EQ(last->exit_index, static_cast<uint32_t>(want->exit_index));
    auto sum = stream.summary();
    if (last->local) {
      ++at_home;
      EXPECT_EQ(sum.bytes_sent, 0u) << "a confident local exit sends nothing";
    } else {
      ++remote;
      EXPECT_GT(sum.bytes_sent, 0u);
    }
  }
  EXPECT_GT(at_home, 0);
  EXPECT_GT(remote, 0);
}

}  // namespace
}  // namespace idn::node
