// Stock js-libp2p peers (TCP and WebSocket, Noise, yamux, identify, ping, circuit relay v2
// transport) that reach each other through a relay: IDN's relay interop tests.
//
// CLI (node >= 18):
//   node interop/relay_peer.mjs listen RELAY_MULTIADDR
//       Listens on RELAY_MULTIADDR/p2p-circuit (RELAY_MULTIADDR ends in /p2p/<relay id>): dials
//       the relay and reserves a slot, and prints once the relay granted it:
//         {"event":"listening","peer_id":"12D3KooW...","addrs":[".../p2p-circuit/p2p/12D3KooW..."]}
//       Serves /ipfs/id/1.0.0, /ipfs/ping/1.0.0 and /interop/echo/1.0.0 (writes back what it
//       reads) on relayed connections too. For every inbound relayed connection, one line:
//         {"event":"relayed","peer_id":"...","remote_addr":"...","limited":false}
//       With --provide HEX (a service ID's multihash bytes in hex), it then announces itself as
//       a provider of it with kad-dht ADD_PROVIDER (@libp2p/kad-dht in client mode, as
//       @idn/client's announce() does) and prints {"event":"provided","to":N} (N peers took it).
//       Runs until stdin closes or SIGTERM, then prints {"event":"stopped"} and exits 0.
//   node interop/relay_peer.mjs dial CIRCUIT_MULTIADDR [--pings N] [--echo-bytes N] [--timeout-ms MS]
//       Dials .../p2p/<relay>/p2p-circuit/p2p/<target> (first the relay, then CONNECT through
//       it), waits for identify and prints {"event":"identify","peer_id":...,"agent":...,
//       "remote_addr":...,"limited":false}, then N pings {"event":"ping","rtt_ms":...}, then with
//       --echo-bytes N an echo round trip {"event":"echo","bytes":N,"ms":...}, then
//       {"event":"done"} and exits 0.
//   node interop/relay_peer.mjs dial NODE_MULTIADDR --find HEX [--pings N] [--echo-bytes N]
//       Connects to the node, asks its kad-dht front for providers of HEX, prints
//       {"event":"providers","providers":[{"peer_id":...,"addrs":[...]}]}, then dials the first
//       provider's circuit address and goes on as above.
// Any failure prints {"event":"error","message":"..."} and exits 1. `limited` is whether
// js-libp2p marked the relayed connection limited (the relay sent a Limit): a limited connection
// runs only protocols that opt in, so IDN's relay sends none.
import './polyfill.mjs'
import { ECHO_PROTOCOL, echoOnce, emit, fail, serveEcho, stopOnStdinClose, withTimeout } from './peer_common.mjs'

const { createLibp2p } = await import('libp2p')
const { tcp } = await import('@libp2p/tcp')
const { webSockets } = await import('@libp2p/websockets')
const { noise } = await import('@chainsafe/libp2p-noise')
const { yamux } = await import('@chainsafe/libp2p-yamux')
const { identify } = await import('@libp2p/identify')
const { ping } = await import('@libp2p/ping')
const { circuitRelayTransport } = await import('@libp2p/circuit-relay-v2')
const { kadDHT, passthroughMapper } = await import('@libp2p/kad-dht')
const { multiaddr } = await import('@multiformats/multiaddr')
const { CID } = await import('multiformats/cid')
const Digest = await import('multiformats/hashes/digest')

const RAW_CODEC = 0x55

function parseArgs (argv) {
  const [mode, ...rest] = argv
  const opts = { mode, positional: [], pings: 3, echoBytes: 0, timeoutMs: 10000, provide: null, find: null }
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]
    const next = () => {
      if (i + 1 >= rest.length) fail(`${a} needs a value`)
      return rest[++i]
    }
    const int = (v) => {
      const n = Number(v)
      if (!Number.isInteger(n) || n < 0) fail(`${a}: expected a non-negative integer, got ${v}`)
      return n
    }
    if (a === '--pings') opts.pings = int(next())
    else if (a === '--echo-bytes') opts.echoBytes = int(next())
    else if (a === '--timeout-ms') opts.timeoutMs = int(next())
    else if (a === '--provide') opts.provide = serviceCid(next())
    else if (a === '--find') opts.find = serviceCid(next())
    else if (a.startsWith('--')) fail(`unknown option ${a}`)
    else opts.positional.push(a)
  }
  if (opts.positional.length !== 1) fail(`${mode} needs exactly one MULTIADDR`)
  try {
    opts.addr = multiaddr(opts.positional[0])
  } catch (err) {
    fail(`bad multiaddr ${opts.positional[0]}: ${err.message}`)
  }
  return opts
}

// A service ID (multihash bytes, hex) as the CID kad-dht keys it by (its multihash).
function serviceCid (hex) {
  if (!/^([0-9a-f]{2})+$/.test(hex)) fail(`not a hex multihash: ${hex}`)
  try {
    return CID.createV1(RAW_CODEC, Digest.decode(Uint8Array.from(Buffer.from(hex, 'hex'))))
  } catch (err) {
    fail(`not a multihash: ${hex}: ${err.message}`)
  }
}

async function makeNode (listenAddrs) {
  const node = await createLibp2p({
    addresses: { listen: listenAddrs },
    // Its pings (/ipfs/ping/1.0.0, at most one outbound stream per connection) would race ours.
    connectionMonitor: { enabled: false },
    transports: [tcp(), webSockets(), circuitRelayTransport()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: {
      identify: identify(),
      // A ping's stream may still count as open when the next ping starts (its close is
      // asynchronous); under load the default limit of 1 refused the second ping.
      ping: ping({ maxOutboundStreams: 4 }),
      dht: kadDHT({ clientMode: true, peerInfoMapper: passthroughMapper, initialQuerySelfInterval: 0 })
    }
  })
  await node.handle(ECHO_PROTOCOL, (stream) => { serveEcho(stream, 'relay_peer') })
  return node
}

const isCircuit = (ma) => ma.toString().includes('/p2p-circuit')

async function listen (opts) {
  let node
  try {
    node = await makeNode([opts.addr.encapsulate('/p2p-circuit').toString()])
    if (!node.getMultiaddrs().some(isCircuit)) {
      await withTimeout(new Promise((resolve) => {
        node.addEventListener('self:peer:update', () => {
          if (node.getMultiaddrs().some(isCircuit)) resolve()
        })
      }), opts.timeoutMs, 'circuit address')
    }
  } catch (err) {
    fail(err.message)
  }
  node.addEventListener('connection:open', (evt) => {
    const c = evt.detail
    if (isCircuit(c.remoteAddr)) {
      emit({ event: 'relayed', peer_id: c.remotePeer.toString(), remote_addr: c.remoteAddr.toString(), limited: c.limits != null })
    }
  })
  emit({
    event: 'listening',
    peer_id: node.peerId.toString(),
    addrs: node.getMultiaddrs().filter(isCircuit).map((a) => a.toString())
  })
  if (opts.provide != null) {
    try {
      emit({ event: 'provided', to: await withTimeout(provide(node, opts.provide), opts.timeoutMs, 'provide') })
    } catch (err) {
      fail(err.message)
    }
  }
  stopOnStdinClose(node)
}

// ADD_PROVIDER to the closest peers kad-dht knows (the node, once identify told it the node
// speaks /ipfs/kad/1.0.0); retried until one took it. Returns how many did.
async function provide (node, cid) {
  for (;;) {
    let sent = 0
    try {
      for await (const ev of node.services.dht.provide(cid)) {
        if (ev.name === 'PEER_RESPONSE' && ev.messageName === 'ADD_PROVIDER') sent++
      }
    } catch (err) {
      process.stderr.write(`relay_peer: provide: ${err.message}\n`)
    }
    if (sent > 0) return sent
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

// The providers of `cid` the node at `addr` knows (its kad-dht front), asked until one appears.
async function findProviders (node, addr, cid) {
  await node.dial(addr)
  for (;;) {
    const found = []
    try {
      for await (const p of node.contentRouting.findProviders(cid)) found.push(p)
    } catch (err) {
      process.stderr.write(`relay_peer: findProviders: ${err.message}\n`)
    }
    if (found.length > 0) return found
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

async function dial (opts) {
  const node = await makeNode([])
  try {
    if (opts.find != null) {
      const found = await withTimeout(findProviders(node, opts.addr, opts.find), opts.timeoutMs, 'findProviders')
      emit({
        event: 'providers',
        providers: found.map((p) => ({ peer_id: p.id.toString(), addrs: p.multiaddrs.map((a) => a.toString()) }))
      })
      const circuit = found.flatMap((p) => p.multiaddrs.map((a) => {
        const s = a.toString()
        return s.endsWith(`/p2p/${p.id}`) ? s : `${s}/p2p/${p.id}`
      })).find((s) => s.includes('/p2p-circuit/'))
      if (circuit == null) throw new Error('no provider with a circuit address')
      opts.addr = multiaddr(circuit)
    }
    if (!isCircuit(opts.addr)) throw new Error(`${opts.addr} is not a circuit address (.../p2p-circuit/p2p/<peer>)`)
    const identified = new Promise((resolve) => {
      node.addEventListener('peer:identify', (evt) => {
        if (isCircuit(evt.detail.connection.remoteAddr)) resolve(evt.detail)
      })
    })
    const conn = await withTimeout(node.dial(opts.addr), opts.timeoutMs, `dial ${opts.addr}`)
    const result = await withTimeout(identified, opts.timeoutMs, 'identify')
    emit({
      event: 'identify',
      peer_id: result.peerId.toString(),
      agent: result.agentVersion ?? null,
      remote_addr: conn.remoteAddr.toString(),
      limited: conn.limits != null
    })
    for (let i = 0; i < opts.pings; i++) {
      const rtt = await withTimeout(node.services.ping.ping(opts.addr), opts.timeoutMs, 'ping')
      emit({ event: 'ping', rtt_ms: rtt })
    }
    if (opts.echoBytes > 0) {
      const ms = await echoOnce(() => conn.newStream(ECHO_PROTOCOL), opts.echoBytes, opts.timeoutMs)
      emit({ event: 'echo', bytes: opts.echoBytes, ms })
    }
    emit({ event: 'done' })
    await node.stop()
    process.exit(0)
  } catch (err) {
    fail(err.message)
  }
}

const opts = parseArgs(process.argv.slice(2))
if (opts.mode === 'listen') await listen(opts)
else if (opts.mode === 'dial') await dial(opts)
else fail('usage: relay_peer.mjs listen RELAY_MULTIADDR | dial CIRCUIT_MULTIADDR [--pings N] [--echo-bytes N] [--timeout-ms MS]')
