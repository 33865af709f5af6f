// A provider that groups its ledger commits and is killed (tests/cli/swap_crash_test.sh does it
// to real processes; here a forked child _exits, like kill -9): whatever it had signed before it
// died, the next Open must leave both ledgers equal and no work counted twice.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include "identity/peer_id.h"
#include "swap/swap.h"

namespace idn::swap {
namespace {

namespace fs = std::filesystem;

identity::KeyPair key(uint8_t seed) {
  Bytes s(32, seed);
  return *identity::KeyPair::from_seed(s);
}

Bytes id_of(const identity::KeyPair& k) {
  return identity::PeerId::from_public_key(k.public_key()).bytes();
}

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

}  // namespace
}  // namespace idn::swap
