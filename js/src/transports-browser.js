// Default transports in a browser: WebSockets only (a page cannot open TCP sockets). Chosen by
// the "browser" condition of package.json's #transports import.
import { webSockets } from '@libp2p/websockets'

export function defaultTransports () {
  return [webSockets()]
}

// js-libp2p's browser default refuses to dial plain ws:// and private addresses (loopback,
// LAN). IDN nodes listen on plain /ws (no TLS yet), often on private addresses, and a provider
// found through the kad bridge is dialled at the address it gave: allow them all. A page served
// over https still cannot open ws:// (the browser blocks mixed content); serve it over http.
export function defaultConnectionGater () {
  return { denyDialMultiaddr: async () => false }
}
