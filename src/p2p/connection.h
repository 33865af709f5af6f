// One upgraded libp2p connection (TCP + Noise + yamux) to an authenticated peer, and the
// Stream handle applications read and write. A Connection runs two coroutines: a reader that
// decrypts and feeds the yamux session, and a writer that flushes the session's frames (a
// Stream::write flushes its own frames directly when no flush is under way).
// Connections are created and owned by Host; applications only see Stream.
#pragma once

#include <atomic>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/multiaddr.h"
#include "identity/peer_id.h"
#include "p2p/secure_channel.h"
#include "p2p/stream.h"
#include "p2p/yamux.h"

namespace idn::p2p {

// Totals since the host started. Plain atomics so a metrics exporter may read them from any
// thread; `stats()` on Host gives a consistent-enough snapshot.
struct HostCounters {
  std::atomic<uint64_t> connections_opened{0};  // upgraded and registered
  std::atomic<uint64_t> connections_closed{0};
  std::atomic<uint64_t> inbound_connections{0};
  std::atomic<uint64_t> outbound_connections{0};
  std::atomic<uint64_t> handshakes_ok{0};
  std::atomic<uint64_t> handshakes_failed{0};
  std::atomic<uint64_t> streams_opened{0};
  std::atomic<uint64_t> streams_closed{0};
  std::atomic<uint64_t> streams_refused{0};  // inbound streams with no matching protocol
  std::atomic<uint64_t> bytes_in{0};         // decrypted payload bytes (yamux frames)
  std::atomic<uint64_t> bytes_out{0};
  std::atomic<uint64_t> writes{0};  // encrypted writes to sockets (a packet each, on loopback)
};

class Connection;

// A bidirectional yamux stream on a connection, after its protocol was negotiated.
// Destroying the handle without close_write() resets the stream.
class Stream : public ByteStream {
 public:
  Stream(std::shared_ptr<Connection> conn, uint32_t id);
  ~Stream() override;
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  awaitable<Status> write(ByteView data) override;
  // Closes our side: queues a FIN. Sent at once (with whatever this turn writes), except the
  // FIN of a stream we opened whose peer already ended its side and was read to the end: that
  // one waits up to SessionLimits::deferred_fin_for for our next output (the next request) to
  // carry it. A FIN on a stream the peer opened is never held: a js-libp2p peer counts the
  // stream against the protocol's limit until it arrives.
  awaitable<Status> close_write() override;
  // write(data) then close_write(), with the data and the FIN in one packet when the data is
  // small and the window takes it: the last message of a responder whose peer has finished
  // (a pong), so the peer has our FIN the moment it has the answer.
  awaitable<Status> write_last(ByteView data);
  // The peer closed its side and everything it sent has been read: a read returns 0 at once.
  bool at_eof() const;
  void reset() override;

  const std::string& protocol() const { return protocol_; }
  void set_protocol(std::string p) { protocol_ = std::move(p); }
  const identity::PeerId& remote_peer() const;
  const core::Multiaddr& remote_addr() const;
  uint32_t id() const { return id_; }
  // Reads and writes fail with Timeout once `deadline` passes (SteadyTime::max(): never).
  void set_deadline(SteadyTime deadline) { deadline_ = deadline; }

  // Optimistic multistream-select of one protocol (js-libp2p's lazy select): the header and
  // proposal go out in front of the first write (or close/read), without waiting a round trip
  // for the echo; the first read checks the echo before handing over data. A peer that answers
  // "na" makes that read fail with Unsupported.
  void select_optimistically(const std::string& protocol);

 protected:
  awaitable<Result<size_t>> do_read_some(std::span<uint8_t> buf) override;

 private:
  awaitable<Result<size_t>> read_frames(std::span<uint8_t> buf);
  awaitable<Status> write_frames(ByteView data);
  awaitable<Status> flush_proposal();
  awaitable<Result<size_t>> read_echo_then(std::span<uint8_t> buf);

  std::shared_ptr<Connection> conn_;
  uint32_t id_;
  std::string protocol_;
  SteadyTime deadline_ = SteadyTime::max();
  std::unique_ptr<multistream::Dialer> pending_echo_;  // optimistic select: echo not yet read
  Bytes proposal_;                                     // optimistic select: not yet written
  bool wrote_ = false;  // a write has gone through (the stream is past its opening exchange)
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  struct Callbacks {
    std::function<void(std::shared_ptr<Stream>)> on_inbound_stream;
    std::function<void(Connection&, const Status& reason)> on_closed;
  };

  Connection(asio::any_io_executor ex, std::unique_ptr<SecureChannel> channel, bool outbound,
             core::Multiaddr local_addr, core::Multiaddr remote_addr, yamux::SessionLimits limits,
             std::shared_ptr<HostCounters> counters, std::function<SteadyTime()> clock,
             Callbacks callbacks);
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Starts the reader and writer coroutines.
  void start();
  // Closes the connection (idempotent): queues a GoAway, flushes briefly, then drops the socket.
  // `reason` is what the close log line and the callback report.
  void close(Status reason);
  // Closing, or the peer sent GoAway: either way no new stream can open on it (streams
  // already open may still finish), so the host treats the peer as not connected.
  bool closed() const { return closing_ || session_.remote_went_away(); }

  // Opens a stream. Its SYN is sent with the stream's first write (or when it first waits to
  // read), not on its own.
  awaitable<Result<std::shared_ptr<Stream>>> open_stream();

  const identity::PeerId& remote_peer() const { return channel_->remote_peer(); }
  bool outbound() const { return outbound_; }
  const core::Multiaddr& remote_addr() const { return remote_addr_; }
  const core::Multiaddr& local_addr() const { return local_addr_; }
  uint64_t serial() const { return serial_; }
  SteadyTime last_activity() const { return last_activity_; }
  size_t num_streams() const { return session_.num_streams(); }
  const Status& close_reason() const { return close_reason_; }

 private:
  friend class Stream;
  awaitable<void> reader();
  awaitable<void> writer();
  // Sends the session's pending frames unless another flush is under way (the Noise nonce
  // order must match the byte order on the socket, so only one flush runs at a time).
  awaitable<Status> flush();
  // Sends `data` (whose window reserve_write took) as Data frames of stream `id`, encrypted
  // straight from the caller's buffer. Only when no flush runs and nothing is queued; holds the
  // flush slot while it sends, so frames queued meanwhile follow it on the wire.
  awaitable<Status> send_direct(uint32_t id, ByteView data);
  // Has the writer send what is queued within deferred_fin_for_ unless something else
  // sends it sooner.
  void flush_soon();
  void drop();

  asio::any_io_executor ex_;
  std::unique_ptr<SecureChannel> channel_;
  bool outbound_;
  core::Multiaddr local_addr_;
  core::Multiaddr remote_addr_;
  yamux::Session session_;
  std::shared_ptr<HostCounters> counters_;  // shared: outlives the Host during teardown
  std::function<SteadyTime()> clock_;
  Callbacks callbacks_;
  Signal changed_;   // session state changed: stream readers/writers re-check
  Signal writable_;  // session has output or we are closing
  std::chrono::microseconds deferred_fin_for_;
  asio::steady_timer flush_soon_timer_;
  bool flush_soon_armed_ = false;
  SteadyTime last_activity_;
  bool closing_ = false;
  bool dropped_ = false;
  bool flushing_ = false;
  Bytes flush_buf_;  // the session's output being sent; swapped with it to keep capacity
  Status close_reason_;
  uint64_t serial_;
};

}  // namespace idn::p2p
