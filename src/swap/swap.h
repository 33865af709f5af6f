// ComputeSwap (dissertation §7.5), the decision engine: per peer the state of Fig. 7.2 (Open ->
// Online -> Close / Ignore), the shared ledger (swap/ledger_store.h), the strategy p(r)
// (swap/strategy.h), trusted list and blacklist, need and have lists, receipts, checkpoints
// and challenges. Sans-IO: the node feeds it events and sends what it returns; time comes from
// an injected Clock, chance from an injected RNG. Not thread-safe: one owner (the node's io
// thread); every method returns quickly (SQLite WAL commits, no fsync).
//
// How the node wires it (every `peer` is the peer ID's multihash bytes):
//   connection up        on_connected(peer)            -> sends Open (our ledger view)
//   swap message in      accept_message(peer) first: false = drop it (peer ignored/blacklisted)
//     Open               on_open(peer, open)           -> Online, or a reply Open, or Evidence
//                                                         needed (views differ), or contempt
//     Evidence           on_evidence(peer, evidence)   -> reconciled ledger, Online
//     NeedList/HaveList  on_need_list / on_have_list
//     Close              on_close(peer, final)         -> Close, all but the ledger cleared
//   connection down      on_disconnected(peer)
//   serving (provider)   on_request(peer, service, request_id) -> Admit{serve, reason}
//                        on_answered(peer, request_id, service, ops) after answering
//                        on_receipt(peer, receipt) when the requester's receipt arrives
//   requesting (client)  on_receipt(peer, receipt) BEFORE sending a receipt for an answer
//                        accepted, and send it only once ledgers() has committed it (so a
//                        crash never leaves the provider holding one we lack);
//                        on_refused_by(peer) when a provider answered REFUSED;
//                        should_challenge(peer) per answer (or should_challenge() per
//                        request, then pick whom); on_challenge_result(peer, ok);
//                        provider_score(peer) to pick providers (nullopt: skip this peer)
//   checkpoints          on_checkpoint(peer, checkpoint) for one the peer sent
//   a timer (~1 s)       tick()      -> idle close, ignore expiry, receipt timeouts, lists
//   shutdown             shutdown()  -> Close(final) and a checkpoint to every Online peer
//   outputs              take_actions(): messages to send, checkpoints to send, connections
//                        to close; snapshot() for `idn peers`, /metrics and /status.
// Its wire messages are proto/idn_swap.proto's; receipts travel in Receipts batches there (or,
// from clients without ComputeSwap, on the request's own stream).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

#include "core/bytes.h"
#include "core/bytes_list.h"
#include "core/status.h"
#include "identity/keys.h"
#include "protocol/messages.h"
#include "swap/config.h"
#include "swap/ledger.h"
#include "swap/ledger_store.h"

namespace idn::swap {

enum class PeerState { kOpen, kOnline, kIgnore, kClose };

// A connected peer still in Open this long after our Open is sent it again: an Open or the
// Evidence after it can be lost with a stream (a duplicate connection closed under it) while
// both peers stay connected.
inline constexpr std::chrono::seconds kOpenRetry{2};
std::string_view peer_state_name(PeerState s);  // "open", "online", "ignore", "close"

// The admission decision for one request.
struct Admit {
  bool serve = true;
  std::string reason;  // why not, for the REFUSED answer and logs
};

// Things the node must do, in order.
struct SendSwap {
  Bytes peer;
  protocol::SwapMessage message;
};
struct SendCheckpoint {
  Bytes peer;
  Checkpoint checkpoint;  // half-signed (a proposal) or fully signed (the countersignature)
};
struct SendEvidence {
  Bytes peer;
  Evidence evidence;
};
struct Disconnect {
  Bytes peer;
  std::string reason;
};
using Action = std::variant<SendSwap, SendCheckpoint, SendEvidence, Disconnect>;

// One peer as `idn peers`, /metrics and /status show it. debt and credit are the peer's:
// debt = operations we performed for it (receipted + pending + unpaid), credit = operations
// it performed for us; r and p are what the next request from it faces.
struct PeerSnapshot {
  Bytes peer;
  PeerState state = PeerState::kClose;
  bool trusted = false, blacklisted = false, contempt = false;
  uint64_t debt = 0, credit = 0;
  uint64_t pending_ops = 0, unpaid_ops = 0;
  double r = 0, p = 1;
  uint64_t sequence = 0, checkpoint_sequence = 0;
  std::optional<Time> last_seen;
  std::optional<Time> ignored_until;     // we ignore it until then
  std::optional<Time> ignores_us_until;  // it refused us; we expect to be ignored until then
  uint64_t served = 0, refused = 0;      // its requests we admitted / refused
  uint64_t challenges_passed = 0, challenges_failed = 0, suspicious = 0;
  std::vector<Bytes> need_list, have_list;
  std::vector<uint32_t> need_counts;  // the peer's requests per need_list entry; empty: 1 each
  std::string reason;                 // the last refusal, contempt or close reason
};

class ComputeSwap {
 public:
  // `key` is our node identity (its peer ID is ledger member "self"); `ledger_path` the SQLite
  // file (e.g. <data-dir>/swap/ledgers.sqlite). `uniform` draws from [0, 1) (a seeded RNG in
  // tests). Errors: InvalidArgument (bad config), IOError/Corruption (the database).
  static Result<std::unique_ptr<ComputeSwap>> open(const Config& config,
                                                   const identity::KeyPair& key,
                                                   const std::filesystem::path& ledger_path,
                                                   const Clock& clock,
                                                   std::function<double()> uniform);
  ComputeSwap(const ComputeSwap&) = delete;
  ComputeSwap& operator=(const ComputeSwap&) = delete;

  const Bytes& self() const { return store_->self(); }
  const Config& config() const { return config_; }
  LedgerStore& ledgers() { return *store_; }

  // The peer's debt, credit, r and p(r): what admission needs, without a full snapshot
  // (the ISE's weights, the simulator's figures). Creates the peer's empty ledger if none.
  struct Standing {
    uint64_t debt = 0, credit = 0;
    double r = 0, p = 1;
  };
  Standing standing(ByteView id);

  // ---- lifecycle (Fig. 7.2) ----
  void on_connected(ByteView peer);
  void on_disconnected(ByteView peer);
  // false: drop the message unread (the peer is in Ignore, blacklisted or held in contempt).
  // Counts as "seen" otherwise: idle close (tick) measures the time since the last message
  // from the peer, lists included, or the last receipt either way.
  bool accept_message(ByteView peer);
  enum class OpenResult { kOnline, kReplied, kNeedEvidence, kContempt, kRefused };
  OpenResult on_open(ByteView peer, const protocol::SwapOpen& open);
  // The peer's evidence after views differed: reconcile (or contempt, per config) -> Online.
  Status on_evidence(ByteView peer, const Evidence& theirs);
  void on_need_list(ByteView peer, const protocol::NeedList& l);
  void on_have_list(ByteView peer, const protocol::HaveList& l);
  void on_close(ByteView peer, bool final);
  // Our own lists changed: sent to every Online peer. `counts`: our requests per service
  // within the need-idle window (ise::NeedLog), same order; empty: 1 each.
  void set_need_list(std::vector<Bytes> services, std::vector<uint32_t> counts = {});
  void set_have_list(std::vector<Bytes> services);
  void shutdown();
  // Timers: ignore periods, idle close (T_c), receipt timeouts, list refresh.
  void tick();

  // ---- serving ----
  Admit on_request(ByteView peer, ByteView service_id, uint64_t request_id);
  Status on_answered(ByteView peer, uint64_t request_id, ByteView service_id, uint64_t ops);
  // Either direction (see the header comment). Applied once; a replay is a no-op (ok).
  Status on_receipt(ByteView peer, const protocol::Receipt& receipt);
  // A receipt for the peer to send: fills server/signer/unix_ms (no signature: the Noise
  // channel authenticates it, checkpoints sign the totals).
  protocol::Receipt make_receipt(ByteView provider, uint64_t request_id, ByteView service_id,
                                 uint64_t ops) const;
  Status on_checkpoint(ByteView peer, const Checkpoint& c);

  // ---- requesting ----
  void on_refused_by(ByteView peer);
  // A draw at challenge_rate (the caller picks whom to challenge).
  bool should_challenge();
  // Whether to challenge this answer from `peer`: always while it is in probation, else a draw
  // at challenge_rate.
  bool should_challenge(ByteView peer);
  // A provider that has passed fewer than probation_challenges challenges (and is not trusted).
  bool in_probation(ByteView peer) const;
  void on_challenge_result(ByteView peer, bool passed);
  // A fan-out answer that disagreed with the majority: counted, shown, not punished.
  void on_suspicious(ByteView peer);
  // Preference for sending requests to `peer`: higher is better (a low ratio of our debt to
  // it), at most kBestProviderScore (we owe it nothing); nullopt when it ignores or
  // blacklisted us or we hold it in contempt/blacklist.
  static constexpr double kBestProviderScore = 1.0;
  std::optional<double> provider_score(ByteView peer);
  // Connected peers in Online whose last have list names `service` (§7.4): providers known
  // without a DHT lookup. Peers that ignore or blacklisted us are left out (provider_score).
  std::vector<Bytes> peers_having(ByteView service);
  // Per service, how many connected Online peers' last have lists name it: the providers we
  // know of without a DHT lookup (the ISE's demand per provider, ise::QueueConfig).
  std::unordered_map<Bytes, size_t, BytesHash, BytesEqual> have_counts() const;

  // ---- lists ----
  bool is_trusted(ByteView peer) const;
  bool is_blacklisted(ByteView peer) const;
  // Adds to the blacklist now: closes the connection (a Disconnect action).
  void blacklist(ByteView peer, std::string reason);

  std::vector<Action> take_actions();
  std::vector<PeerSnapshot> snapshot();
  PeerSnapshot snapshot(ByteView peer);

 private:
  struct Peer {
    PeerState state = PeerState::kClose;
    bool connected = false, contempt = false, agreed = false;
    Time last_seen{};
    bool seen = false;
    Time ignore_until{}, ignores_us_until{}, next_lists{};
    Time open_sent{};                // our last Open; resent after kOpenRetry while still in Open
    bool awake = false;              // listed in awake_
    BytesList need_list, have_list;  // the peer's, shared with the messages that carried them
    CountList need_counts;           // with need_list (empty: 1 each)
    uint64_t served = 0, refused = 0, passed = 0, failed = 0, suspicious = 0;
    std::string reason;
  };
  ComputeSwap(const Config& c, const identity::KeyPair& key, const Clock& clock,
              std::function<double()> uniform, std::unique_ptr<LedgerStore> store);
  Peer& peer(ByteView id);
  // Lists the peer for tick(): every state but Close has timers. tick() drops it at Close.
  void wake(ByteView id, Peer& p);
  void go_online(ByteView id, Peer& p);
  void ignore(ByteView id, Peer& p, std::string reason);
  void close(ByteView id, Peer& p, bool final, std::string reason);
  void send_lists(ByteView id, Peer& p);
  void send_open(ByteView id, Peer& p, bool reply);
  void propose_checkpoint(ByteView id);
  // Receipts in the ledger with `id` after the last checkpoint both signed.
  uint64_t unsigned_receipts(ByteView id);
  std::chrono::nanoseconds list_period();

  Config config_;
  identity::KeyPair key_;
  const Clock& clock_;
  std::function<double()> uniform_;
  std::unique_ptr<LedgerStore> store_;
  std::set<Bytes, BytesLess> trusted_, blacklist_;
  // Entries are never erased (a hash map's nodes stay put: awake_ points at them).
  using Peers = std::unordered_map<Bytes, Peer, BytesHash, BytesEqual>;
  Peers peers_;
  std::vector<Peers::value_type*> awake_;  // peers out of Close
  // Our last checkpoint proposal per peer: its countersigned copy needs only the peer's
  // signature checked.
  std::map<Bytes, Checkpoint, BytesLess> proposals_;
  // Ours: one copy, shared by every message that sends it.
  BytesList need_list_, have_list_;
  CountList need_counts_;
  std::vector<Action> actions_;
};

}  // namespace idn::swap
