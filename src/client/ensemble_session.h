// ParallelNet on the network (dissertation Fig. 5.5, §5.5.3): one input goes at once to a
// provider of each member service (each member a generated model with its own service ID), and
// the members' answers are combined as they arrive (client/ensemble.h): each improvement is
// handed out, and once the combination may exit the members still working are finished. A
// member whose providers all fail is covered by the others; an answer that disagrees with the
// rest is left out of the average and its peer reported.
//
// Each member runs in its own Session (one provider at a time, rerouted within the member's
// own providers), so every peer is asked for, charged and receipted for the service it hosts.
// Threading: like Session, an EnsembleSession and its requests live on the io executor of the
// Host its member sessions use; call infer() there.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "client/ensemble.h"
#include "client/session.h"
#include "core/status.h"
#include "core/tensor.h"
#include "identity/peer_id.h"

namespace idn::client {

// One improvement of the combined answer.
struct EnsembleEvent {
  Combined combined;
  size_t answers = 0;  // member answers in the combination (outliers included)
  std::chrono::microseconds latency{0};
};

// How one member's part in a request ended.
struct MemberReport {
  core::Multihash service;
  std::optional<identity::PeerId> peer;  // who answered (unset: no answer)
  bool answered = false;                 // its answer went into the combination
  bool excluded = false;                 // ... and was left out as an outlier
  Status status = Status::ok();          // the member request's own outcome
};

struct EnsembleSummary {
  std::optional<Combined> final;  // the last combination handed out
  std::vector<MemberReport> members;
  // Peers whose answers disagreed with the rest (§5.5.3), once each, in the order removed.
  std::vector<identity::PeerId> byzantine;
  // Ok when at least one member answered; otherwise why not (the first member's failure).
  Status status = Status::unavailable("request still running");
};

class EnsembleSession {
 public:
  // `members`: one session per member service (fan-out 1 is what Fig. 5.5 means: each model
  // once). `exit.expected` 0 means "all members". InvalidArgument on infer() for no members,
  // two sessions of one service, or bad options.
  EnsembleSession(boost::asio::any_io_executor io, std::vector<std::shared_ptr<Session>> members,
                  EnsembleOptions options = {}, EnsembleExit exit = {});

  // Sends `input` to every member at once and combines the answers; `on_event` (optional) gets
  // each improvement as it happens. Returns when the combination may exit (the rest are
  // finished: they get Cancels and receipts for work done) or every member has ended.
  p2p::awaitable<EnsembleSummary> infer(core::Tensor input,
                                        std::function<void(const EnsembleEvent&)> on_event = {});

  const std::vector<std::shared_ptr<Session>>& members() const { return members_; }

 private:
  boost::asio::any_io_executor io_;
  std::vector<std::shared_ptr<Session>> members_;
  EnsembleOptions options_;
  EnsembleExit exit_;
};

}  // namespace idn::client
