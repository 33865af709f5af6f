// Dialling through a circuit relay v2 (p2p/relay.h): /<relay
// addr>/p2p/<relay>/p2p-circuit/p2p/<peer>. The transport reaches the relay (the Host's connection
// to it, or a new dial), opens a hop stream, sends CONNECT naming the peer, and on the relay's OK
// hands that stream to the Host as the RawConnection, so Noise and yamux run end to end with the
// peer through the relay. Dial only: listening through a relay (a reservation and /stop) is not
// built on this side. Threading: the Host's executor; one per Host (it dials through that Host).
#pragma once

#include <memory>

#include "core/multiaddr.h"
#include "identity/peer_id.h"
#include "p2p/transport.h"

namespace idn::p2p {

class Host;

// The parts of a circuit address: the relay's address (ending in /p2p/<relay>), the relay's
// ID, and the peer behind it.
struct CircuitAddr {
  core::Multiaddr relay;
  identity::PeerId relay_id;
  identity::PeerId peer;
};
// Errors: InvalidArgument (no /p2p-circuit, more than one, no /p2p/<relay> right before it, no
// /p2p/<peer> after it, or anything else after it).
Result<CircuitAddr> parse_circuit_addr(const core::Multiaddr& addr);

// Handles addresses with /p2p-circuit; dial() takes the full address, /p2p/<peer> included.
std::unique_ptr<Transport> make_circuit_transport(Host& host);

}  // namespace idn::p2p
