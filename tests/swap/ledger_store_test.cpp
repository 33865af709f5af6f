// The persisted ledgers: receipts in either direction, idempotent replays, provisional
// charges and the receipt timeout, checkpoints, reconciliation adopted, and all of it
// surviving a reopen (the process restarting).
#include "swap/ledger_store.h"

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>
#include <functional>

#include "identity/peer_id.h"
#include "swap_test_util.h"

namespace idn::swap {
namespace {

namespace fs = std::filesystem;

using testing::key;

using testing::id_of;

protocol::Receipt receipt(const Bytes& server, const Bytes& signer, uint64_t id, uint64_t ops) {
  protocol::Receipt r;
  r.request_id = id;
  r.service_id = Bytes{0x12, 0x20, 7};
  r.operations = ops;
  r.server = server;
  r.signer = signer;
  r.unix_ms = 5000 + id;
  return r;
}

class LedgerStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("idn_swap_store_" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + "_" +
            std::to_string(::getpid()));
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::unique_ptr<LedgerStore> open(const Bytes& self, const std::string& name = "a") {
    auto s = LedgerStore::open(dir_ / name / "ledgers.sqlite", self);
    EXPECT_TRUE(s.ok()) << s.status().to_string();
    if (!s.ok()) return nullptr;
    (*s)->set_group_commit(group_commit_);
    return std::move(*s);
  }

  // Runs `steps` on a's store (group commit on) in a child process that then dies without
  // closing it, like kill -9 after the last step. The child may not report through gtest: its
  // exit code names the step that failed (0: none).
  void in_dying_child(const std::function<int(LedgerStore&)>& steps) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      auto s = LedgerStore::open(dir_ / "a" / "ledgers.sqlite", a);
      if (!s.ok()) ::_exit(10);
      (*s)->set_group_commit(true);
      ::_exit(steps(**s));  // no destructors
    }
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 0) << "the child failed at step " << WEXITSTATUS(status);
  }

  bool group_commit_ = false;

  fs::path dir_;
  identity::KeyPair ka = key(1), kb = key(2), kc = key(3);
  Bytes a = id_of(ka), b = id_of(kb), c = id_of(kc);
};

TEST_F(LedgerStoreTest, ReceiptsInBothDirectionsSurviveReopen) {
  {
    auto s = open(a);
    auto r1 = s->apply_receipt(b, receipt(a, b, 1, 1000));  // we served b
    ASSERT_TRUE(r1.ok()) << r1.status().to_string();
    EXPECT_TRUE(r1->applied);
    EXPECT_TRUE(r1->we_served);
    auto r2 = s->apply_receipt(b, receipt(b, a, 1, 300));  // b served us (same request ID: ours)
    ASSERT_TRUE(r2.ok());
    EXPECT_FALSE(r2->we_served);
    ASSERT_TRUE(s->apply_receipt(c, receipt(a, c, 1, 5)).ok());
    EXPECT_EQ(s->ledger(b).debt_of(b), 1000u);
    EXPECT_EQ(s->ledger(b).debt_of(a), 300u);
  }
  auto s = open(a);
  const Ledger& l = s->ledger(b);
  EXPECT_EQ(l.debt_of(b), 1000u);
  EXPECT_EQ(l.debt_of(a), 300u);
  EXPECT_EQ(l.sequence, 2u);
  EXPECT_EQ(s->ledger(c).debt_of(c), 5u);
  EXPECT_EQ(s->peers().size(), 2u);
  EXPECT_EQ(*s->integrity_check(), "ok");
}

TEST_F(LedgerStoreTest, AReplayedReceiptIsNotCountedTwice) {
  auto s = open(a);
  ASSERT_TRUE(s->apply_receipt(b, receipt(a, b, 9, 100)).ok());
  auto again = s->apply_receipt(b, receipt(a, b, 9, 100));
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->applied);
  EXPECT_EQ(s->ledger(b).debt_of(b), 100u);
  EXPECT_EQ(s->ledger(b).sequence, 1u);
  // Also after a restart: the receipt IDs are stored, not just the totals.
  s.reset();
  s = open(a);
  EXPECT_FALSE(s->apply_receipt(b, receipt(a, b, 9, 100))->applied);
  EXPECT_EQ(s->ledger(b).debt_of(b), 100u);
}

TEST_F(LedgerStoreTest, ReceiptOutsideThePairIsRefused) {
  auto s = open(a);
  EXPECT_EQ(s->apply_receipt(b, receipt(c, b, 1, 1)).status().code(), Code::kPeerMisbehaved);
  EXPECT_EQ(s->apply_receipt(b, receipt(a, a, 1, 1)).status().code(), Code::kPeerMisbehaved);
  EXPECT_EQ(s->apply_receipt(a, receipt(a, b, 1, 1)).status().code(), Code::kPeerMisbehaved);
  EXPECT_EQ(s->ledger(b).sequence, 0u);
}

// The same behaviour with each update its own transaction and with group commit (charges then
// live in memory until the commit, and most never reach the file).
class LedgerStoreModes : public LedgerStoreTest, public ::testing::WithParamInterface<bool> {
 protected:
  void SetUp() override {
    LedgerStoreTest::SetUp();
    group_commit_ = GetParam();
  }
};
INSTANTIATE_TEST_SUITE_P(Commit, LedgerStoreModes, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "Grouped" : "EachUpdate"; });

TEST_P(LedgerStoreModes, ChargesArePendingThenUnpaidAndAReceiptSettlesThem) {
  {
    auto s = open(a);
    ASSERT_TRUE(s->add_charge(b, 1, Bytes{1}, 100, /*deadline*/ 2000).is_ok());
    ASSERT_TRUE(s->add_charge(b, 2, Bytes{1}, 50, 3000).is_ok());
    EXPECT_EQ(s->add_charge(b, 2, Bytes{1}, 50, 3000).code(), Code::kInvalidArgument);
    EXPECT_EQ(s->charges(b).pending_ops, 150u);
    auto expired = s->expire_charges(2000);
    ASSERT_TRUE(expired.ok());
    ASSERT_EQ(expired->size(), 1u);
    EXPECT_EQ((*expired)[0].request_id, 1u);
    EXPECT_EQ(s->charges(b).pending_ops, 50u);
    EXPECT_EQ(s->charges(b).unpaid_ops, 100u);
  }
  auto s = open(a);  // totals rebuilt from the file
  EXPECT_EQ(s->charges(b).pending_ops, 50u);
  EXPECT_EQ(s->charges(b).unpaid_ops, 100u);
  // A late receipt still settles the unpaid charge; a short one leaves the rest unpaid.
  ASSERT_TRUE(s->apply_receipt(b, receipt(a, b, 1, 100)).ok());
  EXPECT_EQ(s->charges(b).unpaid_ops, 0u);
  ASSERT_TRUE(s->apply_receipt(b, receipt(a, b, 2, 30)).ok());
  EXPECT_EQ(s->charges(b).pending_ops, 0u);
  EXPECT_EQ(s->charges(b).unpaid_ops, 20u);
  EXPECT_EQ(s->ledger(b).debt_of(b), 130u);
  // A request already receipted cannot be charged again.
  EXPECT_EQ(s->add_charge(b, 1, Bytes{1}, 100, 9000).code(), Code::kInvalidArgument);
}

TEST_F(LedgerStoreTest, LedgerAtAnEarlierSequence) {
  auto s = open(a);
  ASSERT_TRUE(s->apply_receipt(b, receipt(a, b, 1, 10)).ok());
  ASSERT_TRUE(s->apply_receipt(b, receipt(b, a, 1, 3)).ok());
  ASSERT_TRUE(s->apply_receipt(b, receipt(a, b, 2, 20)).ok());
  auto at1 = s->ledger_at(b, 1);
  ASSERT_TRUE(at1.ok()) << at1.status().to_string();
  EXPECT_EQ(at1->debt_of(b), 10u);
  EXPECT_EQ(at1->debt_of(a), 0u);
  EXPECT_EQ(at1->sequence, 1u);
  EXPECT_EQ(*s->ledger_at(b, 3), s->ledger(b));
  EXPECT_EQ(s->ledger_at(b, 4).status().code(), Code::kNotFound);
}

TEST_F(LedgerStoreTest, CheckpointsAreVerifiedStoredAndNeverGoBack) {
  auto s = open(a);
  ASSERT_TRUE(s->apply_receipt(b, receipt(a, b, 1, 10)).ok());
  ASSERT_TRUE(s->apply_receipt(b, receipt(a, b, 2, 10)).ok());
  Checkpoint cp;
  cp.ledger = *s->ledger_at(b, 1);
  cp.unix_ms = 1;
  ASSERT_TRUE(sign_checkpoint(cp, ka).is_ok());
  EXPECT_EQ(s->store_checkpoint(b, cp).code(), Code::kPeerMisbehaved);  // half-signed
  ASSERT_TRUE(sign_checkpoint(cp, kb).is_ok());
  ASSERT_TRUE(s->store_checkpoint(b, cp).is_ok());
  Checkpoint newer;
  newer.ledger = s->ledger(b);
  ASSERT_TRUE(sign_checkpoint(newer, ka).is_ok());
  ASSERT_TRUE(sign_checkpoint(newer, kb).is_ok());
  ASSERT_TRUE(s->store_checkpoint(b, newer).is_ok());
  EXPECT_EQ(s->store_checkpoint(b, cp).code(), Code::kPeerMisbehaved);  // older
  s.reset();
  s = open(a);
  ASSERT_TRUE(s->checkpoint(b).has_value());
  EXPECT_EQ(*s->checkpoint(b), newer);
  // The evidence shown at Open starts after it.
  auto e = s->evidence(b);
  ASSERT_TRUE(e.ok());
  EXPECT_TRUE(e->receipts.empty());
  EXPECT_EQ(e->checkpoint, newer);
}

TEST_P(LedgerStoreModes, BothSidesAdoptTheSameReconciledLedger) {
  // a served b twice; b, the requester, stored both receipts before sending them; the
  // second never reached a (a crashed), which still holds its charge for that request.
  auto sa = open(a, "a"), sb = open(b, "b");
  ASSERT_TRUE(sb->apply_receipt(a, receipt(a, b, 1, 10)).ok());
  ASSERT_TRUE(sa->apply_receipt(b, receipt(a, b, 1, 10)).ok());
  ASSERT_TRUE(sb->apply_receipt(a, receipt(a, b, 2, 20)).ok());  // lost on its way to a
  ASSERT_TRUE(sa->add_charge(b, 2, Bytes{1}, 20, 99).is_ok());   // a's charge for it
  ASSERT_FALSE(sa->ledger(b).matches_remote_view(a, sb->ledger(a).view_of(b)));
  auto ea = sa->evidence(b), eb = sb->evidence(a);
  ASSERT_TRUE(ea.ok() && eb.ok());
  auto ra = reconcile(a, b, *ea, *eb), rb = reconcile(b, a, *eb, *ea);
  ASSERT_TRUE(ra.ok() && rb.ok());
  ASSERT_TRUE(sa->adopt(b, *ra).is_ok());
  ASSERT_TRUE(sb->adopt(a, *rb).is_ok());
  EXPECT_EQ(sa->ledger(b), sb->ledger(a));
  EXPECT_TRUE(sa->ledger(b).matches_remote_view(a, sb->ledger(a).view_of(b)));
  EXPECT_EQ(sa->ledger(b).debt_of(b), 30u);
  EXPECT_EQ(sa->charges(b).pending_ops, 0u);  // the agreed receipt settled a's charge
  // Replaying the receipt a missed changes nothing now.
  EXPECT_FALSE(sa->apply_receipt(b, receipt(a, b, 2, 20))->applied);
  sa.reset();
  sa = open(a, "a");
  EXPECT_EQ(sa->ledger(b).debt_of(b), 30u);
  EXPECT_EQ(*sa->integrity_check(), "ok");
}

// A periodic commit leaves a charge in memory until it has waited the given number of commits
// for its receipt; a crash before then forgets it (and nothing else).
TEST_F(LedgerStoreTest, YoungChargesStayInMemoryUntilTheyHaveWaitedTheirCommits) {
  in_dying_child([&](LedgerStore& s) {
    if (!s.add_charge(b, 1, Bytes{1}, 100, 1'000'000).is_ok()) return 11;
    if (!s.commit(2).is_ok() || s.unsaved_charges() != 1) return 12;
    if (!s.add_charge(b, 2, Bytes{1}, 50, 1'000'000).is_ok()) return 13;
    if (!s.add_charge(b, 3, Bytes{1}, 7, 1'000'000).is_ok()) return 14;
    if (!s.apply_receipt(b, receipt(a, b, 3, 7)).ok()) return 15;  // settled in memory
    // Charge 1 has now waited two commits and is written; charge 2 only one.
    if (!s.commit(2).is_ok() || s.unsaved_charges() != 1) return 16;
    if (s.charges(b).pending_ops != 150) return 17;
    return 0;
  });
  auto s = open(a);
  EXPECT_EQ(s->charges(b).pending, 1u);
  EXPECT_EQ(s->charges(b).pending_ops, 100u);
  EXPECT_EQ(s->ledger(b).debt_of(b), 7u);  // the receipt was committed with charge 1
  EXPECT_EQ(*s->integrity_check(), "ok");
}

// A checkpoint takes the receipts under it out of memory (evidence, ledger_at); a replay of
// one of them is still recognised while the store stays open.
TEST_F(LedgerStoreTest, ReceiptsUnderACheckpointLeaveTheEvidenceAndStayRecognised) {
  auto s = open(a);
  for (uint64_t i = 1; i <= 3; ++i) ASSERT_TRUE(s->apply_receipt(b, receipt(a, b, i, 10)).ok());
  Checkpoint cp;
  cp.ledger = *s->ledger_at(b, 2);
  ASSERT_TRUE(sign_checkpoint(cp, ka).is_ok());
  ASSERT_TRUE(sign_checkpoint(cp, kb).is_ok());
  ASSERT_TRUE(s->store_checkpoint(b, cp).is_ok());
  auto e = s->evidence(b);
  ASSERT_TRUE(e.ok());
  ASSERT_EQ(e->receipts.size(), 1u);
  EXPECT_EQ(e->receipts[0].receipt.request_id, 3u);
  EXPECT_EQ(e->receipts[0].sequence, 3u);
  EXPECT_EQ(s->ledger_at(b, 1).status().code(), Code::kNotFound);  // before the checkpoint
  EXPECT_EQ(s->ledger_at(b, 2)->debt_of(b), 20u);
  EXPECT_FALSE(s->apply_receipt(b, receipt(a, b, 1, 10))->applied);  // under the checkpoint
  EXPECT_FALSE(s->apply_receipt(b, receipt(a, b, 3, 10))->applied);
  EXPECT_EQ(s->add_charge(b, 2, Bytes{1}, 10, 9000).code(), Code::kInvalidArgument);
  EXPECT_EQ(s->ledger(b).debt_of(b), 30u);
  s.reset();
  s = open(a);  // the checkpoint plus the receipt after it
  EXPECT_EQ(s->ledger(b).debt_of(b), 30u);
  EXPECT_EQ(s->ledger(b).sequence, 3u);
  EXPECT_EQ(s->evidence(b)->receipts.size(), 1u);
}

// Files written before the receipt log kept one row per receipt: they open with the same
// ledgers, and the old table is gone.
TEST_F(LedgerStoreTest, AFileWithReceiptRowsIsMovedIntoTheLog) {
  const fs::path path = dir_ / "a" / "ledgers.sqlite";
  fs::create_directories(path.parent_path());
  {
    auto db = db::Database::open(path);
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE((*db)
                    ->exec("CREATE TABLE meta(key TEXT PRIMARY KEY, value BLOB NOT NULL);"
                           "CREATE TABLE receipts(peer BLOB NOT NULL, server BLOB NOT NULL,"
                           " request_id INTEGER NOT NULL, signer BLOB NOT NULL, service BLOB NOT"
                           " NULL, ops INTEGER NOT NULL, unix_ms INTEGER NOT NULL, sequence"
                           " INTEGER NOT NULL, PRIMARY KEY(peer, server, request_id)) WITHOUT"
                           " ROWID;"
                           "CREATE INDEX receipts_seq ON receipts(peer, sequence);")
                    .is_ok());
    auto put_self = (*db)->prepare("INSERT INTO meta(key, value) VALUES('self', ?)");
    ASSERT_TRUE(put_self.ok());
    ASSERT_TRUE(put_self->bind(1, a).run("self").is_ok());
    auto put = (*db)->prepare("INSERT INTO receipts VALUES(?,?,?,?,?,?,?,?)");
    ASSERT_TRUE(put.ok());
    struct Row {
      const Bytes* peer;
      const Bytes* server;
      const Bytes* signer;
      uint64_t id, ops, seq;
    };
    for (const Row& r : {Row{&b, &a, &b, 1, 10, 1}, Row{&b, &b, &a, 1, 4, 2},
                         Row{&b, &a, &b, 2, 5, 3}, Row{&c, &c, &a, 9, 7, 1}}) {
      put->reset();
      ASSERT_TRUE(put->bind(1, *r.peer)
                      .bind(2, *r.server)
                      .bind(3, r.id)
                      .bind(4, *r.signer)
                      .bind(5, Bytes{1, 2})
                      .bind(6, r.ops)
                      .bind(7, uint64_t{100})
                      .bind(8, r.seq)
                      .run("row")
                      .is_ok());
    }
  }
  auto s = open(a);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->ledger(b).debt_of(b), 15u);
  EXPECT_EQ(s->ledger(b).debt_of(a), 4u);
  EXPECT_EQ(s->ledger(b).sequence, 3u);
  EXPECT_EQ(s->ledger(c).debt_of(a), 7u);
  auto e = s->evidence(b);
  ASSERT_TRUE(e.ok());
  ASSERT_EQ(e->receipts.size(), 3u);
  EXPECT_EQ(e->receipts[1].receipt.server, b);
  EXPECT_EQ(e->receipts[1].receipt.signer, a);
  EXPECT_EQ(e->receipts[1].receipt.service_id, (Bytes{1, 2}));
  EXPECT_EQ(e->receipts[1].receipt.unix_ms, 100u);
  EXPECT_FALSE(s->apply_receipt(b, receipt(a, b, 2, 5))->applied);  // still held
  EXPECT_EQ(*s->integrity_check(), "ok");
  s.reset();
  auto db = db::Database::open(path);
  ASSERT_TRUE(db.ok());
  auto old = (*db)->prepare("SELECT 1 FROM sqlite_master WHERE name = 'receipts'");
  ASSERT_TRUE(old.ok());
  EXPECT_FALSE(*old->step());
}

TEST_F(LedgerStoreTest, ADataDirOfAnotherIdentityIsRefused) {
  { auto s = open(a); }
  auto other = LedgerStore::open(dir_ / "a" / "ledgers.sqlite", b);
  EXPECT_EQ(other.status().code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace idn::swap

namespace idn::swap {
namespace {

// Group commit: updates are visible at once, durable at commit(); a process that dies between
// the two loses exactly the uncommitted ones and leaves a sound file.
TEST_F(LedgerStoreTest, GroupCommitKeepsWhatWasCommittedWhenTheProcessDies) {
  in_dying_child([&](LedgerStore& s) {
    if (!s.add_charge(b, 1, Bytes{1}, 700, 1'000'000).is_ok()) return 11;
    if (!s.apply_receipt(b, receipt(a, b, 1, 700)).ok()) return 12;
    if (!s.apply_receipt(b, receipt(b, a, 9, 40)).ok()) return 13;
    // Two receipts wait for the commit; the charge was settled before any commit wrote it.
    if (s.uncommitted() != 2 || s.unsaved_charges() != 0 || s.ledger(b).sequence != 2) return 14;
    if (!s.commit().is_ok() || s.uncommitted() != 0 || s.commits() != 1) return 15;
    // Visible before it is committed, then lost with the process.
    if (!s.add_charge(b, 2, Bytes{1}, 500, 1'000'000).is_ok()) return 16;
    if (!s.apply_receipt(b, receipt(a, b, 2, 500)).ok()) return 17;
    if (s.ledger(b).debt_of(b) != 1200) return 18;
    return 0;  // then dies like kill -9 after the last answer
  });

  auto s = open(a);
  EXPECT_EQ(*s->integrity_check(), "ok");
  const Ledger& l = s->ledger(b);
  EXPECT_EQ(l.debt_of(b), 700u);
  EXPECT_EQ(l.debt_of(a), 40u);
  EXPECT_EQ(l.sequence, 2u);
  EXPECT_EQ(s->charges(b).pending, 0u);  // request 1's charge was settled; request 2's lost
  // The lost receipt applies again (it is not held), as at the next Open's reconciliation.
  auto again = s->apply_receipt(b, receipt(a, b, 2, 500));
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->applied);
}

TEST_F(LedgerStoreTest, GroupCommitIsDurableAtCloseAndOffCommitsEachUpdate) {
  {
    auto s = open(a);
    s->set_group_commit(true);
    ASSERT_TRUE(s->apply_receipt(b, receipt(a, b, 1, 10)).ok());
    ASSERT_TRUE(s->add_charge(c, 4, Bytes{1}, 3, 1'000'000).is_ok());
    EXPECT_EQ(s->uncommitted(), 1u);  // the receipt; the charge is in memory only
    EXPECT_EQ(s->unsaved_charges(), 1u);
    s->set_group_commit(false);  // commits what was open, the young charge too
    EXPECT_EQ(s->uncommitted(), 0u);
    EXPECT_EQ(s->unsaved_charges(), 0u);
    EXPECT_EQ(s->commits(), 1u);
    ASSERT_TRUE(s->apply_receipt(b, receipt(a, b, 2, 5)).ok());
    EXPECT_EQ(s->uncommitted(), 0u);
    s->set_group_commit(true);
    ASSERT_TRUE(s->apply_receipt(b, receipt(a, b, 3, 1)).ok());
  }  // closing commits
  auto s = open(a);
  EXPECT_EQ(s->ledger(b).debt_of(b), 16u);
  EXPECT_EQ(s->ledger(b).sequence, 3u);
  EXPECT_EQ(s->charges(c).pending_ops, 3u);
}

}  // namespace
}  // namespace idn::swap
