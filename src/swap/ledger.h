// ComputeSwap's shared ledger (dissertation §7.5.1) as values: the two node IDs sorted, the
// debt of each in operations, a sequence number; signed checkpoints of it; and the pure rules
// that prove a balance from a checkpoint plus receipts and reconcile two disagreeing views.
// Values and pure functions only (no I/O): safe to use from any thread.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/bytes.h"
#include "core/status.h"
#include "identity/keys.h"
#include "protocol/messages.h"

namespace idn::swap {

// Byte-wise order of IDs (node IDs, keys of maps). Also sidesteps GCC 12's false
// -Wstringop-overread on std::vector's operator<=>.
struct BytesLess {
  using is_transparent = void;
  bool operator()(ByteView a, ByteView b) const {
    return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end());
  }
};

// The ledger two peers share. node1 < node2 (byte order of their peer ID multihashes); debt1
// is what node1 owes: the operations node2 performed for node1 (= node2's credit), and the
// reverse for debt2. `sequence` counts the receipts folded in; both sides advance it together.
struct Ledger {
  Bytes node1, node2;
  uint64_t debt1 = 0, debt2 = 0;
  uint64_t sequence = 0;

  // The zero ledger of a pair, IDs sorted. The IDs must differ.
  static Ledger between(ByteView a, ByteView b);
  bool has(ByteView node) const { return equal(node, node1) || equal(node, node2); }
  // The other member of the pair.
  const Bytes& other(ByteView node) const { return equal(node, node1) ? node2 : node1; }
  // What `node` owes (its debt) and what it is owed (its credit). `node` must be a member.
  uint64_t debt_of(ByteView node) const { return equal(node, node1) ? debt1 : debt2; }
  uint64_t credit_of(ByteView node) const { return equal(node, node1) ? debt2 : debt1; }
  // Folds one receipt in: `debtor` owes `ops` more, sequence + 1. LimitExceeded on overflow.
  Status charge(ByteView debtor, uint64_t ops);
  // The wire view `self` sends in Open: debt = self's debt, credit = the peer's debt.
  protocol::LedgerView view_of(ByteView self, uint64_t updated_unix_ms = 0) const;
  // True when `remote` (the peer's view) describes this ledger as seen from the peer.
  bool matches_remote_view(ByteView self, const protocol::LedgerView& remote) const;
  std::string to_string() const;

  bool operator==(const Ledger&) const = default;

 private:
  static bool equal(ByteView a, ByteView b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin());
  }
};

// A ledger both members signed (Ed25519, the keys of their node IDs) over
// checkpoint_signing_bytes. It proves the balance at `ledger.sequence` to anyone, and lets
// both sides forget the receipts before it.
struct Checkpoint {
  Ledger ledger;
  uint64_t unix_ms = 0;  // when it was proposed; signed, informational
  Bytes sig1, sig2;      // by node1, node2; empty until that side signs
  bool fully_signed() const { return !sig1.empty() && !sig2.empty(); }
  bool operator==(const Checkpoint&) const = default;
};

// Domain tag, then node1, node2 (length-prefixed), debt1, debt2, sequence, unix_ms (big-endian
// u64): independent of any wire encoding.
Bytes checkpoint_signing_bytes(const Checkpoint& c);
// Adds `key`'s signature in its slot. InvalidArgument when the key's node ID is not a member.
Status sign_checkpoint(Checkpoint& c, const identity::KeyPair& key);
// Checks both signatures against the node IDs' keys (inlined in Ed25519 peer IDs) and that the
// sequence is not older than `min_sequence` (the last checkpoint already accepted).
// PeerMisbehaved naming what failed: a missing or bad signature, a node ID that does not name
// a key, a stale sequence.
Status verify_checkpoint(const Checkpoint& c, uint64_t min_sequence = 0);
// Same, for a checkpoint the peer has signed and we have not yet: only `signer`'s signature.
Status verify_signature_of(const Checkpoint& c, ByteView signer);

// A receipt as one side holds it, with the ledger sequence it got there.
struct HeldReceipt {
  protocol::Receipt receipt;
  uint64_t sequence = 0;
  bool operator==(const HeldReceipt&) const = default;
};

// The balance a checkpoint plus the receipts after it prove: the checkpoint must verify, each
// receipt must be between the pair (server and signer the two members) and appear once (by
// server and request ID); receipts at or below the checkpoint's sequence are already in it.
// Errors: PeerMisbehaved naming the bad checkpoint or receipt.
Result<Ledger> prove_balance(const Checkpoint& checkpoint, const std::vector<HeldReceipt>& later);

// What one side shows the other when their views differ at Open: its last fully signed
// checkpoint (none before the first) and every receipt it holds after it.
struct Evidence {
  std::optional<Checkpoint> checkpoint;
  std::vector<HeldReceipt> receipts;
};

// The outcome both sides compute from the same two Evidences, whichever side computes it.
struct Reconciled {
  // The agreed ledger, and the receipts after the base checkpoint it consists of, in a fixed
  // order (server, request ID) with sequences base + 1, base + 2, ...
  Ledger ledger;
  std::optional<Checkpoint> base;
  std::vector<HeldReceipt> receipts;
  // Receipts the provider (`server`) holds but the requester (`signer`) does not: an honest
  // requester stores a receipt before sending it, so one of these means the requester lost
  // its ledger or denies a debt. They are left out of `ledger`; `reason` says so.
  std::vector<protocol::Receipt> disputed;
  std::string reason;  // empty when nothing was disputed
};

// The deterministic reconciliation rule (§7.5.3.2 "if a peer notices a discrepancy"): start
// from the newest checkpoint either side holds that both signed, then add each receipt its
// requester (the signer) holds after it. A receipt is the requester's confirmation of its own
// debt, so the requester's copy decides; the provider's copies only reveal disputes. Symmetric:
// reconcile(self, peer, a, b) == reconcile(peer, self, b, a). Errors: PeerMisbehaved when the
// evidence carries a forged checkpoint or a receipt outside the pair (from `peer`'s evidence
// only: our own is trusted), InvalidArgument for self == peer.
Result<Reconciled> reconcile(ByteView self, ByteView peer, const Evidence& ours,
                             const Evidence& theirs);

}  // namespace idn::swap
