// Drives @idn/client against running `idn node`s for tests/cli/js_client_test.sh. Prints one
// JSON object per line on stdout:
//   {"input":K,"class":C,"exit":E,"confidence":X,"events":N,"final":true,"asked":[peer...]}
//                                                            per input image, in order
//   {"finish":{"events":N,"done":true,"outcomes":[...]}}    finish() on the first answer
//   {"unknown":{"code":"NOT_FOUND","message":"..."}}        a service nobody provides
//   {"unknown_direct":{"code":"UNKNOWN_SERVICE",...}}       the same asked of the bootstrap node
//   {"init":{"hosting":2,"declined":[],"unknown_declined":[{peer,reason}],...}}   initModel
//   {"bad_input":{"code":"INVALID_ARGUMENT","message":"..."}}
//   {"done":true}
//   {"ws":{"class":C,"exit":E,"confidence":X,"asked":[...],"remote":[addr...]}}  with --ws-bootstrap
// Usage: node infer_check.mjs --bootstrap MULTIADDR --service ID --inputs A.pgm,B.pgm [--npeers 2]
//          [--ws-bootstrap /ip4/.../tcp/P/ws/p2p/ID]  (input 0 again over WebSockets only)
//   Inputs: 8-bit binary PGM (P5) images, sent as [1, H, W] f32 pixel / 255, as `idn infer
//   --input` reads them.
import { emit, parseArgs, readPgm } from './check_util.mjs'
import { createHash } from 'node:crypto'
import { base58btc } from 'multiformats/bases/base58'
import { createIdn, IdnError } from '@idn/client'

const args = parseArgs({ npeers: 2 })
const inputs = args.inputs.split(',').map(readPgm)

const idn = await createIdn({ bootstrap: [args.bootstrap] })
try {
  const npeers = Number(args.npeers)
  for (const [i, input] of inputs.entries()) {
    const events = []
    const run = idn.infer(args.service, input, { npeers, deadlineMs: 5000 })
    for await (const ev of run) events.push(ev)
    const best = events[events.length - 1]
    emit({ input: i, class: best.predicted, exit: best.exit, confidence: best.confidence, events: events.length, final: best.final, asked: run.summary.peers.map((p) => p.peer) })
  }

  // finish() on the first answer: nothing more arrives, even though every peer was asked to run
  // to the last exit.
  const run = idn.infer(args.service, inputs[0], { npeers, deadlineMs: 5000, exitRule: { criterion: 'lastExit' } })
  let n = 0
  for await (const ev of run) {
    n++
    ev.finish()
  }
  emit({ finish: { events: n, done: run.summary.done, outcomes: run.summary.peers.map((p) => p.outcome) } })

  const unknown = base58btc.encode(Uint8Array.from([0x12, 0x20, ...createHash('sha256').update('no such service').digest()])).slice(1)
  try {
    for await (const ev of idn.infer(unknown, inputs[0], { npeers, deadlineMs: 3000 })) emit({ unexpected: ev.peer })
    emit({ unknown: { code: null, message: 'no error' } })
  } catch (err) {
    emit({ unknown: { code: err instanceof IdnError ? err.code : null, message: err.message } })
  }

  // Asked directly (the providers option), a node that does not serve it says so.
  try {
    for await (const ev of idn.infer(unknown, inputs[0], { npeers: 1, deadlineMs: 3000, providers: [args.bootstrap] })) emit({ unexpected: ev.peer })
    emit({ unknown_direct: { code: null, message: 'no error' } })
  } catch (err) {
    emit({ unknown_direct: { code: err.code ?? null, message: err.message } })
  }

  // initModel (InitRequest on /idn/swap/1.0.0): both nodes host the service already; a node
  // asked for a service it does not know declines with its reason.
  const init = await idn.initModel(args.service, { npeers: 2, deadlineMs: 5000 })
  const initUnknown = await idn.initModel(unknown, { npeers: 1, deadlineMs: 5000 })
  emit({ init: { hosting: init.hosting.length, declined: init.declined, unknown_declined: initUnknown.declined, unknown_hosting: initUnknown.hosting.length } })

  try {
    idn.infer(args.service, { shape: [1, 28, 28], data: new Float32Array(3) })
    emit({ bad_input: { code: null, message: 'no error' } })
  } catch (err) {
    emit({ bad_input: { code: err.code, message: err.message } })
  }
  // The browser's transport: WebSockets only, bootstrap and providers on their /ws addresses.
  if (args['ws-bootstrap']) {
    const { webSockets } = await import('@libp2p/websockets')
    const ws = await createIdn({ bootstrap: [args['ws-bootstrap']], transports: [webSockets()] })
    try {
      const events = []
      const run = ws.infer(args.service, inputs[0], { npeers, deadlineMs: 5000 })
      for await (const ev of run) events.push(ev)
      const best = events[events.length - 1]
      emit({ ws: { class: best.predicted, exit: best.exit, confidence: best.confidence, asked: run.summary.peers.map((p) => p.peer), outcomes: run.summary.peers.map((p) => `${p.outcome} ${p.detail}`), remote: ws.libp2p.getConnections().map((c) => c.remoteAddr.toString()) } })
    } finally {
      await ws.stop()
    }
  }
  emit({ done: true })
} finally {
  await idn.stop()
}
