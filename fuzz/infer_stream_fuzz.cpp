// Fuzzes the server side of an /idn/infer/1.0.0 stream: rpc::Dispatcher::serve_infer reads
// whatever a requester sends (requests, cancels, receipts, keep-alive follow-ups, garbage,
// in chunks of any size, ending in EOF or a reset) while a handler answers. Whatever the bytes:
// nothing crashes or hangs; everything the server wrote is a sequence of valid framed
// InferServerMessages; every request the dispatcher started got exactly one final answer unless
// the stream was reset for a protocol violation (then at most one); nothing follows a final
// answer for the same request; only a keep-alive stream's answers say stream_open, and never
// more of them than the limit allows.
// Input: byte 0 = read chunk size and handler mode, byte 1 = keep-alive limit and ending,
// then the requester's bytes (length-prefixed InferClientMessages, as on the wire).
// fuzz-deps: idn_rpc idn_protocol idn_p2p idn_proto idn_identity idn_core
#include <utility>  // Boost 1.74 awaitable.hpp uses std::exchange without including it

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>

#include "core/varint.h"
#include "fuzz_check.h"
#include "identity/keys.h"
#include "rpc/dispatcher.h"

using namespace idn;

namespace {

// The requester: hands out the fuzz bytes `chunk` at a time, then EOF (or a reset); keeps what
// the server writes.
class ScriptedStream : public p2p::ByteStream {
 public:
  ScriptedStream(ByteView in, size_t chunk, bool end_with_reset)
      : in_(in), chunk_(chunk), end_with_reset_(end_with_reset) {}

  p2p::awaitable<Status> write(ByteView data) override {
    if (reset_) co_return Status::io_error("stream reset");
    CHECK(!closed_);  // nothing is written after our side was closed
    out.insert(out.end(), data.begin(), data.end());
    co_return Status::ok();
  }
  p2p::awaitable<Status> close_write() override {
    closed_ = true;
    co_return Status::ok();
  }
  void reset() override { reset_ = true; }
  bool was_reset() const { return reset_; }

  Bytes out;

 protected:
  p2p::awaitable<Result<size_t>> do_read_some(std::span<uint8_t> buf) override {
    if (reset_) co_return Status::io_error("stream reset");
    if (pos_ == in_.size()) {
      if (end_with_reset_) co_return Status::io_error("connection reset by the requester");
      co_return size_t{0};
    }
    size_t n = std::min({buf.size(), chunk_, in_.size() - pos_});
    std::copy_n(in_.begin() + static_cast<std::ptrdiff_t>(pos_), n, buf.begin());
    pos_ += n;
    co_return n;
  }

 private:
  ByteView in_;
  size_t pos_ = 0;
  size_t chunk_;
  bool end_with_reset_;
  bool closed_ = false;
  bool reset_ = false;
};

core::Tensor output() {
  float v[] = {0.25f, 0.75f};
  return core::Tensor::f32({2}, v);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const size_t chunk = 1 + (data[0] & 0x1f);
  const unsigned mode = (data[0] >> 5) & 3;  // how the handler answers
  const uint32_t keep_limit = 1 + (data[1] & 7);
  const bool end_with_reset = data[1] & 8;
  ByteView body(data + 2, size - 2);

  boost::asio::io_context io;
  rpc::Dispatcher d(io.get_executor());
  d.set_keep_alive({.max_requests = keep_limit, .idle = std::chrono::milliseconds(1)});
  int errors_reported = 0;
  d.on_error([&](const identity::PeerId&, std::string_view, const Status& st) {
    CHECK(!st.is_ok());
    errors_reported++;
  });
  d.on_receipt([](const identity::PeerId&, const rpc::Receipt&) -> p2p::awaitable<Status> {
    co_return Status::ok();
  });
  uint64_t handled = 0;
  d.on_infer_request([mode, &handled](rpc::InferContext& ctx) -> p2p::awaitable<void> {
    handled++;
    if (mode == 3) co_return;  // the dispatcher must answer for a handler that does not
    if (mode >= 1) {
      rpc::InferProgress p;
      p.exit_index = 0;
      p.confidence = 0.5f;
      p.output = output();
      (void)co_await ctx.send(std::move(p));
    }
    if (mode == 2) {  // an error answer
      rpc::InferProgress p;
      p.final = true;
      p.error = rpc::InferError::kInvalidRequest;
      p.error_message = "fuzz";
      (void)co_await ctx.send(std::move(p));
      co_return;
    }
    rpc::InferProgress p;
    p.final = true;
    p.exit_index = 1;
    p.output = output();
    (void)co_await ctx.send(std::move(p));
    // A second final must be refused.
    rpc::InferProgress again;
    again.final = true;
    CHECK(!(co_await ctx.send(std::move(again))).is_ok());
  });

  static const identity::PeerId requester =
      identity::PeerId::from_public_key(identity::KeyPair::from_seed(Bytes(32, 7))->public_key());
  auto stream = std::make_shared<ScriptedStream>(body, chunk, end_with_reset);
  bool done = false;
  boost::asio::co_spawn(
      io,
      [&]() -> p2p::awaitable<void> {
        co_await d.serve_infer(stream, requester);
        done = true;
      },
      boost::asio::detached);
  io.run();
  CHECK(done);

  // What the server wrote: framed, valid, one final per started request.
  core::FrameDecoder frames(rpc::kMaxInferMessage);
  CHECK(frames.push(ByteView(stream->out)).is_ok());
  uint64_t finals = 0, open_finals = 0;
  bool after_last_final = false;  // a final without stream_open ends the stream's answers
  while (auto frame = frames.pop()) {
    auto m = protocol::decode_infer_server(ByteView(*frame), {});
    CHECK(m.ok());
    const auto& p = std::get<rpc::InferProgress>(*m);
    CHECK(!after_last_final);
    if (p.final) {
      finals++;
      if (p.stream_open)
        open_finals++;
      else
        after_last_final = true;
    } else {
      CHECK(!p.stream_open);
    }
  }
  CHECK(frames.buffered() == 0);  // no partial frame
  const auto& stats = d.stats();
  CHECK(handled <= keep_limit);
  CHECK(handled == (handled ? stats.kept_requests + 1 : 0));  // the first, then kept ones
  CHECK(finals <= handled);
  CHECK(open_finals < keep_limit);
  if (!stream->was_reset()) CHECK(finals == handled);
  if (errors_reported > 0) CHECK(stream->was_reset());
  return 0;
}
