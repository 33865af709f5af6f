// The Inference Service Engine on a running node (§7.4): feeds ise::ServiceQueue with demand
// (peers' need lists with their counts, which ComputeSwap receives, and the requests peers send
// us), weights each peer by 1 + our debt ratio towards it, keeps our own need list (the services
// our sessions used within need_idle that we do not host, each with its number of requests; sent
// by ise::NeedLog's rule), and with [ise] auto_host carries out the queue's plan
// through ModelHost: initModel for what came into the top k, teardown for what dropped out.
// With [ise] k = 0 the agent derives k each round (ise::derive_k: cores, the memory budget and
// the services' costs from their descriptors) and starts no more than that.
// Threading: io thread only.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/multihash.h"
#include "identity/peer_id.h"
#include "ise/capacity.h"
#include "ise/service_queue.h"
#include "node/config.h"
#include "p2p/host.h"
#include "protocol/messages.h"

namespace idn::ise {
class ModelHost;
}

namespace idn::node {

using ise::ModelHost;
class SwapAgent;

// How often the ISE looks at demand and, with auto_host, acts on it.
inline constexpr std::chrono::seconds kIseTick{1};
// A service whose initModel failed is not tried again for this long.
inline constexpr std::chrono::seconds kIseRetry{30};

struct IseStats {
  uint64_t started = 0, stopped = 0, start_failures = 0;
  uint64_t init_requests = 0, init_refused = 0;  // peers' requests that we host a service
};

// What Node::init_model(service, {.npeers}) got: the peers that host the service (those that
// did already and those that agreed), and the ones that said no, with why.
struct InitOutcome {
  std::vector<identity::PeerId> hosting;
  std::vector<std::pair<identity::PeerId, std::string>> refused;
};

class IseAgent {
 public:
  // Errors: InvalidArgument (config). k = 0: derived each round from `capacity` (the queue's
  // own k is then capacity.cores, the most it can be).
  static Result<std::unique_ptr<IseAgent>> create(p2p::asio::any_io_executor ex, IseConfig config,
                                                  ise::Capacity capacity, ModelHost& models,
                                                  SwapAgent& swap);

  // Our sessions used `service` (once per request): it joins our need list until need_idle
  // passes without use, and its count is the uses within need_idle.
  void used(const core::Multihash& service);
  // A peer asked us for `service` (admitted or refused): demand until need_idle passes.
  void requested(const identity::PeerId& peer, const core::Multihash& service);
  // One round: refresh demand and our need list; with auto_host, start and stop services.
  // Rounds never overlap (a second caller waits for the first).
  p2p::awaitable<void> step();

  // A peer asks us to host `r.service_id`: its request counts as demand, then the queue
  // decides (a round runs now). Yes once we host it; no with the queue's reason otherwise.
  p2p::awaitable<protocol::SwapInitResult> on_init_request(identity::PeerId peer,
                                                           protocol::SwapInitRequest r);
  void on_init_result(const identity::PeerId& peer, const protocol::SwapInitResult& r);
  // initModel across peers (the blog's "have peers load it"): puts the service on our need
  // list and asks connected Online peers (best provider score first, those that already host
  // it counted first) until `npeers` host it, each no moving on to the next peer, or until
  // `deadline`. Returns whoever hosts it by then. `descriptor`: the service's descriptor text,
  // sent with each request (peers store it under `service`, which must be its ID).
  p2p::awaitable<InitOutcome> init_peers(core::Multihash service, size_t npeers,
                                         std::chrono::milliseconds deadline,
                                         std::string descriptor = {});

  const ise::QueueConfig& queue_config() const { return queue_.config(); }
  // The k in force: the configured one, or the last derived one.
  size_t k() const { return derived_ ? derived_->k : queue_.config().k; }
  bool auto_host() const { return auto_host_; }
  const IseStats& stats() const { return stats_; }
  // /status's "ise" object: parameters, the queue (score, peers, hosted, why), counters.
  nlohmann::json status_json();

 private:
  IseAgent(p2p::asio::any_io_executor ex, IseConfig config, ise::QueueConfig qc,
           std::optional<ise::Capacity> capacity, ModelHost& models, SwapAgent& swap);
  p2p::awaitable<void> do_step();
  // With a derived k: derives it from what we host on demand and the plan's `start` (their
  // descriptors fetched for their cost) and returns the starts that fit, in plan order.
  p2p::awaitable<std::vector<Bytes>> within_budget(std::vector<Bytes> start);
  // Weights from ComputeSwap's ledgers, and peers' need lists into the queue.
  ise::ServiceQueue::Weight refresh_demand();
  // The weights of the last refresh (a status read or an answer needs no fresh snapshot).
  ise::ServiceQueue::Weight weight() const;

  bool auto_host_;
  std::optional<ise::Capacity> capacity_;  // set: k = 0, derived
  std::optional<ise::DerivedK> derived_;   // the last derivation
  ise::ServiceQueue queue_;
  ModelHost& models_;
  SwapAgent& swap_;
  ise::NeedLog needs_;
  std::map<core::Multihash, std::chrono::steady_clock::time_point> failed_;
  std::map<Bytes, double> weights_;
  IseStats stats_;
  bool stepping_ = false;
  p2p::Signal step_done_;
  // Our init requests awaiting an answer, by request ID.
  struct PendingInit {
    identity::PeerId peer;
    std::optional<protocol::SwapInitResult> result;
  };
  std::map<uint64_t, PendingInit> pending_;
  uint64_t next_init_id_;
  p2p::Signal init_answered_;
};

}  // namespace idn::node
