#include "node/ise_agent.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <random>

#include "ise/service_descriptor.h"
#include "node/model_host.h"
#include "node/swap_agent.h"
#include "protocol/messages.h"
#include "swap/strategy.h"

namespace idn::node {

using Clock = std::chrono::steady_clock;

Result<std::unique_ptr<IseAgent>> IseAgent::create(p2p::asio::any_io_executor ex, IseConfig config,
                                                   ise::Capacity capacity, ModelHost& models,
                                                   SwapAgent& swap) {
  ise::QueueConfig qc;
  std::optional<ise::Capacity> derive;
  if (config.k > 0) {
    qc.k = config.k;
  } else {
    capacity.cores = std::max<size_t>(1, capacity.cores);
    qc.k = capacity.cores;
    derive = capacity;
  }
  qc.min_service_period = config.min_service_period;
  qc.need_idle = config.need_idle;
  qc.keep_factor = config.keep_factor;
  qc.per_provider = config.per_provider;
  qc.max_need_count = config.max_need_count;
  IDN_RETURN_IF_ERROR(qc.validate());
  return std::unique_ptr<IseAgent>(new IseAgent(std::move(ex), config, qc, derive, models, swap));
}

IseAgent::IseAgent(p2p::asio::any_io_executor ex, IseConfig config, ise::QueueConfig qc,
                   std::optional<ise::Capacity> capacity, ModelHost& models, SwapAgent& swap)
    : auto_host_(config.auto_host),
      capacity_(capacity),
      queue_(qc),
      models_(models),
      swap_(swap),
      needs_(qc.need_idle),
      step_done_(ex),
      next_init_id_(std::random_device{}()),
      init_answered_(ex) {}

void IseAgent::used(const core::Multihash& service) {
  needs_.used(service.bytes(), Clock::now());
}

void IseAgent::requested(const identity::PeerId& peer, const core::Multihash& service) {
  queue_.on_request(peer.bytes(), service.bytes(), Clock::now());
}

// ise/ does not depend on protocol/: the need log's bound and the wire's are one number.
static_assert(ise::NeedLog::kMaxCount == protocol::kMaxNeedCount);

ise::ServiceQueue::Weight IseAgent::refresh_demand() {
  const swap::Config& sc = swap_.swap().config();
  weights_.clear();
  for (const swap::PeerSnapshot& p : swap_.swap().snapshot()) {
    if (p.state == swap::PeerState::kOnline) {
      queue_.set_need_list(p.peer, p.need_list, p.need_counts);
    } else {
      // Its need list no longer counts; its requests (an InitRequest too) still do until they
      // fade. (forget_peer would drop those as well, and a peer that never opened a ComputeSwap
      // connection, such as a JS client, could then never ask us to host anything.)
      queue_.set_need_list(p.peer, {});
    }
    weights_[p.peer] = swap::need_weight(p.credit, p.debt, sc.grace_ops);  // §7.4's r_i
  }
  // The providers we know of: connected Online peers' have lists, counted as the simulator does.
  queue_.set_providers(swap_.swap().have_counts());
  return weight();
}

ise::ServiceQueue::Weight IseAgent::weight() const {
  return [this](const Bytes& peer) {
    auto it = weights_.find(peer);
    return it == weights_.end() ? 1.0 : it->second;
  };
}

p2p::awaitable<void> IseAgent::step() {
  while (stepping_) co_await step_done_.wait();
  stepping_ = true;
  co_await do_step();
  stepping_ = false;
  step_done_.notify_all();
}

p2p::awaitable<protocol::SwapInitResult> IseAgent::on_init_request(identity::PeerId peer,
                                                                   protocol::SwapInitRequest r) {
  stats_.init_requests++;
  protocol::SwapInitResult res{r.request_id, false, "", r.service_id};
  std::optional<core::Multihash> id;
  std::string refused;
  if (!r.service_id.empty()) {
    auto parsed = core::Multihash::from_bytes(r.service_id);
    if (parsed.ok())
      id = *parsed;
    else
      refused = "not a service ID: " + parsed.status().message();
  }
  if (refused.empty() && !r.descriptor.empty()) {
    // initModel from a descriptor (the blog's initModel(descriptor, {npeers})): keep it where
    // init_model looks first, under the ID we compute; the package comes by its CID as usual.
    auto computed = models_.store_descriptor(r.descriptor);
    if (!computed.ok()) {
      refused = "bad descriptor: " + computed.status().message();
    } else if (id && *id != *computed) {
      refused = fmt::format("the descriptor's service ID is {}, not {}",
                            ise::service_id_text(*computed), ise::service_id_text(*id));
    } else {
      id = *computed;
      res.service_id = computed->bytes();
    }
  }
  if (refused.empty() && !id) refused = "no service ID";
  if (!refused.empty()) {
    res.reason = refused;
  } else if (models_.hosts(*id)) {
    res.hosting = true;
  } else if (!auto_host_) {
    res.reason = "this node hosts only what its operator asks for ([ise] auto_host = false)";
  } else {
    queue_.on_request(peer.bytes(), id->bytes(), Clock::now());
    co_await step();
    if (models_.hosts(*id)) {
      res.hosting = true;
    } else if (auto f = failed_.find(*id); f != failed_.end()) {
      res.reason = "initModel failed here (see this node's log)";
    } else if (derived_ &&
               std::count(derived_->too_big.begin(), derived_->too_big.end(), id->bytes()) > 0) {
      res.reason = "its model needs more memory than this node's ISE budget";
    } else {
      res.reason = "not in this node's top k";
      for (const ise::QueueEntry& e : queue_.ranking(weight(), Clock::now()))
        if (e.service == id->bytes()) res.reason = e.why;
    }
  }
  if (!res.hosting) stats_.init_refused++;
  spdlog::info("ise: {} asked us to host {}: {}", peer.to_string(),
               id ? ise::service_id_text(*id) : std::string("?"),
               res.hosting ? std::string("hosting") : "no, " + res.reason);
  co_return res;
}

void IseAgent::on_init_result(const identity::PeerId& peer, const protocol::SwapInitResult& r) {
  auto it = pending_.find(r.request_id);
  if (it == pending_.end() || it->second.peer != peer) return;  // not ours, or late
  it->second.result = r;
  init_answered_.notify_all();
}

p2p::awaitable<InitOutcome> IseAgent::init_peers(core::Multihash service, size_t npeers,
                                                 std::chrono::milliseconds deadline,
                                                 std::string descriptor) {
  const auto until = Clock::now() + deadline;
  used(service);
  InitOutcome out;
  out.hosting = swap_.peers_hosting(service);
  std::vector<identity::PeerId> candidates;
  for (auto& p : swap_.online_peers())
    if (std::find(out.hosting.begin(), out.hosting.end(), p) == out.hosting.end())
      candidates.push_back(std::move(p));
  size_t next = 0;
  std::vector<uint64_t> mine;  // our pending requests
  while (out.hosting.size() < npeers) {
    // Keep as many requests out as peers are still needed.
    while (out.hosting.size() + mine.size() < npeers && next < candidates.size()) {
      uint64_t rid = next_init_id_++;
      pending_.emplace(rid, PendingInit{candidates[next], std::nullopt});
      mine.push_back(rid);
      swap_.send_init_request(candidates[next++], {service.bytes(), rid, descriptor});
    }
    if (mine.empty()) break;  // nobody left to ask
    if (!co_await init_answered_.wait(until)) break;
    for (auto it = mine.begin(); it != mine.end();) {
      auto p = pending_.find(*it);
      if (!p->second.result) {
        ++it;
        continue;
      }
      if (p->second.result->hosting) {
        out.hosting.push_back(p->second.peer);
      } else {
        out.refused.emplace_back(p->second.peer, p->second.result->reason);
      }
      pending_.erase(p);
      it = mine.erase(it);
    }
  }
  for (uint64_t rid : mine) {
    out.refused.emplace_back(pending_.at(rid).peer, "no answer before the deadline");
    pending_.erase(rid);
  }
  co_return out;
}

p2p::awaitable<void> IseAgent::do_step() {
  const auto now = Clock::now();
  // Our need list: what our sessions used within need_idle and we do not serve ourselves (as a
  // Bitswap want list leaves out the blocks we have). A node that hosts what it uses is no
  // demand for others; counting it made every node host the most used services, which then
  // nobody asked anyone for (docs/results.md, the simulator).
  // Sent when its set changes or a count moves by a factor of two (ise::NeedLog), as the
  // simulator does.
  auto hosted_here = [this](const Bytes& b) {
    auto id = core::Multihash::from_bytes(b);
    return id.ok() && models_.hosts(*id);
  };
  if (auto need = needs_.to_send(now, hosted_here))
    swap_.set_need_list(std::move(need->services), std::move(need->counts));
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
  if (!auto_host_) {
    if (capacity_) co_await within_budget({});  // k for /status
    co_return;
  }
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
  if (capacity_) plan.start = co_await within_budget(std::move(plan.start));
  for (const Bytes& b : plan.start) {
    auto id = core::Multihash::from_bytes(b);
    if (!id.ok()) continue;
    if (auto f = failed_.find(*id); f != failed_.end() && Clock::now() - f->second < kIseRetry)
      continue;
    const std::string sid = ise::service_id_text(*id);
    spdlog::info("ise: starting service {} (in the top {} by demand)", sid, k());
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

p2p::awaitable<std::vector<Bytes>> IseAgent::within_budget(std::vector<Bytes> start) {
  auto cost_bytes = [](const ise::ServiceDescriptor& d) -> std::optional<uint64_t> {
    if (!d.cost) return std::nullopt;
    return d.cost->bytes;
  };
  std::vector<ise::Candidate> candidates;
  for (const HostedService& h : models_.hosted())
    if (!models_.pinned(h.service_id))
      candidates.push_back({h.service_id.bytes(), cost_bytes(h.descriptor)});
  std::vector<Bytes> tried;  // the starts whose descriptor we could read (or fetch)
  for (const Bytes& b : start) {
    auto id = core::Multihash::from_bytes(b);
    if (!id.ok()) continue;
    if (auto f = failed_.find(*id); f != failed_.end() && Clock::now() - f->second < kIseRetry)
      continue;
    // One block from its providers: initModel would fetch it first anyway.
    auto d = co_await models_.descriptor(*id);
    if (!d.ok()) {
      failed_[*id] = Clock::now();
      stats_.start_failures++;
      spdlog::warn("ise: could not read the descriptor of {} (next try in {} s): {}",
                   ise::service_id_text(*id), kIseRetry.count(), d.status().to_string());
      continue;
    }
    candidates.push_back({b, cost_bytes(*d)});
    tried.push_back(b);
  }
  std::vector<Bytes> was_too_big = derived_ ? derived_->too_big : std::vector<Bytes>{};
  derived_ = ise::derive_k(*capacity_, candidates);
  // The queue ranks by it from now on: k, and what this node cannot host at all.
  queue_.set_k(derived_->k);
  queue_.set_unhostable(derived_->too_big,
                        "one copy per worker needs more than the memory "
                        "budget (" +
                            derived_->why + ")");
  const size_t on_demand = queue_.hosted_on_demand();
  size_t room = derived_->k > on_demand ? derived_->k - on_demand : 0;
  std::vector<Bytes> fit;
  for (const Bytes& b : tried) {
    if (std::count(derived_->too_big.begin(), derived_->too_big.end(), b) > 0) {
      if (std::count(was_too_big.begin(), was_too_big.end(), b) == 0) {
        auto id = core::Multihash::from_bytes(b);
        spdlog::warn("ise: not hosting {}: one copy per worker needs more than the budget ({})",
                     id ? ise::service_id_text(*id) : std::string("?"), derived_->why);
      }
      continue;
    }
    if (fit.size() < room) fit.push_back(b);
  }
  co_return fit;
}

nlohmann::json IseAgent::status_json() {
  const auto now = Clock::now();
  nlohmann::json queue = nlohmann::json::array();
  for (const ise::QueueEntry& e : queue_.ranking(weight(), now)) {
    auto id = core::Multihash::from_bytes(e.service);
    nlohmann::json j = {{"service_id", id.ok() ? ise::service_id_text(*id) : std::string("?")},
                        {"score", e.score},
                        {"peers", e.peers},
                        {"requests", e.requests},
                        {"providers", e.providers},
                        {"pinned", e.pinned},
                        {"hosted", e.hosted},
                        {"why", e.why}};
    if (e.hosted_since)
      j["hosted_for_s"] = std::chrono::duration<double>(now - *e.hosted_since).count();
    queue.push_back(std::move(j));
  }
  // Our need list as last sent, and its counts (requests within need_idle) in the same order.
  nlohmann::json need = nlohmann::json::array(), need_counts = nlohmann::json::array();
  const ise::NeedLog::List& sent = needs_.sent();
  for (size_t i = 0; i < sent.services.size(); ++i) {
    auto id = core::Multihash::from_bytes(sent.services[i]);
    need.push_back(id.ok() ? ise::service_id_text(*id) : std::string("?"));
    need_counts.push_back(sent.counts[i]);
  }
  nlohmann::json k_rule = {{"derived", capacity_.has_value()}};
  if (capacity_) {
    // Before the first round: the cores bound alone.
    ise::DerivedK d = derived_ ? *derived_ : ise::derive_k(*capacity_, {});
    k_rule["cores"] = capacity_->cores;
    k_rule["memory_budget_mb"] = capacity_->memory_bytes / (1024 * 1024);
    k_rule["workers"] = capacity_->workers;
    k_rule["largest_service_mb"] =
        d.largest_bytes ? nlohmann::json(static_cast<double>(*d.largest_bytes) / (1024 * 1024))
                        : nlohmann::json(nullptr);
    nlohmann::json too_big = nlohmann::json::array();
    for (const Bytes& b : d.too_big) {
      auto id = core::Multihash::from_bytes(b);
      too_big.push_back(id.ok() ? ise::service_id_text(*id) : std::string("?"));
    }
    k_rule["too_big"] = std::move(too_big);
    k_rule["why"] = d.why;
  } else {
    k_rule["why"] = "[ise] k in the configuration";
  }
  return {{"auto_host", auto_host_},
          {"k", k()},
          {"k_rule", std::move(k_rule)},
          {"min_service_period_s", queue_.config().min_service_period.count()},
          {"need_idle_s", queue_.config().need_idle.count()},
          {"keep_factor", queue_.config().keep_factor},
          {"per_provider", queue_.config().per_provider},
          {"max_need_count", queue_.config().max_need_count},
          {"need_list", std::move(need)},
          {"need_counts", std::move(need_counts)},
          {"queue", std::move(queue)},
          {"started", stats_.started},
          {"stopped", stats_.stopped},
          {"start_failures", stats_.start_failures},
          {"init_requests", stats_.init_requests},
          {"init_refused", stats_.init_refused}};
}

}  // namespace idn::node
