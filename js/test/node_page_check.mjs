// Drives the node's own page (/, src/node/web/index.html) in headless Chromium (Debian's, through
// playwright-core) against `idn demo --serve`: the page shows the node's
// peer ID and its peers, picks a test image, asks the network and shows the progressive answers
// ending in a final one that equals the gateway's JSON answer for the same image; a drawing is
// sent as a PNG and answered too; the live chart gets points. With --tab-peer 1 (the node serves
// the browser bundle: --web-dir) the page's "serve it from this tab" button makes the tab a peer
// behind the node's relay, and requests fanned out to every provider reach it and are answered.
// Prints one JSON line per check.
// Usage: node node_page_check.mjs --url http://127.0.0.1:PORT/?service=ID
//        [--screenshot FILE] [--tab-peer 1]
import { chromium } from 'playwright-core'
import { emit, parseArgs } from './check_util.mjs'

const args = parseArgs({})
const base = new URL(args.url)
const service = base.searchParams.get('service')

// The reference answer: the gateway's JSON answer for test image 0.
const samples = await (await fetch(new URL('/idn/demo/samples.json', base))).json()
const s0 = samples.samples[0]
const ref = await (await fetch(new URL(`/idn/v1/services/${service}/infer`, base), {
  method: 'POST',
  headers: { 'Content-Type': 'application/json' },
  body: JSON.stringify({ input: { shape: s0.shape, data: s0.data }, fanout: 2, deadline_ms: 5000 })
})).json()
const status = await (await fetch(new URL('/status', base))).json()
emit({ reference: { class: ref.class, exit: ref.exit, confidence: ref.confidence }, peer_id: status.peer_id })

const browser = await chromium.launch({
  executablePath: process.env.IDN_CHROMIUM ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync']
})
let failed = false
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } })
  page.on('console', (m) => { if (m.type() === 'error') process.stderr.write(`page console: ${m.text()}\n`) })
  page.on('pageerror', (e) => { failed = true; process.stderr.write(`page error: ${e.message}\n`) })
  await page.goto(args.url)

  // Status: the node's ID, its peers (the demo's providers), the service from the URL.
  await page.waitForFunction((id) => document.getElementById('peer-id').textContent === id, status.peer_id, { timeout: 10000 })
  await page.waitForFunction(() => document.querySelectorAll('#peers tbody tr td span[title^="12D3"]').length > 0, null, { timeout: 10000 })
  emit({
    peers_shown: await page.$$eval('#peers tbody tr td span[title^="12D3"]', (xs) => xs.map((x) => x.title)),
    service_field: await page.inputValue('#service')
  })

  // A test image: progressive answers, the last one final and equal to the gateway's.
  await page.waitForFunction(() => document.querySelectorAll('#samples canvas').length > 0, null, { timeout: 10000 })
  emit({ samples_shown: await page.$$eval('#samples canvas', (xs) => xs.length) })
  await page.click('#samples canvas:first-child')
  await page.click('#ask')
  await page.waitForFunction(() => document.querySelector('#answers tbody tr.final') && !document.getElementById('ask').disabled, null, { timeout: 15000 })
  const rows = await page.$$eval('#answers tbody tr', (trs) => trs.map((tr) => ({
    final: tr.classList.contains('final'),
    peer: tr.children[1].querySelector('span').title,
    exit: Number(tr.children[2].textContent),
    class: tr.children[3].textContent,
    confidence: Number(tr.children[4].querySelector('.bar').title)
  })))
  emit({ sample_answers: rows, head: await page.textContent('#answer-head') })

  // A drawing: sent as a PNG through the gateway's image path.
  const pad = await page.$('#pad')
  const box = await pad.boundingBox()
  await page.click('#clear')
  await page.mouse.move(box.x + 60, box.y + 40)
  await page.mouse.down()
  for (const [x, y] of [[160, 40], [170, 190], [50, 190], [60, 40]]) await page.mouse.move(box.x + x, box.y + y, { steps: 8 })
  await page.mouse.up()
  await page.click('#ask')
  await page.waitForFunction(() => document.querySelector('#answers tbody tr.final') && !document.getElementById('ask').disabled, null, { timeout: 15000 })
  emit({ drawing_answers: await page.$$eval('#answers tbody tr', (trs) => trs.length), head: await page.textContent('#answer-head') })

  // A bad service ID: a clear error in the page, not an exception.
  await page.fill('#service', 'QmNotAServiceId')
  await page.click('#ask')
  await page.waitForFunction(() => document.querySelector('#answer-head .err'), null, { timeout: 10000 })
  emit({ bad_service: await page.textContent('#answer-head') })
  await page.fill('#service', service)

  // The live chart: two metric refreshes give it a point per series.
  await page.waitForFunction(() => document.getElementById('chart-legend').textContent.includes('requests served'), null, { timeout: 10000 })
  emit({ chart: await page.textContent('#chart-legend') })
  if (args['tab-peer'] === '1') {
    await page.click('#peer')
    await page.waitForFunction(() => window.idnTabPeer || document.querySelector('#peer-state .err'), null, { timeout: 60000 })
    const state = await page.textContent('#peer-state')
    emit({ tab_peer: state })
    if (await page.evaluate(() => !window.idnTabPeer)) throw new Error('the tab did not become a peer: ' + state)
    // Every provider is asked (fan-out 4 of 3 nodes + the tab): the tab's share arrives relayed.
    let answered = 0
    for (let i = 0; i < 8; i++) {
      const t = samples.samples[i]
      const r = await fetch(new URL(`/idn/v1/services/${service}/infer`, base), {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ input: { shape: t.shape, data: t.data }, fanout: 4, deadline_ms: 5000 })
      })
      if (r.ok) answered++
    }
    // Every request asked the tab too (fan-out covers every provider), so it answered some.
    await page.waitForFunction(() => window.idnTabPeer.serving.stats.completed > 0, null, { timeout: 10000 })
    emit({ tab_peer_stats: await page.evaluate(() => ({ ...window.idnTabPeer.serving.stats })), gateway_answered: answered })
  }
  // For the screenshot: a test image's answers on screen.
  await page.click('#samples canvas:nth-child(2)')
  await page.click('#ask')
  await page.waitForFunction(() => document.querySelector('#answers tbody tr.final') && !document.getElementById('ask').disabled, null, { timeout: 15000 })
  if (args['tab-peer'] === '1') {
    // The tab's own line counts what it served.
    await page.waitForFunction(() => / [1-9][0-9]* answered/.test(document.getElementById('peer-state').textContent), null, { timeout: 10000 })
    emit({ tab_peer_line: await page.textContent('#peer-state') })
  }
  if (args.screenshot) await page.screenshot({ path: args.screenshot, fullPage: true })
  emit({ done: !failed })
} finally {
  await browser.close()
}
