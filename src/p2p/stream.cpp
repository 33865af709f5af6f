#include "p2p/stream.h"

#include <algorithm>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <cstring>

#include "core/varint.h"

namespace idn::p2p {

namespace {
constexpr auto kUse = asio::use_awaitable;
}

awaitable<Result<size_t>> ByteStream::read_some(std::span<uint8_t> buf) {
  if (buf.empty()) co_return size_t{0};
  if (pending_pos_ < pending_.size()) {
    size_t n = std::min(buf.size(), pending_.size() - pending_pos_);
    std::memcpy(buf.data(), pending_.data() + pending_pos_, n);
    pending_pos_ += n;
    if (pending_pos_ == pending_.size()) {
      pending_.clear();
      pending_pos_ = 0;
    }
    co_return n;
  }
  co_return co_await do_read_some(buf);
}

awaitable<Status> ByteStream::read_exact(std::span<uint8_t> buf) {
  size_t got = 0;
  while (got < buf.size()) {
    auto r = co_await read_some(buf.subspan(got));
    if (!r.ok()) co_return r.status();
    if (*r == 0) {
      co_return Status::corruption("stream ended after " + std::to_string(got) + " of " +
                                   std::to_string(buf.size()) + " expected bytes");
    }
    got += *r;
  }
  co_return Status::ok();
}

void ByteStream::unread(ByteView data) {
  if (data.empty()) return;
  Bytes rest(pending_.begin() + static_cast<std::ptrdiff_t>(pending_pos_), pending_.end());
  pending_.assign(data.begin(), data.end());
  pending_.insert(pending_.end(), rest.begin(), rest.end());
  pending_pos_ = 0;
}

awaitable<Result<size_t>> TcpStream::do_read_some(std::span<uint8_t> buf) {
  boost::system::error_code ec;
  size_t n = co_await socket_.async_read_some(asio::buffer(buf.data(), buf.size()),
                                              asio::redirect_error(kUse, ec));
  if (ec == asio::error::eof) co_return size_t{0};
  if (ec == asio::error::operation_aborted) co_return Status::cancelled("TCP read cancelled");
  if (ec) co_return Status::io_error("TCP read: " + ec.message());
  co_return n;
}

awaitable<Status> TcpStream::write(ByteView data) {
  boost::system::error_code ec;
  co_await asio::async_write(socket_, asio::buffer(data.data(), data.size()),
                             asio::redirect_error(kUse, ec));
  if (ec) co_return Status::io_error("TCP write: " + ec.message());
  co_return Status::ok();
}

awaitable<Status> TcpStream::close_write() {
  boost::system::error_code ec;
  socket_.shutdown(asio::ip::tcp::socket::shutdown_send, ec);
  if (ec) co_return Status::io_error("TCP shutdown: " + ec.message());
  co_return Status::ok();
}

void TcpStream::reset() {
  boost::system::error_code ec;
  socket_.close(ec);
}

awaitable<Status> write_length_prefixed(ByteStream& s, ByteView payload) {
  Bytes buf = core::encode_length_prefixed(payload);
  co_return co_await s.write(buf);
}

awaitable<Result<Bytes>> read_length_prefixed(ByteStream& s, size_t max_size) {
  uint8_t hdr[core::kMaxUvarintBytes];
  size_t n = 0;
  uint64_t len = 0;
  for (;;) {
    auto r = co_await s.read_some(std::span<uint8_t>(hdr + n, 1));
    if (!r.ok()) co_return r.status();
    if (*r == 0) {
      if (n == 0) co_return Status::not_found("stream ended before a message");
      co_return Status::corruption("stream ended inside a message length");
    }
    ++n;
    auto p = core::parse_uvarint(ByteView(hdr, n));
    if (p.error == core::UvarintError::kNone) {
      len = p.value;
      break;
    }
    if (p.error != core::UvarintError::kTruncated || n == core::kMaxUvarintBytes) {
      co_return Status::corruption("malformed message length varint");
    }
  }
  if (len > max_size) {
    co_return Status::limit_exceeded("message of " + std::to_string(len) + " bytes exceeds the " +
                                     std::to_string(max_size) + "-byte limit");
  }
  Bytes out(len);
  Status st = co_await s.read_exact(out);
  if (!st.is_ok()) co_return st;
  co_return out;
}

namespace {

template <class Machine>
awaitable<Result<std::string>> negotiate(ByteStream& s, Machine& m) {
  uint8_t buf[512];
  for (;;) {
    Bytes out = m.take_output();
    if (!out.empty()) {
      Status st = co_await s.write(out);
      if (!st.is_ok()) co_return st;
    }
    if (m.done()) {
      Bytes rest = m.take_leftover();
      s.unread(rest);
      co_return m.protocol();
    }
    auto r = co_await s.read_some(buf);
    if (!r.ok()) co_return r.status();
    if (*r == 0) co_return Status::unavailable("stream closed during protocol negotiation");
    Status st = m.feed(ByteView(buf, *r));
    if (!st.is_ok()) {
      // Send what the machine answered before it failed (a listener's "na"): an optimistic
      // dialer's data follows its proposal and fails to parse, and the "na" is what tells that
      // dialer why its stream is about to be reset.
      Bytes last = m.take_output();
      if (!last.empty()) (void)co_await s.write(last);
      co_return st;
    }
  }
}

}  // namespace

awaitable<Result<std::string>> select_protocol(ByteStream& s, std::vector<std::string> protocols) {
  if (protocols.empty()) co_return Status::invalid_argument("select_protocol: no protocols");
  multistream::Dialer d(std::move(protocols));
  co_return co_await negotiate(s, d);
}

awaitable<Result<std::string>> accept_protocol(ByteStream& s,
                                               multistream::Listener::Supported supported) {
  multistream::Listener l(std::move(supported));
  co_return co_await negotiate(s, l);
}

awaitable<bool> Signal::wait(SteadyTime deadline) {
  asio::steady_timer t(ex_, deadline);
  waiters_.push_back(&t);
  boost::system::error_code ec;
  co_await t.async_wait(asio::redirect_error(kUse, ec));
  auto it = std::find(waiters_.begin(), waiters_.end(), &t);
  if (it != waiters_.end()) waiters_.erase(it);
  co_return ec == asio::error::operation_aborted || std::chrono::steady_clock::now() < deadline;
}

void Signal::notify_all() {
  auto ws = std::move(waiters_);
  waiters_.clear();
  for (auto* t : ws) t->cancel();
}

}  // namespace idn::p2p
