// The seams between a client Session and accounting (ComputeSwap, dissertation §7.5): a
// ProviderSelector orders and filters the providers a request may ask (the node fills it from
// swap state: skip peers that ignore or blacklisted us, prefer those our debt ratio with is
// low), and a RequestObserver hears how each peer's part ended, every Receipt the session sent
// and every challenge verdict (the node feeds them into swap's ledgers and peer states). The
// policy of when to challenge lives in swap/; Session::challenge is the mechanism.
// Torch-free. Threading: a Session calls both on its io executor; they must not block.
#pragma once

#include <cstdint>
#include <vector>

#include "client/answer.h"
#include "core/multihash.h"
#include "identity/peer_id.h"
#include "p2p/stream.h"
#include "protocol/messages.h"

namespace idn::client {

class ProviderSelector {
 public:
  virtual ~ProviderSelector() = default;
  // `candidates` come from the ProviderSource, nearest first, none tried yet by this request.
  // Returns the ones to ask, best first; leaving a peer out means "do not ask it for this
  // request" (the session then asks the source for others). Peers not among `candidates`
  // are ignored.
  virtual std::vector<identity::PeerId> select(const core::Multihash& service,
                                               std::vector<identity::PeerId> candidates) = 0;
};

class RequestObserver {
 public:
  virtual ~RequestObserver() = default;
  // A peer's part in request `request_id` ended (the report is final: outcome, detail,
  // operations, receipt_operations, challenge_passed). kRefused: the peer's strategy declined
  // us (it ignores us for a while).
  virtual void on_peer_done(const core::Multihash& service, uint64_t request_id,
                            const PeerReport& report) {
    (void)service, (void)request_id, (void)report;
  }
  // The session confirms `provider`'s accepted answers with `r` (our debt grows by
  // r.operations in our view of the ledger). Called before the receipt leaves, so a ledger that
  // records it here never lacks a receipt the provider holds.
  // `r` is the observer's to keep.
  virtual void on_receipt_sent(const identity::PeerId& provider, protocol::Receipt r) {
    (void)provider, (void)r;
  }
  // Who carries the receipts on_receipt_sent hands over. false (the default): the session
  // writes each on its request's stream right after on_receipt_sent. true: the observer
  // delivers them itself (ComputeSwap sends them in batches on /idn/swap/1.0.0 once its ledger
  // has committed them), so the request's stream closes with the answer.
  virtual bool delivers_receipts() const { return false; }
  // A challenge's final answer from `peer` was judged against the known answer; `detail` says
  // what differed when it failed.
  virtual void on_challenge(const core::Multihash& service, const identity::PeerId& peer,
                            bool passed, const std::string& detail) {
    (void)service, (void)peer, (void)passed, (void)detail;
  }
};

}  // namespace idn::client
