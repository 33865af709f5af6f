// `idn sim computeswap` (§7.5 at scale): N simulated peers, each running the real
// swap::ComputeSwap (ledgers in an in-memory SQLite file, group commit) under simulated time
// (sim/event_queue.h), exchanging its messages through an in-memory layer with a fixed
// one-way latency. Cooperators host services and serve; freeloaders host nothing and only
// consume; liars host and answer wrongly (caught by the requester's challenges). Requests
// arrive per peer as a Poisson process for Zipf-popular services; a requester knows up to
// `known_providers` providers of each service (the same ones every time, as a node's provider
// cache holds what its DHT lookup returned) and asks up to `candidates` of them, best
// provider_score first, the next one after a refusal. Deterministic: one seed, one history,
// byte-identical CSV. Threading: run_computeswap_sim is a pure function of its scenario (one
// thread).
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/status.h"
#include "swap/config.h"

namespace idn::sim {

enum class PeerKind { kCooperator = 0, kFreeloader = 1, kLiar = 2 };
inline constexpr size_t kPeerKinds = 3;
std::string_view peer_kind_name(PeerKind k);  // "cooperator", "freeloader", "liar"

struct ComputeSwapScenario {
  size_t peers = 1000;
  size_t services = 20;
  double hours = 1.0;
  double freeloaders = 0.2;  // shares of the peers (the rest cooperate)
  double liars = 0.0;
  double zipf = 1.0;                   // service popularity ~ 1 / rank^zipf
  double requests_per_peer_min = 2.0;  // mean arrival rate of each peer's requests
  size_t hosted_per_peer = 2;          // services each serving peer hosts (by popularity)
  size_t known_providers = 20;         // providers a requester knows per service
  size_t candidates = 3;               // of those, providers a request may try
  double latency_ms = 20;              // one way, every message
  double service_mflops_min = 1, service_mflops_max = 100;  // per request, per service
  double peer_gflops = 10;        // a serving peer's speed: service time = cost / speed
  double warmup_fraction = 0.25;  // summary figures count after this share of the run
  double tick_s = 5;              // ComputeSwap::tick and group commit period per peer
  uint64_t seed = 1;
  swap::Config swap;  // m, n, grace_ops, T_g, challenge_rate, ...

  Status validate() const;
};

// Counts for one kind of peer, as requesters.
struct KindCounts {
  uint64_t requests = 0;  // requests made
  uint64_t answered = 0;  // answered by some provider and accepted
  uint64_t refusals = 0;  // REFUSED answers received (a request may get several)
  uint64_t unserved = 0;  // every candidate refused, or none existed
  uint64_t caught = 0;    // answers that failed a challenge (liars' victims)
  uint64_t ops = 0;       // operations received in accepted answers
};

struct MinuteRow {
  uint32_t minute = 0;
  std::array<KindCounts, kPeerKinds> kinds{};
};

struct ComputeSwapResult {
  std::vector<MinuteRow> minutes;
  std::array<KindCounts, kPeerKinds> total{}, after_warmup{};
  std::array<size_t, kPeerKinds> peers{};
  // After warm-up: freeloaders' share of all operations served; each kind's answered share.
  double freeloader_work_share = 0;
  std::array<double, kPeerKinds> served_rate{};
  // Liars: among the (liar, requester) pairs where the liar answered, the share where the
  // requester caught it at least once (a failed challenge: ignored or blacklisted per
  // swap.on_challenge_failure).
  double liars_caught = 0;
  uint64_t events = 0;
};

// Errors: InvalidArgument (the scenario), or ComputeSwap's own.
Result<ComputeSwapResult> run_computeswap_sim(const ComputeSwapScenario& s);

// DIR/computeswap_minutes.csv: minute,kind,requests,answered,refusals,unserved,caught,ops.
Status write_minutes_csv(const ComputeSwapResult& r, const std::filesystem::path& path);

}  // namespace idn::sim
