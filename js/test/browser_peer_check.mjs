// Browser peers for tests/cli/browser_peer_test.sh: headless Chromium (Debian's, through
// playwright-core) opens --pages pages of test/browser/index.html; each loads @idn/client's
// bundle, connects to a node over /ws with createIdn({ relay: true }) (the node keeps a circuit
// relay v2 slot for it), serves --service (its ONNX form fetched by CID over Bitswap, run with
// onnxruntime-web's WASM build served next to the bundle) and announces itself (ADD_PROVIDER).
// A js-libp2p client in Node then asks the pages through the relay
// (/p2p/NODE/p2p-circuit/p2p/PAGE): first each input on page 0, then --requests requests at once
// with both pages as providers, closing page 0 as soon as its first answer arrives: every request
// must still be answered (the client replaces the lost provider).
// Prints one JSON object per line on stdout:
//   {"browser":"HeadlessChrome/..."}
//   {"page":K,"peerId":..,"relayAddresses":[...],"announced":{ok,..},"serveMs":T}
//   {"input":K,"class":C,"exit":E,"confidence":X,"peer":..,"final":true}   through page 0
//   {"cpp":{"input":K,"via":addr,"out":"..."}}            idn infer --provider <page 0> (--idn)
//   {"latency":{"requests":N,"page0":{median,p90},"node":{median,p90}}}   with --latency
//   {"lookup":{"providers":[peer...]}}                 what the node's kad bridge names
//   {"reroute":{"requests":N,"answered":N,"byPeer":{peer:n},"heldInPage0":n,"failedOn0":n,
//    "outcomesOn0":[...],"errors":[...]}}
//   {"pageStats":{...}}                                page 1's provider counters
//   {"done":true}
// Usage: node browser_peer_check.mjs --bootstrap /ip4/127.0.0.1/tcp/P/ws/p2p/ID[,...] --service ID
//          --client-bootstrap /ip4/127.0.0.1/tcp/P/p2p/ID --inputs A.pgm,B.pgm
//          --bundle DIR/idn.browser.js [--pages 2] [--requests 20] [--screenshot OUT.png]
//          [--idn PATH]  (also ask page 0 with `idn infer --provider`, the C++ client)
//          [--latency N] (N requests to page 0 through the relay and N to the node, timed)
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { promisify } from 'node:util'
import { dirname, join } from 'node:path'
import { createServer } from 'node:http'
import { chromium } from 'playwright-core'
import { emit, parseArgs, readPgm } from './check_util.mjs'
import { createIdn, parseServiceId } from '@idn/client'

const args = parseArgs({ pages: '2', requests: '20' })
const inputs = args.inputs.split(',').map(readPgm)
const bundleDir = dirname(args.bundle)

// The page, the bundle and onnxruntime-web's WASM runtime beside it, from loopback.
const files = {
  '/': ['text/html', readFileSync(new URL('browser/index.html', import.meta.url))],
  '/idn.browser.js': ['text/javascript', readFileSync(args.bundle)],
  '/ort-wasm-simd-threaded.mjs': ['text/javascript', readFileSync(join(bundleDir, 'ort-wasm-simd-threaded.mjs'))],
  '/ort-wasm-simd-threaded.wasm': ['application/wasm', readFileSync(join(bundleDir, 'ort-wasm-simd-threaded.wasm'))]
}
const server = createServer((req, res) => {
  const f = files[req.url]
  if (f == null) {
    res.writeHead(req.url === '/favicon.ico' ? 204 : 404).end()
    return
  }
  res.writeHead(200, { 'content-type': f[0], 'cache-control': 'no-store' }).end(f[1])
})
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))

const browser = await chromium.launch({
  executablePath: process.env.IDN_CHROMIUM ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync']
})
let client
try {
  const pages = []
  for (let k = 0; k < Number(args.pages); k++) {
    const page = await browser.newPage()
    page.on('console', (m) => { if (m.type() === 'error') process.stderr.write(`page ${k} console: ${m.text()}\n`) })
    page.on('pageerror', (e) => process.stderr.write(`page ${k} error: ${e.message}\n`))
    await page.goto(`http://127.0.0.1:${server.address().port}/`)
    await page.waitForFunction(() => window.idnClient != null, null, { timeout: 10000 })
    if (k === 0) emit({ browser: await page.evaluate(() => navigator.userAgent.match(/HeadlessChrome\/\S+/)?.[0] ?? navigator.userAgent) })
    // The page becomes a peer and stays one (window.idnPeer) until it is closed.
    const info = await page.evaluate(async ({ bootstrap, service }) => {
      const { createIdn } = window.idnClient
      const t0 = performance.now()
      // window.idnHold, when set, holds every request before its first stage (the reroute below).
      const idn = await createIdn({ bootstrap, relay: true, provider: { beforeStage: () => window.idnHold } })
      window.idnPeer = idn
      const relayAddresses = await idn.waitForRelay({ timeoutMs: 10000 })
      window.idnLog(`relayed at ${relayAddresses.join(' ')}`)
      const serving = await idn.serve(service, { announce: true })
      window.idnServing = serving
      window.idnLog(`serving ${serving.name} (${serving.onnxCid}); announced ${JSON.stringify(serving.announced)}`)
      return { peerId: idn.peerId, relayAddresses: idn.relayAddresses, announced: serving.announced, serveMs: Math.round(performance.now() - t0) }
    }, { bootstrap: args.bootstrap.split(','), service: args.service })
    emit({ page: k, ...info })
    pages.push({ page, ...info })
  }

  client = await createIdn({ bootstrap: [args['client-bootstrap']], providerCacheMs: 0 })
  const via = (k) => pages[k].relayAddresses[0]
  for (const [i, input] of inputs.entries()) {
    let best
    for await (const ev of client.infer(args.service, input, { npeers: 1, providers: [via(0)], deadlineMs: 10000 })) best = ev
    emit({ input: i, class: best.predicted, exit: best.exit, confidence: best.confidence, peer: best.peer, final: best.final })
  }
  // The C++ client through the relay: idn infer --provider <page 0's circuit address>.
  if (args.idn) {
    const addr = pages[0].relayAddresses.find((a) => !a.includes('/ws/')) ?? via(0)
    for (const [i, path] of args.inputs.split(',').entries()) {
      const { stdout } = await promisify(execFile)(args.idn, ['infer', '--service', args.service, '--provider', addr, '--input', path, '--fanout', '1', '--deadline-ms', '10000'])
      emit({ cpp: { input: i, via: addr, out: stdout } })
    }
  }
  // With --latency N: N sequential requests to page 0 through the relay and N to the node
  // itself (it hosts the service too), each side's median and p90 in ms.
  if (args.latency) {
    const time = async (who) => {
      const ms = []
      for (let r = 0; r < Number(args.latency); r++) {
        const t0 = performance.now()
        for await (const ev of client.infer(args.service, inputs[r % inputs.length], { npeers: 1, providers: [who] })) ev.final
        ms.push(performance.now() - t0)
      }
      ms.sort((a, b) => a - b)
      return { median: ms[ms.length >> 1], p90: ms[Math.floor(ms.length * 0.9)] }
    }
    emit({ latency: { requests: Number(args.latency), page0: await time(via(0)), node: await time(args['client-bootstrap']) } })
  }
  // What the node's kad bridge names as providers (the pages announced themselves).
  {
    const found = await client.findProviders(parseServiceId(args.service), 10, { signal: AbortSignal.timeout(5000), timeoutMs: 5000 }).catch((e) => [e.message])
    emit({ lookup: { providers: found.map(String) } })
  }

  // Requests at once, both pages as providers (page 0 first), while page 0 holds every request
  // before its first stage; once all of them are in page 0, it is closed: each request must be
  // answered by page 1 instead.
  const n = Number(args.requests)
  await pages[0].page.evaluate(() => { window.idnHold = new Promise(() => {}) })
  const before = await pages[0].page.evaluate(() => window.idnServing.stats.requests)
  const runs = Array.from({ length: n }, (_, r) => client.infer(args.service, inputs[r % inputs.length], {
    npeers: 1, providers: [via(0), via(1)], deadlineMs: 20000, inactivityMs: 10000
  }))
  const results = Promise.all(runs.map(async (run) => {
    let best = null
    try {
      for await (const ev of run) best = ev
    } catch (err) {
      return { error: `${err.code}: ${err.message}` }
    }
    return { peer: best?.peer, final: best?.final, tried: run.summary.peers.map((p) => ({ peer: p.peer, outcome: p.outcome, detail: p.detail })) }
  }))
  await pages[0].page.waitForFunction((want) => window.idnServing.stats.requests >= want, before + n, { timeout: 10000 })
  const heldInPage0 = (await pages[0].page.evaluate(() => window.idnServing.stats.requests)) - before
  await pages[0].page.close()
  const done = await results
  const byPeer = {}
  for (const r of done) if (r.peer) byPeer[r.peer] = (byPeer[r.peer] ?? 0) + 1
  emit({
    reroute: {
      requests: n,
      answered: done.filter((r) => r.final).length,
      byPeer,
      closedPage: pages[0].peerId,
      heldInPage0,
      failedOn0: done.filter((r) => r.tried?.some((t) => t.peer === pages[0].peerId && t.outcome !== 'answered')).length,
      outcomesOn0: [...new Set(done.flatMap((r) => r.tried ?? []).filter((t) => t.peer === pages[0].peerId).map((t) => `${t.outcome}: ${t.detail}`))],
      errors: done.filter((r) => r.error).map((r) => r.error)
    }
  })
  emit({ pageStats: await pages[1].page.evaluate(() => { window.idnLog(`answered ${JSON.stringify(window.idnServing.stats)}`); return window.idnServing.stats }) })
  if (args.screenshot) await pages[1].page.screenshot({ path: args.screenshot, fullPage: true })
  emit({ done: true })
} finally {
  await client?.stop()
  await browser.close()
  server.close()
}
