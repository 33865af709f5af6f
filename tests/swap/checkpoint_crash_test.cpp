// What tests/cli/swap_crash_test.sh (a provider kill -9'd under load) found, in one process:
// a provider killed after signing a checkpoint over receipts it had not committed, and a
// provider whose receipts under a checkpoint both signed are not the requester's. Whatever the
// provider lost, the next Open must leave both ledgers equal and no work counted twice.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include "identity/peer_id.h"
#include "swap/ledger_store.h"
#include "swap/swap.h"
#include "swap_test_util.h"

namespace idn::swap {
namespace {

namespace fs = std::filesystem;

using testing::key;

using testing::id_of;

const Bytes kService{0x12, 0x20, 7};

template <class T>
std::vector<T> of_kind(const std::vector<Action>& actions) {
  std::vector<T> out;
  for (const auto& a : actions) {
    if (auto* x = std::get_if<T>(&a)) out.push_back(*x);
  }
  return out;
}

std::vector<protocol::SwapOpen> opens(const std::vector<Action>& actions) {
  std::vector<protocol::SwapOpen> out;
  for (const auto& s : of_kind<SendSwap>(actions)) {
    if (auto* m = std::get_if<protocol::SwapOpen>(&s.message)) out.push_back(*m);
  }
  return out;
}

class CheckpointCrashTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("idn_swap_checkpoint_crash_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    provider_config_.commit_interval_ms = 5;  // group commit (the node's timer commits; none here)
    provider_config_.checkpoint_every = 2;
    provider_config_.grace_ops = 1'000'000;    // the requester never serves: stay below p(r)'s fall
    requester_config_.commit_interval_ms = 0;  // every update durable at once
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<ComputeSwap> open(const Config& c, const identity::KeyPair& k, const char* name) {
    auto s = ComputeSwap::open(c, k, dir_ / name / "ledgers.sqlite", clock_, [] { return 0.0; });
    return s.ok() ? std::move(*s) : nullptr;
  }

  fs::path dir_;
  ManualClock clock_;
  Config provider_config_, requester_config_;
  identity::KeyPair kp_ = key(11), kr_ = key(12);
  Bytes p_ = id_of(kp_), r_ = id_of(kr_);
};

// Regression: the provider signed a checkpoint over receipts still in its open batch, the
// requester countersigned and stored it, and the provider died before committing. It came
// back with the requests' charges but neither their receipts nor the checkpoint; the Open
// reconciled from the requester's checkpoint, which settles no charge by request, so the
// provider's view counted that work twice: in the ledger and again as unpaid. (Found by
// tests/cli/swap_crash_test.sh: "the provider holds 15 unreceipted charges, the consumer had
// only 10 failed requests".)
TEST_F(CheckpointCrashTest, ProviderKilledAfterSigningACheckpointCountsNoWorkTwice) {
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // The child may not report through gtest: its exit code says which step failed.
    auto P = open(provider_config_, kp_, "p");
    auto R = open(requester_config_, kr_, "r");
    if (!P || !R) ::_exit(10);
    for (uint64_t id : {1, 2}) {
      if (!P->on_request(r_, kService, id).serve) ::_exit(11);
      if (!P->on_answered(r_, id, kService, id * 100).is_ok()) ::_exit(12);
    }
    if (!P->ledgers().commit().is_ok()) ::_exit(13);  // the charges are durable
    for (uint64_t id : {1, 2}) {
      auto rc = R->make_receipt(p_, id, kService, id * 100);
      if (!R->on_receipt(p_, rc).is_ok()) ::_exit(14);  // the requester records, then sends
      if (!P->on_receipt(r_, rc).is_ok()) ::_exit(15);
    }
    auto proposals = of_kind<SendCheckpoint>(P->take_actions());
    if (proposals.size() != 1) ::_exit(16);
    if (!R->on_checkpoint(p_, proposals[0].checkpoint).is_ok()) ::_exit(17);
    auto full = of_kind<SendCheckpoint>(R->take_actions());
    if (full.size() != 1 || !full[0].checkpoint.fully_signed()) ::_exit(18);
    if (!P->on_checkpoint(r_, full[0].checkpoint).is_ok()) ::_exit(19);
    ::_exit(0);  // no destructors: like kill -9 before the provider's next commit
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0) << "the child failed at step " << WEXITSTATUS(status);

  auto P = open(provider_config_, kp_, "p");
  auto R = open(requester_config_, kr_, "r");
  ASSERT_TRUE(P && R);
  EXPECT_EQ(*P->ledgers().integrity_check(), "ok");
  // The next Open: views, then evidence where they differ.
  P->on_connected(r_);
  R->on_connected(p_);
  auto op = opens(P->take_actions());
  auto orq = opens(R->take_actions());
  ASSERT_EQ(op.size(), 1u);
  ASSERT_EQ(orq.size(), 1u);
  auto rp = P->on_open(r_, orq[0]);
  auto rr = R->on_open(p_, op[0]);
  if (rp == ComputeSwap::OpenResult::kNeedEvidence ||
      rr == ComputeSwap::OpenResult::kNeedEvidence) {
    auto ep = of_kind<SendEvidence>(P->take_actions());
    auto er = of_kind<SendEvidence>(R->take_actions());
    ASSERT_EQ(ep.size(), 1u);
    ASSERT_EQ(er.size(), 1u);
    ASSERT_TRUE(P->on_evidence(r_, er[0].evidence).is_ok());
    ASSERT_TRUE(R->on_evidence(p_, ep[0].evidence).is_ok());
  }
  EXPECT_EQ(P->ledgers().ledger(r_), R->ledgers().ledger(p_));
  EXPECT_EQ(R->ledgers().ledger(p_).debt_of(r_), 300u);
  EXPECT_EQ(R->ledgers().ledger(p_).sequence, 2u);
  PeerSnapshot s = P->snapshot(r_);
  EXPECT_EQ(s.state, PeerState::kOnline);
  EXPECT_EQ(s.pending_ops + s.unpaid_ops, 0u) << "receipted work still charged";
  EXPECT_EQ(s.debt, 300u);
}

protocol::Receipt receipt(const Bytes& server, const Bytes& signer, uint64_t id, uint64_t ops) {
  protocol::Receipt r;
  r.request_id = id;
  r.service_id = kService;
  r.operations = ops;
  r.server = server;
  r.signer = signer;
  r.unix_ms = 1'700'000'000'000;
  return r;
}

// Regression (tests/cli/swap_crash_test.sh, seed 2026, kill 16: both views at sequence 10647,
// the provider's debt two requests short, after every later Open too): the provider lost
// receipt 2 (sent on a stream that was reset before it was read) and numbered receipt 3 as its
// second; a checkpoint at sequence 2 matched on both sides (equal operations per request) and
// both signed it. At the next Open the requester's evidence puts receipt 3 after that
// checkpoint; the provider holds it at 2, below the base. adopt() skipped held receipts, so
// the file summed to the checkpoint alone: the provider's ledger stayed one receipt short of
// the one both sides had agreed, and every later Open reconciled to the same shortfall.
TEST_F(CheckpointCrashTest, AdoptCountsAnAgreedReceiptTheProviderHeldUnderAnotherNumber) {
  auto P = LedgerStore::open(dir_ / "p.sqlite", p_);
  auto R = LedgerStore::open(dir_ / "r.sqlite", r_);
  ASSERT_TRUE(P.ok() && R.ok());
  const uint64_t ops = 620;
  for (uint64_t id : {1, 2, 3}) ASSERT_TRUE((*R)->apply_receipt(p_, receipt(p_, r_, id, ops)).ok());
  for (uint64_t id : {1, 3}) ASSERT_TRUE((*P)->apply_receipt(r_, receipt(p_, r_, id, ops)).ok());
  // Both ledgers read 2 x ops at sequence 2 (different receipts, the same totals): signed.
  Checkpoint cp;
  auto at = (*P)->ledger_at(r_, 2);
  ASSERT_TRUE(at.ok());
  ASSERT_EQ(*at, *(*R)->ledger_at(p_, 2));
  cp.ledger = *at;
  cp.unix_ms = 1'700'000'000'000;
  ASSERT_TRUE(sign_checkpoint(cp, kp_).is_ok());
  ASSERT_TRUE(sign_checkpoint(cp, kr_).is_ok());
  ASSERT_TRUE((*P)->store_checkpoint(r_, cp).is_ok());
  ASSERT_TRUE((*R)->store_checkpoint(p_, cp).is_ok());

  auto ep = (*P)->evidence(r_);
  auto er = (*R)->evidence(p_);
  ASSERT_TRUE(ep.ok() && er.ok());
  auto rec_p = reconcile(p_, r_, *ep, *er);
  auto rec_r = reconcile(r_, p_, *er, *ep);
  ASSERT_TRUE(rec_p.ok() && rec_r.ok());
  ASSERT_EQ(rec_p->ledger, rec_r->ledger);
  EXPECT_EQ(rec_p->ledger.debt_of(r_), 3 * ops);
  EXPECT_EQ(rec_p->ledger.sequence, 3u);
  ASSERT_TRUE((*P)->adopt(r_, *rec_p).is_ok());
  ASSERT_TRUE((*R)->adopt(p_, *rec_r).is_ok());
  EXPECT_EQ((*P)->ledger(r_).to_string(), rec_p->ledger.to_string());
  EXPECT_EQ((*R)->ledger(p_).to_string(), rec_r->ledger.to_string());
  EXPECT_EQ((*P)->ledger(r_).to_string(), (*R)->ledger(p_).to_string());
}

}  // namespace
}  // namespace idn::swap
