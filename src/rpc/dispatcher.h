// Serves IDN's protocols on a p2p::Host: reads each inbound /idn/swap/1.0.0 and
// /idn/infer/1.0.0 stream, decodes every message and hands it to the handler registered for
// its type. Layers above (swap/, ise/) register handlers; they never touch framing.
//
// Stream shapes:
//   swap:  the opener sends any number of SwapMessages, then closes its side; a handler may
//          reply() on the same stream (e.g. an Open answered with the receiver's ledger).
//   infer: InferRequest first, then optional Cancel and Receipt from the requester; the
//          request handler sends InferProgress messages, the last with final = true. A
//          stream may also carry only a Receipt.
//          Keep-alive: when the first request sets keep_open and KeepAliveLimits allow more
//          than one request, each final answer but the limit's last says stream_open, and the
//          dispatcher reads on: the next InferRequest (only after the previous final answer)
//          gets a new InferContext, its empty service_id, absent exit_rule and zero
//          deadline_ms filled in from the stream's first request, so handlers see complete
//          requests. No request within KeepAliveLimits::idle after a final answer: the
//          dispatcher closes its side (a request crossing that close is read and dropped).
//          Without keep_open, a second InferRequest is a protocol violation as before.
// A malformed message resets the stream and is reported to on_error (PeerMisbehaved,
// LimitExceeded, Corruption) so the caller can penalise the peer. Messages without a
// registered handler are dropped (counted), so new message types do not break old nodes.
//
// Threading: everything runs on the host's executor.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>

#include "identity/peer_id.h"
#include "p2p/stream.h"
#include "rpc/message_io.h"

namespace idn::p2p {
class Host;
}

namespace idn::rpc {

class Dispatcher;

// What a swap handler sees: the sender and a way to answer on the same stream.
class SwapContext {
 public:
  SwapContext(identity::PeerId peer, p2p::ByteStream& stream, IoLimits limits)
      : peer_(std::move(peer)), stream_(stream), limits_(limits) {}
  const identity::PeerId& peer() const { return peer_; }
  p2p::awaitable<Status> reply(const SwapMessage& m) {
    return write_message(stream_, m, limits_.max_message_bytes);
  }

 private:
  identity::PeerId peer_;
  p2p::ByteStream& stream_;
  IoLimits limits_;
};

// What an inference request handler sees. send() stamps the request id; after a final
// progress further sends fail. cancelled() turns true when the requester sends Cancel or
// goes away.
class InferContext {
 public:
  const identity::PeerId& peer() const { return peer_; }
  const InferRequest& request() const { return request_; }
  bool cancelled() const { return cancelled_; }
  bool final_sent() const { return final_sent_; }
  // The final answer will say stream_open (send() stamps it): the requester may send another
  // request on this stream afterwards.
  bool keeps_stream_open() const { return stream_open_; }
  p2p::awaitable<Status> send(InferProgress p);
  // Suspends until cancelled or `deadline`; returns cancelled().
  p2p::awaitable<bool> wait_cancelled(p2p::SteadyTime deadline);

 private:
  friend class Dispatcher;
  InferContext(identity::PeerId peer, InferRequest req, std::shared_ptr<p2p::ByteStream> s,
               IoLimits limits, p2p::asio::any_io_executor ex)
      : peer_(std::move(peer)),
        request_(std::move(req)),
        stream_(std::move(s)),
        limits_(limits),
        changed_(std::move(ex)) {}
  void cancel() {
    cancelled_ = true;
    changed_.notify_all();
  }

  identity::PeerId peer_;
  InferRequest request_;
  std::shared_ptr<p2p::ByteStream> stream_;
  IoLimits limits_;
  p2p::Signal changed_;
  bool cancelled_ = false;
  bool final_sent_ = false;
  bool final_started_ = false;  // a final answer is being written (or was)
  bool stream_open_ = false;    // see keeps_stream_open()
  bool done_ = false;           // the handler returned
};

// Bounds on a keep-alive infer stream (one whose first request set keep_open).
struct KeepAliveLimits {
  // Requests served on one stream; the last one's final answer does not say stream_open.
  // 1 turns keep-alive off.
  uint32_t max_requests = 4096;
  // After a final answer that said stream_open, how long the next request may take to come;
  // then our side is closed (and the stream reset if the requester has not closed its side
  // within as long again).
  std::chrono::milliseconds idle{30000};
};

struct DispatcherStats {
  uint64_t swap_messages = 0;
  uint64_t infer_requests = 0;
  uint64_t kept_requests = 0;  // of those, later requests on keep-alive streams (served)
  uint64_t idle_closes = 0;    // keep-alive streams we ended for want of a next request
  uint64_t cancels = 0;
  uint64_t receipts = 0;
  uint64_t unhandled = 0;      // decoded fine, no handler registered
  uint64_t stream_errors = 0;  // malformed or oversized messages, protocol violations
};

class Dispatcher {
 public:
  using OpenHandler = std::function<p2p::awaitable<Status>(SwapContext&, const SwapOpen&)>;
  using NeedListHandler = std::function<p2p::awaitable<Status>(SwapContext&, const NeedList&)>;
  using HaveListHandler = std::function<p2p::awaitable<Status>(SwapContext&, const HaveList&)>;
  using CloseHandler = std::function<p2p::awaitable<Status>(SwapContext&, const SwapClose&)>;
  using CheckpointHandler =
      std::function<p2p::awaitable<Status>(SwapContext&, const SwapCheckpoint&)>;
  using EvidenceHandler = std::function<p2p::awaitable<Status>(SwapContext&, const SwapEvidence&)>;
  using ReceiptsHandler = std::function<p2p::awaitable<Status>(SwapContext&, const SwapReceipts&)>;
  using InitRequestHandler =
      std::function<p2p::awaitable<Status>(SwapContext&, const SwapInitRequest&)>;
  using InitResultHandler =
      std::function<p2p::awaitable<Status>(SwapContext&, const SwapInitResult&)>;
  // Runs concurrently with the reading of Cancel/Receipt on the same stream. If it returns
  // without sending a final progress, the dispatcher sends one with InferError::kInternal.
  using InferHandler = std::function<p2p::awaitable<void>(InferContext&)>;
  using ReceiptHandler =
      std::function<p2p::awaitable<Status>(const identity::PeerId&, const Receipt&)>;
  using ErrorObserver =
      std::function<void(const identity::PeerId&, std::string_view protocol, const Status&)>;

  explicit Dispatcher(p2p::asio::any_io_executor ex, IoLimits swap = swap_io_limits(),
                      IoLimits infer = infer_io_limits());

  // A handler returning an error resets the stream and is reported to on_error.
  void on_open(OpenHandler h) { open_ = std::move(h); }
  void on_need_list(NeedListHandler h) { need_ = std::move(h); }
  void on_have_list(HaveListHandler h) { have_ = std::move(h); }
  void on_close(CloseHandler h) { close_ = std::move(h); }
  void on_checkpoint(CheckpointHandler h) { checkpoint_ = std::move(h); }
  void on_evidence(EvidenceHandler h) { evidence_ = std::move(h); }
  void on_receipts(ReceiptsHandler h) { receipts_ = std::move(h); }
  void on_init_request(InitRequestHandler h) { init_request_ = std::move(h); }
  void on_init_result(InitResultHandler h) { init_result_ = std::move(h); }
  void on_infer_request(InferHandler h) { infer_ = std::move(h); }
  void on_receipt(ReceiptHandler h) { receipt_ = std::move(h); }
  void on_error(ErrorObserver o) { error_ = std::move(o); }
  void set_keep_alive(KeepAliveLimits l) { keep_alive_ = l; }

  // Registers the swap and infer protocol handlers on `host`.
  void attach(p2p::Host& host);

  // Serve one negotiated stream from `peer` (what attach() installs; tests call these with
  // in-memory streams). They return when the stream is finished.
  p2p::awaitable<void> serve_swap(std::shared_ptr<p2p::ByteStream> s, identity::PeerId peer);
  p2p::awaitable<void> serve_infer(std::shared_ptr<p2p::ByteStream> s, identity::PeerId peer);

  const DispatcherStats& stats() const { return stats_; }

 private:
  void report(const identity::PeerId& peer, std::string_view protocol, const Status& st);
  p2p::awaitable<Status> dispatch_swap(SwapContext& ctx, const SwapMessage& m);
  p2p::awaitable<void> run_infer(std::shared_ptr<InferContext> ctx);
  // One infer stream's requester side, shared by serve_infer and its reader.
  struct InferStreamState {
    explicit InferStreamState(p2p::asio::any_io_executor ex) : changed(std::move(ex)) {}
    std::optional<InferRequest> request;  // read, the handler not started yet
    std::shared_ptr<InferContext> ctx;    // the running (or finished) request
    Status failure;                       // the requester broke the protocol
    bool request_seen = false;
    bool reader_done = false;
    bool keep_open = false;  // keep-alive: the first request asked and the limits allow it
    bool closing = false;    // our side is closed: requests read now are dropped
    uint32_t served = 0;     // requests started on this stream
    InferRequest first;      // keep-alive: what later requests inherit (no input)
    p2p::Signal changed;     // the reader read a request or finished
  };
  p2p::awaitable<bool> on_infer_client_message(InferClientMessage m, p2p::ByteStream& s,
                                               const identity::PeerId& peer, InferStreamState& st);
  p2p::awaitable<void> read_infer_client(std::shared_ptr<p2p::ByteStream> s, identity::PeerId peer,
                                         std::shared_ptr<InferStreamState> st);

  p2p::asio::any_io_executor ex_;
  IoLimits swap_limits_, infer_limits_;
  OpenHandler open_;
  NeedListHandler need_;
  HaveListHandler have_;
  CloseHandler close_;
  CheckpointHandler checkpoint_;
  EvidenceHandler evidence_;
  ReceiptsHandler receipts_;
  InitRequestHandler init_request_;
  InitResultHandler init_result_;
  InferHandler infer_;
  ReceiptHandler receipt_;
  ErrorObserver error_;
  KeepAliveLimits keep_alive_;
  DispatcherStats stats_;
};

// Requester side: opens /idn/infer/1.0.0 (or /idn/swap/1.0.0) to a connected peer.
p2p::awaitable<Result<InferClientStream>> open_infer(p2p::Host& host, const identity::PeerId& peer,
                                                     IoLimits limits = infer_io_limits());
p2p::awaitable<Result<SwapStream>> open_swap(p2p::Host& host, const identity::PeerId& peer,
                                             IoLimits limits = swap_io_limits());

}  // namespace idn::rpc
