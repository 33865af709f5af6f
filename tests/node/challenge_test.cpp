// Challenges on real nodes on 127.0.0.1 (dissertation §7.5.3.3): a requester C that holds the
// package itself sends, at challenge_rate (1 here), a request whose answer it computed locally
// to a peer that just served it. An honest provider passes (and its answer is receipted like any
// other); a provider L that makes its answers up fails: C ignores L for T_g, refusing its
// requests, and serves it again afterwards; with on_challenge_failure = "blacklist" C closes
// L's connection and closes every new one. L's lie is a test-only replacement of its node's
// /idn/infer handler (Dispatcher::on_infer_request), which no config file can reach.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <optional>
#include <vector>

#include "client/blocking.h"
#include "node/challenger.h"
#include "node/model_host.h"
#include "node/node_test_util.h"
#include "node/swap_agent.h"
#include "routing/dht_routing.h"
#include "support/tiny_model.h"

namespace idn::node {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using testing::RunningNode;

constexpr uint32_t kIgnoreS = 3;  // C's T_g

Config config(const std::vector<core::Multiaddr>& boot) {
  Config c;
  c.listen = {core::Multiaddr::parse("/ip4/127.0.0.1/tcp/0").value()};
  c.bootstrap = boot;
  c.dht.record_ttl = 60s;
  c.swap.params.challenge_rate = 0;
  return c;
}

// The challenger: hosts the service and challenges every request's provider.
Config challenger_config(swap::ChallengeFailure on_failure) {
  Config c = config({});
  c.swap.params.challenge_rate = 1.0;
  c.swap.params.ignore_period_s = kIgnoreS;
  c.swap.params.on_challenge_failure = on_failure;
  return c;
}

swap::PeerSnapshot view(RunningNode& n, const identity::PeerId& peer) {
  return n.on_io<swap::PeerSnapshot>([&]() -> p2p::awaitable<swap::PeerSnapshot> {
    co_return n->swap()->swap().snapshot(peer.bytes());
  });
}

SwapAgentStats stats(RunningNode& n) {
  return n.on_io<SwapAgentStats>(
      [&]() -> p2p::awaitable<SwapAgentStats> { co_return n->swap()->stats(); });
}

bool connected(RunningNode& a, const identity::PeerId& b) {
  return a.on_io<bool>([&]() -> p2p::awaitable<bool> { co_return a->host().is_connected(b); });
}

std::shared_ptr<client::Session> session(RunningNode& n, const core::Multihash& sid) {
  client::SessionOptions o;
  o.deadline = 10s;
  return n.on_io<std::shared_ptr<client::Session>>(
      [&]() -> p2p::awaitable<std::shared_ptr<client::Session>> { co_return n->session(sid, o); });
}

bool wait_for_provider(RunningNode& n, const core::Multihash& sid, const identity::PeerId& who) {
  auto until = Clock::now() + 20s;
  while (Clock::now() < until) {
    auto found = n.on_io<Result<std::vector<identity::PeerId>>>(
        [&]() { return n->models().providers(sid, 4, {}); });
    if (found.ok() && std::find(found->begin(), found->end(), who) != found->end()) return true;
  }
  return false;
}

// Polls `pred` until it holds or `timeout` passes.
template <class F>
bool eventually(F pred, std::chrono::seconds timeout = 20s) {
  auto until = Clock::now() + timeout;
  while (!pred()) {
    if (Clock::now() >= until) return pred();
  }
  return true;
}

// A provider that answers at once without computing: all probability on class 0, from exit 0.
rpc::Dispatcher::InferHandler made_up_answers(std::vector<int64_t> shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  std::vector<float> probs(static_cast<size_t>(n), 0.0f);
  probs[0] = 1.0f;
  return testing::made_up_answers(std::move(shape), std::move(probs));
}

// C publishes the tiny B-LeNet; `provider` hosts it too (fetched from C), found in the DHT.
struct Pair {
  std::unique_ptr<RunningNode> c, p;
  std::optional<core::Multihash> sid;
  std::vector<core::Tensor> images;
};

void start_pair(Pair& net, Config cc, bool lying) {
  const auto pkg = idn::testing::tiny_package("b-lenet");
  net.images = motifs::to_samples(idn::testing::tiny_data().test.x);
  net.c = std::make_unique<RunningNode>(std::move(cc));
  ASSERT_TRUE(*net.c);
  RunningNode& c = *net.c;
  auto pub = c.on_io<Result<Published>>([&]() { return c->models().publish(pkg, "test"); });
  ASSERT_TRUE(pub.ok()) << pub.status().to_string();
  net.sid = pub->service_id;
  Config pc = config(c->listen_addrs());
  pc.swap.params.ignore_period_s = 1;  // how long P expects C's refusals to last
  net.p = std::make_unique<RunningNode>(std::move(pc));
  ASSERT_TRUE(*net.p);
  RunningNode& p = *net.p;
  ASSERT_TRUE(p->routing()->wait_connected(20s).is_ok());
  // C's provider record was put while C was alone (and failed); the DHT retries it every 5 s.
  ASSERT_TRUE(wait_for_provider(p, *net.sid, c->id()));
  Status st = p.on_io<Status>([&]() { return p->models().init_model(*net.sid); });
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  if (lying) {
    auto d = p.on_io<Result<ise::ServiceDescriptor>>(
        [&]() -> p2p::awaitable<Result<ise::ServiceDescriptor>> {
          co_return p->models().local_descriptor(*net.sid);
        });
    ASSERT_TRUE(d.ok() && !d->outputs.empty());
    p.on_io<int>([&, shape = d->outputs.front().shape]() -> p2p::awaitable<int> {
      p->dispatcher().on_infer_request(made_up_answers(shape));
      co_return 0;
    });
  }
  ASSERT_TRUE(c->routing()->wait_connected(20s).is_ok());
  ASSERT_TRUE(wait_for_provider(c, *net.sid, p->id()));
}

TEST(Challenges, AnHonestProviderPassesAndItsChallengeAnswersAreReceipted) {
  Pair net;
  ASSERT_NO_FATAL_FAILURE(start_pair(net, challenger_config(swap::ChallengeFailure::kIgnore),
                                     /*lying=*/false));
  RunningNode &c = *net.c, &p = *net.p;
  auto sc = session(c, *net.sid);
  constexpr int kRequests = 4;
  for (int i = 0; i < kRequests; ++i) {
    auto got = client::infer_blocking(*sc, net.images[i % net.images.size()]);
    ASSERT_TRUE(got.ok()) << got.status().to_string();
  }
  // Each answered request drew a challenge (rate 1), answered from C's own package.
  ASSERT_TRUE(eventually([&] { return view(c, p->id()).challenges_passed == kRequests; }))
      << view(c, p->id()).challenges_passed << " passed, " << view(c, p->id()).challenges_failed
      << " failed";
  EXPECT_EQ(view(c, p->id()).challenges_failed, 0u);
  EXPECT_NE(view(c, p->id()).state, swap::PeerState::kIgnore);
  // Requests and challenges alike: one receipt each, held by both sides.
  ASSERT_TRUE(eventually([&] { return stats(p).receipts_in == 2 * kRequests; }))
      << stats(p).receipts_in << " receipts reached P";
  EXPECT_EQ(stats(c).receipts_out, 2u * kRequests);
}

TEST(Challenges, AProviderThatFailsIsIgnoredForTheIgnorePeriodThenServedAgain) {
  Pair net;
  ASSERT_NO_FATAL_FAILURE(start_pair(net, challenger_config(swap::ChallengeFailure::kIgnore),
                                     /*lying=*/true));
  RunningNode &c = *net.c, &l = *net.p;
  // C's request is answered (nobody knows better yet); the challenge that follows is not.
  auto sc = session(c, *net.sid);
  auto got = client::infer_blocking(*sc, net.images[0]);
  ASSERT_TRUE(got.ok()) << got.status().to_string();
  ASSERT_TRUE(eventually([&] { return view(c, l->id()).challenges_failed == 1; }));
  const auto failed_at = Clock::now();
  swap::PeerSnapshot v = view(c, l->id());
  EXPECT_EQ(v.state, swap::PeerState::kIgnore);
  EXPECT_EQ(v.challenges_passed, 0u);
  EXPECT_FALSE(v.blacklisted);
  EXPECT_TRUE(connected(c, l->id())) << "an ignored peer keeps its connection";

  // L asks C while C ignores it: refused, without a draw.
  auto sl = session(l, *net.sid);
  ASSERT_TRUE(wait_for_provider(l, *net.sid, c->id()));
  auto refused = client::infer_blocking(*sl, net.images[1]);
  EXPECT_FALSE(refused.ok());
  EXPECT_GE(view(c, l->id()).refused, 1u);
  EXPECT_EQ(stats(c).admitted, 0u);
  ASSERT_LT(Clock::now() - failed_at, std::chrono::seconds(kIgnoreS))
      << "the machine was too slow to ask within T_g";

  // Once T_g has passed C serves L again.
  bool served = eventually([&] { return client::infer_blocking(*sl, net.images[2]).ok(); });
  const auto served_after = Clock::now() - failed_at;
  EXPECT_TRUE(served) << "L was never served again";
  EXPECT_GE(served_after, std::chrono::seconds(kIgnoreS) - 500ms) << "served before T_g ended";
  EXPECT_GE(stats(c).admitted, 1u);
  EXPECT_EQ(view(c, l->id()).challenges_failed, 1u);
}

TEST(Challenges, WithBlacklistAFailingProvidersConnectionsAreClosedAndRefused) {
  Pair net;
  ASSERT_NO_FATAL_FAILURE(start_pair(net, challenger_config(swap::ChallengeFailure::kBlacklist),
                                     /*lying=*/true));
  RunningNode &c = *net.c, &l = *net.p;
  auto sc = session(c, *net.sid);
  ASSERT_TRUE(client::infer_blocking(*sc, net.images[0]).ok());
  ASSERT_TRUE(eventually([&] { return view(c, l->id()).challenges_failed == 1; }));
  EXPECT_TRUE(view(c, l->id()).blacklisted);
  ASSERT_TRUE(eventually([&] { return !connected(c, l->id()); }, 10s))
      << "C kept the blacklisted peer's connection";
  EXPECT_GE(stats(c).disconnects, 1u);

  // L dials again: C closes the new connection too.
  const uint64_t closed = stats(c).disconnects;
  const core::Multiaddr addr = c->listen_addrs()[0];  // dial keeps a reference
  (void)l.on_io<Result<identity::PeerId>>([&]() { return l->host().dial(addr); });
  EXPECT_TRUE(eventually([&] { return stats(c).disconnects > closed; }, 10s))
      << "C never closed L's new connection";
  EXPECT_TRUE(eventually([&] { return !connected(c, l->id()); }, 10s));
  EXPECT_EQ(stats(c).admitted, 0u);
}

identity::PeerId some_peer(uint8_t seed) {
  return identity::PeerId::from_public_key(
      identity::KeyPair::from_seed(Bytes(32, seed))->public_key());
}

client::PeerReport report(const identity::PeerId& peer, std::vector<client::PeerReport::Vote> v) {
  client::PeerReport r{peer, client::PeerReport::Outcome::kRunning, "", 0, 0, 0, std::nullopt, {}};
  r.outcome = client::PeerReport::Outcome::kAnswered;
  r.answers = v.size();
  r.votes = std::move(v);
  return r;
}

client::Summary answered_by(const identity::PeerId& peer, uint32_t exit, int cls) {
  client::Summary s;
  s.status = Status::ok();
  s.best = client::Event{peer,
                         exit,
                         core::Tensor::f32({3}, std::vector<float>{0, 0, 1}),
                         1.0f,
                         0.0f,
                         10,
                         /*final_from_peer=*/true,
                         false,
                         {},
                         cls};
  s.peers.push_back(report(peer, {{exit, cls}}));
  return s;
}

// The suspicious half (no challenge drawn: challenge_rate 0): a fan-out peer whose answer
// disagrees with the majority at the same exit, and a peer whose final answer to an input
// disagrees with what a quorum of peers answered to it, are counted, not punished.
TEST(Challenges, AnswersAgainstTheMajorityAreCountedAsSuspicious) {
  RunningNode n(config({}));
  ASSERT_TRUE(n);
  const auto a = some_peer(1), b = some_peer(2), odd = some_peer(3);
  const core::Tensor x = core::Tensor::f32({1, 4}, std::vector<float>{1, 2, 3, 4});
  auto challenger = std::make_shared<Challenger>(
      std::shared_ptr<SwapAgent>(n->swap(), [](SwapAgent*) {}),
      [] { return Result<LocalAnswer>(Status::not_found("no package")); }, [] { return 0.5; });
  n.on_io<int>([&]() -> p2p::awaitable<int> {
    // One fan-out request: at exit 0 two peers said 4, one said 6.
    client::Summary fan;
    fan.status = Status::ok();
    fan.peers = {report(a, {{0, 4}, {1, 4}}), report(b, {{0, 4}}), report(odd, {{0, 6}})};
    challenger->on_complete(x, fan);
    // The same input later, answered finally by one peer each time: a and b agree, odd not.
    challenger->on_complete(x, answered_by(a, 1, 4));
    challenger->on_complete(x, answered_by(odd, 1, 6));
    challenger->on_complete(x, answered_by(b, 1, 4));
    co_return 0;
  });
  EXPECT_EQ(view(n, odd).suspicious, 2u);
  EXPECT_EQ(view(n, a).suspicious, 0u);
  EXPECT_EQ(view(n, b).suspicious, 0u);
  EXPECT_EQ(view(n, odd).state, swap::PeerState::kClose) << "suspicion is not punished";
  EXPECT_EQ(view(n, odd).challenges_failed, 0u);
  EXPECT_EQ(challenger->stats().suspicious, 2u);
  EXPECT_EQ(challenger->stats().sent, 0u);
}

// Where a challenge's known answer comes from: the node's own package first; without one, an
// input a quorum of peers answered alike; with neither, no challenge. (The peers here are not
// connected: a challenge sent to them just fails to open, which is not a verdict.)
TEST(Challenges, TheKnownAnswerComesFromTheOwnPackageElseFromAnswersPeersAgreedOn) {
  Config cfg = config({});
  cfg.swap.params.challenge_rate = 1.0;
  RunningNode n(cfg);
  ASSERT_TRUE(n);
  const auto a = some_peer(1), b = some_peer(2);
  const core::Tensor x = core::Tensor::f32({1, 4}, std::vector<float>{1, 2, 3, 4});
  const auto sid = core::Multihash::sha2_256(Bytes{1, 2, 3});
  auto with_loader = [&](std::function<Result<LocalAnswer>()> load) {
    return std::make_shared<Challenger>(std::shared_ptr<SwapAgent>(n->swap(), [](SwapAgent*) {}),
                                        std::move(load), [] { return 0.0; });
  };
  std::shared_ptr<client::Session> keep;  // sends the challenges
  auto run = [&](std::shared_ptr<Challenger> c, std::vector<client::Summary> summaries) {
    n.on_io<int>([&]() -> p2p::awaitable<int> {
      keep = n->session(sid);
      c->bind(keep);
      for (const auto& s : summaries) c->on_complete(x, s);
      co_return 0;
    });
  };
  auto settled = [&](const std::shared_ptr<Challenger>& c, uint64_t drawn) {
    return eventually(
        [&] {
          return n.on_io<bool>([&]() -> p2p::awaitable<bool> {
            const auto& st = c->stats();
            co_return st.from_local + st.from_agreed + st.no_known_answer == drawn;
          });
        },
        10s);
  };
  auto no_package = [] { return Result<LocalAnswer>(Status::not_found("no package")); };

  // No package, one peer's word only: nothing to challenge with.
  auto c1 = with_loader(no_package);
  run(c1, {answered_by(a, 1, 4)});
  ASSERT_TRUE(settled(c1, 1));
  EXPECT_EQ(c1->stats().no_known_answer, 1u);
  EXPECT_EQ(c1->stats().sent, 0u);

  // No package, but a and b agreed on x: x is sent as a challenge with their answer.
  auto c2 = with_loader(no_package);
  run(c2, {answered_by(a, 1, 4)});
  ASSERT_TRUE(settled(c2, 1));
  run(c2, {answered_by(b, 1, 4)});
  ASSERT_TRUE(settled(c2, 2));
  EXPECT_EQ(c2->stats().from_agreed, 1u) << "the first request had no agreed answer yet";
  EXPECT_EQ(c2->stats().no_known_answer, 1u);
  EXPECT_EQ(c2->stats().sent, 1u);

  // Our own package answers first, whatever peers agreed on.
  int local_runs = 0;
  auto c3 = with_loader([&]() -> Result<LocalAnswer> {
    return LocalAnswer([&](const core::Tensor& in) -> Result<std::optional<client::KnownAnswer>> {
      ++local_runs;
      EXPECT_EQ(in, x) << "the request's own input is checked";
      client::KnownAnswer k;
      k.predicted = 4;
      return std::optional<client::KnownAnswer>(k);
    });
  });
  run(c3, {answered_by(a, 1, 4), answered_by(b, 1, 4)});
  ASSERT_TRUE(settled(c3, 2));
  EXPECT_EQ(c3->stats().from_local, 2u);
  EXPECT_EQ(c3->stats().from_agreed, 0u);
  EXPECT_EQ(local_runs, 2);
}

// Probation ([swap] probation_challenges), no challenges at random: C challenges an honest
// provider's answers until it has passed 2 challenges (one in flight at a time), then none;
// a liar is caught on its first answer.
Config probation_config() {
  Config c = challenger_config(swap::ChallengeFailure::kIgnore);
  c.swap.params.challenge_rate = 0;
  c.swap.params.probation_challenges = 2;
  return c;
}

TEST(Challenges, ProbationChallengesANewProviderUntilItPassesThenStops) {
  Pair net;
  ASSERT_NO_FATAL_FAILURE(start_pair(net, probation_config(), /*lying=*/false));
  RunningNode &c = *net.c, &p = *net.p;
  auto sc = session(c, *net.sid);
  int requests = 0;
  auto ask = [&] {
    auto got = client::infer_blocking(*sc, net.images[requests % net.images.size()]);
    ++requests;
    return got.ok();
  };
  ASSERT_TRUE(eventually([&] { return ask() && view(c, p->id()).challenges_passed >= 2; }))
      << view(c, p->id()).challenges_passed << " passed after " << requests << " requests";
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(ask());
  // Exactly the two challenges: every request and challenge is receipted once.
  ASSERT_TRUE(eventually([&] { return stats(c).receipts_out == uint64_t(requests) + 2; }))
      << stats(c).receipts_out << " receipts for " << requests << " requests";
  EXPECT_EQ(view(c, p->id()).challenges_passed, 2u);
  EXPECT_EQ(view(c, p->id()).challenges_failed, 0u);
}

TEST(Challenges, ProbationCatchesALiarOnItsFirstAnswer) {
  Pair net;
  ASSERT_NO_FATAL_FAILURE(start_pair(net, probation_config(), /*lying=*/true));
  RunningNode &c = *net.c, &l = *net.p;
  auto sc = session(c, *net.sid);
  ASSERT_TRUE(client::infer_blocking(*sc, net.images[0]).ok());
  ASSERT_TRUE(eventually([&] { return view(c, l->id()).challenges_failed == 1; }));
  EXPECT_EQ(view(c, l->id()).state, swap::PeerState::kIgnore);
  EXPECT_EQ(view(c, l->id()).challenges_passed, 0u);
}

}  // namespace
}  // namespace idn::node
