// ComputeSwap's challenges on a node (dissertation §7.5.3.3), composed from swap/'s policy and
// the client Session's mechanism. One Challenger per client session (Node::session makes it
// when [swap] challenge_rate or probation_challenges > 0); it hangs on SessionOptions::on_complete
// and, after every request the session completes:
//   1. reports the peers whose answers disagreed with the majority of the request's answers at
//      the same exit (client::disagreeing_peers), and those whose final answer to an input
//      disagrees with what a quorum of peers answered to it before (swap::AnswerBook), to
//      ComputeSwap::on_suspicious: counted and shown in `idn peers`, not punished;
//   2. records the request's final answer in the AnswerBook;
//   3. sends every peer that answered while in probation (ComputeSwap::in_probation; one
//      challenge in flight per peer), else, when ComputeSwap::should_challenge() draws yes (at
//      challenge_rate), one of the peers that answered, chosen at random, a challenge whose
//      answer is known: the request's
//      own input run on this node's copy of the package when the node holds it (hosted or
//      fetched), else an earlier input several peers agreed on. The verdict reaches ComputeSwap
//      through the session's observer (SwapAgent::on_challenge): a wrong answer ignores the
//      peer for T_g or blacklists it, a right one is receipted like any answer.
// A local answer whose exit decision lies within kThresholdMargin of an exit's threshold is not
// used: float noise between two honest engines could flip it, and an honest peer would fail.
//
// Threading: the node's io thread. The local package runs there too (one request's worth of
// compute at challenge_rate), in a later turn than the completion, so the caller has its
// answer first.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>

#include "client/session.h"
#include "core/bytes.h"
#include "swap/known_answers.h"

namespace idn::node {

class SwapAgent;
class Node;

// Exit decisions closer than this to their threshold are too close to call (see above).
inline constexpr double kThresholdMargin = 1e-4;
// Largest |difference| per output element a challenged peer may show: engines of the same
// package on other machines and batch sizes differ in the last bits, a made-up answer by far
// more.
inline constexpr float kKnownOutputTolerance = 1e-3f;

// The known answer to an input from this node's own copy of the package, under the session's
// exit rule; nullopt when the exit decision is too close to call.
using LocalAnswer =
    std::function<Result<std::optional<client::KnownAnswer>>(const core::Tensor& input)>;

struct ChallengerStats {
  uint64_t sent = 0;             // challenges sent
  uint64_t from_local = 0;       // of which with an answer from our own package
  uint64_t from_agreed = 0;      // of which with an answer peers agreed on
  uint64_t no_known_answer = 0;  // drawn, but no known answer (or none clear enough) to use
  uint64_t suspicious = 0;       // peers reported to on_suspicious
};

class Challenger : public std::enable_shared_from_this<Challenger> {
 public:
  // `load_local` makes the LocalAnswer (NotFound: the node lacks the package); it is called
  // when first needed and again after a NotFound (the node may host the service later).
  // `uniform` draws from [0, 1) to pick the peer and the agreed input.
  Challenger(std::shared_ptr<SwapAgent> agent, std::function<Result<LocalAnswer>()> load_local,
             std::function<double()> uniform, swap::AnswerBook::Limits limits = {});

  // The session whose requests this watches and that sends the challenges.
  void bind(std::weak_ptr<client::Session> session) { session_ = std::move(session); }
  // SessionOptions::on_complete.
  void on_complete(const core::Tensor& input, const client::Summary& summary);

  const ChallengerStats& stats() const { return stats_; }

 private:
  void suspicious(const identity::PeerId& peer);
  // Finds a known answer and sends the challenge to `peer`.
  void challenge(const core::Tensor& input, const identity::PeerId& peer);
  std::optional<client::KnownAnswer> local_answer(const core::Tensor& input);
  void send(core::Tensor input, client::KnownAnswer known, identity::PeerId peer);

  std::shared_ptr<SwapAgent> agent_;
  std::function<Result<LocalAnswer>()> load_local_;
  std::optional<LocalAnswer> local_;
  bool local_failed_ = false;  // loading failed for good (not NotFound)
  std::function<double()> uniform_;
  swap::AnswerBook book_;
  std::weak_ptr<client::Session> session_;
  // Peers in probation with a challenge not judged yet: not sent another meanwhile.
  std::set<Bytes> probing_;
  ChallengerStats stats_;
};

// The LocalAnswer of `service` from `node`'s copy of its package (hosted, or fetched into
// data_dir/models), run with `rule`. Errors: NotFound (no local package), engine load errors.
Result<LocalAnswer> local_answer(Node& node, const core::Multihash& service,
                                 const protocol::ExitRule& rule);

}  // namespace idn::node
