#include "client/blocking.h"

#include <fmt/format.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <future>

namespace idn::client {

namespace asio = boost::asio;
using p2p::awaitable;

namespace {

// How long past the request's own deadline (plus its cancel grace) a blocking call waits for
// the io thread before it concludes that thread is stuck or stopped.
constexpr std::chrono::seconds kIoStallMargin{10};

// Runs `make()` (an awaitable<T>) on `io` and waits up to `limit` for its value.
template <class T, class F>
std::optional<T> run_on(const asio::any_io_executor& io, F make, std::chrono::milliseconds limit) {
  auto prom = std::make_shared<std::promise<T>>();
  std::future<T> fut = prom->get_future();
  asio::co_spawn(
      io,
      [make = std::move(make), prom]() mutable -> awaitable<void> {
        T value = co_await make();
        prom->set_value(std::move(value));
      },
      asio::detached);
  if (fut.wait_for(limit) != std::future_status::ready) return std::nullopt;
  return fut.get();
}

std::chrono::milliseconds wait_limit(const SessionOptions& o) {
  return o.deadline + o.cancel_grace + kIoStallMargin;
}

Status stalled(std::chrono::milliseconds limit) {
  return Status::timeout(fmt::format(
      "the io thread did not answer within {} ms; is its io_context running?", limit.count()));
}

}  // namespace

BlockingStream::BlockingStream(asio::any_io_executor io, std::shared_ptr<InferStream> stream,
                               std::chrono::milliseconds limit)
    : io_(std::move(io)), stream_(std::move(stream)), wait_limit_(limit) {}

BlockingStream::~BlockingStream() {
  if (!stream_) return;  // moved from
  // The InferStream must be finished and released on the io thread.
  asio::post(io_, [s = std::move(stream_)] { s->finish(); });
}

std::optional<Event> BlockingStream::next() {
  if (!stream_ || !stall_.is_ok()) return std::nullopt;
  auto s = stream_;
  auto r = run_on<std::optional<Event>>(
      io_,
      [s]() -> awaitable<std::optional<Event>> {
        std::optional<Event> e = co_await s->next();
        co_return e;
      },
      wait_limit_);
  if (!r) {
    stall_ = stalled(wait_limit_);
    return std::nullopt;
  }
  return std::move(*r);
}

void BlockingStream::finish() {
  if (!stream_) return;
  auto s = stream_;
  run_on<int>(
      io_,
      [s]() -> awaitable<int> {
        s->finish();
        co_return 0;
      },
      wait_limit_);
}

Summary BlockingStream::summary() const {
  if (!stall_.is_ok() || !stream_) {
    Summary s;
    s.status =
        stall_.is_ok() ? Status::internal("summary() of a moved-from BlockingStream") : stall_;
    return s;
  }
  auto s = stream_;
  auto r = run_on<Summary>(
      io_, [s]() -> awaitable<Summary> { co_return s->summary(); }, wait_limit_);
  if (!r) {
    Summary out;
    out.status = stalled(wait_limit_);
    return out;
  }
  return std::move(*r);
}

BlockingStream infer_stream_blocking(Session& session, core::Tensor input) {
  auto limit = wait_limit(session.options());
  Session* sp = &session;
  auto in = std::make_shared<core::Tensor>(std::move(input));
  auto r = run_on<std::shared_ptr<InferStream>>(
      session.executor(),
      [sp, in]() -> awaitable<std::shared_ptr<InferStream>> {
        co_return sp->infer(std::move(*in));
      },
      limit);
  BlockingStream out(session.executor(), r ? std::move(*r) : nullptr, limit);
  if (!r) out.stall_ = stalled(limit);
  return out;
}

Result<Event> infer_blocking(Session& session, core::Tensor input) {
  auto limit = wait_limit(session.options());
  Session* sp = &session;
  auto in = std::make_shared<core::Tensor>(std::move(input));
  auto r = run_on<Result<Event>>(
      session.executor(),
      [sp, in]() -> awaitable<Result<Event>> {
        core::Tensor input = std::move(*in);
        Result<Event> r = co_await sp->infer_once(std::move(input));
        co_return r;
      },
      limit);
  if (!r) return stalled(limit);
  return std::move(*r);
}

}  // namespace idn::client
