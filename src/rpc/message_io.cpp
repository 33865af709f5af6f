#include "rpc/message_io.h"

#include <fmt/format.h>

namespace idn::rpc {
namespace {

using protocol::decode_infer_client;
using protocol::decode_infer_server;
using protocol::decode_swap;
using protocol::encode;
using protocol::message_name;

template <class M>
p2p::awaitable<Status> write_encoded(p2p::ByteStream& s, const M& m, size_t max) {
  Bytes payload = encode(m);
  if (payload.size() > max) {
    co_return Status::limit_exceeded(
        fmt::format("{} message is {} bytes, limit {}", message_name(m), payload.size(), max));
  }
  co_return co_await p2p::write_length_prefixed(s, payload);
}

template <class M, class Decode>
p2p::awaitable<Result<M>> read_decoded(p2p::ByteStream& s, IoLimits limits, Decode decode) {
  auto frame = co_await p2p::read_length_prefixed(s, limits.max_message_bytes);
  if (!frame.ok()) co_return frame.status();
  co_return decode(ByteView(*frame), limits.decode);
}

}  // namespace

p2p::awaitable<Status> write_message(p2p::ByteStream& s, const SwapMessage& m, size_t max) {
  return write_encoded(s, m, max);
}
p2p::awaitable<Status> write_message(p2p::ByteStream& s, const InferClientMessage& m, size_t max) {
  return write_encoded(s, m, max);
}
p2p::awaitable<Status> write_message(p2p::ByteStream& s, const InferServerMessage& m, size_t max) {
  return write_encoded(s, m, max);
}

p2p::awaitable<Result<SwapMessage>> read_swap_message(p2p::ByteStream& s, IoLimits limits) {
  return read_decoded<SwapMessage>(s, limits, decode_swap);
}
p2p::awaitable<Result<InferClientMessage>> read_infer_client_message(p2p::ByteStream& s,
                                                                     IoLimits limits) {
  return read_decoded<InferClientMessage>(s, limits, decode_infer_client);
}
p2p::awaitable<Result<InferServerMessage>> read_infer_server_message(p2p::ByteStream& s,
                                                                     IoLimits limits) {
  return read_decoded<InferServerMessage>(s, limits, decode_infer_server);
}

}  // namespace idn::rpc
