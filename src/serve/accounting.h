// The seams between serving and accounting (ComputeSwap, dissertation §7.5): InferServer asks an
// Admission whether to serve each request before it queues it, tells a WorkSink the operations
// it executed for each request it answered, and hands the Receipts requesters send back to a
// ReceiptSink. swap/ implements them; without them the server admits first come first served
// and only counts (ServerStats). Torch-free: no tensor crosses these seams.
//
// Threading: InferServer calls all three on its io executor, one call at a time; they must not
// block (no disk sync, no network wait) and must not call back into the InferServer.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "core/multihash.h"
#include "core/status.h"
#include "identity/peer_id.h"
#include "protocol/messages.h"

namespace idn::serve {

// What Admission::admit decides. A refusal is answered at once with one final progress carrying
// InferError::kRefused and `reason` as its error_message; nothing is queued or run.
struct Decision {
  bool serve = true;
  std::string reason;  // with serve == false: why, for the requester and its logs

  static Decision admit() { return {}; }
  static Decision refuse(std::string why) { return {false, std::move(why)}; }
};

class Admission {
 public:
  virtual ~Admission() = default;
  // Asked once per request for a hosted service, after the service lookup and before the
  // request is validated or queued. `request_id` is the requester's (unique per its stream).
  virtual Decision admit(const identity::PeerId& peer, const core::Multihash& service,
                         uint64_t request_id) = 0;
};

// The work InferServer did for one request that sent the requester at least one answer.
struct WorkDone {
  identity::PeerId peer;  // the requester
  core::Multihash service;
  uint64_t request_id = 0;
  // FLOPs the provider executed for the request, as the model spec counts them (stages from
  // start_stage plus the exits it evaluated): the `operations` of the last answer that reached
  // the stream. An early exit costs less than the full model; a split request costs its stages.
  // This is what the provider charges and what the requester's Receipt should repeat.
  uint64_t operations = 0;
  uint32_t exit_index = 0;  // of that last answer (a split request: its last stage)
  // True when the final answer was an answer (not an error such as kCancelled after earlier
  // progress): the request completed.
  bool answered = false;
  // When the last message of the request was written to the stream: the answer has left, the
  // receipt may follow.
  std::chrono::steady_clock::time_point sent_at;
};

class WorkSink {
 public:
  virtual ~WorkSink() = default;
  // Once per request that sent at least one answer, after its final message was written.
  virtual void on_work(const WorkDone& w) = 0;
};

class ReceiptSink {
 public:
  virtual ~ReceiptSink() = default;
  // A Receipt read from `from` on an /idn/infer/1.0.0 stream (normally the stream of the
  // request it confirms, after the final answer). An error resets that stream and is reported
  // as the peer's misbehaviour (rpc::Dispatcher::on_error); the request itself is over by then.
  virtual Status on_receipt(const identity::PeerId& from, const protocol::Receipt& r) = 0;
};

}  // namespace idn::serve
