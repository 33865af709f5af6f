// ComputeSwap on four real nodes on 127.0.0.1: a provider P hosts the tiny B-LeNet; a consumer
// C only asks, so P refuses it more as its debt grows, at the rate p(r) predicts; a peer T on
// P's trusted list is never refused however deep its debt; a peer B on P's blacklist has its
// connections closed and gets no answer. Both sides' ledgers agree through receipts.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <vector>

#include "client/blocking.h"
#include "node/model_host.h"
#include "node/node_test_util.h"
#include "node/swap_agent.h"
#include "routing/dht_routing.h"
#include "serve/infer_server.h"
#include "support/tiny_model.h"
#include "swap/strategy.h"

namespace idn::node {
namespace {

using namespace std::chrono_literals;
using testing::RunningNode;

Config config(const std::vector<core::Multiaddr>& boot) {
  return testing::peer_config(boot);
}

std::unique_ptr<RunningNode> start(Config c, const identity::KeyPair& key) {
  auto n = Node::create(std::move(c), key);
  EXPECT_TRUE(n.ok()) << n.status().to_string();
  if (!n.ok()) return nullptr;
  return std::make_unique<RunningNode>(std::move(*n));
}

// P's view of `peer`, read on P's io thread.
swap::PeerSnapshot view(RunningNode& p, const identity::PeerId& peer) {
  return p.on_io<swap::PeerSnapshot>([&]() -> p2p::awaitable<swap::PeerSnapshot> {
    co_return p->swap()->swap().snapshot(peer.bytes());
  });
}

SwapAgentStats stats(RunningNode& n) {
  return n.on_io<SwapAgentStats>(
      [&]() -> p2p::awaitable<SwapAgentStats> { co_return n->swap()->stats(); });
}

std::shared_ptr<client::Session> session(RunningNode& n, const core::Multihash& sid) {
  client::SessionOptions o;
  o.deadline = 10s;
  return n.on_io<std::shared_ptr<client::Session>>(
      [&]() -> p2p::awaitable<std::shared_ptr<client::Session>> { co_return n->session(sid, o); });
}

bool wait_for_provider(RunningNode& n, const core::Multihash& sid) {
  auto until = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < until) {
    auto found = n.on_io<Result<std::vector<identity::PeerId>>>(
        [&]() { return n->models().providers(sid, 1, {}); });
    if (found.ok() && !found->empty()) return true;
  }
  return false;
}

TEST(Swap, ConsumerIsRefusedAsPredictedTrustedNeverBlacklistedClosed) {
  const auto pkg = idn::testing::tiny_package("b-lenet");
  auto images = motifs::to_samples(idn::testing::tiny_data().test.x);
  auto kc = identity::KeyPair::generate(), kt = identity::KeyPair::generate(),
       kb = identity::KeyPair::generate(), kp = identity::KeyPair::generate();
  ASSERT_TRUE(kc.ok() && kt.ok() && kb.ok() && kp.ok());
  const auto idc = identity::PeerId::from_public_key(kc->public_key());
  const auto idt = identity::PeerId::from_public_key(kt->public_key());
  const auto idb = identity::PeerId::from_public_key(kb->public_key());

  // P serves a stranger for 20 MFLOPs (a handful of tiny-model requests) before p(r) falls;
  // no ignore period, so each request of C meets p(r) afresh and the refusal rate is p's.
  constexpr uint64_t kGrace = 20'000'000;
  Config pc = config({});
  pc.swap.params.grace_ops = kGrace;
  pc.swap.params.ignore_period_s = 0;
  pc.swap.params.m = 4;
  pc.swap.params.n = 2;
  pc.swap.params.trusted = {idt.bytes()};
  pc.swap.params.blacklist = {idb.bytes()};
  auto p = start(pc, *kp);
  ASSERT_TRUE(p);
  auto boot = (*p)->listen_addrs();
  auto pub = p->on_io<Result<Published>>([&]() { return (*p)->models().publish(pkg, "test"); });
  ASSERT_TRUE(pub.ok()) << pub.status().to_string();
  const core::Multihash sid = pub->service_id;

  // C expects no ignore period either (a requester skips a provider that refused it for its
  // own T_g), so every request of C reaches P.
  Config cc = config(boot);
  cc.swap.params.ignore_period_s = 0;
  auto c = start(cc, *kc);
  auto t = start(config(boot), *kt);
  ASSERT_TRUE(c && t);
  for (auto* n : {c.get(), t.get()}) {
    ASSERT_TRUE((*n)->routing()->wait_connected(20s).is_ok());
    ASSERT_TRUE(wait_for_provider(*n, sid));
  }

  // ---- C only consumes: served while r <= 1, refused at p(r)'s rate, then always ----
  auto sc = session(*c, sid);
  const swap::StrategyParams params{.m = 4, .n = 2};
  double expected_refusals = 0, variance = 0;
  int refused_mid = 0, mid = 0, served_low = 0, low = 0, high = 0, refused_high = 0;
  uint64_t refused_before = stats(*p).refused;
  for (size_t i = 0; i < 600 && high < 20; ++i) {
    const double r = view(*p, idc).r;
    const double pr = swap::service_probability(r, params);
    auto got = client::infer_blocking(*sc, images[i % images.size()]);
    const uint64_t refused_now = stats(*p).refused;
    const bool refused = refused_now > refused_before;
    refused_before = refused_now;
    EXPECT_EQ(refused, !got.ok()) << "request " << i << ": "
                                  << (got.ok() ? "answered" : got.status().to_string());
    if (r <= 1) {
      ++low;
      served_low += !refused;
    } else if (r >= params.m) {
      ++high;
      refused_high += refused;
    } else {
      ++mid;
      refused_mid += refused;
      expected_refusals += 1 - pr;
      variance += pr * (1 - pr);
    }
  }
  EXPECT_GT(low, 0);
  EXPECT_EQ(served_low, low) << "a peer within its grace (r <= 1) must always be served";
  EXPECT_EQ(high, 20) << "C never reached r >= m";
  EXPECT_EQ(refused_high, high) << "beyond r = m p(r) = 0";
  EXPECT_GE(mid, 10);
  // The refusals between r = 1 and r = m follow p(r): within 4 standard deviations of the sum
  // of Bernoulli(1 - p(r_i)) the strategy promises (plus one for the discreteness).
  EXPECT_NEAR(refused_mid, expected_refusals, 4 * std::sqrt(variance) + 1)
      << mid << " requests with 1 < r < m";
  std::printf(
      "consumer: %d requests at r <= 1 (all served), %d at 1 < r < m: %d refused, "
      "p(r) predicts %.1f +- %.1f; %d at r >= m (all refused)\n",
      low, mid, refused_mid, expected_refusals, std::sqrt(variance), high);

  // Receipts: C's ledger and P's agree on what C owes once the receipts have arrived.
  auto until = std::chrono::steady_clock::now() + 10s;
  swap::PeerSnapshot pv, cv;
  while (std::chrono::steady_clock::now() < until) {
    pv = view(*p, idc);
    cv = view(*c, (*p)->id());
    if (pv.pending_ops == 0 && pv.credit == cv.debt && pv.debt == cv.credit) break;
  }
  EXPECT_EQ(pv.pending_ops, 0u);
  EXPECT_EQ(pv.unpaid_ops, 0u);
  EXPECT_GT(pv.debt, 0u);
  EXPECT_EQ(pv.debt, cv.credit) << "P: C owes " << pv.debt << ", C: it owes " << cv.credit;
  EXPECT_EQ(pv.credit, cv.debt);

  // ---- T is trusted: never refused, even far beyond r = m ----
  auto st = session(*t, sid);
  uint64_t p_refused = stats(*p).refused;
  size_t asked = 0;
  for (; asked < 1000 && view(*p, idt).r <= params.m + 1; ++asked) {
    auto got = client::infer_blocking(*st, images[asked % images.size()]);
    ASSERT_TRUE(got.ok()) << "trusted request " << asked << ": " << got.status().to_string();
  }
  EXPECT_EQ(stats(*p).refused, p_refused);
  EXPECT_GT(view(*p, idt).r, params.m + 1)
      << "after " << asked << " requests T's debt should be beyond where strangers stop";

  // ---- B is blacklisted: P closes its connection as soon as it is up, every time ----
  auto b = start(config(boot), *kb);
  ASSERT_TRUE(b);
  uint64_t disconnects = stats(*p).disconnects;
  until = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < until && stats(*p).disconnects == disconnects) {
  }
  EXPECT_GT(stats(*p).disconnects, disconnects) << "P never closed the blacklisted peer";
  // B dials again: the new connection is closed too.
  (void)b->on_io<Result<identity::PeerId>>([&]() { return (*b)->host().dial(boot[0]); });
  until = std::chrono::steady_clock::now() + 10s;
  bool connected = true;
  while (std::chrono::steady_clock::now() < until && connected) {
    connected =
        p->on_io<bool>([&]() -> p2p::awaitable<bool> { co_return (*p)->host().is_connected(idb); });
  }
  EXPECT_FALSE(connected) << "a blacklisted peer's new connection must be closed";
}

// §7.5.3.4: a peer silent for T_c is closed (final = false). Our swap stream to it ends with the
// Close, so the connection then carries no stream and the host's idle sweep may close it.
// A requester's receipts leave only once its ledger has committed them, together, in one
// Receipts message on the swap stream; the request streams carry none.
TEST(Swap, ReceiptsLeaveInOneBatchOnlyAfterTheRequestersCommit) {
  const auto pkg = idn::testing::tiny_package("b-lenet");
  auto images = motifs::to_samples(idn::testing::tiny_data().test.x);
  RunningNode p(config({}));
  ASSERT_TRUE(p);
  auto pub = p.on_io<Result<Published>>([&]() { return p->models().publish(pkg, "test"); });
  ASSERT_TRUE(pub.ok()) << pub.status().to_string();
  Config cc = config(p->listen_addrs());
  cc.swap.params.commit_interval_ms = 60'000;  // no commit but the one this test asks for
  cc.swap.params.receipt_timeout_ms = 120'000;
  RunningNode c(cc);
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->routing()->wait_connected(20s).is_ok());
  ASSERT_TRUE(wait_for_provider(c, pub->service_id));
  auto s = session(c, pub->service_id);
  constexpr uint64_t kRequests = 3;
  uint64_t ops = 0;
  for (uint64_t i = 0; i < kRequests; ++i) {
    auto got = client::infer_blocking(*s, images[i]);
    ASSERT_TRUE(got.ok()) << got.status().to_string();
    ops += got->operations;  // the final answer's: what its receipt confirms
  }
  // P charges each request once its answer has left (after C may already hold it).
  auto until = std::chrono::steady_clock::now() + 10s;
  while (view(p, c->id()).pending_ops < ops && std::chrono::steady_clock::now() < until) {
  }
  EXPECT_EQ(view(p, c->id()).pending_ops, ops);  // P's charges wait for the receipts
  EXPECT_EQ(stats(c).receipts_out, kRequests);
  EXPECT_EQ(stats(c).receipt_batches_out, 0u);  // not committed: nothing left
  EXPECT_EQ(stats(p).receipts_in, 0u);

  c.on_io<bool>([&]() -> p2p::awaitable<bool> {
    c->swap()->commit_now();
    co_return true;
  });
  until = std::chrono::steady_clock::now() + 10s;
  while (stats(p).receipts_in < kRequests && std::chrono::steady_clock::now() < until) {
  }
  EXPECT_EQ(stats(p).receipts_in, kRequests);
  EXPECT_EQ(stats(c).receipt_batches_out, 1u);
  const swap::PeerSnapshot pv = view(p, c->id()), cv = view(c, p->id());
  EXPECT_EQ(pv.pending_ops, 0u);
  EXPECT_EQ(pv.debt, ops);
  EXPECT_EQ(cv.credit, ops);  // C's view: P's credit is what C owes it
  EXPECT_EQ(pv.sequence, kRequests);
  EXPECT_EQ(cv.sequence, kRequests);
  // The provider's InferServer saw no receipt on any request stream.
  EXPECT_EQ(p.on_io<uint64_t>(
                [&]() -> p2p::awaitable<uint64_t> { co_return p->server().stats().receipts; }),
            0u);
}

// A provider's have list names what it hosts; a consumer connected to it asks it without a DHT
// lookup (here there is no DHT at all, so only the have list can name it).
TEST(Swap, AConnectedProviderIsFoundFromItsHaveListWithoutTheDht) {
  const auto pkg = idn::testing::tiny_package("b-lenet");
  auto images = motifs::to_samples(idn::testing::tiny_data().test.x);
  Config pc = config({});
  pc.dht.enabled = false;
  RunningNode p(pc);
  ASSERT_TRUE(p);
  auto pub = p.on_io<Result<Published>>([&]() { return p->models().publish(pkg, "test"); });
  ASSERT_TRUE(pub.ok()) << pub.status().to_string();
  Config cc = config(p->listen_addrs());
  cc.dht.enabled = false;
  RunningNode c(cc);
  ASSERT_TRUE(c);
  auto hosting = [&] {
    return c.on_io<std::vector<identity::PeerId>>(
        [&]() -> p2p::awaitable<std::vector<identity::PeerId>> {
          co_return c->swap()->peers_hosting(pub->service_id);
        });
  };
  auto until = std::chrono::steady_clock::now() + 20s;
  while (hosting().empty() && std::chrono::steady_clock::now() < until) {
  }
  ASSERT_EQ(hosting(), std::vector<identity::PeerId>{p->id()});
  const swap::PeerSnapshot cv = view(c, p->id());
  EXPECT_EQ(cv.have_list, std::vector<Bytes>{pub->service_id.bytes()});
  auto s = session(c, pub->service_id);
  auto got = client::infer_blocking(*s, images[0]);
  ASSERT_TRUE(got.ok()) << got.status().to_string();
  EXPECT_EQ(got->peer, p->id());
  // A service nobody announced is still looked up, and without a DHT that fails clearly.
  auto other = core::Multihash::sha2_256(as_bytes(std::string_view("no such service")));
  auto none = client::infer_blocking(*session(c, other), images[0]);
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("without a DHT"), std::string::npos)
      << none.status().to_string();
}

TEST(Swap, AnIdlePeerIsClosedAndItsConnectionThenGoesIdle) {
  auto quiet = [](Config c) {
    c.swap.params.idle_close_s = 1;
    c.limits.idle_timeout = 1500ms;
    return c;
  };
  RunningNode a(quiet(config({})));
  ASSERT_TRUE(a);
  RunningNode b(quiet(config(a->listen_addrs())));
  ASSERT_TRUE(b);
  auto connected = [&] {
    return a.on_io<bool>(
        [&]() -> p2p::awaitable<bool> { co_return a->host().is_connected(b->id()); });
  };
  auto until = std::chrono::steady_clock::now() + 10s;
  while (!connected() && std::chrono::steady_clock::now() < until) {
  }
  ASSERT_TRUE(connected());
  until = std::chrono::steady_clock::now() + 20s;
  uint64_t closed = 0;
  while (closed == 0 && std::chrono::steady_clock::now() < until) {
    closed = a.on_io<uint64_t>(
        [&]() -> p2p::awaitable<uint64_t> { co_return a->host().stats().connections_closed; });
  }
  EXPECT_GE(closed, 1u) << "the idle connection was never closed (a swap stream kept it busy?) "
                        << a->host().stats().streams_active << " streams, state "
                        << swap::peer_state_name(view(a, b->id()).state);
  EXPECT_EQ(view(a, b->id()).state, swap::PeerState::kClose);
}

}  // namespace
}  // namespace idn::node
