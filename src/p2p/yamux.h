// yamux (libp2p's default stream multiplexer, spec: hashicorp/yamux + libp2p/specs/yamux) as a
// sans-IO session: feed() the decrypted bytes from the peer, take_output() the frames to send.
// The host's coroutines (host.cpp) wrap it; tests and the fuzzer drive it directly.
//
// Frame: 12-byte header (version 0, type, flags, stream id, length) then, for Data frames,
// `length` payload bytes. Streams opened by the client (the dialer of the connection) are odd,
// by the server even; stream 0 carries Ping and GoAway. Each direction of each stream has a
// credit window (256 KiB initially; we raise ours to SessionLimits::recv_window in the SYN/ACK):
// a sender never sends more than the window, the receiver grants more with WindowUpdate after
// the application has consumed data. A peer that exceeds
// our window, breaks the framing or opens more streams than allowed fails the session.
//
// Not thread-safe; one session per connection, used from the connection's executor.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <span>
#include <vector>

#include "core/bytes.h"
#include "core/status.h"
#include "p2p/defaults.h"

namespace idn::p2p::yamux {

inline constexpr std::string_view kProtocolId = "/yamux/1.0.0";
inline constexpr size_t kHeaderLen = 12;
inline constexpr uint32_t kInitialWindow = 256 * 1024;  // fixed by the spec

enum class FrameType : uint8_t { kData = 0, kWindowUpdate = 1, kPing = 2, kGoAway = 3 };
enum Flag : uint16_t { kSyn = 1, kAck = 2, kFin = 4, kRst = 8 };
enum class GoAwayCode : uint32_t { kNormal = 0, kProtocolError = 1, kInternalError = 2 };

struct Header {
  uint8_t version = 0;
  FrameType type = FrameType::kData;
  uint16_t flags = 0;
  uint32_t stream_id = 0;
  uint32_t length = 0;
};

void append_header(const Header& h, Bytes& out);
// Decodes exactly 12 bytes. Errors: PeerMisbehaved (unknown version or type).
Result<Header> decode_header(ByteView in);

struct SessionLimits {
  // Most streams open at once on one connection (ours + theirs); one more inbound SYN fails
  // the session.
  size_t max_streams = defaults::kMaxStreamsPerConnection;
  // Largest Data frame payload we accept (the window bounds it too).
  uint32_t max_frame_payload = defaults::kMaxYamuxFramePayload;
  // Largest Data frame payload we send (keeps latency fair across streams).
  uint32_t max_send_frame = defaults::kYamuxSendFrame;
  // Receive window per stream (>= kInitialWindow); the excess is granted in the SYN / ACK.
  uint32_t recv_window = defaults::kYamuxReceiveWindow;
};

class Session {
 public:
  // `client`: this side dialled the connection (opens odd stream IDs).
  Session(bool client, SessionLimits limits = {});

  // Processes received bytes. An error means the peer broke the protocol: the session is
  // failed (a GoAway is queued in take_output()) and the connection should be closed.
  Status feed(ByteView data);
  Bytes take_output() {
    control_out_ = 0;
    return std::exchange(out_, {});
  }
  // take_output() into `dst`, handing dst's old storage to the session: a connection that
  // alternates two buffers allocates (and page-faults in) its output memory only once.
  void take_output_into(Bytes& dst) {
    control_out_ = 0;
    dst.clear();
    std::swap(out_, dst);
  }
  bool has_output() const { return !out_.empty(); }
  bool failed() const { return failed_; }

  // Opens an outbound stream (queues a SYN). Errors: Unavailable after GoAway,
  // LimitExceeded at max_streams.
  Result<uint32_t> open_stream();
  // Next inbound stream the peer opened, if any.
  std::optional<uint32_t> accept();

  // Queues up to the stream's send window of `data`; returns how many bytes were taken
  // (0: window exhausted, wait for a WindowUpdate). Errors: the stream was reset, closed for
  // writing, or is unknown.
  Result<size_t> write(uint32_t id, ByteView data);
  // Copies buffered received bytes; returns 0 when none are buffered (then check
  // read_eof / is_reset). Consuming data grants the peer new window.
  size_t read(uint32_t id, std::span<uint8_t> buf);
  size_t readable(uint32_t id) const;
  // The peer sent FIN and every byte before it has been read.
  bool read_eof(uint32_t id) const;
  bool is_reset(uint32_t id) const;  // unknown streams count as reset
  uint64_t send_window(uint32_t id) const;

  // Half-close: queue FIN. Idempotent.
  Status close_write(uint32_t id);
  // Abort both directions: queue RST and forget the stream.
  void reset(uint32_t id);
  // The local handle is gone. A stream closed both ways is forgotten; one we closed for
  // writing lingers (its incoming data discarded) until the peer's FIN; otherwise RST.
  void release(uint32_t id);

  // Ping: send(opaque) and watch take_pongs() for the echo.
  void ping(uint32_t opaque);
  std::vector<uint32_t> take_pongs() { return std::exchange(pongs_, {}); }
  void go_away(GoAwayCode code);
  bool remote_went_away() const { return remote_go_away_; }

  size_t num_streams() const { return streams_.size(); }
  uint64_t bytes_received() const { return bytes_received_; }

 private:
  struct Stream {
    uint64_t send_window = kInitialWindow;
    uint32_t recv_window = kInitialWindow;  // credit the peer still has
    uint32_t unacked_consumed = 0;          // consumed since our last WindowUpdate
    Bytes recv;
    size_t recv_pos = 0;
    bool local_fin = false;
    bool remote_fin = false;
    bool reset = false;
    bool released = false;  // the local handle is gone (lingering until remote FIN)
  };

  Status process_frame(const Header& h, ByteView payload);
  Status on_stream_frame(const Header& h, ByteView payload);
  void maybe_forget(uint32_t id);
  void send_frame(FrameType t, uint16_t flags, uint32_t id, uint32_t length, ByteView payload = {});
  Status fail(Status st);
  bool remote_initiated(uint32_t id) const { return (id % 2 == 1) != client_; }
  // A new stream, granted our full receive window.
  Stream new_stream() const;
  // The window delta beyond the spec's initial 256 KiB, sent with SYN and ACK.
  uint32_t window_bonus() const { return limits_.recv_window - kInitialWindow; }

  bool client_;
  SessionLimits limits_;
  uint32_t next_id_;
  std::map<uint32_t, Stream> streams_;
  std::deque<uint32_t> accept_queue_;
  std::vector<uint32_t> pongs_;
  Bytes in_;
  Bytes out_;
  // Bytes of control frames (ping ACKs, window updates) in out_. Data frames are bounded by
  // the peer's windows; these are what a peer that sends but never reads makes us pile up.
  size_t control_out_ = 0;
  bool failed_ = false;
  bool local_go_away_ = false;
  bool remote_go_away_ = false;
  uint64_t bytes_received_ = 0;
};

}  // namespace idn::p2p::yamux
