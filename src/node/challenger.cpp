#include "node/challenger.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <cmath>
#include <mutex>

#include "engine/engine.h"
#include "node/node.h"
#include "node/swap_agent.h"
#include "serve/infer_server.h"

namespace idn::node {

namespace asio = boost::asio;

Challenger::Challenger(std::shared_ptr<SwapAgent> agent,
                       std::function<Result<LocalAnswer>()> load_local,
                       std::function<double()> uniform, swap::AnswerBook::Limits limits)
    : agent_(std::move(agent)),
      load_local_(std::move(load_local)),
      uniform_(std::move(uniform)),
      book_(limits) {}

void Challenger::suspicious(const identity::PeerId& peer) {
  stats_.suspicious++;
  agent_->swap().on_suspicious(peer.bytes());
}

void Challenger::on_complete(const core::Tensor& input, const client::Summary& summary) {
  for (const identity::PeerId& p : client::disagreeing_peers(summary.peers)) suspicious(p);
  const auto& best = summary.best;
  if (summary.status.is_ok() && best && best->final_from_peer && !best->local) {
    for (const Bytes& p :
         book_.record(input, best->peer.bytes(), best->exit_index, best->predicted)) {
      if (auto id = identity::PeerId::from_bytes(p); id.ok()) suspicious(*id);
    }
  }
  // Whom: every peer that answered while in probation, else (at challenge_rate) one of the
  // peers that answered this request, chosen at random.
  std::vector<identity::PeerId> answered, whom;
  for (const client::PeerReport& r : summary.peers)
    if (r.answers > 0 && std::find(answered.begin(), answered.end(), r.peer) == answered.end())
      answered.push_back(r.peer);
  if (answered.empty()) return;
  swap::ComputeSwap& cs = agent_->swap();
  bool probation = false;
  for (const identity::PeerId& p : answered) {
    if (!cs.in_probation(p.bytes())) continue;
    probation = true;
    if (probing_.insert(p.bytes()).second) whom.push_back(p);
  }
  if (!probation) {
    if (!cs.should_challenge()) return;
    auto i = std::min(answered.size() - 1, static_cast<size_t>(uniform_() * answered.size()));
    whom.push_back(answered[i]);
  }

  // What: our own package's answer to this input, else an input peers agreed on. Worked out
  // in a later turn: the caller, woken by the answer, runs before the local package does.
  auto session = session_.lock();
  if (!session) return;
  for (identity::PeerId& peer : whom)
    asio::post(session->executor(), [self = shared_from_this(), input, peer = std::move(peer)] {
      self->challenge(input, peer);
    });
}

void Challenger::challenge(const core::Tensor& input, const identity::PeerId& peer) {
  if (auto known = local_answer(input)) {
    stats_.from_local++;
    send(input, std::move(*known), peer);
    return;
  }
  if (auto agreed = book_.pick(uniform_())) {
    client::KnownAnswer known;
    known.predicted = agreed->second.predicted;
    known.exit_index = agreed->second.exit_index;
    stats_.from_agreed++;
    send(std::move(agreed->first), std::move(known), peer);
    return;
  }
  stats_.no_known_answer++;
  probing_.erase(peer.bytes());
}

std::optional<client::KnownAnswer> Challenger::local_answer(const core::Tensor& input) {
  if (!local_ && !local_failed_) {
    auto made = load_local_ ? load_local_() : Result<LocalAnswer>(Status::not_found("no loader"));
    if (made.ok()) {
      local_ = std::move(*made);
    } else if (made.status().code() != Code::kNotFound) {
      spdlog::warn("challenges: cannot run the local package: {}", made.status().to_string());
      local_failed_ = true;
    }
  }
  if (!local_) return std::nullopt;
  auto known = (*local_)(input);
  if (!known.ok()) {
    spdlog::debug("challenges: local answer: {}", known.status().to_string());
    return std::nullopt;
  }
  return *known;
}

void Challenger::send(core::Tensor input, client::KnownAnswer known, identity::PeerId peer) {
  auto session = session_.lock();
  if (!session) {
    probing_.erase(peer.bytes());
    return;
  }
  stats_.sent++;
  Bytes who = peer.bytes();
  std::shared_ptr<client::InferStream> s =
      session->challenge(std::move(input), client::Challenge{std::move(known), std::move(peer)});
  // The stream lives until the challenge is judged; the verdict goes to the observer.
  asio::co_spawn(
      session->executor(),
      [s, self = shared_from_this(), who = std::move(who)]() -> p2p::awaitable<void> {
        while (co_await s->next()) {
        }
        self->probing_.erase(who);
      },
      asio::detached);
}

namespace {

// How far an exit's score lies from its threshold (the decision flips at 0).
double margin(const model::ExitSpec& exit, const engine::ExitRule& rule,
              const engine::ExitEvent& e) {
  model::ExitCriterion c = rule.criterion.value_or(exit.criterion);
  double t = rule.threshold.value_or(exit.threshold);
  double v = c == model::ExitCriterion::kConfidence ? e.confidence : e.entropy;
  return std::fabs(v - t);
}

}  // namespace

Result<LocalAnswer> local_answer(Node& node, const core::Multihash& service,
                                 const protocol::ExitRule& rule) {
  IDN_ASSIGN_OR_RETURN(engine::ExitRule erule, serve::engine_rule(rule));
  std::filesystem::path dir;
  for (const HostedService& h : node.models().hosted())
    if (h.service_id == service) dir = h.package_dir;
  if (dir.empty()) {
    IDN_ASSIGN_OR_RETURN(auto desc, node.models().local_descriptor(service));
    IDN_ASSIGN_OR_RETURN(auto cid, core::Cid::parse(desc.model_cid));
    dir = node.data_dir() / "models" / cid.to_string();
  }
  std::error_code ec;
  if (!std::filesystem::exists(dir / "model.json", ec))
    return Status::not_found("this node has no copy of the service's package");
  IDN_ASSIGN_OR_RETURN(auto loaded, engine::Engine::load(dir));
  std::shared_ptr<engine::Engine> eng(std::move(loaded));
  auto mu = std::make_shared<std::mutex>();
  return LocalAnswer(
      [eng, mu, erule](const core::Tensor& input) -> Result<std::optional<client::KnownAnswer>> {
        std::lock_guard lock(*mu);
        const auto& exits = eng->spec().exits;
        bool close_call = false;
        auto on_exit = [&](const engine::ExitEvent& e) {
          size_t i = static_cast<size_t>(e.exit_index);
          if (i + 1 < exits.size() && margin(exits[i], erule, e) < kThresholdMargin)
            close_call = true;
          return true;
        };
        IDN_ASSIGN_OR_RETURN(engine::ExitEvent last, eng->infer_progressive(input, erule, on_exit));
        if (close_call) return std::optional<client::KnownAnswer>();
        client::KnownAnswer k;
        k.predicted = last.predicted;
        k.exit_index = static_cast<uint32_t>(last.exit_index);
        k.output = core::Tensor::f32({static_cast<int64_t>(last.probs.size())}, last.probs);
        k.tolerance = kKnownOutputTolerance;
        return std::optional<client::KnownAnswer>(std::move(k));
      });
}

}  // namespace idn::node
