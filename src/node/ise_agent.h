// The Inference Service Engine on a running node (§7.4): feeds ise::ServiceQueue with demand
// (peers' need lists, which ComputeSwap receives, and the requests peers send us), weights each
// peer by 1 + our debt ratio towards it, keeps our own need list (the services our sessions
// used within need_idle), and with [ise] auto_host carries out the queue's plan through
// ModelHost: initModel for what came into the top k, teardown for what dropped out.
// Threading: io thread only.
#pragma once

#include <chrono>
#include <map>
#include <memory>

#include <nlohmann/json.hpp>

#include "core/multihash.h"
#include "identity/peer_id.h"
#include "ise/service_queue.h"
#include "node/config.h"
#include "p2p/host.h"

namespace idn::node {

class ModelHost;
class SwapAgent;

// How often the ISE looks at demand and, with auto_host, acts on it.
inline constexpr std::chrono::seconds kIseTick{1};
// A service whose initModel failed is not tried again for this long.
inline constexpr std::chrono::seconds kIseRetry{30};

struct IseStats {
  uint64_t started = 0, stopped = 0, start_failures = 0;
};

class IseAgent {
 public:
  // Errors: InvalidArgument (config). k = 0 becomes the number of cores.
  static Result<std::unique_ptr<IseAgent>> create(IseConfig config, ModelHost& models,
                                                  SwapAgent& swap);

  // Our sessions used `service`: it joins our need list until need_idle passes without use.
  void used(const core::Multihash& service);
  // A peer asked us for `service` (admitted or refused): demand until need_idle passes.
  void requested(const identity::PeerId& peer, const core::Multihash& service);
  // One round: refresh demand and our need list; with auto_host, start and stop services.
  p2p::awaitable<void> step();

  const ise::QueueConfig& queue_config() const { return queue_.config(); }
  bool auto_host() const { return auto_host_; }
  const IseStats& stats() const { return stats_; }
  // /status's "ise" object: parameters, the queue (score, peers, hosted, why), counters.
  nlohmann::json status_json();

 private:
  IseAgent(IseConfig config, ise::QueueConfig qc, ModelHost& models, SwapAgent& swap);
  // Weights from ComputeSwap's ledgers, and peers' need lists into the queue.
  ise::ServiceQueue::Weight refresh_demand();

  bool auto_host_;
  ise::ServiceQueue queue_;
  ModelHost& models_;
  SwapAgent& swap_;
  std::map<core::Multihash, std::chrono::steady_clock::time_point> used_;
  std::vector<core::Multihash> need_list_;
  std::map<core::Multihash, std::chrono::steady_clock::time_point> failed_;
  std::map<Bytes, double> weights_;
  IseStats stats_;
};

}  // namespace idn::node
