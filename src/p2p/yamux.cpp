#include "p2p/yamux.h"

#include <algorithm>
#include <cstring>
#include <string>

namespace idn::p2p::yamux {
namespace {

void put32(uint32_t v, Bytes& out) {
  for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<uint8_t>(v >> s));
}
uint32_t get32(const uint8_t* p) {
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | uint32_t{p[3]};
}

}  // namespace

void append_header(const Header& h, Bytes& out) {
  out.push_back(h.version);
  out.push_back(static_cast<uint8_t>(h.type));
  out.push_back(static_cast<uint8_t>(h.flags >> 8));
  out.push_back(static_cast<uint8_t>(h.flags));
  put32(h.stream_id, out);
  put32(h.length, out);
}

Result<Header> decode_header(ByteView in) {
  if (in.size() != kHeaderLen) return Status::internal("yamux header needs 12 bytes");
  Header h;
  h.version = in[0];
  if (h.version != 0) {
    return Status::peer_misbehaved("yamux: unsupported version " + std::to_string(h.version));
  }
  if (in[1] > 3)
    return Status::peer_misbehaved("yamux: unknown frame type " + std::to_string(in[1]));
  h.type = static_cast<FrameType>(in[1]);
  h.flags = static_cast<uint16_t>(in[2] << 8 | in[3]);
  h.stream_id = get32(in.data() + 4);
  h.length = get32(in.data() + 8);
  return h;
}

namespace {
// The opaque value of probe_rtt()'s Ping ("RTT?" in ASCII); any other echo goes to pongs_.
constexpr uint32_t kRttProbe = 0x5254543f;
}  // namespace

Session::Session(bool client, SessionLimits limits, Clock clock)
    : client_(client),
      limits_(limits),
      clock_(clock ? std::move(clock) : Clock([] { return std::chrono::steady_clock::now(); })),
      next_id_(client ? 1 : 2) {
  limits_.initial_window = std::max(limits_.initial_window, kInitialWindow);
  limits_.max_stream_window = std::max(limits_.max_stream_window, limits_.initial_window);
}

Session::Stream Session::new_stream() {
  Stream s;
  s.epoch = clock_();
  s.window = s.recv_window = limits_.initial_window;
  total_window_ += s.window;
  return s;
}

void Session::erase_stream(std::map<uint32_t, Stream>::iterator it) {
  Stream& s = it->second;
  buffered_ -= s.recv.size() - s.recv_pos;
  total_window_ -= s.window;
  growth_ -= s.window - limits_.initial_window;
  streams_.erase(it);
}

void Session::drop_buffer(Stream& s) {
  buffered_ -= s.recv.size() - s.recv_pos;
  s.recv.clear();
  s.recv_pos = 0;
}

Status Session::fail(Status st) {
  if (!failed_) {
    failed_ = true;
    go_away(st.code() == Code::kInternal ? GoAwayCode::kInternalError : GoAwayCode::kProtocolError);
  }
  return st;
}

void Session::send_frame(FrameType t, uint16_t flags, uint32_t id, uint32_t length,
                         ByteView payload) {
  if (t != FrameType::kData) control_out_ += kHeaderLen;
  uint8_t p[kHeaderLen];
  p[0] = 0;
  p[1] = static_cast<uint8_t>(t);
  p[2] = static_cast<uint8_t>(flags >> 8);
  p[3] = static_cast<uint8_t>(flags);
  for (int i = 0; i < 4; ++i) {
    p[4 + i] = static_cast<uint8_t>(id >> (24 - 8 * i));
    p[8 + i] = static_cast<uint8_t>(length >> (24 - 8 * i));
  }
  out_.insert(out_.end(), p, p + kHeaderLen);
  out_.insert(out_.end(), payload.begin(), payload.end());
}

Status Session::feed(ByteView data) {
  if (failed_) return Status::cancelled("yamux session already failed");
  // Parse straight from `data` when nothing is left over from the last call (the common
  // case: the Noise layer hands over whole frames); only a partial frame is copied.
  const bool direct = in_.empty();
  if (!direct) in_.insert(in_.end(), data.begin(), data.end());
  ByteView in = direct ? data : ByteView(in_);
  size_t pos = 0;
  Status st;
  while (in.size() - pos >= kHeaderLen) {
    auto h = decode_header(in.subspan(pos, kHeaderLen));
    if (!h.ok()) {
      st = h.status();
      break;
    }
    size_t need = kHeaderLen;
    if (h->type == FrameType::kData) {
      if (h->length > limits_.max_frame_payload) {
        st = Status::peer_misbehaved("yamux: data frame of " + std::to_string(h->length) +
                                     " bytes exceeds the " +
                                     std::to_string(limits_.max_frame_payload) + "-byte limit");
        break;
      }
      // Refuse a frame larger than the credit its stream has before buffering any of it, so
      // a partial frame in in_ never exceeds what we granted.
      uint32_t credit = limits_.max_frame_payload;
      if (h->flags & kSyn) {
        credit = limits_.initial_window;
      } else if (auto it = streams_.find(h->stream_id); it != streams_.end()) {
        credit = it->second.recv_window;
      }
      if (h->length > credit) {
        st = Status::peer_misbehaved("yamux: stream " + std::to_string(h->stream_id) + " sent a " +
                                     std::to_string(h->length) +
                                     "-byte data frame, more than its window of " +
                                     std::to_string(credit));
        break;
      }
      need += h->length;
    }
    if (in.size() - pos < need) break;
    ByteView payload = in.subspan(pos + kHeaderLen, need - kHeaderLen);
    st = process_frame(*h, payload);
    pos += need;
    if (!st.is_ok()) break;
  }
  if (direct) {
    in_.assign(data.begin() + static_cast<std::ptrdiff_t>(pos), data.end());
  } else {
    in_.erase(in_.begin(), in_.begin() + static_cast<std::ptrdiff_t>(pos));
  }
  if (st.is_ok() && control_out_ > defaults::kMaxYamuxPendingOutput) {
    // Replies we owe (ping ACKs, window updates) pile up: the peer sends but does not read.
    st = Status::limit_exceeded("yamux: peer does not read; " + std::to_string(control_out_) +
                                " bytes of replies pending");
  }
  if (!st.is_ok()) {
    in_.clear();
    return fail(std::move(st));
  }
  return st;
}

Status Session::process_frame(const Header& h, ByteView payload) {
  switch (h.type) {
    case FrameType::kPing:
      if (h.stream_id != 0) return Status::peer_misbehaved("yamux: ping on a non-zero stream");
      if (h.flags & kSyn) {
        send_frame(FrameType::kPing, kAck, 0, h.length);
      } else if (h.flags & kAck) {
        if (h.length == kRttProbe && probe_sent_) {
          rtt_ = std::chrono::duration_cast<std::chrono::microseconds>(clock_() - *probe_sent_);
          probe_sent_.reset();
        } else {
          pongs_.push_back(h.length);
        }
      }
      return Status::ok();
    case FrameType::kGoAway:
      remote_go_away_ = true;
      return Status::ok();
    case FrameType::kData:
    case FrameType::kWindowUpdate:
      if (h.stream_id == 0) {
        return Status::peer_misbehaved("yamux: data or window update on stream 0");
      }
      return on_stream_frame(h, payload);
  }
  return Status::ok();
}

Status Session::on_stream_frame(const Header& h, ByteView payload) {
  const uint32_t id = h.stream_id;
  auto it = streams_.find(id);
  if (h.flags & kSyn) {
    if (it != streams_.end()) {
      return Status::peer_misbehaved("yamux: SYN for already open stream " + std::to_string(id));
    }
    if (!remote_initiated(id)) {
      return Status::peer_misbehaved("yamux: peer opened stream " + std::to_string(id) +
                                     " with our parity");
    }
    if (streams_.size() >= limits_.max_streams) {
      return Status::limit_exceeded("yamux: peer opened more than " +
                                    std::to_string(limits_.max_streams) + " concurrent streams");
    }
    if (local_go_away_) {
      send_frame(FrameType::kWindowUpdate, kRst, id, 0);
      return Status::ok();
    }
    it = streams_.emplace(id, new_stream()).first;
    accept_queue_.push_back(id);
    send_frame(FrameType::kWindowUpdate, kAck, id, window_bonus());
  }
  if (it == streams_.end()) {
    // A frame racing our RST or a stream we already forgot: drop it, as go-yamux does.
    return Status::ok();
  }
  Stream& s = it->second;
  if (h.flags & kRst) {
    s.reset = true;
    drop_buffer(s);
    maybe_forget(id);
    return Status::ok();
  }
  if (h.type == FrameType::kWindowUpdate) {
    s.send_window = std::min<uint64_t>(s.send_window + h.length, uint64_t{1} << 32);
  } else if (!payload.empty()) {
    if (payload.size() > s.recv_window) {
      return Status::peer_misbehaved(
          "yamux: stream " + std::to_string(id) + " sent " + std::to_string(payload.size()) +
          " bytes, more than its window of " + std::to_string(s.recv_window));
    }
    s.recv_window -= static_cast<uint32_t>(payload.size());
    // Less than one full frame of credit left: the sender is (about to be) held back by the
    // window rather than by its own pace.
    if (s.recv_window < std::min(s.window / 4, limits_.max_send_frame)) s.ran_dry = true;
    bytes_received_ += payload.size();
    if (s.remote_fin || s.reset) {
      // Data after FIN breaks the protocol; tolerate it like other implementations.
    } else if (s.released) {
      // Nobody will read it: give the credit straight back.
      s.recv_window += static_cast<uint32_t>(payload.size());
      send_frame(FrameType::kWindowUpdate, 0, id, static_cast<uint32_t>(payload.size()));
    } else {
      size_t direct = 0;
      if (s.recv_pos == s.recv.size() && s.target_filled < s.target.size()) {
        // A reader is waiting with an empty buffer: hand the bytes straight to it.
        direct = std::min(payload.size(), s.target.size() - s.target_filled);
        std::memcpy(s.target.data() + s.target_filled, payload.data(), direct);
        s.target_filled += direct;
      }
      ByteView rest = payload.subspan(direct);
      if (!rest.empty()) {
        // Drop the consumed prefix once it is at least half the buffer: a stream that is read
        // while data keeps arriving is never fully drained, and without this its buffer would
        // grow by every byte ever received (amortised, each byte is moved at most once).
        if (s.recv_pos > 0 && 2 * s.recv_pos >= s.recv.size()) {
          s.recv.erase(s.recv.begin(), s.recv.begin() + static_cast<std::ptrdiff_t>(s.recv_pos));
          s.recv_pos = 0;
        }
        s.recv.insert(s.recv.end(), rest.begin(), rest.end());
        buffered_ += rest.size();
      }
      if (direct > 0) on_consumed(id, s, direct);
    }
  }
  if (h.flags & kFin) {
    s.remote_fin = true;
    maybe_forget(id);
  }
  return Status::ok();
}

void Session::maybe_forget(uint32_t id) {
  auto it = streams_.find(id);
  if (it == streams_.end()) return;
  const Stream& s = it->second;
  if (s.released && (s.reset || (s.local_fin && s.remote_fin))) erase_stream(it);
}

Result<uint32_t> Session::open_stream() {
  if (failed_) return Status::unavailable("yamux session failed");
  if (remote_go_away_ || local_go_away_) {
    return Status::unavailable("yamux session is going away; open a new connection");
  }
  if (streams_.size() >= limits_.max_streams) {
    return Status::limit_exceeded("yamux: " + std::to_string(limits_.max_streams) +
                                  " streams already open on this connection");
  }
  if (next_id_ > 0xfffffffdu) return Status::limit_exceeded("yamux: stream IDs exhausted");
  uint32_t id = next_id_;
  next_id_ += 2;
  streams_.emplace(id, new_stream());
  send_frame(FrameType::kWindowUpdate, kSyn, id, window_bonus());
  return id;
}

std::optional<uint32_t> Session::accept() {
  while (!accept_queue_.empty()) {
    uint32_t id = accept_queue_.front();
    accept_queue_.pop_front();
    if (streams_.count(id)) return id;
  }
  return std::nullopt;
}

Result<size_t> Session::reserve_write(uint32_t id, size_t want) {
  auto it = streams_.find(id);
  if (it == streams_.end() || it->second.reset) {
    return Status::cancelled("yamux stream " + std::to_string(id) + " was reset");
  }
  Stream& s = it->second;
  if (s.local_fin) return Status::internal("yamux: write after close_write");
  if (failed_) return Status::unavailable("yamux session failed");
  size_t n = std::min<uint64_t>(want, s.send_window);
  s.send_window -= n;
  return n;
}

void Session::data_header(uint32_t id, size_t payload_len, std::span<uint8_t> p) {
  p[0] = 0;
  p[1] = static_cast<uint8_t>(FrameType::kData);
  p[2] = p[3] = 0;
  for (int i = 0; i < 4; ++i) {
    p[4 + i] = static_cast<uint8_t>(id >> (24 - 8 * i));
    p[8 + i] = static_cast<uint8_t>(payload_len >> (24 - 8 * i));
  }
}

Result<size_t> Session::write(uint32_t id, ByteView data) {
  IDN_ASSIGN_OR_RETURN(size_t n, reserve_write(id, data.size()));
  size_t done = 0;
  while (done < n) {
    size_t chunk = std::min<size_t>(n - done, limits_.max_send_frame);
    send_frame(FrameType::kData, 0, id, static_cast<uint32_t>(chunk), data.subspan(done, chunk));
    done += chunk;
  }
  return n;
}

size_t Session::read(uint32_t id, std::span<uint8_t> buf) {
  auto it = streams_.find(id);
  if (it == streams_.end()) return 0;
  Stream& s = it->second;
  size_t n = std::min(buf.size(), s.recv.size() - s.recv_pos);
  if (n == 0) return 0;
  std::memcpy(buf.data(), s.recv.data() + s.recv_pos, n);
  s.recv_pos += n;
  buffered_ -= n;
  if (s.recv_pos == s.recv.size()) {
    s.recv.clear();
    s.recv_pos = 0;
  }
  on_consumed(id, s, n);
  return n;
}

void Session::on_consumed(uint32_t id, Stream& s, size_t n) {
  s.unacked_consumed += static_cast<uint32_t>(n);
  // Grant credit back in batches of half a window: fewer frames, no stall.
  if (s.remote_fin || s.unacked_consumed < s.window / 2) return;
  uint32_t grant = s.unacked_consumed;
  // Half a window consumed within a few round trips of the previous grant: the data came as
  // fast as the credit allowed (a reader handed the payload straight away grants mid-burst,
  // so the peer's credit never looks exhausted from here; the clock tells instead).
  const auto now = clock_();
  auto within = limits_.grow_within;
  if (rtt_) within = std::max(within, 4 * *rtt_);
  const bool fast = now - s.epoch < within;
  s.epoch = now;
  if ((s.ran_dry || fast) && s.window < limits_.max_stream_window) {
    // The reader keeps up and the window held the sender back: double it, within the
    // connection's growth budget.
    uint64_t room = limits_.window_growth_budget - growth_;
    uint32_t grow = static_cast<uint32_t>(std::min<uint64_t>(
        {uint64_t{s.window}, uint64_t{limits_.max_stream_window} - s.window, room}));
    s.window += grow;
    growth_ += grow;
    total_window_ += grow;
    grant += grow;
  }
  send_frame(FrameType::kWindowUpdate, 0, id, grant);
  s.recv_window += grant;
  s.unacked_consumed = 0;
  s.ran_dry = false;
}

void Session::set_read_target(uint32_t id, std::span<uint8_t> buf) {
  auto it = streams_.find(id);
  if (it == streams_.end()) return;
  it->second.target = buf;
  it->second.target_filled = 0;
}

size_t Session::take_read_target(uint32_t id) {
  auto it = streams_.find(id);
  if (it == streams_.end()) return 0;
  it->second.target = {};
  return std::exchange(it->second.target_filled, 0);
}

size_t Session::readable(uint32_t id) const {
  auto it = streams_.find(id);
  return it == streams_.end() ? 0 : it->second.recv.size() - it->second.recv_pos;
}

bool Session::read_eof(uint32_t id) const {
  auto it = streams_.find(id);
  if (it == streams_.end()) return true;
  return it->second.remote_fin && it->second.recv_pos == it->second.recv.size();
}

bool Session::is_reset(uint32_t id) const {
  auto it = streams_.find(id);
  return it == streams_.end() || it->second.reset;
}

uint64_t Session::send_window(uint32_t id) const {
  auto it = streams_.find(id);
  return it == streams_.end() ? 0 : it->second.send_window;
}

uint32_t Session::recv_window(uint32_t id) const {
  auto it = streams_.find(id);
  return it == streams_.end() ? 0 : it->second.window;
}

Status Session::close_write(uint32_t id) {
  auto it = streams_.find(id);
  if (it == streams_.end() || it->second.reset) {
    return Status::cancelled("yamux stream " + std::to_string(id) + " was reset");
  }
  if (it->second.local_fin) return Status::ok();
  it->second.local_fin = true;
  send_frame(FrameType::kWindowUpdate, kFin, id, 0);
  return Status::ok();
}

void Session::reset(uint32_t id) {
  auto it = streams_.find(id);
  if (it == streams_.end()) return;
  if (!it->second.reset && !(it->second.local_fin && it->second.remote_fin)) {
    send_frame(FrameType::kWindowUpdate, kRst, id, 0);
  }
  erase_stream(it);
}

void Session::release(uint32_t id) {
  auto it = streams_.find(id);
  if (it == streams_.end()) return;
  Stream& s = it->second;
  s.target = {};
  s.target_filled = 0;
  if (s.reset || (s.local_fin && s.remote_fin)) {
    erase_stream(it);
  } else if (s.local_fin) {
    s.released = true;
    // Unread data is dropped: return its credit so the peer can reach its FIN.
    size_t unread = s.recv.size() - s.recv_pos + s.unacked_consumed;
    drop_buffer(s);
    s.unacked_consumed = 0;
    if (unread > 0) {
      s.recv_window += static_cast<uint32_t>(unread);
      send_frame(FrameType::kWindowUpdate, 0, id, static_cast<uint32_t>(unread));
    }
  } else {
    reset(id);
  }
}

void Session::ping(uint32_t opaque) {
  send_frame(FrameType::kPing, kSyn, 0, opaque);
}

void Session::probe_rtt() {
  probe_sent_ = clock_();
  send_frame(FrameType::kPing, kSyn, 0, kRttProbe);
}

void Session::go_away(GoAwayCode code) {
  if (local_go_away_) return;
  local_go_away_ = true;
  send_frame(FrameType::kGoAway, 0, 0, static_cast<uint32_t>(code));
}

}  // namespace idn::p2p::yamux
