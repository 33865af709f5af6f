// js-libp2p <-> js-libp2p baseline numbers on loopback, to compare IDN's stack against.
//
// CLI: node interop/bench_js.mjs [--pings N] [--rr-count N] [--rr-bytes B] [--mib M]
//                                [--dial MULTIADDR]
//   Without --dial it starts two js-libp2p nodes in this process (TCP, Noise, yamux) and
//   measures between them; with --dial it measures against a running peer that serves
//   /ipfs/ping/1.0.0 and /interop/echo/1.0.0 (js_peer.mjs listen, or an IDN node with echo).
//   Prints one JSON object on stdout:
//     {"ping_ms":{"n":..,"median":..,"p90":..,"min":..},          // libp2p ping, 1 stream each
//      "rr_us":{"n":..,"bytes":..,"median":..,"p90":..,"min":..}, // request/response on one stream
//      "throughput":{"mib":..,"seconds":..,"mib_per_s":..},        // bytes echoed back, one way
//      "agent":"js-libp2p/... node/..."}
//   Note: js-libp2p's ping reports whole milliseconds; rr_us uses performance.now().
import './polyfill.mjs'

const { createLibp2p } = await import('libp2p')
const { tcp } = await import('@libp2p/tcp')
const { noise } = await import('@chainsafe/libp2p-noise')
const { yamux } = await import('@chainsafe/libp2p-yamux')
const { identify } = await import('@libp2p/identify')
const { ping } = await import('@libp2p/ping')
const { multiaddr } = await import('@multiformats/multiaddr')

const ECHO_PROTOCOL = '/interop/echo/1.0.0'

function fail (message) {
  process.stdout.write(JSON.stringify({ event: 'error', message }) + '\n')
  process.exit(1)
}

const opts = { pings: 50, rrCount: 500, rrBytes: 3072, mib: 64, dial: null }
{
  const argv = process.argv.slice(2)
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const v = argv[i + 1]
    if (v === undefined) fail(`${a} needs a value`)
    i++
    if (a === '--dial') { opts.dial = v; continue }
    const n = Number(v)
    if (!Number.isInteger(n) || n <= 0) fail(`${a}: expected a positive integer, got ${v}`)
    if (a === '--pings') opts.pings = n
    else if (a === '--rr-count') opts.rrCount = n
    else if (a === '--rr-bytes') opts.rrBytes = n
    else if (a === '--mib') opts.mib = n
    else fail(`unknown option ${a}`)
  }
}

function stats (xs) {
  const s = [...xs].sort((a, b) => a - b)
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))]
  return { n: s.length, median: q(0.5), p90: q(0.9), min: s[0] }
}

async function makeNode (listen) {
  const node = await createLibp2p({
    addresses: { listen },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { identify: identify(), ping: ping() }
  })
  await node.handle(ECHO_PROTOCOL, async (stream) => {
    try {
      for await (const chunk of stream) {
        if (!stream.send(chunk.subarray ? chunk.subarray() : chunk)) await stream.onDrain()
      }
      await stream.close()
    } catch (err) {
      stream.abort(err)
    }
  }, { maxInboundStreams: 64 })
  return node
}

// Reads exactly n bytes from an async iterator of chunks, keeping any excess for next time.
function reader (stream) {
  const it = stream[Symbol.asyncIterator]()
  let pending = new Uint8Array(0)
  return async function read (n) {
    while (pending.length < n) {
      const { value, done } = await it.next()
      if (done) throw new Error(`stream ended after ${pending.length} of ${n} bytes`)
      const data = value.subarray ? value.subarray() : value
      const merged = new Uint8Array(pending.length + data.length)
      merged.set(pending)
      merged.set(data, pending.length)
      pending = merged
    }
    const out = pending.subarray(0, n)
    pending = pending.subarray(n)
    return out
  }
}

const server = opts.dial ? null : await makeNode(['/ip4/127.0.0.1/tcp/0'])
const client = await makeNode([])
const target = opts.dial ? multiaddr(opts.dial) : server.getMultiaddrs()[0]
try {
  const conn = await client.dial(target)
  const peer = conn.remotePeer

  const pings = []
  for (let i = 0; i < opts.pings; i++) pings.push(await client.services.ping.ping(peer))

  const rr = []
  {
    const stream = await client.dialProtocol(peer, ECHO_PROTOCOL)
    const read = reader(stream)
    const msg = new Uint8Array(opts.rrBytes).fill(7)
    for (let i = 0; i < opts.rrCount; i++) {
      const t0 = performance.now()
      stream.send(msg)
      await read(opts.rrBytes)
      rr.push((performance.now() - t0) * 1000)
    }
    await stream.close()
  }

  let throughput
  {
    const stream = await client.dialProtocol(peer, ECHO_PROTOCOL)
    const total = opts.mib * 1024 * 1024
    const chunk = new Uint8Array(64 * 1024).fill(1)
    const t0 = performance.now()
    const draining = (async () => {
      let got = 0
      for await (const c of stream) got += c.byteLength
      return got
    })()
    for (let sent = 0; sent < total; sent += chunk.length) {
      if (!stream.send(chunk)) await stream.onDrain()
    }
    await stream.close()
    const got = await draining
    const seconds = (performance.now() - t0) / 1000
    if (got !== total) throw new Error(`echoed ${got} of ${total} bytes`)
    throughput = { mib: opts.mib, seconds, mib_per_s: opts.mib / seconds }
  }

  process.stdout.write(JSON.stringify({
    target: target.toString(),
    ping_ms: stats(pings),
    rr_us: { ...stats(rr), bytes: opts.rrBytes },
    throughput,
    agent: client.services.identify.host?.agentVersion ?? null
  }) + '\n')
} catch (err) {
  fail(err.message)
} finally {
  await client.stop()
  if (server) await server.stop()
}
process.exit(0)
