// Every limit, lifetime and rate of the routing layer in one place, each with the reason for
// its value. RoutingConfig carries the values actually used, so a node's config can override.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace idn::routing::defaults {

using namespace std::chrono_literals;

// Lifetime of a provider / peer-address / value record. IPFS uses 24 h for provider records
// because it has millions of records per node; IDN has few services per node and wants a
// vanished provider to stop attracting requests quickly, so an hour bounds that staleness.
inline constexpr auto kRecordTtl = 1h;
// Records are re-signed and re-put after this fraction of their TTL, so a live node's record
// never expires even if one refresh round is lost (two more chances before expiry).
inline constexpr double kRefreshFraction = 0.4;
// Tolerated clock skew between signer and reader: a record that claims to expire further in
// the future than TTL + skew is treated as forged (it would pin a stale record for too long).
inline constexpr auto kMaxClockSkew = 5min;
// Largest record accepted from the network. OpenDHT's own limit is 64 KiB per value; IDN's
// records are a few hundred bytes (a key, a handful of multiaddrs, a key and a signature).
inline constexpr size_t kMaxRecordSize = 8 * 1024;
// Largest user value (setValue). Leaves room in kMaxRecordSize for the envelope.
inline constexpr size_t kMaxValueSize = 6 * 1024;
// Addresses carried in a peer / provider record: a node rarely has more than a few interfaces.
inline constexpr size_t kMaxAddresses = 16;
// Peers one relayed-provider record names, and circuit addresses per peer: 16 x 4 addresses of
// ~60 bytes plus the IDs stays inside kMaxValueSize. A relay with more announcers of one service
// publishes the first 16; the rest are still named by its kad front.
inline constexpr size_t kMaxRelayedPeers = 16;
inline constexpr size_t kMaxRelayedAddrs = 4;
// Incoming record puts per remote DHT node (by IP:port): sustained rate and burst. A node
// stores a handful of records and refreshes them every few minutes; 8/s with a burst of 64
// is far above honest use and bounds what one peer can make us store and verify.
inline constexpr double kPutRatePerSecond = 8.0;
inline constexpr double kPutBurst = 64.0;
// Remote nodes tracked by the rate limiter before the least recently seen are forgotten
// (bounds memory against address-spraying).
inline constexpr size_t kRateLimiterMaxPeers = 4096;
// Highest sequence numbers remembered for replay detection, per (key, signer).
inline constexpr size_t kMaxSeenSequences = 65536;
// A publication whose put failed (typically: not yet connected at start) is retried this soon
// instead of waiting a whole refresh interval.
inline constexpr auto kPutRetry = 5s;
// A lookup (get) gives up after this long and returns what it has.
inline constexpr auto kLookupTimeout = 20s;
// OpenDHT network id separating IDN's DHT from the public OpenDHT network (arbitrary, fixed).
inline constexpr uint32_t kNetworkId = 0x1d4e;
// OpenDHT value type id of IDN records (user types live above OpenDHT's built-in ones).
inline constexpr uint16_t kValueTypeId = 0x1d4;

}  // namespace idn::routing::defaults
