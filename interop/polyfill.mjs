// Globals js-libp2p 3 expects that Node 18/20 lack. Import this module before anything from
// libp2p: static imports are hoisted, so defining these in the importing file is too late.
import { webcrypto } from 'node:crypto'
import { register } from 'node:module'

// Swap @peculiar/webcrypto for Node's own WebCrypto (see webcrypto-loader.mjs). An npm
// override cannot do it: Debian 12's npm 9.2 rejects file: specs in overrides.
register('./webcrypto-loader.mjs', import.meta.url)

if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function withResolvers () {
    let resolve
    let reject
    const promise = new this((res, rej) => { resolve = res; reject = rej })
    return { promise, resolve, reject }
  }
}

if (typeof globalThis.CustomEvent !== 'function') {
  globalThis.CustomEvent = class CustomEvent extends Event {
    constructor (type, init = {}) {
      super(type, init)
      this.detail = init.detail ?? null
    }
  }
}

if (typeof globalThis.crypto === 'undefined') {
  globalThis.crypto = webcrypto
}

// @libp2p/websockets dials with the global WebSocket, which Node has from 22 on (undici's). On
// Node 20 use the same class from the pinned undici.
if (typeof globalThis.WebSocket === 'undefined') {
  const { WebSocket } = await import('undici')
  globalThis.WebSocket = WebSocket
}
