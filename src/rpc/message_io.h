// Typed IDN messages over a p2p byte stream: each message is uvarint(length) || protobuf,
// bounded by a per-protocol maximum size that is checked before anything is buffered.
// rpc/ is the coroutine half of IDN's protocols (streams, dispatch); protocol/ is the
// transport-free codec, kept apart so it builds anywhere (fuzzers, tools).
#pragma once

#include <memory>

#include "p2p/stream.h"
#include "protocol/messages.h"

namespace idn::rpc {

// The message vocabulary, re-exported so users of rpc/ need not spell protocol::.
using protocol::DecodeLimits;
using protocol::HaveList;
using protocol::InferCancel;
using protocol::InferClientMessage;
using protocol::InferError;
using protocol::InferProgress;
using protocol::InferRequest;
using protocol::InferServerMessage;
using protocol::kInferProtocolId;
using protocol::kSwapProtocolId;
using protocol::NeedList;
using protocol::Receipt;
using protocol::SwapCheckpoint;
using protocol::SwapClose;
using protocol::SwapEvidence;
using protocol::SwapInitRequest;
using protocol::SwapInitResult;
using protocol::SwapMessage;
using protocol::SwapOpen;
using protocol::SwapReceipts;

// A swap message is a few ids; 4096 ids of 128 bytes fit with room to spare.
inline constexpr size_t kMaxSwapMessage = 1024 * 1024;
// Infer messages carry tensors: a batch of inputs or a stage activation. 16 MiB holds e.g.
// a 64x64x32x32 f32 activation; larger work should be split into several requests.
inline constexpr size_t kMaxInferMessage = 16 * 1024 * 1024;

struct IoLimits {
  size_t max_message_bytes;
  DecodeLimits decode;
};
inline IoLimits swap_io_limits() {
  return {kMaxSwapMessage, {}};
}
inline IoLimits infer_io_limits() {
  return {kMaxInferMessage, {}};
}

// Errors: LimitExceeded when the encoded message exceeds `max_message_bytes` (nothing is
// written), else the stream's write error.
p2p::awaitable<Status> write_message(p2p::ByteStream& s, const SwapMessage& m,
                                     size_t max_message_bytes = kMaxSwapMessage);
p2p::awaitable<Status> write_message(p2p::ByteStream& s, const InferClientMessage& m,
                                     size_t max_message_bytes = kMaxInferMessage);
p2p::awaitable<Status> write_message(p2p::ByteStream& s, const InferServerMessage& m,
                                     size_t max_message_bytes = kMaxInferMessage);

// Errors: NotFound when the stream ended cleanly before a new message (the peer is done),
// LimitExceeded (declared length too large), Corruption (truncated), PeerMisbehaved
// (payload is not a valid message).
p2p::awaitable<Result<SwapMessage>> read_swap_message(p2p::ByteStream& s, IoLimits limits);
p2p::awaitable<Result<InferClientMessage>> read_infer_client_message(p2p::ByteStream& s,
                                                                     IoLimits limits);
p2p::awaitable<Result<InferServerMessage>> read_infer_server_message(p2p::ByteStream& s,
                                                                     IoLimits limits);

namespace detail {
inline p2p::awaitable<Result<SwapMessage>> read_message(p2p::ByteStream& s, IoLimits l,
                                                        const SwapMessage*) {
  return read_swap_message(s, l);
}
inline p2p::awaitable<Result<InferClientMessage>> read_message(p2p::ByteStream& s, IoLimits l,
                                                               const InferClientMessage*) {
  return read_infer_client_message(s, l);
}
inline p2p::awaitable<Result<InferServerMessage>> read_message(p2p::ByteStream& s, IoLimits l,
                                                               const InferServerMessage*) {
  return read_infer_server_message(s, l);
}
}  // namespace detail

// One side of an IDN protocol stream: sends `Out`, receives `In`. Owns the stream handle;
// destroying it without close_write() resets the stream (p2p::Stream semantics).
template <class Out, class In>
class MessageStream {
 public:
  MessageStream(std::shared_ptr<p2p::ByteStream> stream, IoLimits limits)
      : stream_(std::move(stream)), limits_(limits) {}

  p2p::awaitable<Status> send(const Out& m) {
    return write_message(*stream_, m, limits_.max_message_bytes);
  }
  // NotFound once the peer closed its side.
  p2p::awaitable<Result<In>> receive() {
    return detail::read_message(*stream_, limits_, static_cast<const In*>(nullptr));
  }
  p2p::awaitable<Status> close_write() { return stream_->close_write(); }
  void reset() { stream_->reset(); }
  p2p::ByteStream& raw() { return *stream_; }

 private:
  std::shared_ptr<p2p::ByteStream> stream_;
  IoLimits limits_;
};

using SwapStream = MessageStream<SwapMessage, SwapMessage>;
// The requester's end of /idn/infer/1.0.0.
using InferClientStream = MessageStream<InferClientMessage, InferServerMessage>;
// The server's end of /idn/infer/1.0.0.
using InferServerStream = MessageStream<InferServerMessage, InferClientMessage>;

}  // namespace idn::rpc
