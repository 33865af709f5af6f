#include "node/ise_agent.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <thread>

#include "ise/service_descriptor.h"
#include "node/model_host.h"
#include "node/swap_agent.h"
#include "swap/strategy.h"

namespace idn::node {

using Clock = std::chrono::steady_clock;

Result<std::unique_ptr<IseAgent>> IseAgent::create(IseConfig config, ModelHost& models,
                                                   SwapAgent& swap) {
  ise::QueueConfig qc;
  qc.k = config.k > 0 ? config.k : std::max<size_t>(1, std::thread::hardware_concurrency());
  qc.min_service_period = config.min_service_period;
  qc.need_idle = config.need_idle;
  IDN_RETURN_IF_ERROR(qc.validate());
  return std::unique_ptr<IseAgent>(new IseAgent(config, qc, models, swap));
}

IseAgent::IseAgent(IseConfig config, ise::QueueConfig qc, ModelHost& models, SwapAgent& swap)
    : auto_host_(config.auto_host), queue_(qc), models_(models), swap_(swap) {}

void IseAgent::used(const core::Multihash& service) {
  used_[service] = Clock::now();
}

void IseAgent::requested(const identity::PeerId& peer, const core::Multihash& service) {
  queue_.on_request(peer.bytes(), service.bytes(), Clock::now());
}

ise::ServiceQueue::Weight IseAgent::refresh_demand() {
  const swap::Config& sc = swap_.swap().config();
  weights_.clear();
  for (const swap::PeerSnapshot& p : swap_.swap().snapshot()) {
    if (p.state == swap::PeerState::kOnline) {
      queue_.set_need_list(p.peer, p.need_list);
    } else {
      queue_.forget_peer(p.peer);  // its requests still count until they fade
    }
    // §7.4's r_i: what we owe the peer over what it owes us. The 1 lets demand from peers we
    // owe nothing count too (with s = Σ r_i alone a new network would host nothing).
    weights_[p.peer] = 1.0 + swap::debt_ratio(p.credit, p.debt, sc.grace_ops);
  }
  return [this](const Bytes& peer) {
    auto it = weights_.find(peer);
    return it == weights_.end() ? 1.0 : it->second;
  };
}

p2p::awaitable<void> IseAgent::step() {
  const auto now = Clock::now();
  // Our need list: what our sessions used within need_idle.
  std::erase_if(used_, [&](const auto& u) { return now - u.second >= queue_.config().need_idle; });
  std::vector<core::Multihash> need;
  for (const auto& [s, _] : used_) need.push_back(s);
  if (need != need_list_) {
    need_list_ = need;
    swap_.set_need_list(need_list_);
  }
  // What is hosted, as ModelHost knows it (the operator may publish or host at any time).
  std::vector<HostedService> hosted = models_.hosted();
  for (const HostedService& h : hosted) {
    const Bytes& b = h.service_id.bytes();
    if (models_.pinned(h.service_id)) {
      queue_.pin(b);
    }
    if (!queue_.hosted(b)) queue_.started(b, now);
  }
  for (const Bytes& b : queue_.hosted_services()) {
    bool still = std::any_of(hosted.begin(), hosted.end(),
                             [&](const HostedService& h) { return h.service_id.bytes() == b; });
    if (!still) queue_.stopped(b);
  }
  ise::ServiceQueue::Weight weight = refresh_demand();
  if (!auto_host_) co_return;
  ise::ServiceQueue::Plan plan = queue_.plan(weight, now);
  for (const Bytes& b : plan.stop) {
    auto id = core::Multihash::from_bytes(b);
    if (!id.ok()) continue;
    Status s = co_await models_.teardown(*id);
    if (s.is_ok()) {
      queue_.stopped(b);
      stats_.stopped++;
    } else {
      spdlog::warn("ise: tearing down {}: {}", ise::service_id_text(*id), s.to_string());
    }
  }
  for (const Bytes& b : plan.start) {
    auto id = core::Multihash::from_bytes(b);
    if (!id.ok()) continue;
    if (auto f = failed_.find(*id); f != failed_.end() && Clock::now() - f->second < kIseRetry)
      continue;
    const std::string sid = ise::service_id_text(*id);
    spdlog::info("ise: starting service {} (in the top {} by demand)", sid, queue_.config().k);
    Status s = co_await models_.init_model(*id, /*pin=*/queue_.pinned(b));
    if (s.is_ok()) {
      failed_.erase(*id);
      queue_.started(b, Clock::now());
      stats_.started++;
    } else {
      failed_[*id] = Clock::now();
      stats_.start_failures++;
      spdlog::warn("ise: could not start {} (next try in {} s): {}", sid, kIseRetry.count(),
                   s.to_string());
    }
  }
}

nlohmann::json IseAgent::status_json() {
  const auto now = Clock::now();
  nlohmann::json queue = nlohmann::json::array();
  for (const ise::QueueEntry& e : queue_.ranking(refresh_demand(), now)) {
    auto id = core::Multihash::from_bytes(e.service);
    nlohmann::json j = {{"service_id", id.ok() ? ise::service_id_text(*id) : std::string("?")},
                        {"score", e.score},
                        {"peers", e.peers},
                        {"pinned", e.pinned},
                        {"hosted", e.hosted},
                        {"why", e.why}};
    if (e.hosted_since)
      j["hosted_for_s"] = std::chrono::duration<double>(now - *e.hosted_since).count();
    queue.push_back(std::move(j));
  }
  nlohmann::json need = nlohmann::json::array();
  for (const auto& s : need_list_) need.push_back(ise::service_id_text(s));
  return {{"auto_host", auto_host_},
          {"k", queue_.config().k},
          {"min_service_period_s", queue_.config().min_service_period.count()},
          {"need_idle_s", queue_.config().need_idle.count()},
          {"need_list", std::move(need)},
          {"queue", std::move(queue)},
          {"started", stats_.started},
          {"stopped", stats_.stopped},
          {"start_failures", stats_.start_failures}};
}

}  // namespace idn::node
