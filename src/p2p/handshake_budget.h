// HandshakeBudget: admission control for inbound connections that have not finished their
// handshake, apart from established peers: a bound per source address group and in total,
// and, when the total is reached, eviction of the oldest stalled handshake of the heaviest
// group. Lives on the Host's executor (not thread-safe); stats() may be read from any thread.
//
// Why: a handshake costs the remote a TCP connect and 7 bytes, and costs us a socket and a
// coroutine for up to the handshake timeout. Counted together with established connections,
// 1,000 silent connections from one address held a node's whole connection limit for 10 s
// (issue 14.6). The design follows go-libp2p's resource manager, which keeps connections that
// are not yet bound to a peer in their own ("transient") scope with its own limits and bounds
// connections per IP subnet (IPv4 /32, IPv6 /56), and js-libp2p's maxIncomingPendingConnections.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>

#include <boost/asio/ip/address.hpp>

#include "p2p/defaults.h"

namespace idn::p2p {

struct HandshakeLimits {
  // Inbound handshakes in progress, over all addresses.
  size_t max_pending = defaults::kMaxPendingHandshakes;
  // Inbound handshakes in progress from one address group (IPv4 address, IPv6 /56).
  size_t max_pending_per_address = defaults::kMaxPendingHandshakesPerAddress;
  // With max_pending reached, a handshake at least this old may be evicted for a new one;
  // one whose remote has sent no protocol proposal yet (see mark_progress) already at
  // silent_evictable_after. Silent ones go first.
  std::chrono::milliseconds evictable_after = defaults::kHandshakeEvictableAfter;
  std::chrono::milliseconds silent_evictable_after = defaults::kHandshakeSilentEvictableAfter;
};

// Why an inbound connection was closed before its handshake (for logs and metrics).
enum class HandshakeRefusal {
  kNone,
  kPerAddress,  // its address group has max_pending_per_address handshakes in progress
  kTotal,       // max_pending reached and no handshake old enough to evict
};

// The address group a connection counts against: the IPv4 address itself (an IPv4-mapped
// IPv6 address counts as IPv4), or the /56 prefix of an IPv6 address (a home or site gets
// one /56 or /64; one host can use a whole /64 at no cost).
std::string address_group(const boost::asio::ip::address& addr);

class HandshakeBudget {
 public:
  using Clock = std::chrono::steady_clock;
  using Ticket = uint64_t;  // 0 is never a ticket

  struct Admission {
    Ticket ticket = 0;  // 0: refused, close the connection at once
    HandshakeRefusal refused = HandshakeRefusal::kNone;
    bool evicted_other = false;  // an older stalled handshake was evicted to make room
  };

  // Counters and the pending gauge, readable from any thread.
  struct Stats {
    std::atomic<uint64_t> pending{0};
    std::atomic<uint64_t> admitted{0};
    std::atomic<uint64_t> refused_per_address{0};
    std::atomic<uint64_t> refused_total{0};
    std::atomic<uint64_t> evicted{0};
  };

  explicit HandshakeBudget(HandshakeLimits limits) : limits_(limits) {}
  HandshakeBudget(const HandshakeBudget&) = delete;
  HandshakeBudget& operator=(const HandshakeBudget&) = delete;

  // Admits a new inbound connection from `addr` at `now`, or refuses it. Evicting a victim
  // calls its `evict` callback at once and frees its slot (its later release() returns
  // false). `evict` must end that handshake (close its socket); it must not call back into
  // this budget.
  Admission admit(const boost::asio::ip::address& addr, Clock::time_point now,
                  std::function<void()> evict);
  // Sets the eviction callback of an admitted, still pending ticket (for callers that can
  // only build it once the connection has been admitted).
  void set_evictor(Ticket t, std::function<void()> evict);
  // The remote sent its first protocol proposal: the handshake is no longer silent.
  void mark_progress(Ticket t);
  // The handshake ended (finished or failed). Returns false when the ticket was evicted
  // (or never admitted).
  bool release(Ticket t);

  // A log line's reason for a refusal, with the limit that was reached.
  std::string describe(HandshakeRefusal r) const;

  size_t pending() const { return entries_.size(); }
  size_t pending_from(const boost::asio::ip::address& addr) const;
  const HandshakeLimits& limits() const { return limits_; }
  const Stats& stats() const { return stats_; }

 private:
  struct Entry {
    std::string group;
    Clock::time_point started;
    std::function<void()> evict;
    bool progressed = false;
  };
  // Picks the oldest evictable handshake of the group with the most pending ones, among the
  // silent ones if any may be evicted, else among the others.
  std::optional<Ticket> victim(Clock::time_point now) const;
  std::optional<Ticket> victim(Clock::time_point now, bool silent) const;
  void erase(std::map<Ticket, Entry>::iterator it);

  HandshakeLimits limits_;
  Ticket next_ = 1;
  std::map<Ticket, Entry> entries_;  // ordered by ticket = by admission time
  std::unordered_map<std::string, size_t> per_group_;
  Stats stats_;
};

// Lets one log line through per `every`; the lines in between are counted, not written, so
// a flood of refusals costs one line per interval that says how many there were.
class LogThrottle {
 public:
  explicit LogThrottle(std::chrono::milliseconds every) : every_(every) {}
  // Returns the number of events suppressed since the last line when this one may be
  // logged, nullopt when it must be dropped.
  std::optional<uint64_t> allow(std::chrono::steady_clock::time_point now);

 private:
  std::chrono::milliseconds every_;
  std::optional<std::chrono::steady_clock::time_point> last_;
  uint64_t suppressed_ = 0;
};

}  // namespace idn::p2p
