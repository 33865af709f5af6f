#include "p2p/connection.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>

namespace idn::p2p {

namespace {
std::atomic<uint64_t> g_next_serial{1};
// After close(), how long the writer may take to flush the GoAway before the socket drops.
constexpr auto kCloseFlushTime = std::chrono::seconds(1);
}  // namespace

// ---------------------------------------------------------------------------------- Stream

Stream::Stream(std::shared_ptr<Connection> conn, uint32_t id) : conn_(std::move(conn)), id_(id) {
  conn_->counters_->streams_opened++;
}

Stream::~Stream() {
  conn_->counters_->streams_closed++;
  const size_t queued = conn_->session_.output_size();
  conn_->session_.release(id_);
  if (conn_->session_.output_size() > queued) conn_->writable_.notify_all();
}

const identity::PeerId& Stream::remote_peer() const {
  return conn_->remote_peer();
}
const core::Multiaddr& Stream::remote_addr() const {
  return conn_->remote_addr();
}

void Stream::select_optimistically(const std::string& protocol) {
  protocol_ = protocol;
  pending_echo_ = std::make_unique<multistream::Dialer>(std::vector<std::string>{protocol});
  proposal_ = pending_echo_->take_output();
}

awaitable<Status> Stream::write(ByteView data) {
  if (proposal_.empty()) co_return co_await write_frames(data);
  // The proposal and the first message travel in one frame (one packet on the wire).
  Bytes first = std::exchange(proposal_, {});
  first.insert(first.end(), data.begin(), data.end());
  co_return co_await write_frames(first);
}

awaitable<Status> Stream::flush_proposal() {
  if (proposal_.empty()) co_return Status::ok();
  Bytes p = std::exchange(proposal_, {});
  co_return co_await write_frames(p);
}

awaitable<Status> Stream::write_frames(ByteView data) {
  Connection& c = *conn_;
  const bool first = !std::exchange(wrote_, true);
  if (data.size() < defaults::kCoalesceWritesBelow && !c.closing_ &&
      (first || c.flushing_ || c.session_.has_output())) {
    // A small message that opens a stream's exchange (a protocol echo, a request) or finds
    // other output waiting is queued and sent by the writer coroutine, which runs once the
    // handlers ready now have run: what they write in the same turn (the answer after the
    // echo, the FIN, the stream's ACK, other streams' messages) leaves in one packet. Each
    // packet costs the peer a wake-up, and on a VM that is most of a small request's cost.
    // A message on an established stream with nothing waiting goes out at once below (an
    // echo server's reply: no hop through the writer).
    auto n = c.session_.write(id_, data);
    if (!n.ok()) co_return n.status();
    if (*n == data.size()) {
      c.writable_.notify_all();
      if (c.session_.output_size() <= defaults::kCoalesceWritesBelow) co_return Status::ok();
      co_return co_await c.flush();  // a burst of small writes: let it go out now
    }
    data = data.subspan(*n);  // the window is exhausted: the loop below waits for credit
    if (*n > 0) {
      Status st = co_await c.flush();
      if (!st.is_ok()) co_return st;
    }
  }
  while (true) {
    if (c.closing_)
      co_return Status::unavailable("connection closed: " + c.close_reason_.to_string());
    if (!c.flushing_ && !c.session_.has_output()) {
      // Nothing queued ahead of us: frame and encrypt straight from `data` (no copy into the
      // session's output first). Sending from here also saves a hop through the writer
      // coroutine per message: on loopback that hop was a large share of a small request's
      // round trip.
      auto n = c.session_.reserve_write(id_, data.size());
      if (!n.ok()) co_return n.status();
      if (*n > 0) {
        Status st = co_await c.send_direct(id_, data.first(*n));
        if (!st.is_ok()) co_return st;
        data = data.subspan(*n);
      }
    } else {
      auto n = c.session_.write(id_, data);
      if (!n.ok()) co_return n.status();
      data = data.subspan(*n);
      if (*n > 0) {
        Status st = co_await c.flush();
        if (!st.is_ok()) co_return st;
      }
    }
    if (data.empty()) co_return Status::ok();
    // A WindowUpdate that arrived while we were sending has no waiter to wake: look first.
    if (c.session_.send_window(id_) > 0) continue;
    // Window exhausted: wait for the peer's WindowUpdate.
    if (!co_await c.changed_.wait(deadline_) && std::chrono::steady_clock::now() >= deadline_) {
      co_return Status::timeout("stream write deadline passed (peer not reading)");
    }
  }
}

awaitable<Status> Stream::close_write() {
  if (Status st = co_await flush_proposal(); !st.is_ok()) co_return st;
  // A stream we opened whose peer already ended its side, read to the end: our FIN only lets
  // both ends free the stream, and our next request on the connection can carry it (see
  // defaults::kDeferredFinFor). On a stream the peer opened nothing of ours follows to carry
  // it, and the peer may be waiting for it (js-libp2p frees the stream, and its slot under
  // the protocol's stream limit, only then), so it goes now.
  Connection& c = *conn_;
  const bool exchange_over = c.session_.read_eof(id_) && !c.session_.remote_initiated(id_);
  Status st = c.session_.close_write(id_);
  if (exchange_over)
    c.flush_soon();
  else
    c.writable_.notify_all();
  co_return st;
}

awaitable<Status> Stream::write_last(ByteView data) {
  Connection& c = *conn_;
  const size_t total = proposal_.size() + data.size();
  if (total >= defaults::kCoalesceWritesBelow || c.closing_ ||
      c.session_.send_window(id_) < total) {
    // Large, or not within the window: the ordinary path, then the FIN.
    if (Status st = co_await write(data); !st.is_ok()) co_return st;
    co_return co_await close_write();
  }
  // Queue both: the writer sends them in one packet after the handlers ready now have run.
  wrote_ = true;
  if (!proposal_.empty()) {
    Bytes first = std::exchange(proposal_, {});
    first.insert(first.end(), data.begin(), data.end());
    auto n = c.session_.write(id_, first);
    if (!n.ok()) co_return n.status();
  } else {
    auto n = c.session_.write(id_, data);
    if (!n.ok()) co_return n.status();
  }
  Status st = c.session_.close_write(id_);
  c.writable_.notify_all();
  co_return st;
}

bool Stream::at_eof() const {
  return pending_echo_ == nullptr && conn_->session_.read_eof(id_) && !has_unread();
}

void Stream::reset() {
  conn_->session_.reset(id_);
  conn_->writable_.notify_all();
  conn_->changed_.notify_all();
}

awaitable<Result<size_t>> Stream::do_read_some(std::span<uint8_t> buf) {
  if (pending_echo_) co_return co_await read_echo_then(buf);
  co_return co_await read_frames(buf);
}

awaitable<Result<size_t>> Stream::read_echo_then(std::span<uint8_t> buf) {
  if (Status st = co_await flush_proposal(); !st.is_ok()) co_return st;
  uint8_t tmp[256];
  while (!pending_echo_->done()) {
    auto n = co_await read_frames(tmp);
    if (!n.ok()) {
      if (n.status().code() != Code::kCancelled) co_return n.status();
      co_return Status::unsupported("the peer reset the stream before accepting protocol " +
                                    protocol_);
    }
    if (*n == 0) {
      co_return Status::unsupported("stream closed before the peer accepted protocol " + protocol_);
    }
    if (Status st = pending_echo_->feed(ByteView(tmp, *n)); !st.is_ok()) {
      co_return st.with_context("optimistic select of " + protocol_);
    }
    // A "na" would make the dialer propose nothing else (one protocol): feed() already failed.
  }
  // Data that came with the echo is read first, through the ordinary read path.
  unread(pending_echo_->take_leftover());
  pending_echo_.reset();
  co_return co_await read_some(buf);
}

awaitable<Result<size_t>> Stream::read_frames(std::span<uint8_t> buf) {
  Connection& c = *conn_;
  // While we wait, the session may copy arriving payload straight into `buf` (one copy
  // instead of two). The guard ends the loan however this frame ends, even if it is destroyed
  // while suspended.
  struct TargetLoan {
    std::shared_ptr<Connection> c;  // frames die in any order at shutdown: keep it alive
    uint32_t id;
    ~TargetLoan() { (void)c->session_.take_read_target(id); }
  };
  while (true) {
    size_t n = c.session_.read(id_, buf);
    if (n > 0) {
      if (c.session_.has_output()) c.writable_.notify_all();  // a WindowUpdate to send
      co_return n;
    }
    if (c.session_.read_eof(id_)) co_return size_t{0};
    if (c.closing_)
      co_return Status::unavailable("connection closed: " + c.close_reason_.to_string());
    if (c.session_.is_reset(id_)) co_return Status::cancelled("stream reset");
    if (!wrote_ && c.session_.has_output()) c.writable_.notify_all();  // our SYN is queued
    bool woken;
    {
      TargetLoan loan{conn_, id_};
      c.session_.set_read_target(id_, buf);
      woken = co_await c.changed_.wait(deadline_);
      n = c.session_.take_read_target(id_);
    }
    if (n > 0) {
      if (c.session_.has_output()) c.writable_.notify_all();
      co_return n;
    }
    if (!woken && std::chrono::steady_clock::now() >= deadline_) {
      co_return Status::timeout("stream read deadline passed");
    }
  }
}

// ------------------------------------------------------------------------------ Connection

Connection::Connection(asio::any_io_executor ex, std::unique_ptr<SecureChannel> channel,
                       bool outbound, core::Multiaddr local_addr, core::Multiaddr remote_addr,
                       yamux::SessionLimits limits, std::shared_ptr<HostCounters> counters,
                       std::function<SteadyTime()> clock, Callbacks callbacks)
    : ex_(ex),
      channel_(std::move(channel)),
      outbound_(outbound),
      local_addr_(std::move(local_addr)),
      remote_addr_(std::move(remote_addr)),
      session_(outbound, limits, clock),
      counters_(std::move(counters)),
      clock_(std::move(clock)),
      callbacks_(std::move(callbacks)),
      changed_(ex),
      writable_(ex),
      deferred_fin_for_(limits.deferred_fin_for),
      flush_soon_timer_(ex),
      last_activity_(clock_()),
      serial_(g_next_serial++) {}

void Connection::start() {
  auto self = shared_from_this();
  session_.probe_rtt();  // the round trip that yamux window growth is judged by
  asio::co_spawn(
      ex_, [self]() { return self->reader(); }, asio::detached);
  asio::co_spawn(
      ex_, [self]() { return self->writer(); }, asio::detached);
}

void Connection::close(Status reason) {
  if (closing_) return;
  closing_ = true;
  close_reason_ = std::move(reason);
  session_.go_away(close_reason_.code() == Code::kPeerMisbehaved ||
                           close_reason_.code() == Code::kLimitExceeded
                       ? yamux::GoAwayCode::kProtocolError
                       : yamux::GoAwayCode::kNormal);
  writable_.notify_all();
  changed_.notify_all();
  if (callbacks_.on_closed) callbacks_.on_closed(*this, close_reason_);
  // A peer that does not read must not keep the socket alive past the flush allowance.
  auto self = shared_from_this();
  auto timer = std::make_shared<asio::steady_timer>(ex_, kCloseFlushTime);
  timer->async_wait([self, timer](boost::system::error_code) { self->drop(); });
}

void Connection::flush_soon() {
  if (flush_soon_armed_ || dropped_) return;
  flush_soon_armed_ = true;
  flush_soon_timer_.expires_after(deferred_fin_for_);
  flush_soon_timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    self->flush_soon_armed_ = false;
    if (!ec && self->session_.has_output()) self->writable_.notify_all();
  });
}

void Connection::drop() {
  if (dropped_) return;
  dropped_ = true;
  flush_soon_timer_.cancel();
  channel_->reset();
  writable_.notify_all();
  changed_.notify_all();
}

awaitable<void> Connection::reader() {
  auto self = shared_from_this();
  // Several Noise frames per wake-up: the channel decrypts all complete ones into it.
  std::vector<uint8_t> buf(256 * 1024);
  while (!closing_) {
    auto r = co_await channel_->read_some(buf);
    if (!r.ok()) {
      close(r.status().with_context("read"));
      break;
    }
    if (*r == 0) {
      close(Status::unavailable("remote closed the connection"));
      break;
    }
    last_activity_ = clock_();
    counters_->bytes_in += *r;
    Status st = session_.feed(ByteView(buf.data(), *r));
    if (!st.is_ok()) {
      close(st);
      break;
    }
    // Wake the streams this batch changed before handing out the streams it opened, and
    // before the writer: the executor runs them in that order. A handler that the peer's FIN
    // ends (a ping) then queues its own FIN ahead of anything a stream opened in the same
    // batch answers (its protocol echo). Otherwise a node that reads a FIN together with the
    // peer's next SYN (a moment busy) would echo the new protocol first, and a js-libp2p peer,
    // which counts a stream until both sides have closed it, would see two ping streams
    // where it allows one.
    changed_.notify_all();
    while (auto id = session_.accept()) {
      auto s = std::make_shared<Stream>(self, *id);
      if (callbacks_.on_inbound_stream) callbacks_.on_inbound_stream(std::move(s));
    }
    if (session_.has_output()) writable_.notify_all();
    if (session_.remote_went_away() && session_.num_streams() == 0) {
      close(Status::ok());
    }
  }
}

awaitable<Status> Connection::flush() {
  if (flushing_) {
    writable_.notify_all();  // the running flush or the writer picks our frames up
    co_return Status::ok();
  }
  auto self = shared_from_this();
  flushing_ = true;
  Status st = Status::ok();
  while (!dropped_ && session_.has_output()) {
    session_.take_output_into(flush_buf_);
    counters_->bytes_out += flush_buf_.size();
    counters_->writes++;
    last_activity_ = clock_();
    st = co_await channel_->write(flush_buf_);
    if (!st.is_ok()) {
      close(st.with_context("write"));
      break;
    }
  }
  flushing_ = false;
  writable_.notify_all();  // the writer may be waiting for the flush to end
  co_return st;
}

awaitable<Status> Connection::send_direct(uint32_t id, ByteView data) {
  auto self = shared_from_this();
  if (dropped_) co_return Status::unavailable("connection closed: " + close_reason_.to_string());
  const size_t chunk = session_.max_send_frame();
  counters_->bytes_out += data.size() + (data.size() + chunk - 1) / chunk * yamux::kHeaderLen;
  counters_->writes++;
  last_activity_ = clock_();
  flushing_ = true;
  Status st = co_await channel_->write_chunks(data, chunk, yamux::kHeaderLen,
                                              [id](size_t len, std::span<uint8_t> header) {
                                                yamux::Session::data_header(id, len, header);
                                              });
  flushing_ = false;
  if (!st.is_ok()) close(st.with_context("write"));
  writable_.notify_all();  // frames queued while we sent, or a writer waiting for us to end
  co_return st;
}

awaitable<void> Connection::writer() {
  auto self = shared_from_this();
  while (!dropped_) {
    if (session_.has_output() && !flushing_) {
      if (!(co_await flush()).is_ok()) break;
      continue;
    }
    if (closing_ && !flushing_) break;
    co_await writable_.wait();
  }
  drop();
}

awaitable<Result<std::shared_ptr<Stream>>> Connection::open_stream() {
  if (closing_)
    co_return Status::unavailable("connection to " + remote_peer().to_string() + " is closed");
  auto id = session_.open_stream();
  if (!id.ok()) co_return id.status();
  // The SYN waits in the session's output for the stream's first write (or first wait for
  // data), so it leaves in the same packet as the opening message: one wake-up of the peer
  // per stream instead of two.
  co_return std::make_shared<Stream>(shared_from_this(), *id);
}

}  // namespace idn::p2p
