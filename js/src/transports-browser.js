// Default transports in a browser: WebSockets only (a page cannot open TCP sockets). Chosen by
// the "browser" condition of package.json's #transports import.
import { webSockets } from '@libp2p/websockets'

export function defaultTransports () {
  return [webSockets()]
}
