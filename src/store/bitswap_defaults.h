// Every limit and timeout of IDN's Bitswap in one place, each with the reason for its value.
// BitswapConfig carries the values used, so a node's config can override any of them.
#pragma once

#include <chrono>
#include <cstddef>

namespace idn::store::bitswap::defaults {

using namespace std::chrono_literals;

// Largest message we read: boxo and helia cap Bitswap messages at 4 MiB.
inline constexpr size_t kMaxMessageBytes = 4 * 1024 * 1024;
// We pack response blocks into messages of at most this size (boxo's target is 1 MiB too), so
// one peer's large want never delays its presences for long.
inline constexpr size_t kTargetResponseBytes = 1024 * 1024;
// Wantlist entries we serve from one peer's message; more is a flood, not a fetch (boxo
// allows 1024 wants per peer).
inline constexpr size_t kMaxWantsPerPeer = 1024;
// Response bytes queued for one peer and not yet written; the server stops answering that
// peer until the queue drains, so a slow reader cannot make us buffer the store in memory.
inline constexpr size_t kMaxOutstandingBytesPerPeer = 8 * 1024 * 1024;
// How long the server waits for a peer's queue to drain before dropping the rest of its wants.
inline constexpr auto kBackpressureTimeout = 30s;
// Client: want-blocks in flight to one provider. 32 x 256 KiB = 8 MiB, enough to fill a
// loopback or LAN link while spreading a DAG across several providers.
inline constexpr size_t kMaxWantsInFlightPerPeer = 32;
// Client: a want-block unanswered for this long is asked of another provider.
inline constexpr auto kWantTimeout = 10s;
// Client: how long the first round (want-have for the root to all providers) may take.
inline constexpr auto kRootTimeout = 15s;

}  // namespace idn::store::bitswap::defaults
