// Client sessions (dissertation §7.5, blog "finish" flow): infer() sends one request to several
// providers of a service at once, merges their progress into one stream of improving answers,
// reroutes away from peers that fail, stall or lie, and finish() cancels whatever still runs.
//
// Request flow:
//   1. Optional split execution: SessionOptions::local_prefix runs the first stages locally.
//      A confident local exit is the answer and nothing is sent; otherwise the activation and
//      the next stage index go to the peers instead of the input.
//   2. The ProviderSource names up to `fanout` providers (or `candidates`, for the
//      ProviderSelector to choose from); the selector, when set, orders them and leaves out
//      those not to ask. Each chosen peer gets the InferRequest on its own /idn/infer/1.0.0
//      stream.
//   3. Every well-formed answer that improves on the best so far (see client/answer.h:
//      improves) becomes an Event. A peer that errors, answers busy, stays silent for
//      inactivity_timeout, disappears or sends malformed data is dropped (a Cancel is sent
//      when it may still be working) and replaced by the next provider, up to max_attempts.
//   4. The request completes with the first final answer from any peer, or an answer meeting
//      finish_confidence or the exit rule, or finish(), or the deadline; every peer still
//      working then gets a Cancel.
//   Keep-alive (SessionOptions::keep_alive): a request to a provider this session has an idle
//   stream with goes on that stream, leaving out the service ID, exit rule and deadline the
//   stream's first request carried (proto/idn_infer.proto, "Keep-alive"); otherwise it opens a
//   stream asking keep_open. After a final answer that says stream_open (and no Cancel) the
//   stream returns to the session's idle set, one request on it at a time; concurrent requests
//   to one provider open more streams. A kept stream the provider closed or reset before
//   anything of a request was answered is dropped and the request goes on a fresh stream (then
//   to another provider as usual). Idle streams close after keep_alive_idle and when the
//   Session is destroyed.
//   5. Accounting (ComputeSwap): a peer that sent accepted answers and then answered finally
//      (or was cancelled because the request was complete) gets a Receipt for the operations
//      of its last answer: handed to an observer that delivers receipts itself (a node's
//      ComputeSwap batches them on /idn/swap/1.0.0), or else written on the request's stream
//      after the answer reached the caller and before our side closes. Either way no round trip
//      is added and the peer does not wait for it. A peer answering kRefused is dropped and
//      replaced like a failing one. The RequestObserver (client/selector.h) hears every peer's
//      outcome, receipt and challenge verdict.
//
// Threading: Session and InferStream live on the io executor of the Host they use; call them
// there (client/blocking.h wraps them for application threads). The Host must outlive every
// Session and InferStream made with it.
#pragma once

#include <array>
#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "client/answer.h"
#include "client/selector.h"
#include "core/multihash.h"
#include "core/status.h"
#include "core/tensor.h"
#include "identity/peer_id.h"
#include "p2p/stream.h"
#include "protocol/messages.h"

namespace idn::p2p {
class Host;
}

namespace idn::client {

// Supplies up to `n` provider peers for `service`, nearest first, already connected (the node
// implements it with DHT findProviders + dial; tests give fixed peers). `exclude` lists the
// peers this request already tried. Returning fewer than `n` peers means "no more for now":
// the request then runs with those it has and is not asked again.
using ProviderSource = std::function<p2p::awaitable<Result<std::vector<identity::PeerId>>>(
    const core::Multihash& service, size_t n, const std::vector<identity::PeerId>& exclude)>;

// A source that offers `peers` in this order (already connected): for tests, and for a node
// told which peers to ask instead of looking them up.
ProviderSource fixed_providers(std::vector<identity::PeerId> peers);

// Split execution, client half: the local stages' result.
struct LocalStep {
  std::optional<Event> local_answer;  // the local exit's answer, if the prefix has an exit
  bool confident = false;             // the local exit met its criterion: no peer is needed
  core::Tensor activation;            // otherwise: what enters stage `next_stage`
  uint32_t next_stage = 0;
};
using LocalPrefix = std::function<Result<LocalStep>(const core::Tensor& input)>;

// What a request carries besides the options (Session::infer(RequestInput)): the model input,
// or several inputs with the views they come from (a DDNN cloud section's), or nothing but a
// sample the provider owns (a DDNN device's camera frame); and optionally stop_after_stage (that
// stage's output is the answer). See protocol::InferRequest.
struct RequestInput {
  core::Tensor input;  // default: none
  std::vector<core::Tensor> inputs;
  std::vector<uint32_t> input_views;
  std::optional<uint64_t> sample_ref;
  std::optional<uint32_t> stop_after_stage;
};

struct SessionOptions {
  size_t fanout = 3;                                   // peers asked at once
  std::chrono::milliseconds deadline{2000};            // whole request; Timeout after it
  std::chrono::milliseconds inactivity_timeout{1000};  // a peer silent this long is replaced
  protocol::ExitRule exit_rule;                        // sent to peers, also judged here
  std::optional<float> finish_confidence;              // auto-finish when an answer reaches this
  size_t max_attempts = 6;                             // peers tried per request in total
  // Expected output shape of every answer (from the service descriptor); answers of another
  // shape are malformed.
  std::optional<std::vector<int64_t>> output_shape;
  // Dtype of every answer: F32 scores, or U8 for bit-packed features (answers of another dtype
  // are malformed).
  core::DType output_dtype = core::DType::kF32;
  // After we cancel a peer (or it sent its final answer) its stream gets this long to close
  // cleanly before it is reset. Never delays the caller.
  std::chrono::milliseconds cancel_grace{1000};
  // Several requests per stream (see "Keep-alive" above); off: one stream per request.
  bool keep_alive = true;
  // An idle kept stream is closed after this (providers close theirs after 30 s by default).
  std::chrono::milliseconds keep_alive_idle{10000};
  LocalPrefix local_prefix;  // split execution (optional)

  // Accounting seams (client/selector.h), all optional. Without a selector providers are asked
  // in the ProviderSource's order.
  std::shared_ptr<ProviderSelector> selector;
  std::shared_ptr<RequestObserver> observer;
  // How many candidates to ask the ProviderSource for at a time, so the selector has a choice;
  // those not asked at once are kept for reroutes. 0: as many as are needed (`fanout`).
  size_t candidates = 0;
  bool send_receipts = true;  // confirm accepted answers with a Receipt (see step 5 above)
  // Called once on the io executor when a request started by infer() is complete, with the
  // input the caller gave and the final summary (challenges do not call it). The node's
  // challenge policy (node/challenger.h) hangs here: it compares the peers' answers and may
  // send a challenge. Setting it makes each request keep a copy of its input.
  std::function<void(const core::Tensor& input, const Summary& summary)> on_complete;

  // InvalidArgument naming the bad field.
  Status validate() const;
};

// Totals over a Session's completed requests, for metrics (read on the io thread).
struct SessionStats {
  uint64_t started = 0;
  uint64_t completed = 0;  // requests that reached an end, by status below
  uint64_t ok = 0, timeouts = 0, not_found = 0, unavailable = 0, cancelled = 0, other_errors = 0;
  uint64_t local_answers = 0;  // completed by a confident local prefix, nothing sent
  uint64_t events = 0;         // improving answers handed out
  uint64_t bytes_sent = 0, bytes_received = 0;  // as Summary, summed over requests
  // Peer outcomes, indexed by PeerReport::Outcome.
  std::array<uint64_t, 10> peer_outcomes{};
  uint64_t receipts_sent = 0;
  uint64_t receipted_operations = 0;  // summed over the receipts sent
  uint64_t challenges_passed = 0, challenges_failed = 0;
};

// A request whose answer the requester already knows (dissertation §7.5.3.3), sent like any
// other so the provider cannot tell. Each peer's final answer is judged with
// check_known_answer: a match is receipted like any answer and is the only kind of answer
// handed to the caller (intermediate exits are not); a mismatch drops the peer
// (PeerReport::Outcome::kWrongAnswer) and sends no receipt.
// Client-side early completion (finish_confidence, the exit rule) is off for a challenge: the
// peers' final answers are what is judged. The local prefix is not used.
struct Challenge {
  KnownAnswer expected;
  // Ask only this peer (fanout 1, no selector, no other provider); unset: ask providers as
  // any request does.
  std::optional<identity::PeerId> peer;
};

namespace detail {
class Request;
class StreamPool;
}  // namespace detail

// One inference request in flight. Dropping the last reference finishes it.
class InferStream {
 public:
  explicit InferStream(std::shared_ptr<detail::Request> r) : r_(std::move(r)) {}
  ~InferStream();
  InferStream(const InferStream&) = delete;
  InferStream& operator=(const InferStream&) = delete;

  // The next improving answer; nullopt once the request is complete (then see summary()).
  // Never outlives the deadline.
  p2p::awaitable<std::optional<Event>> next();
  // Stops the request: Cancel goes to every peer still working, answers not yet taken with
  // next() are dropped, next() returns nullopt. Idempotent.
  void finish();
  bool done() const;
  uint64_t request_id() const;
  // Live while the request runs; final once done().
  const Summary& summary() const;

 private:
  std::shared_ptr<detail::Request> r_;
};

// How many requests of a node's sessions are in flight: the node's io thread may poll rather
// than sleep while any is (node::Config::poll_while_waiting).
using InFlight = std::atomic<int>;

class Session {
 public:
  // `in_flight` (optional) counts this session's running requests.
  Session(boost::asio::any_io_executor io, p2p::Host& host, ProviderSource providers,
          core::Multihash service, SessionOptions opts,
          std::shared_ptr<InFlight> in_flight = nullptr);
  // Closes the idle kept streams (on the io executor; requests still running finish).
  ~Session();
  // A copy would hand out the same request IDs.
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Starts a request; may be called from any thread, the stream is then used on the io
  // thread. Errors (bad input or options, no provider, ...) end the stream at once with
  // summary().status saying why.
  std::shared_ptr<InferStream> infer(core::Tensor input);
  // The same with what RequestInput carries (several inputs, a sample reference, a stage to
  // stop after). The local prefix runs only on a request with `input`.
  std::shared_ptr<InferStream> infer(RequestInput body);
  // Runs a request to completion and returns its best answer. Errors: the request's status
  // when it is not ok (a Timeout keeps no partial answer here; use infer() to see it).
  p2p::awaitable<Result<Event>> infer_once(core::Tensor input);
  // Sends a challenge (see Challenge); the verdicts are in summary().peers[i].challenge_passed
  // and go to options().observer. An invalid known answer ends the stream with InvalidArgument.
  std::shared_ptr<InferStream> challenge(core::Tensor input, Challenge c);

  const boost::asio::any_io_executor& executor() const { return io_; }
  const core::Multihash& service() const { return service_; }
  const SessionOptions& options() const { return opts_; }
  uint64_t requests_started() const { return next_request_id_ - first_request_id_; }
  // This session's first request ID. Random (below 2^62), so request IDs stay unique per
  // requester across its sessions and restarts: providers' ledgers key receipts by them.
  uint64_t first_request_id() const { return first_request_id_; }
  const SessionStats& stats() const { return *stats_; }
  // Kept streams waiting for this session's next request (io thread).
  size_t idle_streams() const;

 private:
  boost::asio::any_io_executor io_;
  p2p::Host& host_;
  ProviderSource providers_;
  core::Multihash service_;
  SessionOptions opts_;
  const uint64_t first_request_id_;
  std::atomic<uint64_t> next_request_id_;
  std::shared_ptr<SessionStats> stats_ = std::make_shared<SessionStats>();  // outlives requests
  std::shared_ptr<InFlight> in_flight_;
  std::shared_ptr<detail::StreamPool> pool_;  // idle kept streams; null without keep_alive
};

}  // namespace idn::client
