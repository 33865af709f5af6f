// An in-memory transport for tests: a network without sockets. Hosts whose transport is a
// memory transport on the same MemoryNetwork listen on and dial virtual addresses of the
// ordinary form /ip4|ip6/<addr>/tcp/<port> (so a test reads like its loopback twin), and each
// connection is a pair of in-memory pipes; the Host upgrades it (Noise, yamux) as any other.
// Dials come from /ip4/127.0.0.1 (or HostConfig::dial_from) with a fresh virtual port; the
// per-address handshake budget counts them, so give many hosts that dial one listener at once
// distinct dial_from addresses.
// Threading: a MemoryNetwork is thread-safe; a connection end lives on the executor of the
// host that dialled or accepted it (one thread), so hosts on different loops can talk.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <utility>

#include "p2p/transport.h"

namespace idn::p2p {

class MemoryNetwork {
 public:
  MemoryNetwork() = default;
  MemoryNetwork(const MemoryNetwork&) = delete;
  MemoryNetwork& operator=(const MemoryNetwork&) = delete;

  // Listening virtual addresses (for tests that check a listener went away).
  size_t num_listeners() const;

  struct ListenerState;  // memory_transport.cpp
 private:
  friend class MemoryTransport;
  friend class MemoryListener;
  using Key = std::pair<std::string, uint16_t>;  // IP text, port
  mutable std::mutex mu_;
  std::map<Key, std::weak_ptr<ListenerState>> listeners_;
  uint16_t next_port_ = 40000;  // for listen port 0 and for dialers' ends
};

// A transport that handles /ip4|ip6/<addr>/tcp/<port> on `net`. Give it to HostConfig's
// transports alone: a TCP transport would claim the same addresses.
std::shared_ptr<Transport> make_memory_transport(std::shared_ptr<MemoryNetwork> net);

}  // namespace idn::p2p
