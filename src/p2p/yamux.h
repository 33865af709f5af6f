// yamux (libp2p's default stream multiplexer, spec: hashicorp/yamux + libp2p/specs/yamux) as a
// sans-IO session: feed() the decrypted bytes from the peer, take_output() the frames to send.
// The host's coroutines (host.cpp) wrap it; tests and the fuzzer drive it directly.
//
// Frame: 12-byte header (version 0, type, flags, stream id, length) then, for Data frames,
// `length` payload bytes. Streams opened by the client (the dialer of the connection) are odd,
// by the server even; stream 0 carries Ping and GoAway. Each direction of each stream has a
// credit window (256 KiB initially): a sender never sends more than the window, the receiver
// grants more with WindowUpdate after the application has consumed data. Our receive window
// starts at the spec's 256 KiB and doubles (up to SessionLimits::max_stream_window) while the
// application consumes half a window within a few round trips of the previous grant (then the
// window, not the reader, paces the sender), as go-yamux and js-libp2p auto-tune theirs (the
// round trip comes from one Ping at the start, probe_rtt()); a connection-wide budget caps
// that growth, so the bytes a peer can make us buffer stay bounded however many streams it
// opens (defaults.h states the bound). A peer that exceeds our window, breaks the framing or
// opens more streams than allowed fails the session.
//
// Not thread-safe; one session per connection, used from the connection's executor.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
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
  // Largest Data frame payload we accept (a stream's current window bounds it too).
  uint32_t max_frame_payload = defaults::kMaxYamuxFramePayload;
  // Largest Data frame payload we send (keeps latency fair across streams).
  uint32_t max_send_frame = defaults::kYamuxSendFrame;
  // Receive window a stream starts with (>= kInitialWindow; the excess is granted in the
  // SYN / ACK).
  uint32_t initial_window = defaults::kYamuxInitialWindow;
  // A stream's receive window grows on demand up to this (>= initial_window).
  uint32_t max_stream_window = defaults::kYamuxMaxStreamWindow;
  // Sum over the connection's streams of (window - initial_window): growth stops when it
  // would pass this.
  uint64_t window_growth_budget = defaults::kYamuxWindowGrowthBudget;
  // A stream whose application consumed half its window within max(this, 4 x the session's
  // round trip) of the previous grant doubles its window.
  std::chrono::microseconds grow_within = defaults::kYamuxGrowWithin;
  // Not the session's own: how long the connection holds the FIN of a stream we opened, once
  // the peer's side has ended, for our next output to carry it (defaults::kDeferredFinFor).
  std::chrono::microseconds deferred_fin_for = defaults::kDeferredFinFor;

  // Most payload bytes the peer can make this session hold (buffered unread, or in flight
  // under granted credit) across all streams.
  uint64_t max_buffered() const {
    return max_streams * uint64_t{initial_window} + window_growth_budget;
  }
};

class Session {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;
  // `client`: this side dialled the connection (opens odd stream IDs). `clock` times window
  // growth and the RTT probe (steady_clock when empty; tests inject a fake).
  Session(bool client, SessionLimits limits = {}, Clock clock = {});

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
  size_t output_size() const { return out_.size(); }
  bool failed() const { return failed_; }

  // Opens an outbound stream (queues a SYN). Errors: Unavailable after GoAway,
  // LimitExceeded at max_streams.
  Result<uint32_t> open_stream();
  // Next inbound stream the peer opened, if any.
  std::optional<uint32_t> accept();
  // Whether stream `id` is one the peer opened (its parity is the peer's).
  bool remote_initiated(uint32_t id) const { return (id % 2 == 1) != client_; }

  // Queues up to the stream's send window of `data`; returns how many bytes were taken
  // (0: window exhausted, wait for a WindowUpdate). Errors: the stream was reset, closed for
  // writing, or is unknown.
  Result<size_t> write(uint32_t id, ByteView data);
  // write() for a caller that frames and sends the payload itself (straight from the
  // application's buffer): takes up to the stream's send window of `n` bytes and queues
  // nothing. The caller must send exactly that many bytes as Data frames of at most
  // max_send_frame() payload bytes, each headed by data_header(), and only when has_output()
  // was false, before any output the session queues afterwards.
  Result<size_t> reserve_write(uint32_t id, size_t n);
  static void data_header(uint32_t id, size_t payload_len, std::span<uint8_t> header);
  uint32_t max_send_frame() const { return limits_.max_send_frame; }
  // Copies buffered received bytes; returns 0 when none are buffered (then check
  // read_eof / is_reset). Consuming data grants the peer new window.
  size_t read(uint32_t id, std::span<uint8_t> buf);
  size_t readable(uint32_t id) const;
  // A reader waiting on an empty stream lends `buf`: payload that arrives while nothing is
  // buffered is copied straight into it (counted as read) instead of into the stream's buffer
  // and then out again. take_read_target() ends the loan and returns how many bytes landed.
  // The buffer must stay valid until then; one loan per stream.
  void set_read_target(uint32_t id, std::span<uint8_t> buf);
  size_t take_read_target(uint32_t id);
  // The peer sent FIN and every byte before it has been read.
  bool read_eof(uint32_t id) const;
  bool is_reset(uint32_t id) const;  // unknown streams count as reset
  uint64_t send_window(uint32_t id) const;
  // Our current receive window for the stream (what the peer may have in flight plus what is
  // buffered); 0 for unknown streams.
  uint32_t recv_window(uint32_t id) const;

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
  // Queues one Ping whose echo measures the round trip that window growth is judged by
  // (its echo does not show up in take_pongs()). The connection calls it once at the start.
  void probe_rtt();
  std::optional<std::chrono::microseconds> rtt() const { return rtt_; }
  void go_away(GoAwayCode code);
  bool remote_went_away() const { return remote_go_away_; }

  size_t num_streams() const { return streams_.size(); }
  uint64_t bytes_received() const { return bytes_received_; }
  // Payload bytes held in stream buffers, unread.
  uint64_t bytes_buffered() const { return buffered_; }
  // Sum of our streams' receive windows: what the peer may make us buffer right now.
  uint64_t total_recv_window() const { return total_window_; }

 private:
  struct Stream {
    uint64_t send_window = kInitialWindow;
    uint32_t window = kInitialWindow;       // credit + buffered + unacked_consumed
    uint32_t recv_window = kInitialWindow;  // credit the peer still has
    uint32_t unacked_consumed = 0;          // consumed since our last WindowUpdate
    bool ran_dry = false;  // the peer used (nearly) all its credit since our last update
    std::chrono::steady_clock::time_point epoch;  // stream creation or our last grant
    Bytes recv;
    size_t recv_pos = 0;
    std::span<uint8_t> target;  // a waiting reader's buffer (set_read_target)
    size_t target_filled = 0;
    bool local_fin = false;
    bool remote_fin = false;
    bool reset = false;
    bool released = false;  // the local handle is gone (lingering until remote FIN)
  };

  Status process_frame(const Header& h, ByteView payload);
  Status on_stream_frame(const Header& h, ByteView payload);
  void maybe_forget(uint32_t id);
  void erase_stream(std::map<uint32_t, Stream>::iterator it);
  // The application consumed `n` bytes: grant credit back (in batches of half a window),
  // growing the window when the peer is held back by it.
  void on_consumed(uint32_t id, Stream& s, size_t n);
  void drop_buffer(Stream& s);
  void send_frame(FrameType t, uint16_t flags, uint32_t id, uint32_t length, ByteView payload = {});
  Status fail(Status st);
  // A new stream with the initial receive window (added to total_window_).
  Stream new_stream();
  // The window delta beyond the spec's initial 256 KiB, sent with SYN and ACK.
  uint32_t window_bonus() const { return limits_.initial_window - kInitialWindow; }

  bool client_;
  SessionLimits limits_;
  Clock clock_;
  std::optional<std::chrono::steady_clock::time_point> probe_sent_;
  std::optional<std::chrono::microseconds> rtt_;
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
  uint64_t buffered_ = 0;      // sum of unread stream buffers
  uint64_t total_window_ = 0;  // sum of Stream::window
  uint64_t growth_ = 0;        // sum of (Stream::window - initial_window)
};

}  // namespace idn::p2p::yamux
