// multistream-select 1.0 (libp2p "connections" spec): agreeing on a protocol for a raw
// connection, a secured connection or a muxed stream. Sans-IO state machines (feed bytes in,
// take bytes out) so the logic is testable and fuzzable; coroutine helpers over a ByteStream
// live in stream_io.h.
//
// Wire: every message is uvarint(len) || text || '\n' (len counts the '\n'). Both sides send
// "/multistream/1.0.0"; the dialer proposes protocols one at a time, the listener echoes the
// one it accepts or answers "na". The dialer may send header and proposal in one write and,
// like js-libp2p's optimistic select, may follow them with application data before the echo
// arrives: the listener hands such bytes over in leftover().
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/bytes.h"
#include "core/status.h"

namespace idn::p2p::multistream {

inline constexpr std::string_view kHeader = "/multistream/1.0.0";
inline constexpr std::string_view kNa = "na";
inline constexpr std::string_view kLs = "ls";
// Longest message we accept (protocol IDs are short; the spec's own cap is 64 KiB).
inline constexpr size_t kMaxMessageLen = 1024;
// A listener gives up after this many rejected proposals (stops a peer looping forever).
inline constexpr int kMaxProposals = 32;

// uvarint(len(msg)+1) || msg || '\n'
Bytes encode_message(std::string_view msg);
void append_message(std::string_view msg, Bytes& out);

// Parses one message from the front of `in`. nullopt: need more bytes. Errors: Corruption /
// PeerMisbehaved for a bad varint, a message over kMaxMessageLen, or a missing '\n'.
struct Parsed {
  std::string message;  // without the trailing '\n'
  size_t consumed;
};
Result<std::optional<Parsed>> parse_message(ByteView in);

// The side that proposes protocols.
class Dialer {
 public:
  // `protocols` in order of preference; must be non-empty.
  explicit Dialer(std::vector<std::string> protocols);

  // Bytes to send now (the header + first proposal right after construction).
  Bytes take_output();
  // Feed received bytes. Errors: Unsupported when the listener refused every protocol,
  // PeerMisbehaved for a protocol violation.
  Status feed(ByteView data);
  bool done() const { return done_; }
  const std::string& protocol() const { return protocols_[index_]; }
  // Bytes received after the final echo (already application data).
  Bytes take_leftover();

 private:
  Status on_message(std::string msg);

  std::vector<std::string> protocols_;
  size_t index_ = 0;
  bool header_seen_ = false;
  bool done_ = false;
  Bytes in_;
  Bytes out_;
};

// The side that accepts or refuses proposals.
class Listener {
 public:
  using Supported = std::function<bool(std::string_view)>;
  explicit Listener(Supported supported);

  Bytes take_output();
  // Errors: PeerMisbehaved (bad framing, missing header, too many proposals).
  Status feed(ByteView data);
  bool done() const { return done_; }
  const std::string& protocol() const { return protocol_; }
  Bytes take_leftover();

 private:
  Status on_message(std::string msg);

  Supported supported_;
  bool header_seen_ = false;
  bool done_ = false;
  int proposals_ = 0;
  std::string protocol_;
  Bytes in_;
  Bytes out_;
};

}  // namespace idn::p2p::multistream
