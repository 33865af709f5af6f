// Node: IDN's composition root. It turns a Config into a running peer: one io_context, the
// p2p Host (listening, dialling bootstrap peers, pinging connected peers), the IDN protocol
// Dispatcher, the DHT (routing/, on the TCP port's number over UDP), the blockstore and Bitswap
// (store/), the inference server (serve/) and model hosting (ModelHost: publish, initModel),
// ComputeSwap (SwapAgent: admission, receipts, ledgers, provider choice),
// client sessions (client/), and the HTTP endpoint serving /metrics (Prometheus) and /status
// (JSON). Nothing else in IDN creates sockets or timers on its own.
//
// Threading: create() on any thread; run() on the thread that will drive the io_context;
// shutdown() from any thread (or SIGINT/SIGTERM). Everything else runs on the io thread.
#pragma once

#include <utility>  // Boost 1.74 awaitable.hpp uses std::exchange without including it

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <chrono>
#include <filesystem>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "client/ensemble_session.h"
#include "client/session.h"
#include "identity/keys.h"
#include "identity/peer_id.h"
#include "node/config.h"
#include "node/http.h"
#include "node/ise_agent.h"
#include "node/metrics.h"
#include "node/model_host.h"
#include "node/swap_agent.h"
#include "p2p/host.h"
#include "p2p/relay.h"
#include "routing/kad_bridge.h"
#include "rpc/dispatcher.h"

namespace idn::routing {
class DhtRouting;
}
namespace idn::store {
class Blockstore;
namespace bitswap {
class Bitswap;
}
}  // namespace idn::store
namespace idn::serve {
class InferServer;
}

namespace idn::node {

// How often every connected peer is pinged (RTT for /status and the histogram). Frequent
// enough that the numbers are fresh for a person looking, rare enough to cost nothing.
inline constexpr std::chrono::seconds kPingInterval{15};
// How often unconnected bootstrap peers are dialled again.
inline constexpr std::chrono::seconds kBootstrapRetry{10};
// At shutdown, how long connections get to close before the io_context is stopped anyway.
inline constexpr std::chrono::seconds kShutdownGrace{3};
// A session's provider list is looked up in the DHT once and reused for this long (a DHT
// lookup costs milliseconds, an inference on loopback a fraction of one); a peer that
// disconnects leaves the list at once, and a request that runs out of peers looks up again.
inline constexpr std::chrono::seconds kProviderCacheTtl{10};
inline constexpr size_t kProvidersCached = 8;
// A provider lookup slower than this is logged (with what it found).
inline constexpr std::chrono::milliseconds kSlowProviderLookup{1000};

// The p2p HostConfig that `limits` asks for (defaults where unset).
p2p::HostConfig host_config(const LimitsConfig& limits);

class Node {
 public:
  // Loads (or, without identity_file, generates) the identity, binds every listen address and
  // the HTTP endpoint. Errors name the part that failed (bad key file, address in use, ...).
  // `key`, when given, is used instead of identity_file (tests, embedding).
  static Result<std::unique_ptr<Node>> create(Config config,
                                              std::optional<identity::KeyPair> key = std::nullopt);
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  // Drives the node on this thread until shutdown() (or, with handle_signals, SIGINT/SIGTERM),
  // then closes connections and the HTTP endpoint and returns.
  Status run(bool handle_signals = true);
  // Thread-safe; idempotent. run() returns once the shutdown is complete.
  void shutdown();

  const identity::PeerId& id() const { return host_->id(); }
  // True when no identity file was configured and a fresh key was generated for this run.
  bool ephemeral_identity() const { return ephemeral_; }
  // Bound listen addresses, each ending in /p2p/<id> (real ports, also for tcp/0).
  std::vector<core::Multiaddr> listen_addrs() const { return listen_addrs_; }
  std::optional<HttpAddress> http_address() const { return http_address_; }
  // The HTTP server (null without an HTTP address), for the composition root to add routes
  // to (`idn demo --serve`). Use it on the io thread only.
  HttpServer* http_server() { return http_.get(); }
  const Config& config() const { return config_; }

  // For composition (call on the io thread).
  boost::asio::io_context& io() { return io_; }
  p2p::Host& host() { return *host_; }
  rpc::Dispatcher& dispatcher() { return *dispatcher_; }
  Registry& metrics() { return metrics_; }
  routing::DhtRouting* routing() { return routing_.get(); }  // null with [dht] enabled = false
  store::Blockstore& blockstore() { return *store_; }
  store::bitswap::Bitswap& bitswap() { return *bitswap_; }
  serve::InferServer& server() { return *server_; }
  ModelHost& models() { return *models_; }
  SwapAgent* swap() { return swap_.get(); }  // null with [swap] enabled = false
  IseAgent* ise() { return ise_.get(); }     // null with [swap] enabled = false
  const std::filesystem::path& data_dir() const { return data_dir_; }
  // This node's inference requests now in flight, over all its sessions.
  int requests_in_flight() const { return in_flight_->load(std::memory_order_relaxed); }
  // A client session for `service` (io thread): providers come from the DHT, nearest first,
  // excluding this node; the expected output shape comes from the service descriptor when this
  // node has it.
  std::shared_ptr<client::Session> session(const core::Multihash& service,
                                           client::SessionOptions opts = {});
  // A ParallelNet ensemble (io thread): one session per member service, each asking one
  // provider at a time (`member` options, fan-out forced to 1), combined progressively.
  std::shared_ptr<client::EnsembleSession> ensemble(std::vector<core::Multihash> members,
                                                    client::SessionOptions member = {},
                                                    client::EnsembleOptions options = {},
                                                    client::EnsembleExit exit = {});
  // initModel across peers (§7.4, the blog's "have peers load it"; io thread): puts `service`
  // on our need list and asks connected Online peers to host it until `npeers` do (peers
  // that already host it count), or until `deadline`. Each peer decides through its ISE and
  // may say no, with why. The service must be published (some peer provides it).
  // Errors: Unavailable (no ComputeSwap on this node), InvalidArgument (npeers 0).
  struct InitOptions {
    size_t npeers = 1;
    std::chrono::milliseconds deadline{60000};
    // The service's descriptor (JSON text), sent with each request so that peers can host a
    // service nobody provides yet (the blog's initModel(descriptor, ...)); `service` must be
    // its ID.
    std::string descriptor = {};
  };
  p2p::awaitable<Result<InitOutcome>> init_model(core::Multihash service, InitOptions options);
  // Split execution (§3.8): runs stages [0, last_local_stage] of a service whose package this
  // node has (hosted or fetched) and the exits on the way; peers continue from the
  // activation. Errors: NotFound (no local package), engine load errors.
  // `rule` decides whether the local exit is confident (the package's thresholds by default).
  Result<client::LocalPrefix> local_prefix(const core::Multihash& service, int last_local_stage,
                                           const protocol::ExitRule& rule = {});
  // "host:port" of this node's DHT socket, for other nodes' [dht] bootstrap.
  std::string dht_endpoint() const;

  // From any thread but the io thread: runs `make()` (returning an awaitable) on the io thread
  // and waits for its result. The node must be running (run() on another thread); if its io
  // thread stops first (a node shutting down), throws std::runtime_error instead of waiting
  // for a handler that will never run.
  template <class F>
  auto block_on(F make) -> typename decltype(make())::value_type;

  // The bodies of /status and /metrics (call on the io thread).
  std::string status_json() const;
  std::string metrics_text() const { return metrics_.render(); }

 private:
  Node(Config config, identity::KeyPair key, bool ephemeral);
  Status start_listening();
  Status start_services();
  // What the DHT said about one service, shared by every session of this node for it, so
  // that at most one lookup per service is in flight (a burst of requests would otherwise
  // start a lookup each, and a flood of lookups from one address makes OpenDHT's per-IP
  // rate limit drop them until they hang for minutes).
  struct ProviderCache {
    explicit ProviderCache(p2p::asio::any_io_executor ex) : looked_up(std::move(ex)) {}
    std::vector<identity::PeerId> peers;  // nearest first
    std::chrono::steady_clock::time_point expires;
    bool looking_up = false;  // a lookup is filling it
    Status error;             // how the last lookup failed (ok: it did not)
    p2p::Signal looked_up;    // notified when that lookup ends
  };
  std::shared_ptr<ProviderCache> provider_cache(const core::Multihash& service);
  p2p::awaitable<Result<std::vector<identity::PeerId>>> cached_providers(
      std::shared_ptr<ProviderCache> cache, core::Multihash service, size_t n,
      std::vector<identity::PeerId> exclude);
  // A DHT lookup of up to kProvidersCached providers into `cache` (slow ones logged).
  p2p::awaitable<Result<std::vector<identity::PeerId>>> look_up_providers(
      std::shared_ptr<ProviderCache> cache, core::Multihash service, size_t n);
  // Providers of `key` for kad-dht clients (routing/kad_bridge.h): this node when it hosts
  // the service, connected peers whose have list names it, then the DHT's providers.
  p2p::awaitable<std::vector<routing::PeerInfo>> kad_providers(core::Multihash key, size_t n);
  // A peer with a relay reservation here announced a service (kad ADD_PROVIDER): kad clients
  // asking this node get it with its circuit address until the reservation ends.
  bool add_relayed_provider(const identity::PeerId& from, const core::Multihash& key);
  // Publishes (or, with none left, withdraws) the DHT's relayed-provider record for `key`: the
  // reserved peers that announced it, at their circuit addresses through this node, so clients
  // that only know the DHT find them (routing/record.h kRelayed).
  void publish_relayed(const core::Multihash& key);
  p2p::awaitable<void> host_configured_services();
  void register_metrics();
  void do_shutdown();
  p2p::awaitable<void> bootstrap_loop();
  p2p::awaitable<void> ping_loop();
  p2p::awaitable<void> ise_loop();
  p2p::awaitable<void> ping_peer(identity::PeerId peer);
  p2p::awaitable<void> drain_and_stop();

  Config config_;
  bool ephemeral_;
  boost::asio::io_context io_;
  std::unique_ptr<p2p::Host> host_;
  std::unique_ptr<rpc::Dispatcher> dispatcher_;
  std::unique_ptr<HttpServer> http_;
  Registry metrics_;
  Histogram* rtt_ = nullptr;
  std::shared_ptr<client::InFlight> in_flight_ = std::make_shared<client::InFlight>(0);
  Counter* ping_failures_ = nullptr;
  std::filesystem::path data_dir_;
  bool temp_data_dir_ = false;
  std::unique_ptr<routing::DhtRouting> routing_;
  std::unique_ptr<store::Blockstore> store_;
  std::unique_ptr<store::bitswap::Bitswap> bitswap_;
  std::unique_ptr<serve::InferServer> server_;
  // What ModelHost routes and runs through: the DHT (when there is one) and server_.
  std::unique_ptr<DhtServiceRouting> service_routing_;
  std::unique_ptr<ServerExecutor> executor_;
  std::unique_ptr<ModelHost> models_;
  // Shared: sessions and the server hold it as their selector, observer and sinks.
  std::shared_ptr<SwapAgent> swap_;
  std::unique_ptr<IseAgent> ise_;
  std::unique_ptr<routing::KadBridge> kad_;          // /ipfs/kad/1.0.0 for js-libp2p clients
  std::unique_ptr<p2p::relay::RelayService> relay_;  // circuit relay v2 hop, [relay]
  std::unordered_map<identity::PeerId, std::vector<core::Multihash>> relayed_services_;
  std::unordered_map<core::Multihash, std::shared_ptr<ProviderCache>> provider_caches_;
  // Ping RTTs by peer, readable from the DHT's thread (orders findProviders results).
  mutable std::mutex rtt_mu_;
  std::unordered_map<identity::PeerId, std::chrono::microseconds> rtts_;
  std::vector<core::Multiaddr> listen_addrs_;
  std::optional<HttpAddress> http_address_;
  std::unique_ptr<p2p::Signal> wake_;  // interrupts the periodic loops at shutdown
  boost::asio::signal_set signals_;
  bool stopping_ = false;
  std::chrono::steady_clock::time_point started_;
};

template <class F>
auto Node::block_on(F make) -> typename decltype(make())::value_type {
  using T = typename decltype(make())::value_type;
  auto prom = std::make_shared<std::promise<T>>();
  auto fut = prom->get_future();
  boost::asio::co_spawn(
      io_,
      [make = std::move(make), prom]() mutable -> p2p::awaitable<void> {
        try {
          prom->set_value(co_await make());
        } catch (...) {
          prom->set_exception(std::current_exception());
        }
      },
      boost::asio::detached);
  while (fut.wait_for(std::chrono::milliseconds(50)) != std::future_status::ready) {
    if (io_.stopped() && fut.wait_for(std::chrono::seconds(0)) != std::future_status::ready)
      throw std::runtime_error("the node stopped before it could run the call");
  }
  return fut.get();
}

}  // namespace idn::node
