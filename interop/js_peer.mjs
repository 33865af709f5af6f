// A stock js-libp2p peer (TCP and WebSocket, Noise, yamux, identify, ping) for IDN's interop
// tests.
//
// CLI (run from anywhere; node >= 18):
//   node interop/js_peer.mjs listen [--host 127.0.0.1] [--port 0] [--ws]
//       Listens on /ip4/HOST/tcp/PORT (with --ws: /ip4/HOST/tcp/PORT/ws, @libp2p/websockets)
//       (PORT 0 = ephemeral) and prints one line once ready:
//         {"event":"listening","peer_id":"12D3KooW...","addrs":["/ip4/127.0.0.1/tcp/PORT/p2p/12D3KooW..."],
//          "protocols":["/interop/echo/1.0.0","/ipfs/id/1.0.0",...],"agent":"js-libp2p/... node/..."}
//       Then, for every remote peer it identifies, one line:
//         {"event":"identified","peer_id":"...","public_key":"<hex>","protocols":[...],
//          "agent":"...","protocol_version":"...","listen_addrs":[...],"observed_addr":"..."|null}
//       Serves /ipfs/id/1.0.0, /ipfs/ping/1.0.0 and /interop/echo/1.0.0 (writes back every byte
//       it reads, then closes its write side when the remote closes its own).
//       Runs until its stdin closes (close the pipe to stop it), then prints {"event":"stopped"}
//       and exits 0. SIGTERM/SIGINT stop it the same way.
//   node interop/js_peer.mjs dial MULTIADDR [--pings N] [--echo-bytes N] [--timeout-ms MS]
//       MULTIADDR must end in /p2p/<peer id>; .../tcp/PORT/ws/p2p/... goes over WebSocket. Dials, waits for identify and prints
//         {"event":"identify", ...same fields as "identified" above...}
//       then pings N times (default 3), one line each: {"event":"ping","rtt_ms":1.23}
//       then, with --echo-bytes N > 0, opens /interop/echo/1.0.0, sends N pseudo-random bytes,
//       closes its write side, checks the same bytes come back:
//         {"event":"echo","bytes":N,"ms":2.5}
//       and finally {"event":"done"}, exit 0.
// Any failure prints {"event":"error","message":"..."} on stdout and exits 1. Every line on
// stdout is exactly one JSON object; diagnostics go to stderr. public_key is the hex of the
// protobuf-encoded libp2p PublicKey from the identify message (08 01 12 20 <32 bytes> for
// Ed25519). Timeouts (default 10000 ms) bound the dial, identify, each ping and the echo.
import './polyfill.mjs'
import { ECHO_PROTOCOL, echoOnce, emit, fail, serveEcho, stopOnStdinClose, withTimeout } from './peer_common.mjs'

const { createLibp2p } = await import('libp2p')
const { tcp } = await import('@libp2p/tcp')
const { webSockets } = await import('@libp2p/websockets')
const { noise } = await import('@chainsafe/libp2p-noise')
const { yamux } = await import('@chainsafe/libp2p-yamux')
const { identify } = await import('@libp2p/identify')
const { ping } = await import('@libp2p/ping')
const { multiaddr } = await import('@multiformats/multiaddr')

function parseArgs (argv) {
  const [mode, ...rest] = argv
  const opts = { mode, positional: [], host: '127.0.0.1', port: 0, ws: false, pings: 3, echoBytes: 0, timeoutMs: 10000 }
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
    if (a === '--host') opts.host = next()
    else if (a === '--port') opts.port = int(next())
    else if (a === '--ws') opts.ws = true
    else if (a === '--pings') opts.pings = int(next())
    else if (a === '--echo-bytes') opts.echoBytes = int(next())
    else if (a === '--timeout-ms') opts.timeoutMs = int(next())
    else if (a.startsWith('--')) fail(`unknown option ${a}`)
    else opts.positional.push(a)
  }
  return opts
}

function toHex (bytes) {
  return bytes == null ? null : Buffer.from(bytes).toString('hex')
}

function describeIdentify (r) {
  return {
    peer_id: r.peerId.toString(),
    public_key: toHex(r.publicKey),
    protocols: [...r.protocols].sort(),
    agent: r.agentVersion ?? null,
    protocol_version: r.protocolVersion ?? null,
    listen_addrs: r.listenAddrs.map((a) => a.toString()),
    observed_addr: r.observedAddr ? r.observedAddr.toString() : null
  }
}

async function makeNode (listenAddrs) {
  const node = await createLibp2p({
    addresses: { listen: listenAddrs },
    transports: [tcp(), webSockets()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { identify: identify(), ping: ping() }
  })
  await node.handle(ECHO_PROTOCOL, (stream) => { serveEcho(stream, 'js_peer') })
  return node
}

async function listen (opts) {
  const node = await makeNode([`/ip4/${opts.host}/tcp/${opts.port}${opts.ws ? '/ws' : ''}`])
  node.addEventListener('peer:identify', (evt) => {
    emit({ event: 'identified', ...describeIdentify(evt.detail) })
  })
  emit({
    event: 'listening',
    peer_id: node.peerId.toString(),
    addrs: node.getMultiaddrs().map((a) => a.toString()),
    protocols: [...node.getProtocols()].sort(),
    agent: node.services.identify.host?.agentVersion ?? null
  })
  stopOnStdinClose(node)
}

async function dial (opts) {
  if (opts.positional.length !== 1) fail('dial needs exactly one MULTIADDR (ending in /p2p/<peer id>)')
  let ma
  try {
    ma = multiaddr(opts.positional[0])
  } catch (err) {
    fail(`bad multiaddr ${opts.positional[0]}: ${err.message}`)
  }
  const node = await makeNode([])
  try {
    const identified = new Promise((resolve) => {
      node.addEventListener('peer:identify', (evt) => resolve(evt.detail))
    })
    const conn = await withTimeout(node.dial(ma), opts.timeoutMs, `dial ${ma}`)
    const result = await withTimeout(identified, opts.timeoutMs, 'identify')
    if (!result.peerId.equals(conn.remotePeer)) {
      throw new Error(`identified ${result.peerId} but connected to ${conn.remotePeer}`)
    }
    emit({ event: 'identify', ...describeIdentify(result) })
    for (let i = 0; i < opts.pings; i++) {
      const rtt = await withTimeout(node.services.ping.ping(conn.remotePeer), opts.timeoutMs, 'ping')
      emit({ event: 'ping', rtt_ms: rtt })
    }
    if (opts.echoBytes > 0) {
      const ms = await echoOnce(() => node.dialProtocol(conn.remotePeer, ECHO_PROTOCOL), opts.echoBytes, opts.timeoutMs)
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
else fail('usage: js_peer.mjs listen [--host H] [--port P] [--ws] | dial MULTIADDR [--pings N] [--echo-bytes N] [--timeout-ms MS]')
