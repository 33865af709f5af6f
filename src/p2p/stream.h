// The byte-stream abstraction every p2p layer is written against (TCP socket, Noise channel,
// yamux stream), plus coroutine helpers over it: exact reads, uvarint-length-prefixed
// messages, multistream-select negotiation, and a Signal to wait on state changes.
//
// All of it runs on one Boost.Asio executor (a node's io_context thread) with C++20
// coroutines; nothing here is thread-safe and nothing throws: errors come back as Status.
#pragma once

#include <utility>  // Boost 1.74 awaitable.hpp uses std::exchange without including it

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "core/bytes.h"
#include "core/status.h"
#include "p2p/multistream.h"

namespace idn::p2p {

namespace asio = boost::asio;
using asio::awaitable;
using SteadyTime = std::chrono::steady_clock::time_point;

class ByteStream {
 public:
  virtual ~ByteStream() = default;

  // Reads at least one byte into `buf`; 0 means the peer closed its side cleanly (EOF).
  awaitable<Result<size_t>> read_some(std::span<uint8_t> buf);
  // Fills `buf` completely. Errors: IOError / Cancelled, or Corruption on EOF before the end.
  awaitable<Status> read_exact(std::span<uint8_t> buf);
  // Writes everything (or fails).
  virtual awaitable<Status> write(ByteView data) = 0;
  // Half-close: no more writes from us; the peer reads EOF. Reads still work.
  virtual awaitable<Status> close_write() = 0;
  // Abort both directions immediately.
  virtual void reset() = 0;

  // Puts bytes back in front of the read side (bytes a negotiation read past its end).
  void unread(ByteView data);

 protected:
  virtual awaitable<Result<size_t>> do_read_some(std::span<uint8_t> buf) = 0;
  // Bytes put back by unread() are waiting to be read.
  bool has_unread() const { return pending_pos_ < pending_.size(); }

 private:
  Bytes pending_;
  size_t pending_pos_ = 0;
};

// A TCP socket as a ByteStream.
class TcpStream : public ByteStream {
 public:
  explicit TcpStream(asio::ip::tcp::socket socket) : socket_(std::move(socket)) {}
  awaitable<Status> write(ByteView data) override;
  awaitable<Status> close_write() override;
  void reset() override;
  asio::ip::tcp::socket& socket() { return socket_; }

 protected:
  awaitable<Result<size_t>> do_read_some(std::span<uint8_t> buf) override;

 private:
  asio::ip::tcp::socket socket_;
};

// uvarint(len) || payload, the framing of identify and of every IDN protocol message.
awaitable<Status> write_length_prefixed(ByteStream& s, ByteView payload);
// Errors: LimitExceeded (declared length > max_size), Corruption (bad varint, EOF mid-message),
// NotFound when the stream ended cleanly before any byte of a new message.
awaitable<Result<Bytes>> read_length_prefixed(ByteStream& s, size_t max_size);

// multistream-select over a stream. The dialer proposes `protocols` in order and returns the
// one accepted; the listener accepts the first proposal `supported` approves. Bytes read past
// the negotiation are unread() back into the stream.
awaitable<Result<std::string>> select_protocol(ByteStream& s, std::vector<std::string> protocols);
awaitable<Result<std::string>> accept_protocol(ByteStream& s,
                                               multistream::Listener::Supported supported);

// A broadcast wake-up for coroutines on one executor (a condition variable without a mutex):
// waiters re-check their condition after every wake-up.
class Signal {
 public:
  explicit Signal(asio::any_io_executor ex) : ex_(std::move(ex)) {}
  Signal(const Signal&) = delete;
  Signal& operator=(const Signal&) = delete;

  // Suspends until notify_all() or `deadline`. Returns false when the deadline passed.
  awaitable<bool> wait(SteadyTime deadline = SteadyTime::max());
  void notify_all();

 private:
  asio::any_io_executor ex_;
  std::vector<asio::steady_timer*> waiters_;
};

}  // namespace idn::p2p
