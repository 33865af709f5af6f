// The WebSocket transport (/ip4|ip6|dns*/<host>/tcp/<port>/ws), as libp2p's websocket
// transport: each side sends binary messages whose payloads, concatenated, are the byte
// stream the Host upgrades (Noise, then yamux) exactly as over TCP. It is how a browser, which
// cannot open raw TCP, reaches a node. The HTTP upgrade is the connection's open() step, so it
// runs inside the Host's handshake deadline and inbound budget; a request that is not a valid
// WebSocket upgrade gets an HTTP 4xx answer saying why, and the connection closes.
// Threading: as transport.h.
#pragma once

#include "p2p/defaults.h"
#include "p2p/transport.h"

namespace idn::p2p {

struct WsLimits {
  size_t max_message = defaults::kMaxWsMessage;
  size_t max_upgrade_request = defaults::kMaxWsUpgradeRequest;
};

std::shared_ptr<Transport> make_ws_transport(WsLimits limits = {});

}  // namespace idn::p2p
