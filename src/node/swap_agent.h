// ComputeSwap on a running node: owns swap::ComputeSwap and plugs it into the seams — the
// InferServer's Admission, WorkSink and ReceiptSink, the client Session's ProviderSelector and
// RequestObserver — and carries its messages over /idn/swap/1.0.0 (one outbound stream per
// peer, kept open until we send Close, so a peer sees our messages in order). Receipts for
// answers we accepted go there too, in one Receipts message per peer and group commit, and
// only once the commit made them durable. Connections of blacklisted peers are closed as soon
// as they are up.
//
// Threading: everything on the node's io thread (the seams are called there too).
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <vector>

#include <nlohmann/json.hpp>

#include "client/selector.h"
#include "identity/keys.h"
#include "node/metrics.h"
#include "p2p/host.h"
#include "rpc/dispatcher.h"
#include "serve/accounting.h"
#include "swap/swap.h"

namespace idn::node {

// How often ComputeSwap's timers run (ignore expiry, idle close, receipt timeouts, lists).
inline constexpr std::chrono::milliseconds kSwapTick{500};
// A provider's charge is written to the ledger file only once it has waited this many group
// commits for its receipt (the requester sends receipts after its own commit, so most arrive
// within two intervals and their charges never touch the file).
inline constexpr uint32_t kYoungChargeRounds = 2;

struct SwapAgentStats {
  uint64_t admitted = 0, refused = 0;          // requests we served / refused
  uint64_t refused_by_peers = 0;               // our requests peers refused
  uint64_t receipts_in = 0, receipts_out = 0;  // receipts received (as provider) / sent
  uint64_t receipt_errors = 0;                 // receipts rejected (not between us, ...)
  uint64_t receipt_batches_out = 0;            // Receipts messages queued to providers
  uint64_t receipts_lost = 0;  // recorded, then lost with a failed commit: never sent
  uint64_t messages_sent = 0, messages_dropped = 0;  // swap messages; dropped: peer ignored
  uint64_t checkpoints_signed = 0;                   // fully signed checkpoints stored
  uint64_t disconnects = 0;                          // connections closed (blacklist, contempt)
  uint64_t commit_errors = 0;                        // group commits that failed
};

class SwapAgent final : public serve::Admission,
                        public serve::WorkSink,
                        public serve::ReceiptSink,
                        public client::ProviderSelector,
                        public client::RequestObserver,
                        public std::enable_shared_from_this<SwapAgent> {
 public:
  // Opens the ledger database at `ledger_path`. Errors: invalid config, the database's.
  static Result<std::shared_ptr<SwapAgent>> open(p2p::asio::any_io_executor ex, p2p::Host& host,
                                                 const swap::Config& config,
                                                 const std::filesystem::path& ledger_path);
  ~SwapAgent() override;

  // Registers the swap message handlers and starts the timer loop.
  void start(rpc::Dispatcher& dispatcher);
  // Close(final) to every Online peer (and a checkpoint); stops the timer.
  void stop();
  // Commits the ledgers' open batch now and sends the receipts it made durable (the timer
  // does this commit_interval_ms after an update; tests and shutdown call it directly).
  void commit_now();
  // The host's connection observer calls this.
  void on_connection(const identity::PeerId& peer, bool connected);

  swap::ComputeSwap& swap() { return *swap_; }
  // Called from admit() with each request's peer and service (the ISE counts it as demand).
  using RequestSeen = std::function<void(const identity::PeerId&, const core::Multihash&)>;
  void set_request_seen(RequestSeen fn) { request_seen_ = std::move(fn); }
  // initModel on request (§7.4): `requested` decides and answers an InitRequest (the ISE);
  // `result` receives the answers to ours.
  using InitRequested = std::function<p2p::awaitable<protocol::SwapInitResult>(
      identity::PeerId, protocol::SwapInitRequest)>;
  using InitResultSeen =
      std::function<void(const identity::PeerId&, const protocol::SwapInitResult&)>;
  void set_init_handlers(InitRequested requested, InitResultSeen result) {
    init_requested_ = std::move(requested);
    init_result_ = std::move(result);
  }
  void send_init_request(const identity::PeerId& peer, protocol::SwapInitRequest r);
  // Connected peers Online with us that neither ignore nor blacklisted us, best provider
  // score first (the peers we may ask for work).
  std::vector<identity::PeerId> online_peers();
  // Our need list (the services our sessions use, as service-ID multihash bytes, each with its
  // requests within need_idle: ise::NeedLog's list): sent to every Online peer now and to each
  // new one.
  void set_need_list(std::vector<Bytes> services, std::vector<uint32_t> counts = {});
  // Our have list (the services we host): sent to every Online peer now and to each new one.
  void set_have_list(const std::vector<core::Multihash>& services);
  // Connected peers, Online with us, whose have list names `service` and that neither ignore
  // nor blacklisted us: providers known without a DHT lookup.
  std::vector<identity::PeerId> peers_hosting(const core::Multihash& service);
  // Per-peer gauges go here, refreshed every tick (register_swap_metrics sets it).
  void set_metrics(Registry* registry) { metrics_ = registry; }
  const SwapAgentStats& stats() const { return stats_; }

  // ---- serve/accounting.h ----
  serve::Decision admit(const identity::PeerId& peer, const core::Multihash& service,
                        uint64_t request_id) override;
  void on_work(const serve::WorkDone& w) override;
  Status on_receipt(const identity::PeerId& from, const protocol::Receipt& r) override;

  // ---- client/selector.h ----
  std::vector<identity::PeerId> select(const core::Multihash& service,
                                       std::vector<identity::PeerId> candidates) override;
  void on_peer_done(const core::Multihash& service, uint64_t request_id,
                    const client::PeerReport& report) override;
  void on_receipt_sent(const identity::PeerId& provider, protocol::Receipt r) override;
  bool delivers_receipts() const override { return true; }
  void on_challenge(const core::Multihash& service, const identity::PeerId& peer, bool passed,
                    const std::string& detail) override;

 private:
  SwapAgent(p2p::asio::any_io_executor ex, p2p::Host& host);
  // A receipt from `from` into the ledger, without flush() (on_receipt and the Receipts
  // handler flush after it).
  Status record_receipt(const identity::PeerId& from, const protocol::Receipt& r);
  // Carries out what ComputeSwap asked for (sends, disconnects).
  void flush();
  void enqueue(const identity::PeerId& peer, protocol::SwapMessage m);
  // Ends our stream to `peer` once its queue is sent (after a Close either way).
  void end_stream(const identity::PeerId& peer);
  p2p::awaitable<void> drain(identity::PeerId peer, uint64_t id);
  p2p::awaitable<void> tick_loop();
  // Group commit: commits the ledgers' open batch commit_interval_ms after its first update.
  void schedule_commit();
  p2p::awaitable<void> commit_later();
  // Commits the open batch; charges younger than `young_charge_rounds` commits stay in memory
  // (LedgerStore::commit).
  void commit(uint32_t young_charge_rounds);
  // Sends the receipts we recorded once the ledger holds them durably (no uncommitted
  // updates); drops them if a commit failed since (the ledger no longer holds them either).
  void send_durable_receipts();
  std::optional<identity::PeerId> peer_of(ByteView bytes) const;

  struct Outbox {
    std::vector<protocol::SwapMessage> queue;
    bool draining = false;
    bool end_when_drained = false;
    std::shared_ptr<rpc::SwapStream> stream;
    uint64_t id = 0;  // unique per outbox: a drain serves only its own (see drain())
  };

  p2p::asio::any_io_executor ex_;
  p2p::Host& host_;
  swap::SystemClock clock_;
  std::unique_ptr<swap::ComputeSwap> swap_;
  std::map<identity::PeerId, Outbox> outboxes_;
  uint64_t next_outbox_id_ = 0;
  std::unique_ptr<p2p::Signal> wake_;
  bool commit_armed_ = false;
  // Receipts we recorded for answers we accepted, by provider, waiting for the commit that
  // makes them durable; and the ledger's failed_commits() when we last looked.
  std::map<identity::PeerId, std::vector<protocol::Receipt>> unsent_receipts_;
  uint64_t failed_commits_seen_ = 0;
  bool stopped_ = false;
  RequestSeen request_seen_;
  InitRequested init_requested_;
  InitResultSeen init_result_;
  SwapAgentStats stats_;
  Registry* metrics_ = nullptr;
  void refresh_metrics();
};

// /status's "swap" object: our parameters and one entry per known peer (state, debt, credit,
// r, p(r), last seen, challenges, ...), as `idn peers` prints them.
nlohmann::json swap_status_json(SwapAgent& agent);
// Aggregate counters (requests admitted/refused, receipts, ...) and per-peer gauges
// (idn_swap_peer_*{peer=...}, refreshed by the agent's timer) in `registry`.
void register_swap_metrics(Registry& registry, SwapAgent& agent);

// swap:: values <-> their wire form.
protocol::SwapCheckpoint to_wire(const swap::Checkpoint& c);
swap::Checkpoint from_wire(const protocol::SwapCheckpoint& c);
protocol::SwapEvidence to_wire(const swap::Evidence& e);
swap::Evidence from_wire(const protocol::SwapEvidence& e);

}  // namespace idn::node
