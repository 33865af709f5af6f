// The shared ledger as values (§7.5.1): sorted pair, debts, sequence; checkpoints both sides
// sign, and what a tampered one looks like; a balance proved from a checkpoint plus receipts;
// the reconciliation rule both sides reach from each other's evidence.
#include "swap/ledger.h"

#include <gtest/gtest.h>

#include "identity/peer_id.h"
#include "swap_test_util.h"

namespace idn::swap {
namespace {

using testing::key;

using testing::id_of;

protocol::Receipt receipt(const Bytes& server, const Bytes& signer, uint64_t id, uint64_t ops) {
  protocol::Receipt r;
  r.request_id = id;
  r.service_id = Bytes{0x12, 0x20, 1};
  r.operations = ops;
  r.server = server;
  r.signer = signer;
  r.unix_ms = 1000 + id;
  return r;
}

class LedgerTest : public ::testing::Test {
 protected:
  identity::KeyPair ka = key(1), kb = key(2), kc = key(3);
  Bytes a = id_of(ka), b = id_of(kb), c = id_of(kc);

  Checkpoint signed_checkpoint(uint64_t debt_a, uint64_t debt_b, uint64_t seq) {
    Checkpoint cp;
    cp.ledger = Ledger::between(a, b);
    EXPECT_TRUE(cp.ledger.charge(a, debt_a).is_ok());
    EXPECT_TRUE(cp.ledger.charge(b, debt_b).is_ok());
    cp.ledger.sequence = seq;
    cp.unix_ms = 42;
    EXPECT_TRUE(sign_checkpoint(cp, ka).is_ok());
    EXPECT_TRUE(sign_checkpoint(cp, kb).is_ok());
    return cp;
  }
};

TEST_F(LedgerTest, PairIsSortedAndDebtsAreSeenFromEitherSide) {
  Ledger l1 = Ledger::between(a, b), l2 = Ledger::between(b, a);
  EXPECT_EQ(l1, l2);
  EXPECT_LT(l1.node1, l1.node2);
  ASSERT_TRUE(l1.charge(a, 100).is_ok());  // b served a: a owes 100
  ASSERT_TRUE(l1.charge(b, 30).is_ok());
  EXPECT_EQ(l1.debt_of(a), 100u);
  EXPECT_EQ(l1.credit_of(a), 30u);
  EXPECT_EQ(l1.debt_of(b), 30u);
  EXPECT_EQ(l1.credit_of(b), 100u);
  EXPECT_EQ(l1.sequence, 2u);
  EXPECT_EQ(l1.other(a), b);
  // a's view says "I owe 100, I am owed 30"; b reads it as its own ledger seen from a.
  auto va = l1.view_of(a);
  EXPECT_EQ(va.debt, 100u);
  EXPECT_EQ(va.credit, 30u);
  EXPECT_TRUE(l1.matches_remote_view(b, va));
  EXPECT_FALSE(l1.matches_remote_view(a, va));
  va.sequence += 1;
  EXPECT_FALSE(l1.matches_remote_view(b, va));
}

TEST_F(LedgerTest, ChargeRefusesToOverflow) {
  Ledger l = Ledger::between(a, b);
  ASSERT_TRUE(l.charge(a, UINT64_MAX - 1).is_ok());
  EXPECT_EQ(l.charge(a, 2).code(), Code::kLimitExceeded);
  EXPECT_EQ(l.debt_of(a), UINT64_MAX - 1);
  EXPECT_EQ(l.sequence, 1u);
}

TEST_F(LedgerTest, CheckpointSignedByBothVerifies) {
  Checkpoint cp = signed_checkpoint(500, 70, 9);
  EXPECT_TRUE(cp.fully_signed());
  EXPECT_TRUE(verify_checkpoint(cp).is_ok());
  EXPECT_TRUE(verify_checkpoint(cp, 9).is_ok());
  EXPECT_TRUE(verify_signature_of(cp, a).is_ok());
  // c is not a member: it can neither sign nor be asked about.
  Checkpoint other = cp;
  EXPECT_EQ(sign_checkpoint(other, kc).code(), Code::kInvalidArgument);
  EXPECT_EQ(verify_signature_of(cp, c).code(), Code::kPeerMisbehaved);
}

TEST_F(LedgerTest, TamperedCheckpointIsRejected) {
  Checkpoint cp = signed_checkpoint(500, 70, 9);
  // Any bit of the signed content flipped.
  for (int field = 0; field < 4; ++field) {
    Checkpoint t = cp;
    uint64_t* v[] = {&t.ledger.debt1, &t.ledger.debt2, &t.ledger.sequence, &t.unix_ms};
    *v[field] ^= 1;
    EXPECT_EQ(verify_checkpoint(t).code(), Code::kPeerMisbehaved) << "field " << field;
  }
  // A bit of a signature flipped.
  for (Bytes Checkpoint::*sig : {&Checkpoint::sig1, &Checkpoint::sig2}) {
    Checkpoint t = cp;
    (t.*sig)[10] ^= 0x04;
    EXPECT_EQ(verify_checkpoint(t).code(), Code::kPeerMisbehaved);
  }
  // Signed by the wrong key: c signs in a's slot.
  {
    Checkpoint t = cp;
    Bytes sig = kc.sign(checkpoint_signing_bytes(t));
    (t.ledger.node1 == a ? t.sig1 : t.sig2) = sig;
    Status st = verify_checkpoint(t);
    EXPECT_EQ(st.code(), Code::kPeerMisbehaved);
    EXPECT_NE(st.message().find("invalid"), std::string::npos) << st.to_string();
  }
  // Only one side signed.
  {
    Checkpoint t = cp;
    t.sig2.clear();
    EXPECT_EQ(verify_checkpoint(t).code(), Code::kPeerMisbehaved);
  }
  // Older than the one already accepted.
  Status stale = verify_checkpoint(cp, 10);
  EXPECT_EQ(stale.code(), Code::kPeerMisbehaved);
  EXPECT_NE(stale.message().find("older"), std::string::npos);
  // Node IDs out of order (a re-labelled ledger).
  {
    Checkpoint t = cp;
    std::swap(t.ledger.node1, t.ledger.node2);
    EXPECT_EQ(verify_checkpoint(t).code(), Code::kPeerMisbehaved);
  }
}

TEST_F(LedgerTest, CheckpointPlusLaterReceiptsProvesABalance) {
  Checkpoint cp = signed_checkpoint(500, 70, 2);
  std::vector<HeldReceipt> later = {
      {receipt(a, b, 7, 10), 2},   // at the checkpoint's sequence: already in it
      {receipt(a, b, 8, 25), 3},   // a served b: b owes 25 more
      {receipt(b, a, 9, 100), 4},  // b served a
  };
  auto l = prove_balance(cp, later);
  ASSERT_TRUE(l.ok()) << l.status().to_string();
  EXPECT_EQ(l->debt_of(a), 600u);
  EXPECT_EQ(l->debt_of(b), 95u);
  EXPECT_EQ(l->sequence, 4u);

  later.push_back({receipt(a, b, 8, 25), 5});  // the same receipt twice
  EXPECT_EQ(prove_balance(cp, later).status().code(), Code::kPeerMisbehaved);
  later.pop_back();
  later.push_back({receipt(a, c, 10, 5), 5});  // not between a and b
  EXPECT_EQ(prove_balance(cp, later).status().code(), Code::kPeerMisbehaved);
  Checkpoint bad = cp;
  bad.ledger.debt1 += 1;
  EXPECT_EQ(prove_balance(bad, {}).status().code(), Code::kPeerMisbehaved);
}

TEST_F(LedgerTest, EqualEvidenceReconcilesToTheSameLedger) {
  Evidence e;
  e.receipts = {{receipt(a, b, 1, 10), 1}, {receipt(b, a, 1, 4), 2}};
  auto ra = reconcile(a, b, e, e);
  ASSERT_TRUE(ra.ok()) << ra.status().to_string();
  EXPECT_EQ(ra->ledger.debt_of(b), 10u);
  EXPECT_EQ(ra->ledger.debt_of(a), 4u);
  EXPECT_EQ(ra->ledger.sequence, 2u);
  EXPECT_TRUE(ra->disputed.empty());
  EXPECT_TRUE(ra->reason.empty());
}

TEST_F(LedgerTest, ReconcileCountsTheRequestersReceiptsOnBothSides) {
  // The base: a checkpoint only b kept the countersigned copy of.
  Checkpoint cp = signed_checkpoint(500, 70, 3);
  Evidence ea, eb;
  ea.receipts = {
      {receipt(b, a, 1, 10), 1},   // before the checkpoint (sequence <= 3): in it already
      {receipt(b, a, 20, 40), 4},  // a received an answer from b, receipted it; b crashed first
      {receipt(a, b, 21, 15), 5},  // a served b and holds b's receipt
  };
  eb.checkpoint = cp;
  eb.receipts = {
      {receipt(a, b, 21, 15), 4},  // b's own receipt, at b's own sequence
      {receipt(b, a, 22, 99), 5},  // b holds a receipt from a that a does not: disputed
  };
  auto ra = reconcile(a, b, ea, eb);
  auto rb = reconcile(b, a, eb, ea);
  ASSERT_TRUE(ra.ok()) << ra.status().to_string();
  ASSERT_TRUE(rb.ok()) << rb.status().to_string();
  // Both sides reach the same ledger, receipts and disputes.
  EXPECT_EQ(ra->ledger, rb->ledger);
  EXPECT_EQ(ra->receipts, rb->receipts);
  ASSERT_EQ(ra->disputed.size(), 1u);
  EXPECT_EQ(ra->disputed, rb->disputed);
  EXPECT_EQ(ra->disputed[0].request_id, 22u);
  EXPECT_NE(ra->reason.find("99 operations"), std::string::npos) << ra->reason;
  ASSERT_TRUE(ra->base.has_value());
  EXPECT_EQ(*ra->base, cp);
  // Checkpoint (a 500, b 70, seq 3) + a's 40 + b's 15.
  EXPECT_EQ(ra->ledger.debt_of(a), 540u);
  EXPECT_EQ(ra->ledger.debt_of(b), 85u);
  EXPECT_EQ(ra->ledger.sequence, 5u);
  ASSERT_EQ(ra->receipts.size(), 2u);
  EXPECT_EQ(ra->receipts[0].sequence, 4u);
  EXPECT_EQ(ra->receipts[1].sequence, 5u);
}

TEST_F(LedgerTest, ReconcileRejectsForgedEvidence) {
  Evidence good, forged;
  forged.checkpoint = signed_checkpoint(1, 2, 3);
  forged.checkpoint->ledger.debt2 = 0;  // the peer rewrote what it owes
  EXPECT_EQ(reconcile(a, b, good, forged).status().code(), Code::kPeerMisbehaved);
  Evidence outsider;
  outsider.receipts = {{receipt(c, a, 1, 10), 1}};
  EXPECT_EQ(reconcile(a, b, good, outsider).status().code(), Code::kPeerMisbehaved);
  // Our own evidence failing its checks is corruption of our store, not the peer's fault.
  EXPECT_EQ(reconcile(a, b, outsider, good).status().code(), Code::kCorruption);
  EXPECT_EQ(reconcile(a, a, good, good).status().code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace idn::swap
