#include "rpc/dispatcher.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include "p2p/host.h"

namespace idn::rpc {

using protocol::message_name;

namespace asio = p2p::asio;
using p2p::awaitable;

awaitable<Status> InferContext::send(InferProgress p) {
  if (final_sent_) {
    co_return Status::internal(
        fmt::format("request {}: progress sent after the final one", request_.request_id));
  }
  p.request_id = request_.request_id;
  bool final = p.final;
  p.stream_open = final && stream_open_;
  if (final) final_started_ = true;
  // Named, not a temporary in the co_await expression: GCC 12 miscompiles some of those.
  InferServerMessage m{std::move(p)};
  Status st = co_await write_message(*stream_, m, limits_.max_message_bytes);
  if (st.is_ok() && final) final_sent_ = true;
  co_return st;
}

awaitable<bool> InferContext::wait_cancelled(p2p::SteadyTime deadline) {
  while (!cancelled_ && !done_) {
    bool woken = co_await changed_.wait(deadline);
    if (!woken) break;
  }
  co_return cancelled_;
}

Dispatcher::Dispatcher(asio::any_io_executor ex, IoLimits swap, IoLimits infer)
    : ex_(std::move(ex)), swap_limits_(swap), infer_limits_(infer) {}

void Dispatcher::report(const identity::PeerId& peer, std::string_view protocol, const Status& st) {
  stats_.stream_errors++;
  spdlog::debug("{} stream from {} failed: {}", protocol, peer.to_string(), st.to_string());
  if (error_) error_(peer, protocol, st);
}

void Dispatcher::attach(p2p::Host& host) {
  host.set_handler(std::string(kSwapProtocolId), [this](std::shared_ptr<p2p::Stream> s) {
    identity::PeerId peer = s->remote_peer();
    return serve_swap(std::move(s), std::move(peer));
  });
  host.set_handler(std::string(kInferProtocolId), [this](std::shared_ptr<p2p::Stream> s) {
    identity::PeerId peer = s->remote_peer();
    return serve_infer(std::move(s), std::move(peer));
  });
}

awaitable<Status> Dispatcher::dispatch_swap(SwapContext& ctx, const SwapMessage& m) {
  if (auto* o = std::get_if<SwapOpen>(&m); o && open_) co_return co_await open_(ctx, *o);
  if (auto* n = std::get_if<NeedList>(&m); n && need_) co_return co_await need_(ctx, *n);
  if (auto* h = std::get_if<HaveList>(&m); h && have_) co_return co_await have_(ctx, *h);
  if (auto* c = std::get_if<SwapClose>(&m); c && close_) co_return co_await close_(ctx, *c);
  if (auto* c = std::get_if<SwapCheckpoint>(&m); c && checkpoint_)
    co_return co_await checkpoint_(ctx, *c);
  if (auto* e = std::get_if<SwapEvidence>(&m); e && evidence_)
    co_return co_await evidence_(ctx, *e);
  if (auto* b = std::get_if<SwapReceipts>(&m); b && receipts_)
    co_return co_await receipts_(ctx, *b);
  if (auto* r = std::get_if<SwapInitRequest>(&m); r && init_request_)
    co_return co_await init_request_(ctx, *r);
  if (auto* r = std::get_if<SwapInitResult>(&m); r && init_result_)
    co_return co_await init_result_(ctx, *r);
  stats_.unhandled++;
  co_return Status::ok();
}

awaitable<void> Dispatcher::serve_swap(std::shared_ptr<p2p::ByteStream> s, identity::PeerId peer) {
  SwapContext ctx(peer, *s, swap_limits_);
  for (;;) {
    auto m = co_await read_swap_message(*s, swap_limits_);
    if (!m.ok()) {
      if (m.status().code() == Code::kNotFound) {  // the sender is done
        (void)co_await s->close_write();
      } else {
        report(peer, kSwapProtocolId, m.status());
        s->reset();
      }
      co_return;
    }
    stats_.swap_messages++;
    Status st = co_await dispatch_swap(ctx, *m);
    if (!st.is_ok()) {
      report(peer, kSwapProtocolId, st.with_context(message_name(*m)));
      s->reset();
      co_return;
    }
  }
}

awaitable<void> Dispatcher::run_infer(std::shared_ptr<InferContext> ctx) {
  co_await infer_(*ctx);
  if (!ctx->final_sent_) {
    InferProgress p;
    p.final = true;
    p.error = ctx->cancelled_ ? InferError::kCancelled : InferError::kInternal;
    p.error_message =
        ctx->cancelled_ ? "cancelled by the requester" : "the service ended without a final result";
    (void)co_await ctx->send(std::move(p));
  }
  ctx->done_ = true;
  ctx->changed_.notify_all();
}

// The requester's side of an infer stream: handles one message; returns false when reading
// should stop (`failure` set when it was the requester's fault).
awaitable<bool> Dispatcher::on_infer_client_message(InferClientMessage m, p2p::ByteStream& s,
                                                    const identity::PeerId& peer,
                                                    InferStreamState& st) {
  if (auto* req = std::get_if<InferRequest>(&m)) {
    stats_.infer_requests++;
    if (std::exchange(st.request_seen, true)) {
      // Our side is closed (idle): the requester sees it and asks again elsewhere.
      if (st.closing) co_return true;
      if (!st.keep_open) {
        st.failure = Status::peer_misbehaved("a second InferRequest on one stream");
        co_return false;
      }
      if (!st.ctx || !st.ctx->final_started_) {
        st.failure = Status::peer_misbehaved(
            "an InferRequest before the previous request's final answer on a keep-alive stream");
        co_return false;
      }
      if (!st.ctx->stream_open_) {
        st.failure = Status::peer_misbehaved(fmt::format(
            "an InferRequest after the stream's last one ({} requests per stream)", st.served));
        co_return false;
      }
    }
    if (!infer_) {
      InferProgress p;
      p.request_id = req->request_id;
      p.final = true;
      p.error = InferError::kUnknownService;
      p.error_message = "this node serves no inference";
      InferServerMessage reply{std::move(p)};
      Status w = co_await write_message(s, reply, infer_limits_.max_message_bytes);
      if (!w.is_ok()) {
        st.failure = w;
        co_return false;
      }
      co_return true;
    }
    st.request = std::move(*req);
    co_return true;
  }
  if (auto* c = std::get_if<InferCancel>(&m)) {
    stats_.cancels++;
    if (st.ctx && c->request_id == st.ctx->request_.request_id) st.ctx->cancel();
    co_return true;
  }
  if (auto* r = std::get_if<Receipt>(&m)) {
    stats_.receipts++;
    if (!receipt_) {
      stats_.unhandled++;
      co_return true;
    }
    Status rs = co_await receipt_(peer, *r);
    if (!rs.is_ok()) {
      st.failure = rs.with_context("receipt");
      co_return false;
    }
  }
  co_return true;
}

// Reads until the requester ends its side or breaks the protocol; a failure cancels the
// running request and resets the stream.
awaitable<void> Dispatcher::read_infer_client(std::shared_ptr<p2p::ByteStream> s,
                                              identity::PeerId peer,
                                              std::shared_ptr<InferStreamState> st) {
  for (;;) {
    auto m = co_await read_infer_client_message(*s, infer_limits_);
    if (!m.ok()) {
      if (m.status().code() != Code::kNotFound) st->failure = m.status();
      break;
    }
    if (!co_await on_infer_client_message(std::move(*m), *s, peer, *st)) break;
    if (st->request) break;  // serve_infer starts the handler and reads on with a new reader
  }
  if (st->request) {
    st->changed.notify_all();
    co_return;
  }
  if (!st->failure.is_ok()) {
    // Once our side is closed (idle) the stream is being given up anyway: nothing to report.
    if (!st->closing) report(peer, kInferProtocolId, st->failure);
    if (st->ctx) st->ctx->cancel();
    s->reset();
  }
  st->reader_done = true;
  if (st->ctx) st->ctx->changed_.notify_all();
  st->changed.notify_all();
}

awaitable<void> Dispatcher::serve_infer(std::shared_ptr<p2p::ByteStream> s, identity::PeerId peer) {
  auto st = std::make_shared<InferStreamState>(ex_);
  co_await read_infer_client(s, peer, st);  // up to the request (or the stream's end)
  if (!st->request) {
    if (st->failure.is_ok()) (void)co_await s->close_write();
    co_return;
  }
  st->keep_open = st->request->keep_open && keep_alive_.max_requests > 1;
  if (st->keep_open) {
    st->first.service_id = st->request->service_id;
    st->first.exit_rule = st->request->exit_rule;
    st->first.deadline_ms = st->request->deadline_ms;
  }
  for (;;) {
    InferRequest req = std::move(*st->request);
    st->request.reset();
    if (st->served > 0) {  // a later request on a keep-alive stream: fill in what it inherits
      stats_.kept_requests++;
      if (req.service_id.empty()) req.service_id = st->first.service_id;
      if (req.exit_rule_inherited) req.exit_rule = st->first.exit_rule;
      req.exit_rule_inherited = false;
      if (req.deadline_ms == 0) req.deadline_ms = st->first.deadline_ms;
    }
    st->served++;
    auto ctx = std::shared_ptr<InferContext>(
        new InferContext(peer, std::move(req), s, infer_limits_, ex_));
    ctx->stream_open_ = st->keep_open && st->served < keep_alive_.max_requests;
    st->ctx = ctx;
    // Cancels, receipts (and on a keep-alive stream the next request) are read beside the
    // handler; the handler itself runs here, in the turn that read the request: an answer the
    // service has at once (a small model run inline) is written before the connection's writer
    // flushes, so the protocol echo, the answer and the FIN below leave in one packet.
    asio::co_spawn(ex_, read_infer_client(s, peer, st), asio::detached);
    co_await run_infer(ctx);
    if (!ctx->stream_open_ || !ctx->final_sent_ || !st->failure.is_ok()) break;
    // Keep-alive: the next request, the requester's end, or the idle limit.
    const p2p::SteadyTime idle_until = std::chrono::steady_clock::now() + keep_alive_.idle;
    while (!st->request && !st->reader_done) {
      if (!co_await st->changed.wait(idle_until)) break;
    }
    if (st->request) continue;
    if (!st->reader_done) {
      // Idle: end our side. A request crossing our FIN is dropped; the requester reads our
      // end before an answer and asks again on a new stream.
      stats_.idle_closes++;
      st->closing = true;
      (void)co_await s->close_write();
      const p2p::SteadyTime grace = std::chrono::steady_clock::now() + keep_alive_.idle;
      while (!st->reader_done) {
        if (!co_await st->changed.wait(grace)) {
          s->reset();  // the requester never closed its side
          break;
        }
      }
      while (!st->reader_done) co_await st->changed.wait();
      co_return;
    }
    break;
  }
  // The final answer is out: end our side now (the requester may still send a receipt).
  if (st->failure.is_ok()) (void)co_await s->close_write();
  while (!st->reader_done) co_await st->changed.wait();
}

awaitable<Result<InferClientStream>> open_infer(p2p::Host& host, const identity::PeerId& peer,
                                                IoLimits limits) {
  std::string protocol(kInferProtocolId);
  auto s = co_await host.new_stream(peer, protocol);
  if (!s.ok()) co_return s.status();
  co_return InferClientStream(std::move(*s), limits);
}

awaitable<Result<SwapStream>> open_swap(p2p::Host& host, const identity::PeerId& peer,
                                        IoLimits limits) {
  std::string protocol(kSwapProtocolId);
  auto s = co_await host.new_stream(peer, protocol);
  if (!s.ok()) co_return s.status();
  co_return SwapStream(std::move(*s), limits);
}

}  // namespace idn::rpc
