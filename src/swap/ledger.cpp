#include "swap/ledger.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>

#include "identity/peer_id.h"

namespace idn::swap {
namespace {

constexpr std::string_view kCheckpointTag = "idn/swap/checkpoint/v1";

void put_u64(Bytes& out, uint64_t v) {
  for (int i = 7; i >= 0; --i) out.push_back(uint8_t(v >> (8 * i)));
}

void put_bytes(Bytes& out, ByteView b) {
  put_u64(out, b.size());
  out.insert(out.end(), b.begin(), b.end());
}

std::string short_id(ByteView id) {
  auto pid = identity::PeerId::from_bytes(id);
  std::string s = pid.ok() ? pid->to_base58() : hex_encode(id);
  return s.size() > 12 ? "…" + s.substr(s.size() - 8) : s;
}

bool same(ByteView a, ByteView b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin());
}

// A receipt's identity within a pair: who served, and the requester's request ID.
struct ReceiptKey {
  Bytes server;
  uint64_t request_id = 0;
  bool operator<(const ReceiptKey& o) const {
    if (server != o.server) return BytesLess{}(server, o.server);
    return request_id < o.request_id;
  }
};

ReceiptKey key_of(const protocol::Receipt& r) {
  return {r.server, r.request_id};
}

// A receipt between the members of `l`: one served, the other signed (and owes).
Status check_receipt(const Ledger& l, const protocol::Receipt& r) {
  if (!l.has(r.server) || !l.has(r.signer) || same(r.server, r.signer)) {
    return Status::peer_misbehaved(fmt::format("receipt for request {} is not between {} and {}",
                                               r.request_id, short_id(l.node1), short_id(l.node2)));
  }
  return Status::ok();
}

Status verify_one(const Checkpoint& c, ByteView node, const Bytes& sig, std::string_view which) {
  if (sig.empty()) return Status::peer_misbehaved(fmt::format("checkpoint lacks {}", which));
  auto pid = identity::PeerId::from_bytes(node);
  if (!pid.ok()) return Status::peer_misbehaved("checkpoint names a malformed node ID");
  auto key = pid->extract_public_key();
  if (!key.ok()) {
    return Status::peer_misbehaved("checkpoint node " + pid->to_base58() +
                                   " does not inline its key: " + key.status().message());
  }
  if (!key->verify(checkpoint_signing_bytes(c), sig)) {
    return Status::peer_misbehaved(fmt::format("checkpoint at sequence {}: {} by {} is invalid",
                                               c.ledger.sequence, which, pid->to_base58()));
  }
  return Status::ok();
}

}  // namespace

Ledger Ledger::between(ByteView a, ByteView b) {
  Ledger l;
  bool a_first = BytesLess{}(a, b);
  ByteView first = a_first ? a : b, second = a_first ? b : a;
  l.node1.assign(first.begin(), first.end());
  l.node2.assign(second.begin(), second.end());
  return l;
}

Status Ledger::charge(ByteView debtor, uint64_t ops) {
  uint64_t& d = equal(debtor, node1) ? debt1 : debt2;
  if (d > UINT64_MAX - ops || sequence == UINT64_MAX) {
    return Status::limit_exceeded("ledger debt would overflow 2^64 operations");
  }
  d += ops;
  ++sequence;
  return Status::ok();
}

protocol::LedgerView Ledger::view_of(ByteView self, uint64_t updated_unix_ms) const {
  return {.debt = debt_of(self),
          .credit = credit_of(self),
          .sequence = sequence,
          .updated_unix_ms = updated_unix_ms};
}

bool Ledger::matches_remote_view(ByteView self, const protocol::LedgerView& remote) const {
  return remote.debt == credit_of(self) && remote.credit == debt_of(self) &&
         remote.sequence == sequence;
}

std::string Ledger::to_string() const {
  return fmt::format("{{{} owes {}, {} owes {}, sequence {}}}", short_id(node1), debt1,
                     short_id(node2), debt2, sequence);
}

Bytes checkpoint_signing_bytes(const Checkpoint& c) {
  Bytes out(kCheckpointTag.begin(), kCheckpointTag.end());
  put_bytes(out, c.ledger.node1);
  put_bytes(out, c.ledger.node2);
  put_u64(out, c.ledger.debt1);
  put_u64(out, c.ledger.debt2);
  put_u64(out, c.ledger.sequence);
  put_u64(out, c.unix_ms);
  return out;
}

Status sign_checkpoint(Checkpoint& c, const identity::KeyPair& key) {
  Bytes me = identity::PeerId::from_public_key(key.public_key()).bytes();
  if (!c.ledger.has(me)) {
    return Status::invalid_argument("cannot sign a checkpoint of a ledger we are not part of");
  }
  (same(me, c.ledger.node1) ? c.sig1 : c.sig2) = key.sign(checkpoint_signing_bytes(c));
  return Status::ok();
}

Status verify_signature_of(const Checkpoint& c, ByteView signer) {
  if (same(signer, c.ledger.node1)) return verify_one(c, c.ledger.node1, c.sig1, "signature 1");
  if (same(signer, c.ledger.node2)) return verify_one(c, c.ledger.node2, c.sig2, "signature 2");
  return Status::peer_misbehaved("checkpoint signer is not a member of the ledger");
}

Status verify_checkpoint(const Checkpoint& c, uint64_t min_sequence) {
  if (c.ledger.node1.empty() || c.ledger.node2.empty() ||
      !BytesLess{}(c.ledger.node1, c.ledger.node2)) {
    return Status::peer_misbehaved("checkpoint node IDs are not two sorted, distinct IDs");
  }
  if (c.ledger.sequence < min_sequence) {
    return Status::peer_misbehaved(
        fmt::format("checkpoint at sequence {} is older than the one we hold ({})",
                    c.ledger.sequence, min_sequence));
  }
  IDN_RETURN_IF_ERROR(verify_one(c, c.ledger.node1, c.sig1, "signature 1"));
  return verify_one(c, c.ledger.node2, c.sig2, "signature 2");
}

Result<Ledger> prove_balance(const Checkpoint& checkpoint, const std::vector<HeldReceipt>& later) {
  IDN_RETURN_IF_ERROR(verify_checkpoint(checkpoint));
  Ledger l = checkpoint.ledger;
  std::set<ReceiptKey> seen;
  for (const auto& h : later) {
    if (h.sequence <= checkpoint.ledger.sequence) continue;
    IDN_RETURN_IF_ERROR(check_receipt(l, h.receipt));
    if (!seen.insert(key_of(h.receipt)).second) {
      return Status::peer_misbehaved(
          fmt::format("receipt for request {} appears twice", h.receipt.request_id));
    }
    IDN_RETURN_IF_ERROR(l.charge(h.receipt.signer, h.receipt.operations));
  }
  return l;
}

Result<Reconciled> reconcile(ByteView self, ByteView peer, const Evidence& ours,
                             const Evidence& theirs) {
  if (same(self, peer) || self.empty() || peer.empty()) {
    return Status::invalid_argument("reconcile needs two different node IDs");
  }
  Ledger zero = Ledger::between(self, peer);
  // Checkpoints: each must be of this pair and signed by both; the newer one is the base.
  auto check = [&](const Evidence& e, bool remote) -> Status {
    auto wrap = [&](Status s) {
      return remote || s.is_ok() ? s : Status::corruption("our own swap evidence: " + s.message());
    };
    if (e.checkpoint) {
      if (e.checkpoint->ledger.node1 != zero.node1 || e.checkpoint->ledger.node2 != zero.node2) {
        return wrap(Status::peer_misbehaved("checkpoint is of another pair of nodes"));
      }
      IDN_RETURN_IF_ERROR(wrap(verify_checkpoint(*e.checkpoint)));
    }
    std::set<ReceiptKey> seen;
    for (const auto& h : e.receipts) {
      IDN_RETURN_IF_ERROR(wrap(check_receipt(zero, h.receipt)));
      if (!seen.insert(key_of(h.receipt)).second) {
        return wrap(Status::peer_misbehaved(
            fmt::format("receipt for request {} appears twice", h.receipt.request_id)));
      }
    }
    return Status::ok();
  };
  IDN_RETURN_IF_ERROR(check(ours, false));
  IDN_RETURN_IF_ERROR(check(theirs, true));

  // The base: the newer checkpoint; at equal sequences the smaller signing bytes, so both
  // sides pick the same one even if (impossibly, for honest peers) two differ.
  std::optional<Checkpoint> base;
  for (const Evidence* e : {&ours, &theirs}) {
    if (!e->checkpoint) continue;
    if (!base || e->checkpoint->ledger.sequence > base->ledger.sequence ||
        (e->checkpoint->ledger.sequence == base->ledger.sequence &&
         BytesLess{}(checkpoint_signing_bytes(*e->checkpoint), checkpoint_signing_bytes(*base)))) {
      base = e->checkpoint;
    }
  }
  uint64_t base_seq = base ? base->ledger.sequence : 0;

  // After the base, per receipt: the requester's copy counts, the provider's only shows a
  // dispute when the requester has none. Keyed (server, request ID), so the order is fixed.
  std::map<ReceiptKey, const protocol::Receipt*> counted, held_by_server;
  for (const auto& [side, e] : {std::pair{self, &ours}, std::pair{peer, &theirs}}) {
    for (const auto& h : e->receipts) {
      if (h.sequence <= base_seq) continue;
      (same(h.receipt.signer, side) ? counted : held_by_server)[key_of(h.receipt)] = &h.receipt;
    }
  }
  Reconciled out;
  out.base = base;
  out.ledger = base ? base->ledger : zero;
  for (const auto& [key, r] : counted) {
    IDN_RETURN_IF_ERROR(out.ledger.charge(r->signer, r->operations));
    out.receipts.push_back({*r, out.ledger.sequence});
  }
  for (const auto& [key, r] : held_by_server) {
    if (!counted.count(key)) out.disputed.push_back(*r);
  }
  if (!out.disputed.empty()) {
    uint64_t ops = 0;
    for (const auto& r : out.disputed) ops += r.operations;
    out.reason = fmt::format(
        "{} receipt(s) for {} operations held by their provider but not by their requester",
        out.disputed.size(), ops);
  }
  return out;
}

}  // namespace idn::swap
