// ComputeSwap's peer state machine (§7.5.3, Fig. 7.2) driven by a manual clock and a scripted
// RNG: Open -> Online, ignore periods that expire, idle close, shutdown, trusted and
// blacklisted peers, refusals that follow p(r), receipts and checkpoints, challenges.
#include "swap/swap.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <deque>
#include <random>

#include "identity/peer_id.h"
#include "swap_test_util.h"

namespace idn::swap {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

using testing::key;

using testing::id_of;

const Bytes kService{0x12, 0x20, 9};

// One node's ComputeSwap with a clock the test moves and draws the test chooses.
struct Node {
  Node(const fs::path& dir, const identity::KeyPair& k, ManualClock& clock, Config config = {})
      : key(k), id(id_of(k)) {
    auto s = ComputeSwap::open(config, key, dir / "ledgers.sqlite", clock, [this] {
      if (draws.empty()) return 0.0;
      double d = draws.front();
      draws.pop_front();
      return d;
    });
    EXPECT_TRUE(s.ok()) << s.status().to_string();
    swap = std::move(*s);
  }
  identity::KeyPair key;
  Bytes id;
  std::deque<double> draws;
  std::unique_ptr<ComputeSwap> swap;
};

template <class T>
std::vector<T> of_kind(const std::vector<Action>& actions) {
  std::vector<T> out;
  for (const auto& a : actions) {
    if (auto* x = std::get_if<T>(&a)) out.push_back(*x);
  }
  return out;
}

template <class M>
std::vector<M> messages(const std::vector<Action>& actions) {
  std::vector<M> out;
  for (const auto& s : of_kind<SendSwap>(actions)) {
    if (auto* m = std::get_if<M>(&s.message)) out.push_back(*m);
  }
  return out;
}

class SwapTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("idn_swap_" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + "_" +
            std::to_string(::getpid()));
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Connects a and b and delivers their Opens to each other: both end Online.
  void bring_online(Node& a, Node& b) {
    a.swap->on_connected(b.id);
    b.swap->on_connected(a.id);
    auto oa = messages<protocol::SwapOpen>(a.swap->take_actions());
    auto ob = messages<protocol::SwapOpen>(b.swap->take_actions());
    ASSERT_EQ(oa.size(), 1u);
    ASSERT_EQ(ob.size(), 1u);
    ASSERT_TRUE(b.swap->accept_message(a.id));
    EXPECT_EQ(b.swap->on_open(a.id, oa[0]), ComputeSwap::OpenResult::kOnline);
    ASSERT_TRUE(a.swap->accept_message(b.id));
    EXPECT_EQ(a.swap->on_open(b.id, ob[0]), ComputeSwap::OpenResult::kOnline);
  }

  // `requester` is served by `provider` once: admission, answer, receipt both ways.
  Admit serve_once(Node& provider, Node& requester, uint64_t request_id, uint64_t ops) {
    Admit admit = provider.swap->on_request(requester.id, kService, request_id);
    if (!admit.serve) return admit;
    EXPECT_TRUE(provider.swap->on_answered(requester.id, request_id, kService, ops).is_ok());
    auto r = requester.swap->make_receipt(provider.id, request_id, kService, ops);
    EXPECT_TRUE(requester.swap->on_receipt(provider.id, r).is_ok());
    EXPECT_TRUE(provider.swap->on_receipt(requester.id, r).is_ok());
    return admit;
  }

  fs::path dir_;
  ManualClock clock_;
  identity::KeyPair ka = key(1), kb = key(2), kc = key(3);
};

TEST_F(SwapTest, OpenWithEqualLedgersGoesOnlineAndSendsLists) {
  Node a(dir_ / "a", ka, clock_), b(dir_ / "b", kb, clock_);
  a.swap->set_have_list({kService});
  a.swap->on_connected(b.id);
  auto acts = a.swap->take_actions();
  auto opens = messages<protocol::SwapOpen>(acts);
  ASSERT_EQ(opens.size(), 1u);
  EXPECT_EQ(opens[0].ledger.sequence, 0u);
  EXPECT_EQ(a.swap->snapshot(b.id).state, PeerState::kOpen);
  b.swap->on_connected(a.id);
  (void)b.swap->take_actions();
  EXPECT_EQ(b.swap->on_open(a.id, opens[0]), ComputeSwap::OpenResult::kOnline);
  EXPECT_EQ(b.swap->snapshot(a.id).state, PeerState::kOnline);
  auto b_acts = b.swap->take_actions();
  EXPECT_EQ(messages<protocol::NeedList>(b_acts).size(), 1u);
  EXPECT_EQ(messages<protocol::HaveList>(b_acts).size(), 1u);
  // b stores a's have list when it arrives.
  b.swap->on_have_list(a.id, protocol::HaveList{{kService}});
  EXPECT_EQ(b.swap->snapshot(a.id).have_list, std::vector<Bytes>{kService});
}

TEST_F(SwapTest, ListsAreResentOnChangeAndPeriodically) {
  Config cfg;
  cfg.list_refresh_s = 60;
  Node a(dir_ / "a", ka, clock_, cfg), b(dir_ / "b", kb, clock_, cfg);
  bring_online(a, b);
  (void)a.swap->take_actions();
  a.swap->set_need_list({kService});
  EXPECT_EQ(messages<protocol::NeedList>(a.swap->take_actions()).size(), 1u);
  a.swap->set_need_list({kService});  // unchanged: nothing sent
  EXPECT_TRUE(a.swap->take_actions().empty());
  // A new count is a change: sent with the counts, which the receiver keeps with the list.
  a.swap->set_need_list({kService}, {5});
  auto sent = messages<protocol::NeedList>(a.swap->take_actions());
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].counts, std::vector<uint32_t>{5});
  b.swap->on_need_list(a.id, sent[0]);
  EXPECT_EQ(b.swap->snapshot(a.id).need_counts, std::vector<uint32_t>{5});
  b.swap->on_have_list(a.id, protocol::HaveList{{kService}});
  EXPECT_EQ(b.swap->have_counts().at(kService), 1u);
  a.swap->set_need_list({kService});  // back to no counts (1 each): a change too
  EXPECT_EQ(messages<protocol::NeedList>(a.swap->take_actions()).size(), 1u);
  // The refresh period is drawn in [0.5, 1.5] x 60 s (draws are 0 here: 30 s).
  clock_.advance(29s);
  a.swap->accept_message(b.id);
  a.swap->tick();
  EXPECT_TRUE(messages<protocol::HaveList>(a.swap->take_actions()).empty());
  clock_.advance(2s);
  a.swap->accept_message(b.id);
  a.swap->tick();
  EXPECT_EQ(messages<protocol::HaveList>(a.swap->take_actions()).size(), 1u);
}

TEST_F(SwapTest, IdleCloseAfterTcKeepsTheLedgerAndAllowsReopen) {
  Config cfg;
  cfg.idle_close_s = 10;
  cfg.list_refresh_s = 1000;
  Node a(dir_ / "a", ka, clock_, cfg), b(dir_ / "b", kb, clock_, cfg);
  bring_online(a, b);
  ASSERT_TRUE(serve_once(a, b, 1, 500).serve);
  (void)a.swap->take_actions();
  clock_.advance(9s);
  a.swap->tick();
  EXPECT_EQ(a.swap->snapshot(b.id).state, PeerState::kOnline);
  clock_.advance(1s);
  a.swap->tick();
  auto closes = messages<protocol::SwapClose>(a.swap->take_actions());
  ASSERT_EQ(closes.size(), 1u);
  EXPECT_FALSE(closes[0].final);
  PeerSnapshot s = a.swap->snapshot(b.id);
  EXPECT_EQ(s.state, PeerState::kClose);
  EXPECT_TRUE(s.have_list.empty());
  EXPECT_EQ(s.debt, 500u);  // cleared except the ledger
  // b may reopen at once; the ledgers still agree, so both go Online again.
  b.swap->on_close(a.id, false);
  bring_online(a, b);
  EXPECT_EQ(a.swap->snapshot(b.id).state, PeerState::kOnline);
}

// §7.5.3.5: an Online peer closes after T_c without any message from the other. Messages of
// any kind (its periodic lists included) keep it Online, and so does a receipt either way; a
// peer that only listens to its peers' need lists (the ISE of a node hosting nothing) keeps
// hearing them.
TEST_F(SwapTest, AnyMessageOrReceiptKeepsAPeerOnlineAndSilenceClosesIt) {
  Config cfg;
  cfg.idle_close_s = 10;
  cfg.list_refresh_s = 1000;
  Node a(dir_ / "a", ka, clock_, cfg), b(dir_ / "b", kb, clock_, cfg);
  bring_online(a, b);
  ASSERT_TRUE(serve_once(a, b, 1, 500).serve);  // a receipt on each side
  for (int s = 0; s < 3; ++s) {                 // 27 s: a list from b every 9 s
    clock_.advance(9s);
    ASSERT_TRUE(a.swap->accept_message(b.id));
    a.swap->tick();
  }
  EXPECT_EQ(a.swap->snapshot(b.id).state, PeerState::kOnline);
  clock_.advance(9s);
  ASSERT_TRUE(serve_once(b, a, 2, 500).serve);  // b serves a: a's receipt counts too
  clock_.advance(9s);
  a.swap->tick();
  EXPECT_EQ(a.swap->snapshot(b.id).state, PeerState::kOnline);
  (void)a.swap->take_actions();
  clock_.advance(1s);  // 10 s of silence
  a.swap->tick();
  EXPECT_EQ(messages<protocol::SwapClose>(a.swap->take_actions()).size(), 1u);
  EXPECT_EQ(a.swap->snapshot(b.id).state, PeerState::kClose);
}

TEST_F(SwapTest, ShutdownSendsFinalCloseAndACheckpointProposal) {
  Node a(dir_ / "a", ka, clock_), b(dir_ / "b", kb, clock_);
  bring_online(a, b);
  ASSERT_TRUE(serve_once(a, b, 1, 500).serve);
  (void)a.swap->take_actions();
  a.swap->shutdown();
  auto acts = a.swap->take_actions();
  auto closes = messages<protocol::SwapClose>(acts);
  ASSERT_EQ(closes.size(), 1u);
  EXPECT_TRUE(closes[0].final);
  auto cps = of_kind<SendCheckpoint>(acts);
  ASSERT_EQ(cps.size(), 1u);
  // b countersigns; a stores the full checkpoint it gets back.
  ASSERT_TRUE(b.swap->on_checkpoint(a.id, cps[0].checkpoint).is_ok());
  auto back = of_kind<SendCheckpoint>(b.swap->take_actions());
  ASSERT_EQ(back.size(), 1u);
  EXPECT_TRUE(back[0].checkpoint.fully_signed());
  ASSERT_TRUE(a.swap->on_checkpoint(b.id, back[0].checkpoint).is_ok());
  EXPECT_EQ(a.swap->snapshot(b.id).checkpoint_sequence, 1u);
  EXPECT_EQ(b.swap->snapshot(a.id).checkpoint_sequence, 1u);
}

// An idle close signs a checkpoint only over close_checkpoint_min new receipts: fewer ride in
// the next Open's evidence instead of costing four signature operations.
TEST_F(SwapTest, IdleCloseSignsACheckpointOnlyOverEnoughNewReceipts) {
  Config cfg;
  cfg.idle_close_s = 10;
  cfg.close_checkpoint_min = 3;
  Node b(dir_ / "b", kb, clock_, cfg);
  cfg.trusted = {b.id};  // every request is served
  Node a(dir_ / "a", ka, clock_, cfg);
  auto idle_close = [&] {
    clock_.advance(10s);
    a.swap->tick();
    auto acts = a.swap->take_actions();
    EXPECT_EQ(messages<protocol::SwapClose>(acts).size(), 1u);
    b.swap->on_close(a.id, false);
    return of_kind<SendCheckpoint>(acts).size();
  };
  bring_online(a, b);
  for (uint64_t i = 1; i <= 2; ++i) ASSERT_TRUE(serve_once(a, b, i, 10).serve);
  EXPECT_EQ(idle_close(), 0u);  // 2 new receipts
  bring_online(a, b);
  ASSERT_TRUE(serve_once(a, b, 3, 10).serve);
  EXPECT_EQ(idle_close(), 1u);  // 3 since the last checkpoint (none yet)
}

TEST_F(SwapTest, CheckpointEveryNReceiptsAndTamperedProposalsAreRefused) {
  Config cfg;
  cfg.checkpoint_every = 3;
  Node b(dir_ / "b", kb, clock_, cfg);
  cfg.trusted = {b.id};  // b only consumes here: trusted, so every request is served
  Node a(dir_ / "a", ka, clock_, cfg);
  bring_online(a, b);
  (void)a.swap->take_actions();
  (void)b.swap->take_actions();
  for (uint64_t i = 1; i <= 2; ++i) ASSERT_TRUE(serve_once(a, b, i, 10).serve);
  EXPECT_TRUE(of_kind<SendCheckpoint>(a.swap->take_actions()).empty());
  ASSERT_TRUE(serve_once(a, b, 3, 10).serve);
  auto cps = of_kind<SendCheckpoint>(a.swap->take_actions());
  ASSERT_EQ(cps.size(), 1u);
  EXPECT_EQ(cps[0].checkpoint.ledger.sequence, 3u);
  // A proposal claiming another balance is not signed, nor is one a stranger signed.
  Checkpoint lie = cps[0].checkpoint;
  lie.ledger.debt1 += 1;
  lie.ledger.debt2 += 1;
  lie.sig1.clear();
  lie.sig2.clear();
  ASSERT_TRUE(sign_checkpoint(lie, ka).is_ok());
  EXPECT_EQ(b.swap->on_checkpoint(a.id, lie).code(), Code::kUnavailable);
  Checkpoint forged = cps[0].checkpoint;
  Bytes stranger_sig = kc.sign(checkpoint_signing_bytes(forged));
  (forged.sig1.empty() ? forged.sig2 : forged.sig1) = stranger_sig;
  EXPECT_EQ(b.swap->on_checkpoint(a.id, forged).code(), Code::kPeerMisbehaved);
  EXPECT_TRUE(b.swap->take_actions().empty());
  ASSERT_TRUE(b.swap->on_checkpoint(a.id, cps[0].checkpoint).is_ok());
  EXPECT_EQ(b.swap->snapshot(a.id).checkpoint_sequence, 3u);
}

TEST_F(SwapTest, RefusalFollowsProbabilityAndStartsAnIgnorePeriod) {
  Config cfg;
  cfg.m = 4;
  cfg.n = 1;  // p(r) = 1 - (r - 1)/3
  cfg.ignore_period_s = 30;
  Node a(dir_ / "a", ka, clock_, cfg), b(dir_ / "b", kb, clock_, cfg);
  bring_online(a, b);
  // b consumed 2.5 ops per op it gave: r = 250 / (99 + 1) = 2.5, p = 0.5.
  ASSERT_TRUE(serve_once(b, a, 1, 99).serve);
  ASSERT_TRUE(serve_once(a, b, 1, 250).serve);
  PeerSnapshot s = a.swap->snapshot(b.id);
  EXPECT_DOUBLE_EQ(s.r, 2.5);
  EXPECT_NEAR(s.p, 0.5, 1e-12);
  a.draws = {0.49};  // below p: served
  EXPECT_TRUE(a.swap->on_request(b.id, kService, 2).serve);
  a.draws = {0.51};  // above p: refused, and ignored for T_g
  Admit no = a.swap->on_request(b.id, kService, 3);
  EXPECT_FALSE(no.serve);
  EXPECT_NE(no.reason.find("p(r) = 0.500"), std::string::npos) << no.reason;
  EXPECT_EQ(a.swap->snapshot(b.id).state, PeerState::kIgnore);
  // During T_g its messages are dropped and its requests refused without a draw.
  EXPECT_FALSE(a.swap->accept_message(b.id));
  a.draws = {0.0};
  EXPECT_FALSE(a.swap->on_request(b.id, kService, 4).serve);
  clock_.advance(29s);
  a.swap->tick();
  EXPECT_FALSE(a.swap->accept_message(b.id));
  clock_.advance(1s);
  a.swap->tick();
  EXPECT_EQ(a.swap->snapshot(b.id).state, PeerState::kOnline);
  EXPECT_TRUE(a.swap->accept_message(b.id));
  a.draws = {0.0};
  EXPECT_TRUE(a.swap->on_request(b.id, kService, 5).serve);
  EXPECT_EQ(a.swap->snapshot(b.id).refused, 2u);
}

TEST_F(SwapTest, MeasuredRefusalRateFollowsPOfR) {
  Config cfg;
  cfg.ignore_period_s = 0;  // every request faces a fresh draw
  Node a(dir_ / "a", ka, clock_, cfg), b(dir_ / "b", kb, clock_, cfg);
  ASSERT_TRUE(serve_once(b, a, 1, 99).serve);
  ASSERT_TRUE(serve_once(a, b, 1, 300).serve);  // r = 3
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> u(0, 1);
  int served = 0, n = 4000;
  for (int i = 0; i < n; ++i) {
    a.draws = {u(rng)};
    served += a.swap->on_request(b.id, kService, 100 + i).serve;
  }
  double p = service_probability(3.0, cfg.strategy());  // 0.770 for m = 4, n = 2
  // 4 standard deviations of a binomial proportion.
  EXPECT_NEAR(double(served) / n, p, 4 * std::sqrt(p * (1 - p) / n));
}

TEST_F(SwapTest, PendingAndUnpaidWorkCountsAgainstTheRequester) {
  Config cfg;
  cfg.receipt_timeout_ms = 1000;
  cfg.n = 1;
  Node a(dir_ / "a", ka, clock_, cfg), b(dir_ / "b", kb, clock_, cfg);
  ASSERT_TRUE(serve_once(b, a, 1, 99).serve);
  ASSERT_TRUE(a.swap->on_answered(b.id, 7, kService, 200).is_ok());  // no receipt (yet)
  EXPECT_EQ(a.swap->snapshot(b.id).debt, 200u);
  EXPECT_EQ(a.swap->snapshot(b.id).pending_ops, 200u);
  EXPECT_DOUBLE_EQ(a.swap->snapshot(b.id).r, 2.0);
  clock_.advance(1s);
  a.swap->tick();
  PeerSnapshot s = a.swap->snapshot(b.id);
  EXPECT_EQ(s.unpaid_ops, 200u);
  EXPECT_EQ(s.pending_ops, 0u);
  EXPECT_EQ(s.debt, 200u);    // the work stays on b's debt in a's view
  EXPECT_EQ(s.sequence, 1u);  // but not in the shared ledger
}

TEST_F(SwapTest, TrustedPeersAreAlwaysServed) {
  Config cfg;
  Node b(dir_ / "b", kb, clock_, cfg);
  cfg.trusted = {b.id};
  Node a(dir_ / "a", ka, clock_, cfg);
  ASSERT_TRUE(serve_once(a, b, 1, 1'000'000).serve);  // r = 10^6
  EXPECT_EQ(a.swap->snapshot(b.id).p, 1.0);
  for (int i = 0; i < 50; ++i) {
    a.draws = {0.999999};
    EXPECT_TRUE(a.swap->on_request(b.id, kService, 10 + i).serve);
  }
}

TEST_F(SwapTest, BlacklistedPeersAreNeverServedAndDisconnected) {
  Config cfg;
  Node b(dir_ / "b", kb, clock_, cfg);
  cfg.blacklist = {b.id};
  Node a(dir_ / "a", ka, clock_, cfg);
  a.swap->on_connected(b.id);
  auto acts = a.swap->take_actions();
  EXPECT_EQ(of_kind<Disconnect>(acts).size(), 1u);
  EXPECT_TRUE(messages<protocol::SwapOpen>(acts).empty());
  EXPECT_FALSE(a.swap->accept_message(b.id));
  a.draws = {0.0};
  Admit no = a.swap->on_request(b.id, kService, 1);
  EXPECT_FALSE(no.serve);
  EXPECT_EQ(no.reason, "blacklisted");
  EXPECT_EQ(a.swap->snapshot(b.id).p, 0.0);
  EXPECT_FALSE(a.swap->provider_score(b.id).has_value());
}

TEST_F(SwapTest, FailedChallengeIgnoresThenServesAgain) {
  Config cfg;
  cfg.ignore_period_s = 5;
  Node a(dir_ / "a", ka, clock_, cfg), b(dir_ / "b", kb, clock_, cfg);
  bring_online(a, b);
  a.swap->on_challenge_result(b.id, true);
  a.swap->on_challenge_result(b.id, false);
  PeerSnapshot s = a.swap->snapshot(b.id);
  EXPECT_EQ(s.challenges_passed, 1u);
  EXPECT_EQ(s.challenges_failed, 1u);
  EXPECT_EQ(s.state, PeerState::kIgnore);
  EXPECT_FALSE(a.swap->provider_score(b.id).has_value());
  EXPECT_FALSE(a.swap->on_request(b.id, kService, 1).serve);
  clock_.advance(5s);
  a.swap->tick();
  EXPECT_TRUE(a.swap->on_request(b.id, kService, 2).serve);
  EXPECT_TRUE(a.swap->provider_score(b.id).has_value());
}

TEST_F(SwapTest, FailedChallengeBlacklistsWhenConfigured) {
  Config cfg;
  cfg.on_challenge_failure = ChallengeFailure::kBlacklist;
  Node a(dir_ / "a", ka, clock_, cfg), b(dir_ / "b", kb, clock_, cfg);
  bring_online(a, b);
  (void)a.swap->take_actions();
  a.swap->on_challenge_result(b.id, false);
  EXPECT_EQ(of_kind<Disconnect>(a.swap->take_actions()).size(), 1u);
  EXPECT_TRUE(a.swap->snapshot(b.id).blacklisted);
  clock_.advance(1h);
  a.swap->tick();
  EXPECT_FALSE(a.swap->on_request(b.id, kService, 1).serve);
  a.swap->on_connected(b.id);  // new connections are refused too
  EXPECT_EQ(of_kind<Disconnect>(a.swap->take_actions()).size(), 2u);  // request + connect
}

TEST_F(SwapTest, ChallengesAreDrawnAtTheConfiguredRate) {
  Config cfg;
  cfg.challenge_rate = 0.25;
  Node a(dir_ / "a", ka, clock_, cfg);
  a.draws = {0.1, 0.3, 0.24, 0.9};
  EXPECT_TRUE(a.swap->should_challenge());
  EXPECT_FALSE(a.swap->should_challenge());
  EXPECT_TRUE(a.swap->should_challenge());
  EXPECT_FALSE(a.swap->should_challenge());
}

TEST_F(SwapTest, ProviderScorePrefersPeersWeOweLessAndSkipsThoseThatRefusedUs) {
  Node a(dir_ / "a", ka, clock_), b(dir_ / "b", kb, clock_), c(dir_ / "c", kc, clock_);
  ASSERT_TRUE(serve_once(b, a, 1, 1000).serve);  // we (a) owe b a lot
  ASSERT_TRUE(serve_once(c, a, 2, 10).serve);    // and c a little
  auto sb = a.swap->provider_score(b.id), sc = a.swap->provider_score(c.id);
  ASSERT_TRUE(sb && sc);
  EXPECT_GT(*sc, *sb);
  a.swap->on_refused_by(c.id);
  EXPECT_FALSE(a.swap->provider_score(c.id).has_value());
  clock_.advance(std::chrono::seconds(a.swap->config().ignore_period_s));
  EXPECT_TRUE(a.swap->provider_score(c.id).has_value());
}

TEST_F(SwapTest, DifferingViewsReconcileToOneLedgerOnBothSides) {
  Node a(dir_ / "a", ka, clock_), b(dir_ / "b", kb, clock_);
  ASSERT_TRUE(serve_once(a, b, 1, 100).serve);
  // b receipts request 2 but a never gets the receipt (a crashed).
  ASSERT_TRUE(a.swap->on_answered(b.id, 2, kService, 40).is_ok());
  auto lost = b.swap->make_receipt(a.id, 2, kService, 40);
  ASSERT_TRUE(b.swap->on_receipt(a.id, lost).is_ok());
  a.swap->on_connected(b.id);
  b.swap->on_connected(a.id);
  auto oa = messages<protocol::SwapOpen>(a.swap->take_actions());
  auto ob = messages<protocol::SwapOpen>(b.swap->take_actions());
  EXPECT_EQ(b.swap->on_open(a.id, oa[0]), ComputeSwap::OpenResult::kNeedEvidence);
  EXPECT_EQ(a.swap->on_open(b.id, ob[0]), ComputeSwap::OpenResult::kNeedEvidence);
  auto ea = of_kind<SendEvidence>(a.swap->take_actions());
  auto eb = of_kind<SendEvidence>(b.swap->take_actions());
  ASSERT_EQ(ea.size(), 1u);
  ASSERT_EQ(eb.size(), 1u);
  ASSERT_TRUE(a.swap->on_evidence(b.id, eb[0].evidence).is_ok());
  ASSERT_TRUE(b.swap->on_evidence(a.id, ea[0].evidence).is_ok());
  EXPECT_EQ(a.swap->ledgers().ledger(b.id), b.swap->ledgers().ledger(a.id));
  EXPECT_EQ(a.swap->snapshot(b.id).debt, 140u);
  EXPECT_EQ(a.swap->snapshot(b.id).pending_ops, 0u);
  EXPECT_EQ(a.swap->snapshot(b.id).state, PeerState::kOnline);
  EXPECT_EQ(b.swap->snapshot(a.id).state, PeerState::kOnline);
}

TEST_F(SwapTest, DifferingViewsAreContemptWhenConfigured) {
  Config cfg;
  cfg.on_ledger_mismatch = MismatchPolicy::kContempt;
  Node a(dir_ / "a", ka, clock_, cfg), b(dir_ / "b", kb, clock_, cfg);
  auto lost = b.swap->make_receipt(a.id, 2, kService, 40);
  ASSERT_TRUE(b.swap->on_receipt(a.id, lost).is_ok());
  b.swap->on_connected(a.id);
  auto ob = messages<protocol::SwapOpen>(b.swap->take_actions());
  a.swap->on_connected(b.id);
  (void)a.swap->take_actions();
  EXPECT_EQ(a.swap->on_open(b.id, ob[0]), ComputeSwap::OpenResult::kContempt);
  auto d = of_kind<Disconnect>(a.swap->take_actions());
  ASSERT_EQ(d.size(), 1u);
  EXPECT_NE(d[0].reason.find("ledger views differ"), std::string::npos) << d[0].reason;
  PeerSnapshot s = a.swap->snapshot(b.id);
  EXPECT_TRUE(s.contempt);
  EXPECT_EQ(s.reason, d[0].reason);
  EXPECT_FALSE(a.swap->accept_message(b.id));
  EXPECT_FALSE(a.swap->on_request(b.id, kService, 1).serve);
}

TEST_F(SwapTest, LedgersSurviveARestart) {
  {
    Node a(dir_ / "a", ka, clock_), b(dir_ / "b", kb, clock_);
    ASSERT_TRUE(serve_once(a, b, 1, 123).serve);
  }
  Node a(dir_ / "a", ka, clock_);
  PeerSnapshot s = a.swap->snapshot(id_of(kb));
  EXPECT_EQ(s.debt, 123u);
  EXPECT_EQ(s.sequence, 1u);
  EXPECT_EQ(s.state, PeerState::kClose);
  ASSERT_EQ(a.swap->snapshot().size(), 1u);
}

TEST_F(SwapTest, BadConfigIsRefusedWithTheKey) {
  Config cfg;
  cfg.m = 1;
  auto s = ComputeSwap::open(cfg, ka, dir_ / "x.sqlite", clock_, [] { return 0.0; });
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), Code::kInvalidArgument);
  EXPECT_NE(s.status().message().find("[swap] m must be"), std::string::npos)
      << s.status().to_string();
  EXPECT_EQ(parse_challenge_failure("ban").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(*parse_challenge_failure("blacklist"), ChallengeFailure::kBlacklist);
  EXPECT_EQ(*parse_mismatch_policy("contempt"), MismatchPolicy::kContempt);
}

}  // namespace
}  // namespace idn::swap
