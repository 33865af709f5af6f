// Bitswap 1.2.0 over a p2p::Host: a server answering want-have / want-block from the
// Blockstore, and a client that fetches a whole DAG from several providers in parallel,
// verifying every block against its CID. A block that fails verification is discarded, its
// sender counted as faulty and dropped from the fetch, and the block is fetched elsewhere.
// Blocks already in the store are never fetched again, so a fetch resumes where an
// interrupted one stopped. Runs on the Host's executor; call everything from that thread.
#pragma once

#include <chrono>
#include <deque>
#include <memory>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "identity/peer_id.h"
#include "p2p/host.h"
#include "store/bitswap_defaults.h"
#include "store/bitswap_message.h"
#include "store/blockstore.h"

namespace idn::store::bitswap {

namespace asio = boost::asio;
using p2p::awaitable;

struct BitswapConfig {
  size_t max_message_bytes = defaults::kMaxMessageBytes;
  size_t target_response_bytes = defaults::kTargetResponseBytes;
  size_t max_wants_per_peer = defaults::kMaxWantsPerPeer;
  size_t max_outstanding_bytes_per_peer = defaults::kMaxOutstandingBytesPerPeer;
  std::chrono::milliseconds backpressure_timeout = defaults::kBackpressureTimeout;
  size_t max_wants_in_flight_per_peer = defaults::kMaxWantsInFlightPerPeer;
  std::chrono::milliseconds want_timeout = defaults::kWantTimeout;
  std::chrono::milliseconds root_timeout = defaults::kRootTimeout;
};

struct BitswapStats {
  uint64_t blocks_sent = 0, bytes_sent = 0, blocks_received = 0, bytes_received = 0;
  uint64_t duplicate_blocks = 0, bad_blocks = 0, unwanted_blocks = 0;
  uint64_t wants_refused = 0, malformed_messages = 0, want_timeouts = 0;
};

class Session;

class Bitswap {
 public:
  // `ex` is the host's executor.
  Bitswap(asio::any_io_executor ex, p2p::Host& host, Blockstore& store, BitswapConfig config = {});
  ~Bitswap();
  Bitswap(const Bitswap&) = delete;
  Bitswap& operator=(const Bitswap&) = delete;

  // Serves /ipfs/bitswap/1.2.0 and 1.1.0 on the host.
  void start();
  void stop();

  // Fetches every block reachable from `root` that the store lacks from `providers` (peers
  // already connected: dial them first; a routing layer can supply this list later). Returns
  // when the whole DAG is in the store. Errors: NotFound (no provider has some block),
  // Timeout, IOError (store).
  awaitable<Status> fetch_dag(core::Cid root, std::vector<identity::PeerId> providers);

  // Blocks from `peer` that failed verification or broke the protocol.
  uint64_t faulty_count(const identity::PeerId& peer) const;
  const BitswapStats& stats() const { return stats_; }
  const BitswapConfig& config() const { return config_; }

  // Queues `m` for `peer` on our outbound Bitswap stream (exposed for tests and tools).
  void send(const identity::PeerId& peer, const Message& m);

 private:
  friend class Session;
  struct Outbox {
    std::deque<Bytes> queue;
    size_t queued_bytes = 0;
    bool writing = false;
    std::shared_ptr<p2p::Stream> stream;
  };

  awaitable<void> handle_stream(std::shared_ptr<p2p::Stream> s);
  awaitable<void> writer(identity::PeerId peer, std::shared_ptr<bool> alive);
  awaitable<void> serve_wants(const identity::PeerId& peer, std::vector<WantEntry> wants);
  void on_message(const identity::PeerId& peer, Message m);
  void mark_faulty(const identity::PeerId& peer, uint64_t n);

  p2p::Host& host_;
  Blockstore& store_;
  BitswapConfig config_;
  BitswapStats stats_;
  std::unordered_map<identity::PeerId, Outbox> outboxes_;
  std::unordered_map<identity::PeerId, uint64_t> faulty_;
  std::vector<Session*> sessions_;
  std::unordered_set<core::Cid> ever_wanted_;
  asio::any_io_executor exec_;
  p2p::Signal drained_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace idn::store::bitswap
