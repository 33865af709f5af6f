// Drives @idn/client's browser bundle in headless Chromium (Debian's /usr/bin/chromium through
// playwright-core) against running `idn node`s, for tests/cli/browser_client_test.sh. Serves
// test/browser/index.html and the bundle from 127.0.0.1, opens the page, and in the page:
// createIdn over WebSockets, initModel (with --init: the connected nodes are asked to host the
// service), infer on each input, finish() on the first answer, a bad input.
// Prints one JSON object per line on stdout:
//   {"browser":"HeadlessChrome/..."}
//   {"init":{"hosting":[peer...],"declined":[...],"unanswered":[...]}}     with --init
//   {"input":K,"class":C,"exit":E,"confidence":X,"events":N,"final":true,"asked":[peer...],
//    "remote":[addr...]}                                       per input image, in order
//   {"progressive":[{"exit":E,"final":F,"peer":P}, ...]}   every event of one last-exit request
//   {"finish":{"events":N,"done":true,"outcomes":[...]}}
//   {"bad_input":{"code":"INVALID_ARGUMENT","message":"...","idnError":true}}
//   {"done":true}
// Usage: node browser_check.mjs --bootstrap /ip4/127.0.0.1/tcp/P/ws/p2p/ID[,MORE] --service ID
//          --inputs A.pgm,B.pgm --bundle dist/idn.browser.js [--npeers 2] [--init N]
//          [--screenshot OUT.png]
//   Inputs: 8-bit binary PGM (P5) images, sent as [1, H, W] f32 pixel / 255, as `idn infer
//   --input` reads them.
import { readFileSync } from 'node:fs'
import { emit, parseArgs, readPgm } from './check_util.mjs'
import { createServer } from 'node:http'
import { chromium } from 'playwright-core'

const args = parseArgs({ npeers: '2', init: '0' })
const inputs = args.inputs.split(',').map(readPgm).map((x) => ({ shape: x.shape, data: Array.from(x.data) }))

// The page and the bundle, nothing else, from loopback.
const files = {
  '/': ['text/html', readFileSync(new URL('browser/index.html', import.meta.url))],
  '/idn.browser.js': ['text/javascript', readFileSync(args.bundle)]
}
const server = createServer((req, res) => {
  if (req.url === '/favicon.ico') {
    res.writeHead(204).end()
    return
  }
  const f = files[req.url]
  if (f == null) {
    res.writeHead(404).end('not found\n')
    return
  }
  res.writeHead(200, { 'content-type': f[0], 'cache-control': 'no-store' }).end(f[1])
})
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))

// As root in a sandbox, without reaching outside hosts (../shared/guide/FOREIGN-PEERS.md);
// playwright gives it a fresh profile directory of its own and removes it at close.
const browser = await chromium.launch({
  executablePath: process.env.IDN_CHROMIUM ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync']
})
try {
  const page = await browser.newPage()
  page.on('console', (m) => { if (m.type() === 'error') process.stderr.write(`page console: ${m.text()}\n`) })
  page.on('pageerror', (e) => process.stderr.write(`page error: ${e.message}\n`))
  await page.goto(`http://127.0.0.1:${server.address().port}/`)
  await page.waitForFunction(() => window.idnClient != null, null, { timeout: 10000 })
  emit({ browser: await page.evaluate(() => navigator.userAgent.match(/HeadlessChrome\/\S+/)?.[0] ?? navigator.userAgent) })

  const lines = await page.evaluate(async ({ bootstrap, service, inputs, npeers, init }) => {
    const { createIdn, IdnError } = window.idnClient
    const out = []
    const emit = (o) => { out.push(o); window.idnLog(JSON.stringify(o)) }
    const idn = await createIdn({ bootstrap })
    try {
      if (init > 0) {
        const r = await idn.initModel(service, { npeers: init, deadlineMs: 30000 })
        emit({ init: { hosting: r.hosting.map(String), declined: r.declined.map((d) => d.peer + ": " + d.reason), unanswered: r.unanswered.map(String) } })
      }
      for (const [i, input] of inputs.entries()) {
        const events = []
        const run = idn.infer(service, { shape: input.shape, data: Float32Array.from(input.data) }, { npeers, deadlineMs: 5000 })
        for await (const ev of run) events.push(ev)
        const best = events[events.length - 1]
        emit({ input: i, class: best.predicted, exit: best.exit, confidence: best.confidence, events: events.length, final: best.final, asked: run.summary.peers.map((p) => p.peer), remote: idn.libp2p.getConnections().map((c) => c.remoteAddr.toString()) })
      }
      // Progressive: with the last-exit rule every peer streams each exit, and the improving
      // answers arrive one by one (exit 0 first) before the final one.
      {
        const run = idn.infer(service, { shape: inputs[0].shape, data: Float32Array.from(inputs[0].data) }, { npeers, deadlineMs: 5000, exitRule: { criterion: 'lastExit' } })
        const seen = []
        for await (const ev of run) seen.push({ exit: ev.exit, final: ev.final, peer: String(ev.peer) })
        emit({ progressive: seen })
      }
      // finish() on the first answer: nothing more arrives though every peer runs to the last exit.
      const run = idn.infer(service, { shape: inputs[0].shape, data: Float32Array.from(inputs[0].data) }, { npeers, deadlineMs: 5000, exitRule: { criterion: 'lastExit' } })
      let n = 0
      for await (const ev of run) {
        n++
        ev.finish()
      }
      emit({ finish: { events: n, done: run.summary.done, outcomes: run.summary.peers.map((p) => p.outcome) } })
      try {
        idn.infer(service, { shape: [1, 28, 28], data: new Float32Array(3) })
        emit({ bad_input: { code: null, message: 'no error' } })
      } catch (err) {
        emit({ bad_input: { code: err.code ?? null, message: err.message, idnError: err instanceof IdnError } })
      }
    } finally {
      await idn.stop()
    }
    return out
  }, { bootstrap: args.bootstrap.split(','), service: args.service, inputs, npeers: Number(args.npeers), init: Number(args.init) })
  for (const l of lines) emit(l)
  if (args.screenshot) await page.screenshot({ path: args.screenshot, fullPage: true })
  emit({ done: true })
} finally {
  await browser.close()
  server.close()
}
