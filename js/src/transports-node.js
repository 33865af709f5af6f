// Default transports in Node: TCP (what `idn node` listens on today) and WebSockets (/ws
// addresses). A browser build resolves #transports to transports-browser.js instead.
import { tcp } from '@libp2p/tcp'
import { webSockets } from '@libp2p/websockets'

export function defaultTransports () {
  return [tcp(), webSockets()]
}

// Node: js-libp2p's own default (dial anything).
export function defaultConnectionGater () {
  return undefined
}
