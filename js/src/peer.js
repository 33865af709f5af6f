// Peer mode: this js-libp2p node serves IDN services itself. A served service's descriptor and
// its ONNX form (idn export onnx --publish: one graph per stage and exit head, manifest.json)
// are fetched by CID over Bitswap (blocks.js, every block verified, every file checked against
// the manifest's sha256), run with onnxruntime-web (WASM, one thread), and /idn/infer/1.0.0
// requests are answered as IDN's C++ provider answers them (src/serve/infer_server.cpp):
// one InferProgress per exit reached, the last final; the same exit rule (the package's
// thresholds or the request's), the same calibrated probabilities (softmax(logits /
// temperature), computed here in double precision as the engine does), the same cumulative
// operations, the same errors for a bad request, an unknown service, a full queue, a passed
// deadline or a Cancel; keep_open streams (several requests per stream) are honoured.
// Requests for one service run one at a time (one ONNX session per graph); JavaScript is
// single-threaded, so nothing here needs a lock.
import { base58btc } from 'multiformats/bases/base58'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { loadOrt } from '#ort'
import { BlockFetcher, RAW_CODEC, sha256Hex } from './blocks.js'
import {
  INFER_PROTOCOL, InferError, ExitCriterion, DTYPE_NAMES, readMessages, encodeServerMessage,
  decodeClientMessage, f32Tensor
} from './wire.js'

const SHA2_256 = 0x12
const textDecoder = new TextDecoder()

class ServeError extends Error {
  constructor (code, message) {
    super(message)
    this.name = 'IdnError'
    this.code = code
  }
}

const num = (v) => (typeof v === 'number' ? v : Number(v?.toString() ?? 0))
const shapeText = (shape) => `[${shape.join(', ')}]`

// The engine's (src/model/exit_criteria.cpp) numbers, in the same precision: double sums of
// float probabilities.
export function softmaxWithTemperature (logits, temperature) {
  const out = new Float32Array(logits.length)
  if (logits.length === 0) return out
  const invT = 1 / temperature
  let mx = logits[0]
  for (const v of logits) if (v > mx) mx = v
  const e = new Float64Array(logits.length)
  let sum = 0
  for (let i = 0; i < logits.length; i++) {
    e[i] = Math.exp((logits[i] - mx) * invT)
    out[i] = e[i] // rounded to float, as the engine stores it
    sum += e[i]
  }
  for (let i = 0; i < out.length; i++) out[i] = out[i] / sum
  return out
}

export function confidenceOf (probs) {
  let m = 0
  for (const p of probs) if (p > m) m = p
  return probs.length === 0 ? 0 : m
}

export function normalizedEntropy (probs) {
  if (probs.length < 2) return 0
  let h = 0
  for (const p of probs) if (p > 0) h -= p * Math.log(p)
  return Math.min(1, Math.max(0, h / Math.log(probs.length)))
}

// The request's exit rule as { criterion: 'confidence' | 'entropy' | null (the package's),
// threshold }; throws ServeError INVALID_REQUEST as the C++ server words it.
function mapRule (rule) {
  const criterion = rule?.criterion ?? ExitCriterion.EXIT_CRITERION_MODEL_DEFAULT
  const threshold = rule?.threshold ?? 0
  const names = { 1: 'entropy', 2: 'confidence' }
  switch (criterion) {
    case ExitCriterion.EXIT_CRITERION_MODEL_DEFAULT:
      return { criterion: null, threshold: null }
    case ExitCriterion.EXIT_CRITERION_ENTROPY:
    case ExitCriterion.EXIT_CRITERION_CONFIDENCE:
      if (!Number.isFinite(threshold) || threshold < 0 || threshold > 1) {
        throw new ServeError('INVALID_REQUEST', `exit rule ${names[criterion]}: threshold ${threshold} is outside [0, 1]`)
      }
      return { criterion: names[criterion], threshold }
    case ExitCriterion.EXIT_CRITERION_LAST_EXIT:
      // Confidence never exceeds 1: no early exit meets this, the last exit always answers.
      return { criterion: 'confidence', threshold: 2 }
  }
  throw new ServeError('INVALID_REQUEST', `exit rule: unknown criterion ${criterion}`)
}

function checkF32 (t, what, model) {
  const dtype = t?.dtype ?? 0
  if (dtype !== 0) {
    throw new ServeError('INVALID_REQUEST', what === 'input'
      ? `input dtype ${DTYPE_NAMES[dtype] ?? dtype}, model '${model}' expects F32`
      : `${what} must be F32, got ${DTYPE_NAMES[dtype] ?? dtype}`)
  }
  const shape = (t?.shape ?? []).map(num)
  const bytes = t?.data ?? new Uint8Array(0)
  if (shape.some((d) => d < 0)) throw new ServeError('INVALID_REQUEST', `negative dimension in shape ${shapeText(shape)}`)
  const n = shape.reduce((a, b) => a * b, 1)
  if (n * 4 !== bytes.length) {
    throw new ServeError('INVALID_REQUEST', `tensor of shape ${shapeText(shape)} and dtype F32 needs ${n * 4} bytes, has ${bytes.length}`)
  }
  return shape
}

function sameShape (got, perSample) {
  const eq = (a, off) => perSample.every((d, i) => a[off + i] === d)
  return (got.length === perSample.length && eq(got, 0)) ||
    (got.length === perSample.length + 1 && got[0] === 1 && eq(got, 1))
}

function f32Data (t) {
  const b = t.data
  const out = new Float32Array(b.length / 4)
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength)
  for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(i * 4, true)
  return out
}

// One served service: its manifest and an ONNX session per graph.
class ServedModel {
  constructor ({ serviceId, serviceText, descriptor, manifest, onnxCid, ort, sessions }) {
    this.serviceId = serviceId
    this.serviceText = serviceText
    this.descriptor = descriptor
    this.manifest = manifest
    this.onnxCid = onnxCid
    this.ort = ort
    this.sessions = sessions // "stage_0" -> InferenceSession
    this.name = manifest.model.name
    this.perSample = manifest.input.shape.slice(1)
    this.stageOut = manifest.stages.map((s) => s.outputs[0])
    this.tail = Promise.resolve() // requests run one at a time
    this.beforeStage = null
    this.removed = false
  }

  // The per-request checks of the C++ server's validate(), in its order and words.
  validate (req) {
    const nStages = this.manifest.stages.length
    const start = num(req.start_stage)
    const stopAfter = req.stop_after_stage == null ? null : num(req.stop_after_stage)
    if (start >= nStages) throw new ServeError('INVALID_REQUEST', `start_stage ${start} is outside the model's stages 0..${nStages - 1}`)
    if (stopAfter != null) {
      if (stopAfter >= nStages) throw new ServeError('INVALID_REQUEST', `stop_after_stage ${stopAfter} is outside the model's stages 0..${nStages - 1}`)
      if (stopAfter < start) throw new ServeError('INVALID_REQUEST', `stop_after_stage ${stopAfter} precedes start_stage ${start}`)
    }
    if (start === 0) {
      const shape = checkF32(req.input, 'input', this.name)
      if (!sameShape(shape, this.perSample)) {
        throw new ServeError('INVALID_REQUEST', `input shape ${shapeText(shape)}, model '${this.name}' expects ${shapeText(this.perSample)}`)
      }
      const data = f32Data(req.input)
      if (!data.every(Number.isFinite)) throw new ServeError('INVALID_REQUEST', 'input contains NaN or infinity')
      return { start, stopAfter, data }
    }
    const want = this.stageOut[start - 1].shape.slice(1)
    const shape = checkF32(req.input, `activation entering stage ${start}`, this.name)
    if (!sameShape(shape, want)) {
      throw new ServeError('INVALID_REQUEST', `activation entering stage ${start} has shape ${shapeText(shape)}; model '${this.name}' produces ${shapeText(want)} there`)
    }
    // This peer resumes where every input of the stage is the previous stage's output.
    const from = `stage_${start - 1}`
    if (!this.manifest.stages[start].inputs.every((v) => v.from === from && v.name === this.stageOut[start - 1].name)) {
      throw new ServeError('INVALID_REQUEST', `stage ${start} reads values other than stage ${start - 1}'s output: this peer cannot resume there`)
    }
    const data = f32Data(req.input)
    if (!data.every(Number.isFinite)) throw new ServeError('INVALID_REQUEST', 'activation contains NaN or infinity')
    return { start, stopAfter, data }
  }

  async runGraph (g, tag, values) {
    const feeds = {}
    for (const v of g.inputs) {
      const data = v.from === 'input' ? values.input : values[`${v.from}/${v.name}`]
      if (!data) throw new Error(`${g.file}: input ${v.name} from ${v.from} not computed`)
      feeds[v.name] = new this.ort.Tensor('float32', data, [1, ...v.shape.slice(1)])
    }
    const out = await this.sessions[tag].run(feeds)
    for (const v of g.outputs) {
      const t = out[v.name]
      if (!t) throw new Error(`${g.file}: no output ${v.name}`)
      values[`${tag}/${v.name}`] = t.data
    }
  }

  // Runs one validated request, calling emit(progress) for every exit reached (the last one
  // final) or once with the stage activation (stop_after_stage). keepGoing() is asked before
  // every stage and may throw (deadline, cancel, stop).
  async run ({ start, stopAfter, data }, rule, emit, keepGoing) {
    const m = this.manifest
    const values = {}
    if (start === 0) values.input = data
    else values[`stage_${start - 1}/${this.stageOut[start - 1].name}`] = data
    let ops = 0
    const last = stopAfter ?? m.stages.length - 1
    for (let s = start; s <= last; s++) {
      await this.beforeStage?.(this.serviceText, s)
      keepGoing()
      const tag = `stage_${s}`
      await this.runGraph(m.stages[s], tag, values)
      ops += m.stages[s].flops
      if (stopAfter != null) continue
      for (const ex of m.exits.filter((e) => e.stage === s)) {
        const etag = `exit_${ex.index}`
        await this.runGraph(ex, etag, values)
        ops += ex.flops
        const probs = softmaxWithTemperature(values[`${etag}/logits`], ex.temperature)
        const confidence = confidenceOf(probs)
        const entropy = normalizedEntropy(probs)
        const criterion = rule.criterion ?? ex.criterion
        const threshold = rule.threshold ?? ex.threshold
        const isLast = ex.index === m.exits.length - 1
        const exited = isLast || (criterion === 'confidence' ? confidence >= threshold : entropy <= threshold)
        emit({
          exit_index: ex.index,
          output: f32Tensor([probs.length], probs),
          confidence,
          entropy,
          operations: ops,
          final: exited
        })
        if (exited) return
      }
    }
    if (stopAfter != null) {
      const out = this.stageOut[stopAfter]
      emit({ exit_index: stopAfter, output: f32Tensor(out.shape.slice(1), values[`stage_${stopAfter}/${out.name}`]), operations: ops, final: true })
      return
    }
    throw new Error('the model ended without an answer')
  }

  async release () {
    for (const s of Object.values(this.sessions)) await s.release?.().catch(() => {})
  }
}

// The base58btc service ID text -> its multihash digest (what /idn/infer/1.0.0 carries).
function serviceDigest (text) {
  let digest
  try {
    digest = Digest.decode(base58btc.baseDecode(text))
  } catch (err) {
    throw new ServeError('INVALID_ARGUMENT', `serviceId '${text}' is not a base58btc multihash: ${err.message}`)
  }
  if (digest.code !== SHA2_256) throw new ServeError('INVALID_ARGUMENT', `serviceId '${text}' must be a sha2-256 multihash`)
  return digest
}

function sameList (a, b) {
  return a.length === b.length && a.every((x, i) => x === b[i])
}

// The /idn/infer/1.0.0 provider of one js-libp2p node: the services it serves, the protocol
// handler (installed while at least one is served) and the counters.
export class Provider {
  constructor (libp2p, options = {}) {
    this.libp2p = libp2p
    this.fetcher = new BlockFetcher(libp2p)
    this.services = new Map() // service ID text -> ServedModel
    this.maxQueue = options.maxQueue ?? 64
    this.defaultDeadlineMs = options.defaultDeadlineMs ?? 10000
    this.maxRequestsPerStream = options.maxRequestsPerStream ?? 1000
    this.idleMs = options.streamIdleMs ?? 30000
    // Awaited before each stage a request runs (serviceId, stage): for tests (to hold a
    // request at a known point) and tracing, as the C++ server's before_stage.
    this.beforeStage = options.beforeStage ?? null
    this.waiting = 0 // requests queued behind another one of their service
    this.streams = new Set()
    this.stats = {
      requests: 0, completed: 0, cancelled: 0, busy: 0, invalid: 0, unknown_service: 0,
      deadline_exceeded: 0, failed: 0, receipts: 0, cancels: 0, operations: 0
    }
    this.handling = false
    this.stopping = false
  }

  // Fetches, checks and loads `serviceText`'s ONNX form from `peers` (peer IDs that hold its
  // blocks: the bootstrap nodes by default) and serves it. Returns the ServedModel.
  async add (serviceText, { peers, wasmPaths, onLoaded } = {}) {
    const digest = serviceDigest(serviceText)
    if (this.services.has(serviceText)) return this.services.get(serviceText)
    await this.fetcher.start()
    const where = `service ${serviceText}`
    let descriptor
    try {
      // The descriptor is the raw block whose multihash is the service ID itself (IDN's
      // ModelHost::descriptor_cid): fetching it by CID is checking it.
      const bytes = await this.fetcher.block(CID.createV1(RAW_CODEC, digest), peers)
      descriptor = JSON.parse(textDecoder.decode(bytes))
    } catch (err) {
      throw new ServeError(err.code === 'NOT_FOUND' ? 'NOT_FOUND' : 'UNAVAILABLE', `${where}: its descriptor: ${err.message}`)
    }
    if (descriptor?.format !== 'idn-service') throw new ServeError('INVALID_ARGUMENT', `${where}: the block is not an IDN service descriptor`)
    const onnxText = descriptor.onnx?.cid
    if (typeof onnxText !== 'string') {
      throw new ServeError('FAILED_PRECONDITION', `${where} (${descriptor.name}) has no ONNX form: publish it with \`idn export onnx MODEL_DIR --out DIR --publish\``)
    }
    let onnxCid
    try { onnxCid = CID.parse(onnxText) } catch (err) { throw new ServeError('INVALID_ARGUMENT', `${where}: onnx.cid '${onnxText}': ${err.message}`) }
    let dir, manifest
    const files = {}
    try {
      dir = await this.fetcher.directory(onnxCid, peers)
      if (!dir.has('manifest.json')) throw new Error(`ONNX directory ${onnxText} has no manifest.json`)
      manifest = JSON.parse(textDecoder.decode(await this.fetcher.file(dir.get('manifest.json'), peers)))
      if (manifest?.format !== 'idn-onnx' || manifest.version !== 1) throw new Error('manifest.json is not an idn-onnx version 1 manifest')
      const graphs = [...manifest.stages.map((g) => ['stage', g]), ...manifest.exits.map((g) => ['exit', g])]
      await Promise.all(graphs.map(async ([kind, g]) => {
        if (!dir.has(g.file)) throw new Error(`ONNX directory ${onnxText} has no ${g.file}`)
        const bytes = await this.fetcher.file(dir.get(g.file), peers)
        const sha = sha256Hex(bytes)
        if (sha !== g.sha256) throw new Error(`${g.file}: sha256 ${sha}, manifest.json says ${g.sha256}`)
        files[`${kind}_${g.index}`] = { g, bytes }
      }))
    } catch (err) {
      throw new ServeError(err.code === 'NOT_FOUND' ? 'NOT_FOUND' : 'UNAVAILABLE', `${where}: its ONNX form ${onnxText}: ${err.message}`)
    }
    // The manifest must describe the descriptor's model.
    const d0 = descriptor.inputs?.[0]
    const why = manifest.model?.hash !== descriptor.model?.hash
      ? `manifest.json names model ${manifest.model?.hash}, the descriptor ${descriptor.model?.hash}`
      : !d0 || !sameList(d0.shape, manifest.input.shape.slice(1)) || d0.dtype !== 'F32'
        ? `the descriptor's input is not manifest.json's ${shapeText(manifest.input.shape)}`
        : (descriptor.exits?.length ?? -1) !== manifest.exits.length
            ? `the descriptor lists ${descriptor.exits?.length} exits, manifest.json ${manifest.exits.length}`
            : null
    if (why) throw new ServeError('INVALID_ARGUMENT', `${where}: ${why}`)
    const ort = await loadOrt()
    ort.env.wasm.numThreads = 1
    if (wasmPaths != null) ort.env.wasm.wasmPaths = wasmPaths
    const sessions = {}
    try {
      for (const [tag, { bytes }] of Object.entries(files)) {
        sessions[tag] = await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'], graphOptimizationLevel: 'all' })
      }
    } catch (err) {
      throw new ServeError('INTERNAL', `${where}: onnxruntime-web could not load its graphs: ${err.message ?? err}`)
    }
    const model = new ServedModel({ serviceId: digest, serviceText, descriptor, manifest, onnxCid, ort, sessions })
    model.beforeStage = this.beforeStage
    onLoaded?.(model)
    this.services.set(serviceText, model)
    if (!this.handling) {
      this.handling = true
      this.stopping = false
      await this.libp2p.handle(INFER_PROTOCOL, (stream, connection) => this.serveStream(stream, connection), { runOnLimitedConnection: true })
    }
    return model
  }

  // Stops serving `serviceText`: requests already queued for it are answered UNKNOWN_SERVICE,
  // one running finishes; with no service left the protocol is unhandled.
  async remove (serviceText) {
    const model = this.services.get(serviceText)
    if (!model) return
    model.removed = true
    this.services.delete(serviceText)
    if (this.services.size === 0 && this.handling) {
      this.handling = false
      await this.libp2p.unhandle(INFER_PROTOCOL)
    }
    await model.tail.catch(() => {})
    await model.release()
  }

  async stop () {
    this.stopping = true
    for (const s of [...this.services.keys()]) await this.remove(s)
    for (const s of this.streams) s.abort(new Error('the server is stopping'))
    await this.fetcher.stop()
  }

  count (code) {
    const key = { NONE: 'completed', CANCELLED: 'cancelled', BUSY: 'busy', INVALID_REQUEST: 'invalid', UNKNOWN_SERVICE: 'unknown_service', DEADLINE_EXCEEDED: 'deadline_exceeded' }[code] ?? 'failed'
    this.stats[key]++
  }

  // One /idn/infer/1.0.0 stream: a request (or, with keep_open, several in turn), Cancels and
  // Receipts, read as they come; answers written as they are made.
  serveStream (stream, connection) {
    this.streams.add(stream)
    const peer = connection?.remotePeer?.toString() ?? 'unknown peer'
    const inbox = []
    let wake = null
    let ended = false
    let current = null // { id, cancelled }
    const early = new Set() // Cancels for requests not started yet
    const notify = () => { if (wake) { const w = wake; wake = null; w() } }
    ;(async () => {
      for await (const bytes of readMessages(stream)) {
        const m = decodeClientMessage(bytes)
        if (m.request) inbox.push(m.request)
        else if (m.cancel) {
          this.stats.cancels++
          const id = num(m.cancel.request_id)
          if (current && id === current.id) current.cancelled = 'cancelled by the requester'
          else early.add(id)
        } else if (m.receipt) this.stats.receipts++
        notify()
      }
    })().catch(() => {
      // Reset (or a malformed message): nobody waits for the answer any more.
      if (current) current.cancelled = 'the stream failed'
    }).finally(() => { ended = true; notify() })
    const next = (ms) => new Promise((resolve) => {
      if (inbox.length > 0 || ended) { resolve(); return }
      const timer = setTimeout(() => { wake = null; resolve() }, ms)
      wake = () => { clearTimeout(timer); resolve() }
    })
    const send = (progress) => {
      if (!stream.send(encodeServerMessage({ progress }))) return stream.onDrain()
    }
    ;(async () => {
      let first = null
      let keepOpen = false
      for (let served = 0; ; served++) {
        if (inbox.length === 0) await next(this.idleMs)
        const req = inbox.shift()
        if (req == null) break // the requester closed, or stayed idle past the limit
        if (first == null) {
          first = req
          keepOpen = req.keep_open === true
        } else {
          // A later request inherits what it leaves unset from the stream's first.
          if (!req.service_id?.length) req.service_id = first.service_id
          if (req.exit_rule == null) req.exit_rule = first.exit_rule
          if (!req.deadline_ms) req.deadline_ms = first.deadline_ms
        }
        const id = num(req.request_id)
        current = { id, cancelled: early.delete(id) ? 'cancelled by the requester' : null }
        const more = keepOpen && served + 1 < this.maxRequestsPerStream && !this.stopping
        await this.answer(req, current, async (p) => {
          p.request_id = req.request_id
          if (p.final && more) p.stream_open = true
          await send(p)
        })
        current = null
        if (!more) break
      }
    })().catch(() => stream.abort(new Error('infer stream failed')))
      .finally(async () => {
        this.streams.delete(stream)
        await stream.close().catch(() => stream.abort(new Error('close failed')))
      })
  }

  // Answers one request: every exit reached as it is reached (the last one final), or one
  // final error, through emit(progress).
  async answer (req, current, emit) {
    this.stats.requests++
    const error = (code, message, extra = {}) => {
      this.count(code)
      return emit({ error: InferError[`INFER_ERROR_${code}`], error_message: message, final: true, ...extra })
    }
    const received = Date.now()
    let digest
    try {
      digest = Digest.decode(req.service_id ?? new Uint8Array(0))
    } catch (err) {
      return error('INVALID_REQUEST', `service_id is not a multihash: ${err.message}`)
    }
    if (this.stopping) return error('CANCELLED', 'the server is stopping')
    const sid = base58btc.baseEncode(digest.bytes)
    const model = this.services.get(sid)
    if (!model) return error('UNKNOWN_SERVICE', `service ${sid} is not hosted here`)
    let rule, job
    try {
      rule = mapRule(req.exit_rule)
      job = model.validate(req)
    } catch (err) {
      return error(err.code ?? 'INVALID_REQUEST', err.message)
    }
    if (this.waiting >= this.maxQueue) {
      const retry = 10 * (this.waiting + 1)
      return error('BUSY', `${this.maxQueue} requests already queued; retry in about ${retry} ms`, { retry_after_ms: retry })
    }
    const deadlineMs = num(req.deadline_ms) > 0 ? num(req.deadline_ms) : this.defaultDeadlineMs
    const deadline = received + deadlineMs
    const keepGoing = () => {
      if (this.stopping) throw new ServeError('CANCELLED', 'the server is stopping')
      if (model.removed) throw new ServeError('UNKNOWN_SERVICE', `service ${sid} is no longer hosted here`)
      if (current.cancelled) throw new ServeError('CANCELLED', current.cancelled)
      if (Date.now() >= deadline) throw new ServeError('DEADLINE_EXCEEDED', `deadline of ${deadlineMs} ms passed before an answer`)
    }
    this.waiting++
    const turn = model.tail.then(async () => {
      this.waiting--
      let ops = 0
      let sending = Promise.resolve()
      try {
        await model.run(job, rule, (p) => {
          ops = p.operations
          sending = sending.then(() => emit(p))
        }, keepGoing)
        await sending
        this.count('NONE')
        this.stats.operations += ops
      } catch (err) {
        await sending.catch(() => {})
        const code = err instanceof ServeError ? err.code : 'INTERNAL'
        await error(code, err instanceof ServeError ? err.message : `inference failed: ${err.message ?? err}`)
      }
    })
    model.tail = turn.catch(() => {})
    await turn
  }
}
