// `idn sim computeswap` (§7.4-7.5 at scale): N simulated peers, each running the real
// swap::ComputeSwap (ledgers in an in-memory SQLite file, group commit) and the real
// ise::ServiceQueue under simulated time (sim/event_queue.h), exchanging ComputeSwap's messages
// through an in-memory layer with a fixed one-way latency. Cooperators serve what their ISE
// chooses (the top k by demand: their peers' need lists and the requests they get) besides the
// services they published; freeloaders host nothing and only consume; liars host and answer
// wrongly (caught by the requester's challenges). Requests arrive per peer as a Poisson process
// for Zipf-popular services; a requester caches up to `known_providers` providers per service
// from the provider records (looked up again after `provider_ttl_s`) and asks up to
// `candidates` of them, best provider_score first, the next one after a refusal. Churn: peers
// leave (connections drop, records go) and come back with the same identity and ledgers.
// Peers are split into partitions, each with its own event queue, that run side by side on
// threads in windows one latency long (a conservative parallel simulation: a peer touches another
// only through a message at least one latency later). Deterministic: one seed and partition count,
// one history, byte-identical CSV, whatever the number of threads. Threading:
// run_computeswap_sim is a pure function of its scenario; it starts and joins its own threads.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "swap/config.h"

namespace idn::sim {

enum class PeerKind { kCooperator = 0, kFreeloader = 1, kLiar = 2 };
inline constexpr size_t kPeerKinds = 3;
std::string_view peer_kind_name(PeerKind k);  // "cooperator", "freeloader", "liar"

// A small network written out instead of drawn (the check that the simulator agrees with real
// nodes): who each peer is, what each service costs, and every request, at fixed times.
struct ScriptedPeer {
  PeerKind kind = PeerKind::kCooperator;
  std::vector<uint32_t> pinned;  // services it publishes (hosted from the start, for good)
  bool auto_host = false;        // its ISE hosts the top k by demand besides the pinned ones
  size_t k = 0;                  // its k (0: the scenario's)
};
struct ScriptedRequest {
  double at_s = 0;  // from the start
  uint32_t requester = 0, service = 0;
};
struct Script {
  std::vector<ScriptedPeer> peers;
  std::vector<double> service_ops;  // operations per request, one entry per service
  std::vector<ScriptedRequest> requests;
};

struct ComputeSwapScenario {
  size_t peers = 1000;
  size_t services = 20;
  double hours = 1.0;
  double freeloaders = 0.2;  // shares of the peers (the rest cooperate)
  double liars = 0.0;
  double zipf = 1.0;                   // service popularity ~ 1 / rank^zipf
  double requests_per_peer_min = 2.0;  // mean arrival rate of each peer's requests
  // The ISE on every serving peer (ise::ServiceQueue, as [ise] configures it on a node).
  bool auto_host = true;        // false: each serving peer hosts k services drawn by popularity
  size_t k = 2;                 // services hosted on demand (besides the pinned ones)
  size_t publishers = 2;        // cooperators that publish (pin) each service from the start
  double min_service_s = 300;   // T_s
  double need_idle_s = 120;     // need lists and request demand fade after this
  double keep_factor = 1.0;     // ISE hysteresis (ise::QueueConfig::keep_factor)
  bool per_provider = true;     // ISE: demand per known provider (ise::QueueConfig)
  double init_s = 10;           // initModel: find, fetch, verify, load
  double ise_tick_s = 60;       // how often each peer's ISE plans (a node: every second)
  size_t known_providers = 20;  // providers a requester caches per service
  size_t candidates = 3;        // of those, providers a request may try
  double provider_ttl_s = 60;   // a cached provider list is looked up again after this
  double latency_ms = 20;       // one way, every message
  double dial_timeout_s = 1;    // asking a provider that left costs this before the next
  // A connection manager: a connection without a request or answer for this long is closed
  // (ComputeSwap's own idle close counts any message, and lists flow every minute or so, so
  // without it every peer would stay Online with every peer it ever met). The default is
  // ComputeSwap's T_c: at 60 s the ISE forgot need lists sooner and hosting followed
  // popularity less (10,000 peers: Spearman 0.88 against 0.99).
  double conn_idle_s = 120;
  double service_mflops_min = 1, service_mflops_max = 100;  // per request, per service
  double peer_gflops = 10;  // a serving peer's speed; it serves one request at a time
  // Churn: the share of the peers that leave per hour; each comes back after an exponential
  // time with mean offline_min, with the same identity and ledgers.
  double churn = 0;
  double offline_min = 10;
  double warmup_fraction = 0.25;  // summary figures count after this share of the run
  double tick_s = 10;             // ComputeSwap::tick period per peer (a node ticks every second)
  // Group commit period per peer. A node commits every 200 ms; here it changes only how many
  // transactions the in-memory ledgers run, never the history (a test holds it); at 10,000
  // peers, 0.25 h, 300 s took ~10 % less CPU than 60 s.
  double commit_s = 300;
  uint64_t seed = 1;
  // Partitions of the peers, each its own event queue (0: 16 when latency_ms >= 1, else 1). The
  // history depends on it; a partition runs on one thread at a time.
  size_t partitions = 0;
  // Threads that run the partitions (0: 1 below 2,000 peers, else the machine's cores; at most
  // `partitions`). The history does not depend on it.
  size_t threads = 0;
  swap::Config swap;  // m, n, grace_ops, T_g, challenge_rate, ...
  // Every peer connected to every other from the start and for good, as a handful of nodes
  // that found each other through the DHT are (no connection manager).
  bool mesh = false;
  // Requesters also ask the connected peers whose have list names the service, as a node
  // does (node.cpp, cached_providers), not only those the provider records named.
  bool have_list_providers = false;
  // Set: peers, services and requests come from it (peers, services, freeloaders, liars,
  // zipf, rate, publishers, churn and the service costs are then not used).
  std::optional<Script> script;

  Status validate() const;
};

// Counts for one kind of peer, as requesters; a request's outcomes count in the minute it was
// made.
struct KindCounts {
  uint64_t requests = 0;  // requests sent to the network (local ones not counted)
  uint64_t answered = 0;  // answered by some provider and accepted
  uint64_t local = 0;     // served by the requester itself (it hosts the service)
  uint64_t refusals = 0;  // REFUSED answers received (a request may get several)
  uint64_t unserved = 0;  // every candidate refused or was gone, or none was known
  uint64_t stale = 0;     // a cached provider had left or no longer hosted the service
  uint64_t caught = 0;    // answers that failed a challenge (liars' victims)
  uint64_t ops = 0;       // operations received in accepted answers

  KindCounts& operator+=(const KindCounts& o);
};

struct MinuteRow {
  uint32_t minute = 0;
  std::array<KindCounts, kPeerKinds> kinds{};
};

// One service: its popularity and how many peers hosted it.
struct ServiceRow {
  uint32_t rank = 0;      // 1 = most popular
  double popularity = 0;  // its share of requests (Zipf)
  uint64_t requests = 0;  // requests for it (after warm-up, local ones too)
  double mean_hosts = 0;  // peers hosting it, sampled each minute after warm-up
  uint32_t hosts_at_end = 0;
};

struct ComputeSwapResult {
  std::vector<MinuteRow> minutes;
  std::array<KindCounts, kPeerKinds> total{}, after_warmup{};
  std::array<size_t, kPeerKinds> peers{};
  // After warm-up: freeloaders' share of all operations served; each kind's answered share of
  // its network requests.
  double freeloader_work_share = 0;
  std::array<double, kPeerKinds> served_rate{};
  // After warm-up: accepted answers per (requester, provider) pair that had one. Per-pair
  // ledgers can tell a freeloader from a cooperator only where pairs meet again.
  double answers_per_pair = 0;
  // Liars: among the (liar, requester) pairs where the liar answered, the share where the
  // requester caught it at least once (a failed challenge: ignored or blacklisted per
  // swap.on_challenge_failure); caught_within[n-1]: the Kaplan-Meier estimate that a requester
  // catches a liar within its first n wrong answers.
  double liars_caught = 0;
  uint64_t liar_pairs = 0;
  std::vector<double> caught_within;
  // The ISE: hosts per service against popularity, and what changed.
  std::vector<ServiceRow> services;
  double spearman_hosts_popularity = 0;  // rank correlation of mean_hosts with popularity
  uint64_t ise_starts = 0, ise_stops = 0;
  uint64_t leaves = 0, joins = 0;
  // At the end, the debt ratio r each serving peer sees for each peer it served, by the kind
  // of the peer served (sorted).
  std::array<std::vector<double>, kPeerKinds> debt_ratios;
  // What each peer hosts when the run ends (service indices, ascending).
  std::vector<std::vector<uint32_t>> hosted_at_end;
  uint64_t events = 0;
  // How it ran (not part of the history): partitions, threads, each thread's seconds running
  // events and waiting at the window barriers for the others, and the seconds spent building
  // the world (opening its ledgers) and tearing it down.
  size_t partitions = 1, threads = 1;
  std::vector<double> thread_busy_s, thread_wait_s;
  double init_s = 0, teardown_s = 0;
};

// Errors: InvalidArgument (the scenario), or ComputeSwap's own.
Result<ComputeSwapResult> run_computeswap_sim(const ComputeSwapScenario& s);

// The q-quantile (0..1) of an already sorted vector, nearest rank (0 for an empty one): the
// debt-ratio figures read many quantiles of a million values without copying them.
double sorted_quantile(const std::vector<double>& sorted, double q);

// Spearman's rank correlation (ties get their mean rank); 0 when either side is constant.
double spearman(const std::vector<double>& a, const std::vector<double>& b);

// DIR/computeswap_minutes.csv: minute,kind,requests,answered,local,refusals,unserved,stale,
// caught,ops.
Status write_minutes_csv(const ComputeSwapResult& r, const std::filesystem::path& path);
// DIR/computeswap_services.csv: rank,popularity,requests,mean_hosts,hosts_at_end.
Status write_services_csv(const ComputeSwapResult& r, const std::filesystem::path& path);
// DIR/computeswap_debt_ratios.csv: kind,quantile,r (quantiles 0, 0.01, ..., 1).
Status write_debt_ratios_csv(const ComputeSwapResult& r, const std::filesystem::path& path);

}  // namespace idn::sim
