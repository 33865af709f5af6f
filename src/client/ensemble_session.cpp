#include "client/ensemble_session.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <deque>
#include <set>

#include "p2p/stream.h"

namespace idn::client {

namespace asio = boost::asio;

EnsembleSession::EnsembleSession(boost::asio::any_io_executor io,
                                 std::vector<std::shared_ptr<Session>> members,
                                 EnsembleOptions options, EnsembleExit exit)
    : io_(std::move(io)), members_(std::move(members)), options_(options), exit_(exit) {}

namespace {

// What the member coroutines hand the combining loop.
struct Shared {
  explicit Shared(asio::any_io_executor ex) : changed(std::move(ex)) {}
  struct Arrival {
    size_t member;
    Event event;
  };
  std::vector<std::shared_ptr<InferStream>> streams;
  std::deque<Arrival> arrivals;
  size_t running = 0;
  p2p::Signal changed;
};

}  // namespace

p2p::awaitable<EnsembleSummary> EnsembleSession::infer(
    core::Tensor input, std::function<void(const EnsembleEvent&)> on_event) {
  EnsembleSummary out;
  if (members_.empty()) {
    out.status = Status::invalid_argument("an ensemble needs at least one member service");
    co_return out;
  }
  std::set<core::Multihash> services;
  for (const auto& m : members_) {
    if (!m) {
      out.status = Status::invalid_argument("an ensemble member session is null");
      co_return out;
    }
    if (!services.insert(m->service()).second) {
      out.status = Status::invalid_argument("service " + m->service().to_base58() +
                                            " is in the ensemble twice");
      co_return out;
    }
  }
  if (Status st = options_.validate(); !st.is_ok()) {
    out.status = st;
    co_return out;
  }
  const auto started = std::chrono::steady_clock::now();
  EnsembleExit exit = exit_;
  if (exit.expected == 0) exit.expected = members_.size();
  ProgressiveEnsemble ensemble(options_, exit);

  auto shared = std::make_shared<Shared>(io_);
  for (const auto& m : members_) {
    shared->streams.push_back(m->infer(input));
    out.members.push_back(MemberReport{m->service(), std::nullopt, false, false, Status::ok()});
  }
  shared->running = members_.size();
  for (size_t i = 0; i < members_.size(); ++i) {
    asio::co_spawn(
        io_,
        [shared, i]() -> p2p::awaitable<void> {
          const auto& stream = shared->streams[i];
          bool delivered = false;
          // A member's answer is its peer's final one (a generated model has one exit); a
          // member completed by its exit rule without one gives its best.
          while (auto e = co_await stream->next()) {
            if (e->final_from_peer && !delivered) {
              shared->arrivals.push_back({i, std::move(*e)});
              delivered = true;
              shared->changed.notify_all();
            }
          }
          const Summary& s = stream->summary();
          if (!delivered && s.status.is_ok() && s.best) shared->arrivals.push_back({i, *s.best});
          shared->running--;
          shared->changed.notify_all();
        },
        asio::detached);
  }

  // Combines answers as they come (all on this executor: no answer can slip in between the
  // check and the wait).
  std::vector<std::string> sources(members_.size());
  bool exited = false;
  while (!exited) {
    while (!shared->arrivals.empty()) {
      Shared::Arrival a = std::move(shared->arrivals.front());
      shared->arrivals.pop_front();
      MemberReport& report = out.members[a.member];
      report.peer = a.event.peer;
      sources[a.member] = std::to_string(a.member) + "/" + a.event.peer.to_string();
      if (Status st = ensemble.add(sources[a.member], a.event.output); !st.is_ok()) {
        report.status = st;  // malformed for an ensemble (another class count, ...)
        continue;
      }
      report.answered = true;
      out.final = ensemble.current();
      if (on_event) {
        on_event(EnsembleEvent{ensemble.current(), ensemble.answers(),
                               std::chrono::duration_cast<std::chrono::microseconds>(
                                   std::chrono::steady_clock::now() - started)});
      }
      if (ensemble.should_exit()) {
        exited = true;
        break;
      }
    }
    if (exited || (shared->running == 0 && shared->arrivals.empty())) break;
    co_await shared->changed.wait();
  }
  // The rest are not needed: Cancels (and receipts for work already taken) go out now.
  for (const auto& s : shared->streams) s->finish();
  while (shared->running > 0) co_await shared->changed.wait();

  for (size_t i = 0; i < members_.size(); ++i) {
    const Status& st = shared->streams[i]->summary().status;
    if (!out.members[i].answered && out.members[i].status.is_ok())
      out.members[i].status =
          st.is_ok() ? Status::cancelled("not needed: the ensemble exited") : st;
  }
  if (out.final) {
    for (const Excluded& x : out.final->excluded) {
      for (size_t i = 0; i < members_.size(); ++i) {
        if (sources[i] != x.source) continue;
        out.members[i].excluded = true;
        out.byzantine.push_back(*out.members[i].peer);
      }
    }
    out.status = Status::ok();
  } else {
    out.status = Status::unavailable("no member of the ensemble answered");
    for (const MemberReport& m : out.members) {
      if (!m.status.is_ok()) {
        out.status = Status(m.status.code(),
                            "no member of the ensemble answered; the first: " + m.status.message());
        break;
      }
    }
  }
  co_return out;
}

}  // namespace idn::client
