// A stock js-libp2p peer (TCP, Noise, yamux, identify, ping) that dials from a chosen local
// address and times dial + identify + ping: the "legitimate peer" of scripts/handshake-flood.
//
// CLI (node >= 18):
//   node interop/dial_probe.mjs MULTIADDR [--from 127.0.0.2] [--pings N] [--timeout-ms MS]
//       MULTIADDR must end in /p2p/<peer id>. The TCP connection leaves from --from (the
//       kernel's choice when absent; any 127.0.0.0/8 address works on Linux loopback). Prints
//         {"event":"done","connect_identify_ms":3.1,"ping_ms":[0.4,...],"total_ms":4.0}
//       and exits 0, or {"event":"error","message":"...","after_ms":12.3} and exits 1.
import './polyfill.mjs'

const { createLibp2p } = await import('libp2p')
const { tcp } = await import('@libp2p/tcp')
const { noise } = await import('@chainsafe/libp2p-noise')
const { yamux } = await import('@chainsafe/libp2p-yamux')
const { identify } = await import('@libp2p/identify')
const { ping } = await import('@libp2p/ping')
const { multiaddr } = await import('@multiformats/multiaddr')

const args = process.argv.slice(2)
const opts = { target: null, from: null, pings: 3, timeoutMs: 10000 }
for (let i = 0; i < args.length; i++) {
  const a = args[i]
  if (a === '--from') opts.from = args[++i]
  else if (a === '--pings') opts.pings = Number(args[++i])
  else if (a === '--timeout-ms') opts.timeoutMs = Number(args[++i])
  else opts.target = a
}

function emit (obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

const t0 = performance.now()
const elapsed = () => Math.round((performance.now() - t0) * 100) / 100
let node
try {
  if (!opts.target) throw new Error('usage: dial_probe.mjs MULTIADDR [--from IP] [--pings N]')
  const target = multiaddr(opts.target)
  const peer = opts.target.split('/p2p/')[1]
  if (!peer) throw new Error('MULTIADDR must end in /p2p/<peer id>')
  node = await createLibp2p({
    transports: [tcp(opts.from ? { dialOpts: { localAddress: opts.from } } : {})],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { identify: identify(), ping: ping() }
  })
  const start = performance.now()
  const identified = new Promise((resolve) => {
    node.addEventListener('peer:identify', (evt) => {
      if (evt.detail.peerId.toString() === peer) resolve()
    })
  })
  const signal = AbortSignal.timeout(opts.timeoutMs)
  await node.dial(target, { signal })
  await Promise.race([
    identified,
    new Promise((resolve, reject) => signal.addEventListener('abort', () => reject(new Error('identify timed out'))))
  ])
  const connectIdentify = performance.now() - start
  const pings = []
  for (let i = 0; i < opts.pings; i++) pings.push(await node.services.ping.ping(target, { signal }))
  emit({
    event: 'done',
    connect_identify_ms: Math.round(connectIdentify * 100) / 100,
    ping_ms: pings,
    total_ms: Math.round((performance.now() - start) * 100) / 100
  })
  await node.stop()
  process.exit(0)
} catch (err) {
  emit({ event: 'error', message: `${err.name}: ${err.message}`, after_ms: elapsed() })
  if (node) await node.stop().catch(() => {})
  process.exit(1)
}
