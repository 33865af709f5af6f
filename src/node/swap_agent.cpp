#include "node/swap_agent.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <random>

#include "ise/service_descriptor.h"

namespace idn::node {

namespace asio = boost::asio;
using p2p::awaitable;

protocol::SwapCheckpoint to_wire(const swap::Checkpoint& c) {
  return {c.ledger.node1,    c.ledger.node2, c.ledger.debt1, c.ledger.debt2,
          c.ledger.sequence, c.unix_ms,      c.sig1,         c.sig2};
}

swap::Checkpoint from_wire(const protocol::SwapCheckpoint& c) {
  swap::Checkpoint out;
  out.ledger.node1 = c.node1;
  out.ledger.node2 = c.node2;
  out.ledger.debt1 = c.debt1;
  out.ledger.debt2 = c.debt2;
  out.ledger.sequence = c.sequence;
  out.unix_ms = c.unix_ms;
  out.sig1 = c.sig1;
  out.sig2 = c.sig2;
  return out;
}

protocol::SwapEvidence to_wire(const swap::Evidence& e) {
  protocol::SwapEvidence out;
  if (e.checkpoint) out.checkpoint = to_wire(*e.checkpoint);
  for (const auto& h : e.receipts) out.receipts.push_back({h.receipt, h.sequence});
  return out;
}

swap::Evidence from_wire(const protocol::SwapEvidence& e) {
  swap::Evidence out;
  if (e.checkpoint) out.checkpoint = from_wire(*e.checkpoint);
  for (const auto& h : e.receipts) out.receipts.push_back({h.receipt, h.sequence});
  return out;
}

Result<std::shared_ptr<SwapAgent>> SwapAgent::open(asio::any_io_executor ex, p2p::Host& host,
                                                   const swap::Config& config,
                                                   const std::filesystem::path& ledger_path) {
  std::shared_ptr<SwapAgent> a(new SwapAgent(std::move(ex), host));
  auto rng = std::make_shared<std::mt19937_64>(std::random_device{}());
  auto s = swap::ComputeSwap::open(config, host.key(), ledger_path, a->clock_, [rng] {
    return std::uniform_real_distribution<double>(0.0, 1.0)(*rng);
  });
  if (!s.ok()) return s.status().with_context("ComputeSwap ledgers " + ledger_path.string());
  a->swap_ = std::move(*s);
  return a;
}

SwapAgent::SwapAgent(asio::any_io_executor ex, p2p::Host& host)
    : ex_(ex), host_(host), wake_(std::make_unique<p2p::Signal>(ex)) {}

SwapAgent::~SwapAgent() = default;

std::optional<identity::PeerId> SwapAgent::peer_of(ByteView bytes) const {
  auto p = identity::PeerId::from_bytes(bytes);
  if (!p.ok()) return std::nullopt;
  return *p;
}

void SwapAgent::start(rpc::Dispatcher& d) {
  std::weak_ptr<SwapAgent> weak = shared_from_this();
  // Every inbound swap message first passes accept_message: an ignored, blacklisted or
  // contemned peer's messages are dropped unread (§7.5.3.5).
  auto gate = [weak](const identity::PeerId& peer) -> std::shared_ptr<SwapAgent> {
    auto self = weak.lock();
    if (!self || self->stopped_) return nullptr;
    if (!self->swap_->accept_message(peer.bytes())) {
      self->stats_.messages_dropped++;
      return nullptr;
    }
    return self;
  };
  // The messages that only update ComputeSwap's state: pass the gate, apply, send what follows.
  auto apply = [gate](auto fn) {
    return [gate, fn](rpc::SwapContext& ctx, const auto& m) -> awaitable<Status> {
      if (auto self = gate(ctx.peer())) {
        fn(*self->swap_, ctx.peer().bytes(), m);
        self->flush();
      }
      co_return Status::ok();
    };
  };
  d.on_open(apply([](swap::ComputeSwap& s, ByteView peer, const protocol::SwapOpen& o) {
    s.on_open(peer, o);
  }));
  d.on_need_list(apply([](swap::ComputeSwap& s, ByteView peer, const protocol::NeedList& l) {
    s.on_need_list(peer, l);
  }));
  d.on_have_list(apply([](swap::ComputeSwap& s, ByteView peer, const protocol::HaveList& l) {
    s.on_have_list(peer, l);
  }));
  d.on_close([gate](rpc::SwapContext& ctx, const protocol::SwapClose& c) -> awaitable<Status> {
    if (auto self = gate(ctx.peer())) {
      self->swap_->on_close(ctx.peer().bytes(), c.final);
      self->flush();
      self->end_stream(ctx.peer());  // the peer closed: our side of the exchange ends too
    }
    co_return Status::ok();
  });
  d.on_checkpoint(
      [gate](rpc::SwapContext& ctx, const protocol::SwapCheckpoint& c) -> awaitable<Status> {
        auto self = gate(ctx.peer());
        if (!self) co_return Status::ok();
        Status st = self->swap_->on_checkpoint(ctx.peer().bytes(), from_wire(c));
        if (st.is_ok() && !c.sig1.empty() && !c.sig2.empty()) self->stats_.checkpoints_signed++;
        self->flush();
        // A forged or stale checkpoint is the peer's misbehaviour: reported, stream reset.
        co_return st;
      });
  d.on_evidence(
      [gate](rpc::SwapContext& ctx, const protocol::SwapEvidence& e) -> awaitable<Status> {
        auto self = gate(ctx.peer());
        if (!self) co_return Status::ok();
        Status st = self->swap_->on_evidence(ctx.peer().bytes(), from_wire(e));
        self->flush();
        co_return st;
      });
  // A requester's receipts for answers we gave it. Each is applied on its own; a receipt that
  // is not between us fails the batch's stream (after the others are applied).
  d.on_receipts(
      [gate](rpc::SwapContext& ctx, const protocol::SwapReceipts& b) -> awaitable<Status> {
        auto self = gate(ctx.peer());
        if (!self) co_return Status::ok();
        Status first = Status::ok();
        for (const auto& r : b.receipts) {
          Status st = self->record_receipt(ctx.peer(), r);
          if (first.is_ok() && !st.is_ok()) first = std::move(st);
        }
        self->flush();  // once per message, not per receipt
        co_return first;
      });
  // Init requests run initModel (seconds): off the stream's reader, answered when done.
  d.on_init_request(
      [gate](rpc::SwapContext& ctx, const protocol::SwapInitRequest& r) -> awaitable<Status> {
        auto self = gate(ctx.peer());
        if (!self) co_return Status::ok();
        asio::co_spawn(
            self->ex_,
            [self, peer = ctx.peer(), r]() -> awaitable<void> {
              protocol::SwapInitResult res{r.request_id, false,
                                           "this node does not host services on request"};
              if (self->init_requested_) res = co_await self->init_requested_(peer, r);
              res.request_id = r.request_id;
              if (!self->stopped_) self->enqueue(peer, std::move(res));
            },
            asio::detached);
        co_return Status::ok();
      });
  d.on_init_result(
      [gate](rpc::SwapContext& ctx, const protocol::SwapInitResult& r) -> awaitable<Status> {
        auto self = gate(ctx.peer());
        if (self && self->init_result_) self->init_result_(ctx.peer(), r);
        co_return Status::ok();
      });
  asio::co_spawn(ex_, tick_loop(), asio::detached);
}

void SwapAgent::send_init_request(const identity::PeerId& peer, protocol::SwapInitRequest r) {
  if (stopped_) return;
  enqueue(peer, std::move(r));
}

std::vector<identity::PeerId> SwapAgent::online_peers() {
  std::vector<std::pair<double, identity::PeerId>> scored;
  for (const swap::PeerSnapshot& p : swap_->snapshot()) {
    if (p.state != swap::PeerState::kOnline) continue;
    auto id = peer_of(p.peer);
    if (!id || !host_.is_connected(*id)) continue;
    if (auto score = swap_->provider_score(p.peer)) scored.emplace_back(*score, std::move(*id));
  }
  std::stable_sort(scored.begin(), scored.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<identity::PeerId> out;
  for (auto& [_, p] : scored) out.push_back(std::move(p));
  return out;
}

void SwapAgent::stop() {
  if (stopped_) return;
  commit_now();  // our last receipts go out before the Close
  swap_->shutdown();
  flush();
  stopped_ = true;
  commit_now();
  wake_->notify_all();
}

void SwapAgent::schedule_commit() {
  const swap::LedgerStore& store = swap_->ledgers();
  if (commit_armed_ || stopped_ || (store.uncommitted() == 0 && store.unsaved_charges() == 0))
    return;
  commit_armed_ = true;
  asio::co_spawn(ex_, commit_later(), asio::detached);
}

awaitable<void> SwapAgent::commit_later() {
  auto self = shared_from_this();
  asio::steady_timer t(ex_, std::chrono::milliseconds(swap_->config().commit_interval_ms));
  boost::system::error_code ec;
  co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  commit_armed_ = false;
  commit(kYoungChargeRounds);
  schedule_commit();  // charges still too young to save come round again
}

void SwapAgent::commit_now() {
  commit(0);
}

void SwapAgent::commit(uint32_t young_charge_rounds) {
  swap::LedgerStore& store = swap_->ledgers();
  if (store.uncommitted() > 0 || store.unsaved_charges() > 0) {
    if (Status st = store.commit(young_charge_rounds); !st.is_ok()) {
      // The ledgers fell back to the file's state; the next Open with each peer settles it.
      stats_.commit_errors++;
      spdlog::error("swap: {}", st.to_string());
    }
  }
  send_durable_receipts();
}

void SwapAgent::send_durable_receipts() {
  const swap::LedgerStore& store = swap_->ledgers();
  if (store.failed_commits() != failed_commits_seen_) {
    failed_commits_seen_ = store.failed_commits();
    // Memory went back to the file, which lacks these: a provider must never hold a receipt
    // our ledger lacks, so they stay unsent (the providers count the work unpaid).
    for (const auto& [peer, rs] : unsent_receipts_) {
      stats_.receipts_lost += rs.size();
      spdlog::warn("swap: {} receipts to {} not sent: our ledger lost them in a failed commit",
                   rs.size(), peer.to_string());
    }
    unsent_receipts_.clear();
  }
  if (unsent_receipts_.empty() || store.uncommitted() > 0) return;
  constexpr size_t kPerMessage = 1024;  // well under DecodeLimits::max_batch_receipts
  for (auto& [peer, rs] : std::exchange(unsent_receipts_, {})) {
    for (size_t i = 0; i < rs.size(); i += kPerMessage) {
      protocol::SwapReceipts batch;
      auto end = rs.begin() + static_cast<std::ptrdiff_t>(std::min(rs.size(), i + kPerMessage));
      batch.receipts.assign(std::make_move_iterator(rs.begin() + static_cast<std::ptrdiff_t>(i)),
                            std::make_move_iterator(end));
      stats_.receipt_batches_out++;
      enqueue(peer, std::move(batch));
    }
  }
}

void SwapAgent::on_connection(const identity::PeerId& peer, bool connected) {
  if (stopped_) return;
  if (connected) {
    swap_->on_connected(peer.bytes());
  } else {
    swap_->on_disconnected(peer.bytes());
    outboxes_.erase(peer);
  }
  flush();
}

awaitable<void> SwapAgent::tick_loop() {
  auto self = shared_from_this();
  while (!stopped_) {
    co_await wake_->wait(std::chrono::steady_clock::now() + kSwapTick);
    if (stopped_) break;
    swap_->tick();
    flush();
    refresh_metrics();
  }
}

void SwapAgent::refresh_metrics() {
  if (!metrics_) return;
  for (const auto& p : swap_->snapshot()) {
    auto id = peer_of(p.peer);
    if (!id) continue;
    Labels l{{"peer", id->to_string()}};
    metrics_->gauge("idn_swap_peer_debt_ops", "Operations we performed for the peer (its debt).", l)
        .set(double(p.debt));
    metrics_
        ->gauge("idn_swap_peer_credit_ops", "Operations the peer performed for us (its credit).", l)
        .set(double(p.credit));
    metrics_->gauge("idn_swap_peer_debt_ratio", "The peer's debt ratio r (eq. 7.1).", l).set(p.r);
    metrics_
        ->gauge("idn_swap_peer_service_probability",
                "p(r): the chance we serve the peer's next request.", l)
        .set(p.p);
    metrics_->gauge("idn_swap_peer_online", "1 when the peer is Online (ComputeSwap state).", l)
        .set(p.state == swap::PeerState::kOnline ? 1 : 0);
    metrics_->gauge("idn_swap_peer_ignored", "1 while we ignore the peer (T_g).", l)
        .set(p.state == swap::PeerState::kIgnore ? 1 : 0);
    metrics_->gauge("idn_swap_peer_challenges_failed", "Challenges the peer answered wrongly.", l)
        .set(double(p.challenges_failed));
  }
}

nlohmann::json swap_status_json(SwapAgent& agent) {
  using nlohmann::json;
  auto& s = agent.swap();
  const auto& c = s.config();
  json j;
  j["m"] = c.m;
  j["n"] = c.n;
  j["grace_ops"] = c.grace_ops;
  j["ignore_period_s"] = c.ignore_period_s;
  j["idle_close_s"] = c.idle_close_s;
  const auto& st = agent.stats();
  j["admitted"] = st.admitted;
  j["refused"] = st.refused;
  j["refused_by_peers"] = st.refused_by_peers;
  j["receipts_in"] = st.receipts_in;
  j["receipts_out"] = st.receipts_out;
  j["receipt_batches_out"] = st.receipt_batches_out;
  auto now = std::chrono::steady_clock::now();
  auto ago = [&](const std::optional<swap::Time>& t) -> json {
    if (!t) return nullptr;
    return std::chrono::duration<double>(now - *t).count();
  };
  auto until = [&](const std::optional<swap::Time>& t) -> json {
    if (!t || *t <= now) return nullptr;
    return std::chrono::duration<double>(*t - now).count();
  };
  json peers = json::array();
  for (const auto& p : s.snapshot()) {
    auto id = identity::PeerId::from_bytes(p.peer);
    json e;
    e["peer_id"] = id.ok() ? id->to_string() : std::string("?");
    e["state"] = std::string(swap::peer_state_name(p.state));
    e["trusted"] = p.trusted;
    e["blacklisted"] = p.blacklisted;
    e["contempt"] = p.contempt;
    e["debt"] = p.debt;
    e["credit"] = p.credit;
    e["pending_ops"] = p.pending_ops;
    e["unpaid_ops"] = p.unpaid_ops;
    e["r"] = p.r;
    e["p"] = p.p;
    e["sequence"] = p.sequence;
    e["checkpoint_sequence"] = p.checkpoint_sequence;
    e["last_seen_s_ago"] = ago(p.last_seen);
    e["ignored_for_s"] = until(p.ignored_until);
    e["ignores_us_for_s"] = until(p.ignores_us_until);
    e["served"] = p.served;
    e["refused"] = p.refused;
    e["challenges_passed"] = p.challenges_passed;
    e["challenges_failed"] = p.challenges_failed;
    e["suspicious"] = p.suspicious;
    e["reason"] = p.reason;
    peers.push_back(std::move(e));
  }
  j["peers"] = std::move(peers);
  return j;
}

void register_swap_metrics(Registry& registry, SwapAgent& agent) {
  agent.set_metrics(&registry);
  SwapAgent* a = &agent;
  auto stat = [a](uint64_t SwapAgentStats::*field) {
    return [a, field] { return static_cast<double>(a->stats().*field); };
  };
  constexpr char kReqHelp[] = "Inference requests ComputeSwap decided on, by decision.";
  registry.counter_fn("idn_swap_requests_total", kReqHelp, {{"decision", "served"}},
                      stat(&SwapAgentStats::admitted));
  registry.counter_fn("idn_swap_requests_total", kReqHelp, {{"decision", "refused"}},
                      stat(&SwapAgentStats::refused));
  registry.counter_fn("idn_swap_refused_by_peers_total",
                      "Our requests that providers refused (their strategy declined us).", {},
                      stat(&SwapAgentStats::refused_by_peers));
  constexpr char kRcptHelp[] = "Receipts, by direction (in: for work we did).";
  registry.counter_fn("idn_swap_receipts_total", kRcptHelp, {{"direction", "in"}},
                      stat(&SwapAgentStats::receipts_in));
  registry.counter_fn("idn_swap_receipts_total", kRcptHelp, {{"direction", "out"}},
                      stat(&SwapAgentStats::receipts_out));
  registry.counter_fn("idn_swap_receipt_errors_total", "Receipts rejected.", {},
                      stat(&SwapAgentStats::receipt_errors));
  registry.counter_fn("idn_swap_receipt_batches_total",
                      "Receipts messages sent to providers (one per peer and ledger commit).", {},
                      stat(&SwapAgentStats::receipt_batches_out));
  registry.counter_fn(
      "idn_swap_receipts_lost_total",
      "Receipts we recorded and then lost with a failed ledger commit (never sent).", {},
      stat(&SwapAgentStats::receipts_lost));
  registry.counter_fn("idn_swap_messages_sent_total", "ComputeSwap messages sent.", {},
                      stat(&SwapAgentStats::messages_sent));
  registry.counter_fn("idn_swap_messages_dropped_total",
                      "ComputeSwap messages dropped unread (the peer is ignored or blacklisted).",
                      {}, stat(&SwapAgentStats::messages_dropped));
  registry.counter_fn("idn_swap_checkpoints_total", "Fully signed ledger checkpoints received.", {},
                      stat(&SwapAgentStats::checkpoints_signed));
  registry.counter_fn("idn_swap_disconnects_total",
                      "Connections ComputeSwap closed (blacklist, contempt).", {},
                      stat(&SwapAgentStats::disconnects));
}

void SwapAgent::flush() {
  schedule_commit();
  send_durable_receipts();  // at once when nothing is uncommitted (commits per update)
  for (auto& action : swap_->take_actions()) {
    std::visit(
        [&](auto& a) {
          using T = std::decay_t<decltype(a)>;
          auto peer = peer_of(a.peer);
          if (!peer) return;
          if constexpr (std::is_same_v<T, swap::SendSwap>) {
            enqueue(*peer, std::move(a.message));
          } else if constexpr (std::is_same_v<T, swap::SendCheckpoint>) {
            enqueue(*peer, to_wire(a.checkpoint));
          } else if constexpr (std::is_same_v<T, swap::SendEvidence>) {
            enqueue(*peer, to_wire(a.evidence));
          } else if constexpr (std::is_same_v<T, swap::Disconnect>) {
            stats_.disconnects++;
            spdlog::info("swap: closing the connection to {}: {}", peer->to_string(), a.reason);
            outboxes_.erase(*peer);
            host_.disconnect(*peer, a.reason);
          }
        },
        action);
  }
}

void SwapAgent::end_stream(const identity::PeerId& peer) {
  auto it = outboxes_.find(peer);
  if (it == outboxes_.end() || !it->second.stream) return;
  it->second.end_when_drained = true;
  if (!it->second.draining) {
    it->second.draining = true;
    asio::co_spawn(ex_, drain(peer, it->second.id), asio::detached);
  }
}

void SwapAgent::enqueue(const identity::PeerId& peer, protocol::SwapMessage m) {
  if (!host_.is_connected(peer)) return;  // the peer hears our view at the next Open
  Outbox& box = outboxes_[peer];
  if (box.id == 0) box.id = ++next_outbox_id_;
  box.queue.push_back(std::move(m));
  if (!box.draining) {
    box.draining = true;
    asio::co_spawn(ex_, drain(peer, box.id), asio::detached);
  }
}

// One long-lived outbound stream per peer keeps our messages in order (the receiver handles a
// stream's messages one after another). `id` names the outbox this drain serves: after any
// suspension the peer's outbox may have been erased (disconnect) and replaced (reconnect), and
// the replacement, with its own stream and drain, is not this one's to touch.
awaitable<void> SwapAgent::drain(identity::PeerId peer, uint64_t id) {
  auto self = shared_from_this();
  auto mine = [this, &peer, id] {
    auto it = outboxes_.find(peer);
    return it != outboxes_.end() && it->second.id == id ? it : outboxes_.end();
  };
  for (;;) {
    auto it = mine();
    if (it == outboxes_.end()) co_return;
    if (it->second.queue.empty()) {
      it->second.draining = false;
      if (it->second.end_when_drained && it->second.stream) {
        auto stream = std::exchange(it->second.stream, nullptr);
        it->second.end_when_drained = false;
        (void)co_await stream->close_write();
      }
      co_return;
    }
    if (!it->second.stream) {
      auto s = co_await rpc::open_swap(host_, peer);
      it = mine();
      if (it == outboxes_.end()) co_return;
      if (!s.ok()) {
        spdlog::debug("swap: cannot open a stream to {}: {}", peer.to_string(),
                      s.status().to_string());
        outboxes_.erase(it);  // disconnected or refusing: it hears our view at the next Open
        co_return;
      }
      it->second.stream = std::make_shared<rpc::SwapStream>(std::move(*s));
    }
    auto stream = it->second.stream;
    auto batch = std::exchange(it->second.queue, {});
    for (auto& m : batch) {
      Status st = co_await stream->send(m);
      if (!st.is_ok()) {
        spdlog::debug("swap: sending {} to {}: {}", protocol::message_name(m), peer.to_string(),
                      st.to_string());
        if (auto again = mine(); again != outboxes_.end()) outboxes_.erase(again);
        co_return;
      }
      stats_.messages_sent++;
      if (std::holds_alternative<protocol::SwapClose>(m)) {
        // After a Close the stream ends, so an idle connection carries no stream and the
        // host's idle sweep can close it; a later message opens a new stream.
        (void)co_await stream->close_write();
        if (auto again = mine(); again != outboxes_.end() && again->second.stream == stream)
          again->second.stream.reset();
      }
    }
  }
}

// ---- serving ----

serve::Decision SwapAgent::admit(const identity::PeerId& peer, const core::Multihash& service,
                                 uint64_t request_id) {
  if (stopped_) return serve::Decision::admit();
  if (request_seen_) request_seen_(peer, service);
  swap::Admit a = swap_->on_request(peer.bytes(), service.bytes(), request_id);
  flush();
  if (a.serve) {
    stats_.admitted++;
    return serve::Decision::admit();
  }
  stats_.refused++;
  spdlog::debug("swap: refused request {} from {}: {}", request_id, peer.to_string(), a.reason);
  return serve::Decision::refuse(a.reason);
}

void SwapAgent::on_work(const serve::WorkDone& w) {
  if (stopped_ || w.operations == 0) return;
  Status st = swap_->on_answered(w.peer.bytes(), w.request_id, w.service.bytes(), w.operations);
  if (!st.is_ok()) spdlog::warn("swap: charging {}: {}", w.peer.to_string(), st.to_string());
  flush();
}

Status SwapAgent::on_receipt(const identity::PeerId& from, const protocol::Receipt& r) {
  if (stopped_) return Status::ok();
  Status st = record_receipt(from, r);
  flush();
  return st;
}

Status SwapAgent::record_receipt(const identity::PeerId& from, const protocol::Receipt& r) {
  // The stream authenticated `from`: a receipt must name it as the signer and us as the server.
  if (r.signer != from.bytes() || r.server != host_.id().bytes()) {
    stats_.receipt_errors++;
    return Status::peer_misbehaved("receipt names another signer or server than the stream's ends");
  }
  Status st = swap_->on_receipt(from.bytes(), r);
  if (st.is_ok()) {
    stats_.receipts_in++;
  } else {
    stats_.receipt_errors++;
  }
  return st;
}

// ---- requesting ----

namespace {

std::vector<Bytes> id_bytes(const std::vector<core::Multihash>& services) {
  std::vector<Bytes> ids;
  ids.reserve(services.size());
  for (const auto& s : services) ids.push_back(s.bytes());
  return ids;
}

}  // namespace

void SwapAgent::set_need_list(std::vector<Bytes> services, std::vector<uint32_t> counts) {
  if (stopped_) return;
  swap_->set_need_list(std::move(services), std::move(counts));
  flush();
}

void SwapAgent::set_have_list(const std::vector<core::Multihash>& services) {
  if (stopped_) return;
  swap_->set_have_list(id_bytes(services));
  flush();
}

std::vector<identity::PeerId> SwapAgent::peers_hosting(const core::Multihash& service) {
  std::vector<identity::PeerId> out;
  for (const Bytes& b : swap_->peers_having(service.bytes())) {
    auto id = peer_of(b);
    if (id && host_.is_connected(*id)) out.push_back(std::move(*id));
  }
  return out;
}

std::vector<identity::PeerId> SwapAgent::select(const core::Multihash&,
                                                std::vector<identity::PeerId> candidates) {
  // Best score first; among equals, the source's order (nearest first) stays. (Sorted by
  // score and position: std::stable_sort would allocate a buffer on every request.)
  std::vector<std::pair<double, size_t>> scored;
  scored.reserve(candidates.size());
  for (size_t i = 0; i < candidates.size(); ++i) {
    if (auto score = swap_->provider_score(candidates[i].bytes())) scored.emplace_back(*score, i);
  }
  std::sort(scored.begin(), scored.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  std::vector<identity::PeerId> out;
  out.reserve(scored.size());
  for (const auto& [s, i] : scored) out.push_back(std::move(candidates[i]));
  return out;
}

void SwapAgent::on_peer_done(const core::Multihash&, uint64_t, const client::PeerReport& report) {
  if (stopped_) return;
  if (report.outcome == client::PeerReport::Outcome::kRefused) {
    stats_.refused_by_peers++;
    swap_->on_refused_by(report.peer.bytes());
    flush();
  }
}

void SwapAgent::on_receipt_sent(const identity::PeerId& provider, protocol::Receipt r) {
  if (stopped_) return;  // not recorded, not sent: the provider counts the work unpaid
  Status st = swap_->on_receipt(provider.bytes(), r);
  if (st.is_ok()) {
    stats_.receipts_out++;
    unsent_receipts_[provider].push_back(std::move(r));  // leaves with the commit
  } else {
    spdlog::warn("swap: recording our receipt to {}: {}", provider.to_string(), st.to_string());
  }
  flush();
}

void SwapAgent::on_challenge(const core::Multihash& service, const identity::PeerId& peer,
                             bool passed, const std::string& detail) {
  if (stopped_) return;
  if (!passed) {
    spdlog::warn("swap: {} failed a challenge for {}: {}", peer.to_string(),
                 ise::service_id_text(service), detail);
  }
  swap_->on_challenge_result(peer.bytes(), passed);
  flush();
}

}  // namespace idn::node
