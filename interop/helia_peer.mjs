// A stock helia node (helia 7 + @helia/unixfs, Bitswap over TCP/noise/yamux, no routing, no
// HTTP gateways) for IDN's content interop tests (tests/store/helia_interop_test.cpp).
//
// CLI (node >= 18; every stdout line is one JSON object; failures print
// {"event":"error","message":...} and exit 1):
//   node interop/helia_peer.mjs serve [--chunk N] [--max-links L] [--file SIZE:SEED ...]
//       Listens on /ip4/127.0.0.1/tcp/0, adds each pattern file with @helia/unixfs addBytes
//       (its defaults: 1 MiB chunks, 1024 links; --chunk N / --max-links L override them), prints
//         {"event":"listening","peer_id":"...","addrs":[...],"files":[{"size":S,"seed":K,"cid":"..."}]}
//       and serves them over Bitswap until stdin closes.
//   node interop/helia_peer.mjs fetch MULTIADDR CID [--timeout-ms MS]
//       Dials MULTIADDR, fetches CID over Bitswap and walks it: for a file one line
//         {"event":"file","path":"","size":S,"sha256":"<hex>"}
//       for a directory one such line per file (path relative to the root, "/"-separated),
//       then {"event":"done"}.
//   node interop/helia_peer.mjs cids [--chunk N] [--max-links L] SIZE...
//       Imports pattern bytes of each SIZE (seed 0) and prints {"event":"cid","size":S,"cid":"..."}.
// Pattern bytes: byte i = (i*7 + floor(i/256)*13 + seed) mod 256 (the C++ test makes the same).
import './polyfill.mjs'

const { createHeliaLight } = await import('helia')
const { withLibp2pLight } = await import('@helia/libp2p')
const { withBitswap } = await import('@helia/bitswap')
const { unixfs } = await import('@helia/unixfs')
const { fixedSize } = await import('ipfs-unixfs-importer/chunker')
const { balanced } = await import('ipfs-unixfs-importer/layout')
const { tcp } = await import('@libp2p/tcp')
const { noise } = await import('@chainsafe/libp2p-noise')
const { yamux } = await import('@chainsafe/libp2p-yamux')
const { identify } = await import('@libp2p/identify')
const { multiaddr } = await import('@multiformats/multiaddr')
const { CID } = await import('multiformats/cid')
const { createHash } = await import('node:crypto')

function emit (obj) { process.stdout.write(JSON.stringify(obj) + '\n') }
function fail (message) { emit({ event: 'error', message }); process.exit(1) }

function pattern (n, seed) {
  const b = new Uint8Array(n)
  for (let i = 0; i < n; i++) b[i] = (i * 7 + Math.floor(i / 256) * 13 + seed) & 0xff
  return b
}

async function makeHelia (listen) {
  const helia = withBitswap(withLibp2pLight(createHeliaLight(), {
    addresses: { listen: listen ? ['/ip4/127.0.0.1/tcp/0'] : [] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    peerDiscovery: [],
    services: { identify: identify() }
  }))
  await helia.start()
  return helia
}

const [mode, ...rest] = process.argv.slice(2)
const opts = { chunk: 0, maxLinks: 0, files: [], positional: [], timeoutMs: 30000 }
for (let i = 0; i < rest.length; i++) {
  const a = rest[i]
  const next = () => { if (i + 1 >= rest.length) fail(`${a} needs a value`); return rest[++i] }
  if (a === '--chunk') opts.chunk = Number(next())
  else if (a === '--max-links') opts.maxLinks = Number(next())
  else if (a === '--file') {
    const [size, seed] = next().split(':').map(Number)
    opts.files.push({ size, seed: seed ?? 0 })
  } else if (a === '--timeout-ms') opts.timeoutMs = Number(next())
  else if (a.startsWith('--')) fail(`unknown option ${a}`)
  else opts.positional.push(a)
}
const addOptions = () => {
  const o = {}
  if (opts.chunk > 0) o.chunker = fixedSize({ chunkSize: opts.chunk })
  if (opts.maxLinks > 0) o.layout = balanced({ maxChildrenPerNode: opts.maxLinks })
  return o
}

try {
  if (mode === 'serve') {
    const helia = await makeHelia(true)
    const fs = unixfs(helia)
    const files = []
    for (const f of opts.files) {
      const cid = await fs.addBytes(pattern(f.size, f.seed), addOptions())
      files.push({ size: f.size, seed: f.seed, cid: cid.toString() })
    }
    emit({
      event: 'listening',
      peer_id: helia.libp2p.peerId.toString(),
      addrs: helia.libp2p.getMultiaddrs().map(String),
      files
    })
    const stop = async () => { await helia.stop(); emit({ event: 'stopped' }); process.exit(0) }
    process.stdin.on('end', stop)
    process.stdin.resume()
    process.on('SIGTERM', stop)
    process.on('SIGINT', stop)
  } else if (mode === 'fetch') {
    const [addr, cidText] = opts.positional
    if (addr == null || cidText == null) fail('usage: fetch MULTIADDR CID')
    const helia = await makeHelia(false)
    const signal = AbortSignal.timeout(opts.timeoutMs)
    await helia.libp2p.dial(multiaddr(addr), { signal })
    const fs = unixfs(helia)
    const walk = async (cid, path) => {
      const st = await fs.stat(cid, { signal })
      if (st.type === 'directory') {
        for await (const e of fs.ls(cid, { signal })) await walk(e.cid, path === '' ? e.name : `${path}/${e.name}`)
        return
      }
      const h = createHash('sha256')
      let size = 0
      for await (const chunk of fs.cat(cid, { signal })) { h.update(chunk); size += chunk.length }
      emit({ event: 'file', path, size, sha256: h.digest('hex') })
    }
    await walk(CID.parse(cidText), '')
    emit({ event: 'done' })
    await helia.stop()
    process.exit(0)
  } else if (mode === 'cids') {
    const helia = createHeliaLight()
    const fs = unixfs(helia)
    for (const s of opts.positional) {
      const cid = await fs.addBytes(pattern(Number(s), 0), addOptions())
      emit({ event: 'cid', size: Number(s), cid: cid.toString() })
    }
    process.exit(0)
  } else {
    fail('usage: helia_peer.mjs serve|fetch|cids ...')
  }
} catch (err) {
  fail(err?.stack ?? String(err))
}
