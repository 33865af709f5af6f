// Drives @idn/client's peer mode in Node for tests/cli/js_peer_test.sh: a js-libp2p peer
// listening on TCP serves a service (its ONNX form fetched by CID over Bitswap from the
// bootstrap node, run with onnxruntime-web), and its answers are compared with the C++ node's
// (which hosts the same package) from a second, client-only node, and from `idn infer
// --provider` (the C++ client dialling the JS peer). Prints one JSON object per line:
//   {"serving":{"name":..,"onnxCid":..,"ms":T,"addresses":[...]}}
//   {"input":K,"rule":"default"|"lastExit","peer":[ev...],"node":[ev...]}   ev: {exit,class,
//       confidence,entropy,operations,final,outputs}
//   {"cpp":{"input":K,"out":"<idn infer's stdout>"}}      idn infer --provider <this peer>
//   {"keep_open":[{id,exits,stream_open,error}, ...]}    two requests on one keep_open stream
//   {"errors":{"shape":{code,message},"unknown":{..},"threshold":{..},"nan":{..}}}
//   {"held":{"cancelled":1,"deadline":{error,message},"busy":[..],"busyCount":1}}
//   {"serve_errors":{"unknown":{code,message},"plain":{code,message}}}
//   {"stopped":{code,message}}                            a request after handle.stop()
//   {"stats":{...}}  {"done":true}
// Usage: node peer_check.mjs --bootstrap MULTIADDR --service ID --inputs A.pgm,B.pgm --idn PATH
//          [--plain-service ID]  (a service published without an ONNX form)
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { emit, parseArgs, readPgm } from './check_util.mjs'
import { createIdn, parseServiceId } from '@idn/client'
import { INFER_PROTOCOL, encodeClientMessage, readMessages, decodeServerMessage, f32Tensor } from '../src/wire.js'

const args = parseArgs({})
const inputs = args.inputs.split(',').map(readPgm)
const run = promisify(execFile)
const err = (e) => ({ code: e.code, message: e.message })

// `hold`, when set, holds every request before each stage (the Cancel, deadline and BUSY checks).
let hold = null
const peer = await createIdn({ bootstrap: [args.bootstrap], listen: ['/ip4/127.0.0.1/tcp/0'], provider: { maxQueue: 2, beforeStage: () => hold } })
const until = async (what, f) => {
  const t0 = Date.now()
  while (!f()) {
    if (Date.now() - t0 > 10000) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}
const client = await createIdn({ bootstrap: [args.bootstrap], providerCacheMs: 0 })
try {
  const t0 = Date.now()
  const handle = await peer.serve(args.service)
  const me = peer.addresses.find((a) => a.includes('/tcp/'))
  emit({ serving: { name: handle.name, onnxCid: handle.onnxCid, ms: Date.now() - t0, addresses: peer.addresses } })

  const events = async (who, input, exitRule) => {
    const out = []
    for await (const ev of client.infer(args.service, input, { npeers: 1, providers: [who], exitRule, deadlineMs: 10000 })) {
      out.push({ exit: ev.exit, class: ev.predicted, confidence: ev.confidence, entropy: ev.entropy, operations: ev.operations, final: ev.final, outputs: Array.from(ev.outputs) })
    }
    return out
  }
  for (const [i, input] of inputs.entries()) {
    for (const [rule, exitRule] of [['default', undefined], ['lastExit', { criterion: 'lastExit' }]]) {
      emit({ input: i, rule, peer: await events(me, input, exitRule), node: await events(args.bootstrap, input, exitRule) })
    }
  }

  // The C++ client dialling this peer directly.
  for (const [i, path] of args.inputs.split(',').entries()) {
    const { stdout } = await run(args.idn, ['infer', '--service', args.service, '--provider', me, '--input', path, '--fanout', '1', '--deadline-ms', '10000'])
    emit({ cpp: { input: i, out: stdout } })
  }

  // keep_open: two requests on one stream, the second inheriting service and rule.
  {
    const stream = await client.libp2p.dialProtocol(peer.libp2p.peerId, INFER_PROTOCOL)
    const reader = readMessages(stream)[Symbol.asyncIterator]()
    const input = f32Tensor(inputs[0].shape, inputs[0].data)
    const finals = []
    stream.send(encodeClientMessage({ request: { request_id: 1, service_id: parseServiceId(args.service).bytes, input, keep_open: true, exit_rule: { criterion: 3 } } }))
    for (let id = 1; id <= 2; id++) {
      if (id === 2) stream.send(encodeClientMessage({ request: { request_id: 2, input } }))
      const got = []
      while (true) {
        const p = decodeServerMessage((await reader.next()).value).progress
        got.push(p.exit_index)
        if (p.final) { finals.push({ id: Number(p.request_id), exits: got, stream_open: p.stream_open, error: p.error }); break }
      }
    }
    await stream.close()
    emit({ keep_open: finals })
  }

  // Bad requests get the C++ provider's errors.
  const errors = {}
  const attempt = async (name, service, input, opts = {}) => {
    try {
      for await (const ev of client.infer(service, input, { npeers: 1, providers: [me], ...opts })) errors[name] = { unexpected: ev.predicted }
    } catch (e) {
      errors[name] = { ...err(e), peers: e.details }
    }
  }
  await attempt('shape', args.service, { shape: [1, 28, 27], data: new Float32Array(756) })
  await attempt('unknown', 'QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG', inputs[0])
  await attempt('threshold', args.service, inputs[0], { exitRule: { criterion: 'confidence', threshold: 1.5 } })
  emit({ errors })

  // Held requests: a Cancel, a passed deadline, a full queue.
  {
    let release
    const base = handle.stats
    hold = new Promise((resolve) => { release = resolve })
    const run = client.infer(args.service, inputs[0], { npeers: 1, providers: [me], deadlineMs: 10000, inactivityMs: 0 })
    const events = (async () => { const out = []; for await (const ev of run) out.push(ev); return out })()
    await until('the held request', () => handle.stats.requests === base.requests + 1)
    run.finish()
    await until('the Cancel', () => handle.stats.cancels === base.cancels + 1)
    release()
    await events
    await until('the cancelled count', () => handle.stats.cancelled === base.cancelled + 1)

    // deadline_ms 200, held past it (a raw stream: no Cancel follows).
    hold = new Promise((resolve) => { release = resolve })
    const stream = await client.libp2p.dialProtocol(peer.libp2p.peerId, INFER_PROTOCOL)
    const sent = Date.now()
    stream.send(encodeClientMessage({ request: { request_id: 7, service_id: parseServiceId(args.service).bytes, input: f32Tensor(inputs[0].shape, inputs[0].data), deadline_ms: 200 } }))
    await until('the deadline', () => Date.now() - sent > 250)
    release()
    const late = decodeServerMessage((await readMessages(stream)[Symbol.asyncIterator]().next()).value).progress
    await stream.close()

    // maxQueue 2: one held, two queued, the fourth is BUSY; then all run.
    hold = new Promise((resolve) => { release = resolve })
    const before = handle.stats.requests
    const four = [0, 1, 2, 3].map((r) => (async () => {
      try {
        let best
        for await (const ev of client.infer(args.service, inputs[0], { npeers: 1, providers: [me], maxAttempts: 1, deadlineMs: 10000, inactivityMs: 0 })) best = ev
        return { class: best.predicted }
      } catch (e) {
        return err(e)
      }
    })())
    await until('four requests', () => handle.stats.requests === before + 4)
    release()
    hold = null
    const after = handle.stats
    emit({
      held: {
        cancelled: after.cancelled - base.cancelled,
        deadline: { error: late.error, message: late.error_message, final: late.final },
        busy: await Promise.all(four),
        busyCount: after.busy - base.busy
      }
    })
  }

  const serveErrors = {}
  try { await peer.serve('QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG') } catch (e) { serveErrors.unknown = err(e) }
  if (args['plain-service']) {
    try { await peer.serve(args['plain-service']) } catch (e) { serveErrors.plain = err(e) }
  }
  try { await peer.serve('not-a-service') } catch (e) { serveErrors.malformed = err(e) }
  emit({ serve_errors: serveErrors })

  const stats = handle.stats
  await handle.stop()
  try {
    for await (const ev of client.infer(args.service, inputs[0], { npeers: 1, providers: [me], deadlineMs: 3000 })) emit({ stopped: { unexpected: ev.predicted } })
  } catch (e) {
    emit({ stopped: err(e) })
  }
  emit({ stats, serving_after_stop: peer.serving })
  emit({ done: true })
} finally {
  await client.stop()
  await peer.stop()
}
