// What js-libp2p 3 expects that Node 18/20 lack (Promise.withResolvers arrived in Node 22).
// Imported first by index.js, so it is evaluated before any libp2p module.
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

// Node 18 has WebCrypto only as require('node:crypto').webcrypto; libp2p's keys need it global.
// Used at call time only, so finishing after libp2p's modules load is early enough.
if (typeof globalThis.crypto === 'undefined' && typeof process !== 'undefined') {
  const { webcrypto } = await import('node:crypto')
  globalThis.crypto = webcrypto
}

// @libp2p/websockets dials with the global WebSocket, which Node has from 22 on (undici's). On
// Node 18 and 20 use the same class from the pinned undici (browsers have their own).
if (typeof globalThis.WebSocket === 'undefined' && typeof process !== 'undefined') {
  const { WebSocket } = await import('undici')
  globalThis.WebSocket = WebSocket
}
