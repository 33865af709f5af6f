// Back-to-back pings from fresh stock js-libp2p nodes (TCP, Noise, yamux, identify, ping), for
// IDN's interop tests: js-libp2p allows one outbound /ipfs/ping/1.0.0 stream per connection and
// counts a stream until both sides have closed it, so a ping started right after the previous
// one fails (TooManyOutboundProtocolStreamsError "... - 2/1") when the remote's FIN for the
// previous stream has not arrived by the time the next stream's protocol is agreed.
//
// CLI (run from anywhere; node >= 18):
//   node interop/ping_burst.mjs MULTIADDR [--nodes N] [--pings N] [--timeout-ms MS]
//       MULTIADDR must end in /p2p/<peer id>. N times (default 20), one after the other: a
//       fresh js-libp2p node dials MULTIADDR, waits for identify, calls ping() --pings times
//       (default 50), each awaited before the next, and stops. A failed ping ends that node's
//       run. One line per node:
//         {"event":"node","index":0,"pings":50,"failed":false,"median_ms":0.4}
//         {"event":"node","index":3,"pings":17,"failed":true,"message":"Too many ..."}
//       then {"event":"done","nodes":N,"failed_nodes":F,"pings":P,"messages":{...}} and exit 0
//       when F is 0, else exit 1. Dial or identify failures count as failed nodes too.
// Every line on stdout is exactly one JSON object; diagnostics go to stderr.
import './polyfill.mjs'

const { createLibp2p } = await import('libp2p')
const { tcp } = await import('@libp2p/tcp')
const { noise } = await import('@chainsafe/libp2p-noise')
const { yamux } = await import('@chainsafe/libp2p-yamux')
const { identify } = await import('@libp2p/identify')
const { ping } = await import('@libp2p/ping')
const { multiaddr } = await import('@multiformats/multiaddr')

function emit (obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

function usage (message) {
  emit({ event: 'error', message })
  process.exit(2)
}

function parseArgs (argv) {
  const opts = { positional: [], nodes: 20, pings: 50, timeoutMs: 10000 }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const next = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`)
      const n = Number(argv[++i])
      if (!Number.isInteger(n) || n < 1) usage(`${a}: expected a positive integer, got ${argv[i]}`)
      return n
    }
    if (a === '--nodes') opts.nodes = next()
    else if (a === '--pings') opts.pings = next()
    else if (a === '--timeout-ms') opts.timeoutMs = next()
    else if (a.startsWith('--')) usage(`unknown option ${a}`)
    else opts.positional.push(a)
  }
  if (opts.positional.length !== 1) {
    usage('usage: ping_burst.mjs MULTIADDR [--nodes N] [--pings N] [--timeout-ms MS]')
  }
  return opts
}

function withTimeout (promise, ms, what) {
  let timer
  const timeout = new Promise((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not complete within ${ms} ms`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

// One fresh node: dial, identify, `pings` back-to-back pings. Returns the node's report.
async function runNode (ma, index, opts) {
  const node = await createLibp2p({
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { identify: identify(), ping: ping() }
  })
  const rtts = []
  try {
    const identified = new Promise((resolve) => {
      node.addEventListener('peer:identify', (evt) => resolve(evt.detail))
    })
    const conn = await withTimeout(node.dial(ma), opts.timeoutMs, `dial ${ma}`)
    await withTimeout(identified, opts.timeoutMs, 'identify')
    for (let i = 0; i < opts.pings; i++) {
      rtts.push(await withTimeout(node.services.ping.ping(conn.remotePeer), opts.timeoutMs, 'ping'))
    }
    rtts.sort((a, b) => a - b)
    const median = rtts[rtts.length >> 1]
    return { event: 'node', index, pings: rtts.length, failed: false, median_ms: median }
  } catch (err) {
    const message = `${err.name}: ${err.message}`
    return { event: 'node', index, pings: rtts.length, failed: true, message }
  } finally {
    await node.stop().catch((err) => process.stderr.write(`ping_burst: stop: ${err.message}\n`))
  }
}

const opts = parseArgs(process.argv.slice(2))
let ma
try {
  ma = multiaddr(opts.positional[0])
} catch (err) {
  usage(`bad multiaddr ${opts.positional[0]}: ${err.message}`)
}
let failedNodes = 0
let pings = 0
const messages = {}
for (let i = 0; i < opts.nodes; i++) {
  const r = await runNode(ma, i, opts)
  emit(r)
  pings += r.pings
  if (r.failed) {
    failedNodes++
    messages[r.message] = (messages[r.message] ?? 0) + 1
  }
}
emit({ event: 'done', nodes: opts.nodes, failed_nodes: failedNodes, pings, messages })
process.exit(failedNodes === 0 ? 0 : 1)
