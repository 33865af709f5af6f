// Every limit and timeout of the p2p layer in one place, each with the reason for its value.
// All are defaults: HostConfig / SessionLimits carry the values actually used, so a node's
// config can override any of them.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace idn::p2p::defaults {

using namespace std::chrono_literals;

// --- connections -------------------------------------------------------------------------
// Established connections (handshake done) per host, plus our own dials in progress. A node
// talks to tens of peers (routing table, a few swap partners); 256 leaves room for bursts
// while bounding file descriptors and memory. Inbound handshakes in progress do not count
// here: they have their own budget below, so half-open connections cannot lock peers out.
inline constexpr size_t kMaxConnections = 256;
// A connection must finish TCP -> multistream -> Noise -> multistream -> yamux within this.
// Honest peers need a few round trips (milliseconds); 10 s tolerates slow links while a
// stalled or malicious peer cannot hold a socket and a handshake slot for long.
inline constexpr auto kHandshakeTimeout = 10s;
// Inbound handshakes in progress at once, over all addresses (go-libp2p's "transient" scope,
// js-libp2p's maxIncomingPendingConnections, which is 10). An honest handshake lasts a few
// round trips, so 64 slots admit thousands of honest connections per second; together with
// kMaxConnections they bound the sockets remote peers can make us hold to 256 + 64.
inline constexpr size_t kMaxPendingHandshakes = 64;
// Inbound handshakes in progress from one IPv4 address or IPv6 /56. 8, as go-libp2p's
// per-subnet connection limit: even several peers behind one NAT rarely handshake at the same
// millisecond, and one address can then hold at most 1/8 of the pending budget.
inline constexpr size_t kMaxPendingHandshakesPerAddress = 8;
// With the pending budget full, a new inbound connection evicts the oldest handshake of the
// address group holding the most, if that one is at least this old. 2 s is several round
// trips on the slowest links we expect (a 300 ms RTT link finishes in about 1 s), so honest
// handshakes are not cut, while a stalled one is ended long before kHandshakeTimeout.
inline constexpr auto kHandshakeEvictableAfter = 2s;
// The same for a handshake whose remote has not yet sent its first protocol proposal (the
// multistream header and "/noise"). libp2p dialers (go, js, rust, IDN) send both in their
// first packet, the moment TCP connects, so they arrive with the connection; 250 ms of
// silence is a stall. A flood of silent connections from many addresses then locks new peers out
// for at most this long, not kHandshakeEvictableAfter.
inline constexpr auto kHandshakeSilentEvictableAfter = std::chrono::milliseconds(250);
// "limit reached" log lines for refused or evicted inbound connections: at most one per this
// interval, saying how many were left out. A flood must not become a flood of log lines.
inline constexpr auto kLimitLogInterval = 10s;
// T_c: a connection with no open streams and no traffic for this long is closed. Two minutes
// matches go-libp2p's connection-manager grace period; identify/ping keep useful links busy.
inline constexpr auto kIdleTimeout = 120s;
// How often the idle sweep looks at connections (cost is O(connections)).
inline constexpr auto kIdleSweepInterval = 5s;
// Per-stream protocol negotiation (multistream-select on a yamux stream).
inline constexpr auto kStreamNegotiationTimeout = 10s;
// Dial (TCP connect) timeout.
inline constexpr auto kDialTimeout = 10s;

// --- yamux ------------------------------------------------------------------------------
// Streams open at once on one connection. js-libp2p's default cap is 1024 per connection but
// an IDN exchange uses one short stream per request; 256 is plenty. With the windows below it
// also bounds the memory a peer can make us buffer (see kYamuxMaxBufferedPerConnection).
inline constexpr size_t kMaxStreamsPerConnection = 256;
// Largest Data frame payload we send: just under 64 KiB (js-libp2p uses 64 KiB) so streams
// interleave fairly, and sized so header + payload fill exactly one Noise transport message
// (65535 - 16-byte tag - 12-byte header): the receiver then never sees a yamux frame split
// across Noise messages and parses it in place instead of copying it into a reassembly buffer.
inline constexpr uint32_t kYamuxSendFrame = 65535 - 16 - 12;
// Receive window a stream starts with: the spec's 256 KiB, so an idle or flooding stream
// costs no more than the protocol already forces on us.
inline constexpr uint32_t kYamuxInitialWindow = 256 * 1024;
// A stream's receive window doubles, up to this, each time the application has consumed half
// of it while the sender had run it (nearly) dry: the window, not the reader, was the limit.
// 256 KiB stalls a single stream well below 1 GiB/s (the sender waits a round trip of the
// reader's event loop for every half window); 4 MiB lets 1 MiB messages flow without stalls.
// go-yamux and js-libp2p auto-tune the same way (to 16 MiB). Growth needs the application to
// read, so streams a peer fills without us reading never grow.
inline constexpr uint32_t kYamuxMaxStreamWindow = 4 * 1024 * 1024;
// How the window knows it held the sender back: the application consumed half of it within
// max(this, 4 x the connection's round trip) of the previous grant. A reader that gets the
// payload straight from the socket grants while the burst is still arriving, so "the peer ran
// out of credit" is never seen from the receiving side; the pace is. 1 ms: a stream moving
// more than ~128 MB/s grows on any link; on a long link, 4 round trips (go-yamux's rule).
inline constexpr std::chrono::microseconds kYamuxGrowWithin{1000};
// Growth beyond the initial window, summed over one connection's streams: four streams at the
// full 4 MiB (or more, partly grown). A stream gives its growth back when it is forgotten.
inline constexpr uint64_t kYamuxWindowGrowthBudget = 16 * 1024 * 1024;
// The bound: a peer can make one connection hold at most
//   kMaxStreamsPerConnection x kYamuxInitialWindow + kYamuxWindowGrowthBudget
// = 256 x 256 KiB + 16 MiB = 80 MiB of stream payload (buffered unread or in flight under
// credit we granted), instead of 256 x 4 MiB = 1 GiB with a fixed 4 MiB window. The
// per-stream 256 KiB is what the spec grants every stream; lower kMaxStreamsPerConnection
// (HostConfig::yamux.max_streams) to lower the bound.
inline constexpr uint64_t kYamuxMaxBufferedPerConnection =
    kMaxStreamsPerConnection * uint64_t{kYamuxInitialWindow} + kYamuxWindowGrowthBudget;
// Largest Data frame payload accepted: the largest window we ever grant. A sender may legally
// fill the whole window in one frame (helia/js-libp2p does, 700 KB frames were seen); a frame
// claiming more than the stream's current credit is refused at its header, before anything is
// buffered.
inline constexpr uint32_t kMaxYamuxFramePayload = kYamuxMaxStreamWindow;

// Stream writes smaller than this are queued and sent with whatever else the node writes in
// the same event-loop turn (one packet instead of one per message); larger ones are encrypted
// straight from the caller's buffer and sent at once. 16 KiB: an inference request or answer
// of a small model is a few KiB; bulk data comes in far larger writes.
inline constexpr size_t kCoalesceWritesBelow = 16 * 1024;

// The FIN of a stream we opened that ends an exchange the peer already ended waits this long
// for other output to ride with (our next request on the connection) before it is sent alone:
// a client issuing request after request then costs the provider one wake-up each, not two.
// A FIN on a stream the peer opened is never held: no request of ours follows to carry it, and
// js-libp2p counts the stream against the protocol's limit (one ping stream) until it arrives.
inline constexpr auto kDeferredFinFor = std::chrono::milliseconds(1);

// Control replies (ping ACKs, window updates) queued for a peer that keeps sending but never
// reads. Data writes are bounded by the peer's windows; this bounds the rest.
inline constexpr size_t kMaxYamuxPendingOutput = 16 * 1024 * 1024;

// --- messages ---------------------------------------------------------------------------
// Largest identify message accepted (js-libp2p caps it at 8 KiB; we allow more listen
// addresses and protocols).
inline constexpr size_t kMaxIdentifyMessage = 64 * 1024;
// Default cap for uvarint-length-prefixed application messages read with
// read_length_prefixed() (IDN protocols pass their own, larger caps for tensors).
inline constexpr size_t kMaxMessage = 4 * 1024 * 1024;
// Ping payload, fixed by /ipfs/ping/1.0.0.
inline constexpr size_t kPingSize = 32;

// --- WebSocket transport ------------------------------------------------------------------
// Largest WebSocket message accepted. A libp2p peer sends one message per secure-channel
// frame (js-libp2p: one per Noise message, at most 65,537 bytes); 1 MiB leaves room for a
// peer that batches a few, and bounds what one message may make us read before it ends.
inline constexpr size_t kMaxWsMessage = 1024 * 1024;
// Largest WebSocket message we send: a write of more (our secure channel hands over a burst of
// Noise frames at once) goes as several messages, each within any libp2p peer's limit (ours
// above; js-libp2p's ws accepts 100 MiB).
inline constexpr size_t kWsWriteMessage = 256 * 1024;
// Largest HTTP upgrade request (request line and headers) accepted: a browser's is under
// 1 KiB; more is refused with 431 before any WebSocket frame is read.
inline constexpr size_t kMaxWsUpgradeRequest = 8 * 1024;

}  // namespace idn::p2p::defaults
