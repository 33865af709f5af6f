// The routing interface of dissertation §7.3 (derived from libp2p's): findPeer, provide,
// findProviders, getValue, setValue. Asynchronous: each call returns at once and invokes its
// callback exactly once, on a routing-owned thread (post to your executor if you need one).
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <vector>

#include "core/multiaddr.h"
#include "core/multihash.h"
#include "core/status.h"
#include "identity/peer_id.h"

namespace idn::routing {

struct PeerInfo {
  identity::PeerId id;
  std::vector<core::Multiaddr> addrs;
  std::optional<std::chrono::microseconds> rtt;  // measured round trip, when known
};

class Routing {
 public:
  template <class T>
  using Callback = std::function<void(Result<T>)>;
  using DoneCallback = std::function<void(Status)>;

  virtual ~Routing() = default;

  // The network addresses `id` published under its own key. NotFound when none is valid.
  virtual void find_peer(const identity::PeerId& id, Callback<PeerInfo> cb) = 0;
  // Announces this node as a provider of `key` (a service ID or CID) and keeps the record
  // fresh until withdraw() or shutdown.
  virtual void provide(const core::Multihash& key, DoneCallback cb) = 0;
  // Up to `n` providers of `key`, nearest (lowest measured RTT) first; peers with no RTT last.
  virtual void find_providers(const core::Multihash& key, size_t n,
                              Callback<std::vector<PeerInfo>> cb) = 0;
  // The newest valid value stored at `key`. NotFound when none.
  virtual void get_value(const core::Multihash& key, Callback<Bytes> cb) = 0;
  // Stores `value` (small metadata) at `key`, signed by this node; kept fresh like provide().
  virtual void set_value(const core::Multihash& key, ByteView value, DoneCallback cb) = 0;
};

// Blocking wrappers for tools and tests: wait up to `timeout` for the callback.
Result<PeerInfo> find_peer_sync(Routing& r, const identity::PeerId& id,
                                std::chrono::milliseconds timeout);
Status provide_sync(Routing& r, const core::Multihash& key, std::chrono::milliseconds timeout);
Result<std::vector<PeerInfo>> find_providers_sync(Routing& r, const core::Multihash& key, size_t n,
                                                  std::chrono::milliseconds timeout);
Result<Bytes> get_value_sync(Routing& r, const core::Multihash& key,
                             std::chrono::milliseconds timeout);
Status set_value_sync(Routing& r, const core::Multihash& key, ByteView value,
                      std::chrono::milliseconds timeout);

}  // namespace idn::routing
