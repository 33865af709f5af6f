// What a client session hands to its caller (Event, PeerReport, Summary) and the pure rules it
// applies to every answer a peer streams back: is it well formed, does it improve on the best
// answer so far, does it end the request. Kept free of I/O so each rule is tested on its own.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "identity/peer_id.h"
#include "protocol/messages.h"

namespace idn::client {

// One answer that improved on every answer before it in the same request.
struct Event {
  identity::PeerId peer;  // who computed it (our own id for a local prefix answer)
  uint32_t exit_index = 0;
  core::Tensor output;  // exit output (class scores), F32
  float confidence = 0.0f;
  float entropy = 0.0f;
  uint64_t operations = 0;       // the peer's cumulative operations for this request
  bool final_from_peer = false;  // the peer will send nothing more for this request
  bool local = false;            // computed by the local prefix (split execution), not a peer
  std::chrono::microseconds latency{0};  // since infer() was called
  int predicted = -1;                    // argmax of output
};

// How one peer's part in a request ended.
struct PeerReport {
  enum class Outcome {
    kRunning,        // still working (only seen while the request is open)
    kAnswered,       // sent its final answer
    kFinishedEarly,  // we cancelled it: the request was complete (finish(), rule met, deadline)
    kBusy,           // answered InferError::kBusy
    kError,          // answered another InferError, or the stream could not be opened
    kTimedOut,       // silent for SessionOptions::inactivity_timeout
    kMalformed,      // sent something we refuse (see check_answer)
    kVanished,       // the connection or stream closed without a final answer
    kRefused,        // answered InferError::kRefused: its ComputeSwap strategy declined us
    kWrongAnswer,    // a challenge (Session::challenge) it answered differently than known
  };
  identity::PeerId peer;
  Outcome outcome = Outcome::kRunning;
  std::string detail;       // why, for a person reading logs
  size_t answers = 0;       // well-formed answers received from it
  uint64_t operations = 0;  // its last cumulative operation count (what a receipt would cover)
  // Operations of the Receipt decided for it (0: none). Receipts go to peers that sent at
  // least one accepted answer and then either answered finally or were cancelled because the
  // request was complete; they leave after the answer reached the caller (on the request's
  // stream, or batched by an observer that delivers receipts: client/selector.h).
  uint64_t receipt_operations = 0;
  // For a challenge: whether its final answer matched the known one (unset: not judged).
  std::optional<bool> challenge_passed;
  // The class (argmax) of every answer taken from it, by exit, in order: what fan-out peers
  // are compared on (disagreeing_peers).
  struct Vote {
    uint32_t exit_index = 0;
    int predicted = -1;
  };
  std::vector<Vote> votes;
};
std::string_view outcome_name(PeerReport::Outcome o);

struct Summary {
  std::optional<Event> best;
  std::vector<PeerReport> peers;  // in the order they were asked
  // Length-prefixed IDN message bytes of this request (requests, cancels, progress), without
  // yamux/Noise framing: the application-level communication cost of eq. 4.1.
  uint64_t bytes_sent = 0;
  uint64_t bytes_received = 0;
  size_t answers = 0;  // well-formed answers received from all peers (improving or not)
  // Ok once the request completed with an answer (final answer, finish_confidence or the exit
  // rule met, or finish() after an answer). Otherwise why not: Timeout (deadline passed; `best`
  // may still hold the best answer so far), NotFound (no provider), Unavailable (every peer
  // tried failed), Cancelled (finish() before any answer), InvalidArgument, LimitExceeded.
  Status status = Status::unavailable("request still running");
};

// Checks an answer (a progress without error) from a peer: it is for `request_id`, its output
// is a non-empty finite F32 tensor (or of `dtype`: a U8 answer carries bit-packed features, whose
// bytes are not checked) of `expected_shape` (when given), confidence is in [0, 1],
// entropy is finite and >= 0, its exit index does not go backwards and its cumulative
// operations do not decrease relative to the peer's previous answer. PeerMisbehaved otherwise,
// with the reason.
Status check_answer(const protocol::InferProgress& p, uint64_t request_id,
                    const std::optional<std::vector<int64_t>>& expected_shape,
                    std::optional<uint32_t> previous_exit, uint64_t previous_operations,
                    core::DType dtype = core::DType::kF32);

// The merge rule of a fan-out request: an answer improves on `best` when there is none yet,
// when it comes from a later exit (deeper exits are the more accurate ones, Ch. 3), or from the
// same exit with strictly higher confidence. Answers from earlier exits never improve, even if
// more confident: a deeper exit already spoke.
bool improves(uint32_t exit_index, float confidence, const std::optional<Event>& best);

// True when an answer satisfies `rule` as the client can judge it: kConfidence (confidence >=
// threshold) and kEntropy (entropy < threshold). kModelDefault and kLastExit are judged by the
// peer, which says so with a final answer.
bool meets_exit_rule(const protocol::ExitRule& rule, float confidence, float entropy);

// The peers of one request whose answer at some exit names another class than a strict
// majority (at least two peers) of the peers that answered at that exit: for the same input,
// model and exit, honest peers compute the same class, so the odd one out is suspicious
// (§7.5.3.3; counted, not punished: two honest peers may split on a near tie). Each peer once,
// in report order. With fewer than three answers at an exit nothing is said about it.
std::vector<identity::PeerId> disagreeing_peers(const std::vector<PeerReport>& peers);

// Index of the largest element of an F32 tensor (first one on ties); -1 when empty or not F32.
int argmax(const core::Tensor& t);

// What a correct provider answers to a challenge: from the requester's own copy of the model
// (run with the same exit rule) or an answer several peers agreed on. Every field set is checked.
struct KnownAnswer {
  int predicted = -1;                  // the class (argmax of the output); -1: not checked
  std::optional<uint32_t> exit_index;  // the exit the final answer comes from
  std::optional<core::Tensor> output;  // the exit output (F32), compared element-wise
  float tolerance = 1e-3f;             // largest accepted |difference| per output element

  // InvalidArgument when it checks nothing, its tolerance is negative or not finite, or its
  // output is not a valid F32 tensor.
  Status validate() const;
};

// Ok when the answer (a final progress that passed check_answer) matches `known`; otherwise
// PeerMisbehaved saying what differs; InvalidArgument when `known` does not validate().
Status check_known_answer(const protocol::InferProgress& p, const KnownAnswer& known);

}  // namespace idn::client
