#include "client/blocking.h"

#include <fmt/format.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>

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

namespace detail {

// Answers of one request on their way from the io thread to the caller's thread.
struct BlockingChannel {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Event> events;
  bool done = false;      // the request is complete and `summary` final
  bool finished = false;  // the caller called finish(): answers are dropped
  Summary summary;
  Status stall;                         // set when the io thread did not answer in time
  std::shared_ptr<InferStream> stream;  // touched on the io thread only (once started)
};

}  // namespace detail

namespace {

using detail::BlockingChannel;

// Moves the request's answers into the channel, waking the caller once per batch: answers
// that are ready together (the last one and the end of the request) cost one wake-up.
awaitable<void> pump(std::shared_ptr<BlockingChannel> ch) {
  for (;;) {
    std::optional<Event> e = co_await ch->stream->next();
    std::deque<Event> ready;
    while (e) {
      ready.push_back(std::move(*e));
      if (!ch->stream->done()) break;
      e = co_await ch->stream->next();  // complete: returns at once
    }
    bool end = !e;
    {
      std::lock_guard lock(ch->mu);
      if (!ch->finished)
        for (auto& ev : ready) ch->events.push_back(std::move(ev));
      if (end) {
        ch->summary = ch->stream->summary();
        ch->done = true;
      }
    }
    ch->cv.notify_all();
    if (end) break;
  }
  ch->stream.reset();  // the request is released on the io thread
}

}  // namespace

BlockingStream::BlockingStream(asio::any_io_executor io, std::shared_ptr<BlockingChannel> ch,
                               std::chrono::milliseconds limit)
    : io_(std::move(io)), ch_(std::move(ch)), wait_limit_(limit) {}

BlockingStream::BlockingStream(BlockingStream&&) noexcept = default;

BlockingStream::~BlockingStream() {
  if (ch_) finish();
}

std::optional<Event> BlockingStream::next() {
  if (!ch_) return std::nullopt;
  BlockingChannel& c = *ch_;
  std::unique_lock lock(c.mu);
  bool ready = c.cv.wait_for(lock, wait_limit_, [&] {
    return !c.events.empty() || c.done || c.finished || !c.stall.is_ok();
  });
  if (!ready) {
    c.stall = stalled(wait_limit_);
    return std::nullopt;
  }
  if (c.finished || c.events.empty()) return std::nullopt;
  Event e = std::move(c.events.front());
  c.events.pop_front();
  return e;
}

void BlockingStream::finish() {
  if (!ch_) return;
  bool running;
  {
    std::lock_guard lock(ch_->mu);
    running = !ch_->done && !ch_->finished;
    ch_->finished = true;
    ch_->events.clear();
  }
  if (!running) return;
  asio::post(io_, [ch = ch_] {
    if (ch->stream) ch->stream->finish();
  });
}

Summary BlockingStream::summary() const {
  Summary out;
  if (!ch_) {
    out.status = Status::internal("summary() of a moved-from BlockingStream");
    return out;
  }
  BlockingChannel& c = *ch_;
  std::unique_lock lock(c.mu);
  if (c.stall.is_ok() && !c.cv.wait_for(lock, wait_limit_, [&] { return c.done; }))
    c.stall = stalled(wait_limit_);
  if (!c.stall.is_ok()) {
    out.status = c.stall;
    return out;
  }
  return c.summary;
}

BlockingStream infer_stream_blocking(Session& session, core::Tensor input) {
  auto ch = std::make_shared<BlockingChannel>();
  // Session::infer may be called from any thread; the stream is used on the io thread only.
  ch->stream = session.infer(std::move(input));
  asio::co_spawn(session.executor(), pump(ch), asio::detached);
  return BlockingStream(session.executor(), std::move(ch), wait_limit(session.options()));
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
