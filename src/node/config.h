// A node's configuration: read from a TOML file (`idn node --config node.toml`), then
// overridden by command-line flags. Every key is checked; an unknown key or a bad value is
// one error line naming the file, line and key.
//
//   listen = ["/ip4/0.0.0.0/tcp/4001"]      # multiaddrs to listen on (tcp port 0 = any);
//                                           # .../tcp/4002/ws: WebSocket, which browsers dial
//   identity = "node.key"                   # keystore file (relative to this file); absent =
//                                           # an ephemeral identity for this run
//   passphrase_file = "node.pass"           # its passphrase (else $IDN_PASSPHRASE, else none)
//   bootstrap = ["/ip4/10.0.0.2/tcp/4001/p2p/12D3KooW..."]  # peers to dial at start
//   http = "127.0.0.1:9464"                 # /metrics and /status; "" disables
//   log_level = "info"                      # trace debug info warn error off
//   busy_poll_us = 0                        # keep the io thread polling this long after work
//                                           # before sleeping: lower latency on VMs, more CPU
//   poll_while_waiting_us = 0               # poll (up to this long) instead of sleeping while
//                                           # our own inference requests await answers
//   [limits]                                # override p2p/defaults.h
//   max_connections = 256                   # established peers (and our dials in progress)
//   max_streams_per_connection = 256
//   handshake_timeout_ms = 10000
//   max_pending_handshakes = 64             # inbound handshakes in progress, in total...
//   max_pending_handshakes_per_address = 8  # ...and per IPv4 address / IPv6 /56
//   handshake_evictable_after_ms = 2000     # budget full: older ones give way to new ones,
//   handshake_silent_evictable_after_ms = 250  # those that sent nothing useful yet sooner
//   idle_timeout_ms = 120000
//   dial_timeout_ms = 10000
//   max_message_bytes = 16777216            # largest IDN protocol message
//   data_dir = "idn-data"                   # store/, models/, hosted services (relative to this
//                                           # file); absent = a temporary directory for this run
//   store_max_bytes = 0                     # blockstore limit, LRU eviction of unpinned (0: none)
//   host = ["Qm..."]                        # service IDs to host (initModel) at start
//   [dht]
//   enabled = true
//   port = 0                                # UDP port; 0 = the first TCP listen port's number
//   bootstrap = ["10.0.0.2:4001"]           # DHT nodes; default: each bootstrap peer's IP and
//                                           # TCP port (an IDN node's DHT shares its TCP port)
//   lan = false                             # OpenDHT multicast discovery of LAN nodes
//   record_ttl_s = 3600                     # provider record lifetime (refreshed before expiry)
//   withdraw_on_stop = true                 # tombstone our records at stop (waits up to 5 s)
//   [serve]
//   workers = 1                             # inference worker threads
//   max_queue = 64                          # queued requests beyond this are answered "busy"
//   max_batch = 8                           # queued requests for one stage run as one batch
//   inline_below_us = 1000                  # models faster than this run on the io thread
//                                           # when the server is idle (0: always on workers)
//   [engine]
//   backend = "auto"                        # what runs hosted models: "auto" (the faster of the
//                                           #   cpu executor and LibTorch where they agree; cpu
//                                           #   without LibTorch), "torch", "cpu"
//   [swap]                                  # ComputeSwap (§7.5; swap/config.h has the why)
//   enabled = true                          # false: serve everyone, keep no ledgers
//   m = 4.0                                 # debt ratio where service stops (p(r) = 0)
//   n = 2.0                                 # how late p(r) falls (1: linearly)
//   grace_ops = 10000000000                 # operations a stranger may owe before p falls
//   ignore_period_s = 30                    # T_g: a refused or caught peer is ignored
//   idle_close_s = 120                      # T_c: a silent peer is closed (final = false)
//   receipt_timeout_ms = 10000              # an answer unreceipted this long is unpaid
//   checkpoint_every = 1024                 # receipts between signed ledger checkpoints (<= 2048)
//   commit_interval_ms = 200                # ledger updates committed together (0: each);
//                                           #   receipts leave after it: < receipt_timeout_ms
//   challenge_rate = 0.01                   # share of our requests sent as challenges
//   probation_challenges = 0                # challenge every answer of a provider until it
//                                           #   has passed this many (0: none)
//   on_challenge_failure = "ignore"         # or "blacklist"
//   on_ledger_mismatch = "reconcile"        # or "contempt": refuse to exchange
//   trusted = ["12D3KooW..."]               # peers always served
//   blacklist = ["12D3KooW..."]             # peers never served; connections closed
//   [ise]                                   # Inference Service Engine (§7.4): host by demand
//   auto_host = false                       # true: host the top k services peers need
//   k = 0                                   # services hosted on demand (0: derived from
//                                           #   cores and memory, ise/capacity.h);
//                                           #   `host = [...]` ones always run, besides these
//   memory_budget_mb = 0                    # memory on-demand services may take with k = 0
//                                           #   (0: half the physical memory)
//   min_service_period_s = 300              # T_s: a service runs this long before a swap-out
//   need_idle_s = 120                       # a service leaves our need list, and a peer's
//                                           #   requests stop counting, this long after use
//   keep_factor = 1.0                       # past T_s a hosted service gives way only to one
//                                           #   scoring more than this times its score
//   per_provider = true                     # score a service's demand per provider we know
//   max_need_count = 120                    # a peer's need-list count counts up to this
//   [relay]                                 # circuit relay v2 for peers that cannot listen
//   enabled = true
//   max_reservations = 128                  # peers holding a slot at once
//   max_circuits = 256                      # relayed connections at once, in total...
//   max_circuits_per_peer = 16              # ...and per peer at either end
//   reservation_ttl_s = 3600                # a reservation lasts this long unless refreshed
//   circuit_duration_s = 0                  # a circuit's limits (sent as the spec's Limit);
//   circuit_data_bytes = 0                  #   0: none, so js-libp2p runs every protocol on it
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/multiaddr.h"
#include "core/multihash.h"
#include "core/status.h"
#include "swap/config.h"

namespace idn::node {

// host:port of the HTTP endpoint. host is an IP literal (IPv6 in brackets on input).
struct HttpAddress {
  std::string host;
  uint16_t port = 0;
  std::string to_string() const;
  bool operator==(const HttpAddress&) const = default;
};
// "127.0.0.1:9464", "[::1]:9464", "localhost:9464" (localhost means 127.0.0.1).
// Errors: InvalidArgument saying what is wrong.
Result<HttpAddress> parse_http_address(std::string_view text);

// Overrides of the p2p defaults; unset fields keep them.
struct LimitsConfig {
  std::optional<size_t> max_connections;
  std::optional<size_t> max_streams_per_connection;
  std::optional<std::chrono::milliseconds> handshake_timeout;
  std::optional<size_t> max_pending_handshakes;
  std::optional<size_t> max_pending_handshakes_per_address;
  std::optional<std::chrono::milliseconds> handshake_evictable_after;
  std::optional<std::chrono::milliseconds> handshake_silent_evictable_after;
  std::optional<std::chrono::milliseconds> idle_timeout;
  std::optional<std::chrono::milliseconds> dial_timeout;
  std::optional<size_t> max_message_bytes;
};

// The DHT (routing/) part of a node.
struct DhtConfig {
  bool enabled = true;
  uint16_t port = 0;                   // 0: the first TCP listen port
  std::vector<std::string> bootstrap;  // "host:port"; empty: derived from Config::bootstrap
  bool lan = false;
  std::chrono::seconds record_ttl{3600};
  // Tombstones for our provider records at a graceful stop, so peers stop being sent here. It
  // waits (up to 5 s) for the DHT to take them: a stop after every peer left waits it all.
  bool withdraw_on_stop = true;
};

// The inference server (serve/) part of a node.
struct ServeConfig {
  size_t workers = 1;
  size_t max_queue = 64;
  size_t max_batch = 8;
  // A model whose runs average less than this runs on the io thread when the server is idle
  // (no worker hand-off); 0 disables. See serve::ServerConfig::inline_below.
  std::chrono::microseconds inline_below{1000};
  // Called on a worker before each stage it runs (service, stage, batch size): tracing, and
  // tests that hold a worker at a known point. Not settable from TOML.
  std::function<void(const core::Multihash&, int, size_t)> before_stage;
};

// What runs the hosted models' stages (engine::Backend, by name: the config stays torch-free).
struct EngineNodeConfig {
  std::string backend = "auto";  // "auto" | "torch" | "cpu"
};

inline constexpr std::string_view kDefaultListen = "/ip4/0.0.0.0/tcp/4001";
inline constexpr std::string_view kDefaultHttp = "127.0.0.1:9464";

// A node's default grace (swap::Config::grace_ops): 1e10 operations, about 2,000 B-LeNet or 30
// AlexNet-style inferences, may be owed by a peer that never served before p(r) starts to fall.
inline constexpr uint64_t kNodeGraceOps = 10'000'000'000ull;

inline constexpr double kDefaultMemoryShare = 0.5;

// The Inference Service Engine (ise/service_queue.h) part of a node. Needs ComputeSwap: the
// demand comes from peers' need lists and their requests, weighted by our debt to them.
struct IseConfig {
  bool auto_host = false;  // off: the node hosts only what `host` and publish name
  // 0: derived (ise::derive_k) from the cores, memory_budget_mb and each service's cost.
  size_t k = 0;
  // With k = 0: the memory the on-demand services may take. 0: kDefaultMemoryShare of the
  // physical memory (the rest is the node's own, the OS's and the operator's).
  uint64_t memory_budget_mb = 0;
  std::chrono::seconds min_service_period{300};
  std::chrono::seconds need_idle{120};
  double keep_factor = 1.0;       // ise::QueueConfig::keep_factor, in [1, 100]
  bool per_provider = true;       // ise::QueueConfig::per_provider
  uint32_t max_need_count = 120;  // ise::QueueConfig::max_need_count, in [1, 2^20]
};

struct SwapNodeConfig {
  bool enabled = true;
  swap::Config params = [] {
    swap::Config c;
    c.grace_ops = kNodeGraceOps;
    return c;
  }();
};

// Circuit relay v2 (p2p/relay.h): peers that cannot listen (browsers) reserve a slot here and
// are reached through this node.
struct RelayNodeConfig {
  bool enabled = true;
  uint64_t max_reservations = 128;
  uint64_t max_circuits = 256;
  uint64_t max_circuits_per_peer = 16;
  std::chrono::seconds reservation_ttl{3600};
  std::chrono::seconds circuit_duration{0};  // 0: no limit sent or enforced
  uint64_t circuit_data = 0;                 // bytes per direction; 0: none
};

struct Config {
  std::vector<core::Multiaddr> listen;
  std::optional<std::filesystem::path> identity_file;
  std::optional<std::filesystem::path> passphrase_file;
  // Each ends in /p2p/<peer id>, so the handshake can check whom it reached.
  std::vector<core::Multiaddr> bootstrap;
  std::optional<HttpAddress> http;  // nullopt: no HTTP endpoint
  std::string log_level = "info";
  // After handling any event the io thread polls for this long before it sleeps in epoll.
  // Waking a sleeping thread on an idle vCPU costs 50-100 us on a small VM, several loopback
  // round trips; polling removes that from each request at the price of a busy core while
  // traffic flows. 0 (default): sleep at once.
  std::chrono::microseconds busy_poll{0};
  // The requester's half of busy_poll: while this node's own inference requests are in flight
  // the io thread polls (yielding the CPU to any other runnable thread) for up to this long
  // after its last event, so an answer is read without a wake-up. Costs the requester's CPU
  // only while it waits. 0 (default): sleep at once.
  std::chrono::microseconds poll_while_waiting{0};
  LimitsConfig limits;
  std::optional<std::filesystem::path> data_dir;  // nullopt: a temporary directory
  uint64_t store_max_bytes = 0;
  std::vector<std::string> host;  // service IDs (text) to host at start
  DhtConfig dht;
  ServeConfig serve;
  EngineNodeConfig engine;
  SwapNodeConfig swap;
  IseConfig ise;
  RelayNodeConfig relay;

  // listen = [kDefaultListen], http = kDefaultHttp, the rest empty.
  static Config defaults();
};

// Parses TOML text. `source` names it in errors ("node.toml:3:1: ..."); a relative identity
// path is resolved against `base_dir`. Errors: InvalidArgument, one line.
Result<Config> parse_config(std::string_view toml, std::string_view source,
                            const std::filesystem::path& base_dir = {});
// Reads and parses a file. Errors: NotFound / IOError, or as parse_config.
Result<Config> load_config(const std::filesystem::path& file);

// Checks a multiaddr meant for bootstrap: parses and has a /p2p/ component.
Result<core::Multiaddr> parse_bootstrap_addr(std::string_view text);
// Valid spdlog level names.
bool is_log_level(std::string_view level);

}  // namespace idn::node
