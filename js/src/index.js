// @idn/client: IDN inference from JavaScript (Node or, with the websockets transport, a browser).
// createIdn() starts a js-libp2p node (noise, yamux, identify, ping, kad-dht in client mode) and
// dials the bootstrap peers; infer() finds a service's providers through them (GET_PROVIDERS on
// /ipfs/kad/1.0.0, which an IDN node answers from its own routing), asks `npeers` of them at
// once on /idn/infer/1.0.0 and yields every improving answer, as IDN's C++ client does
// (src/client/session.h): a later exit, or the same exit with higher confidence. The request
// completes with the first final answer, finish(), or the deadline; peers still working get a
// Cancel. A peer that fails is replaced by the next provider, up to maxAttempts.
import './polyfill.js'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { identify } from '@libp2p/identify'
import { kadDHT, passthroughMapper } from '@libp2p/kad-dht'
import { peerIdFromString } from '@libp2p/peer-id'
import { ping } from '@libp2p/ping'
import { multiaddr, isMultiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { base58btc } from 'multiformats/bases/base58'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { defaultTransports, defaultConnectionGater } from '#transports'
import { Provider } from './peer.js'
import {
  INFER_PROTOCOL, INFER_ERROR_NAMES, InferError, ExitCriterion, encodeClientMessage,
  readMessages, decodeServerMessage, f32Tensor, f32FromTensor, SWAP_PROTOCOL, MAX_SWAP_MESSAGE,
  encodeSwapMessage, decodeSwapMessage
} from './wire.js'

export { INFER_PROTOCOL, SWAP_PROTOCOL }
export const KAD_PROTOCOL = '/ipfs/kad/1.0.0'
const RAW_CODEC = 0x55
const SHA2_256 = 0x12

// Every error this package throws. `code` is one of: INVALID_ARGUMENT, UNAVAILABLE (no
// bootstrap peer reachable, every provider failed), NOT_FOUND (no provider of the service),
// UNKNOWN_SERVICE (providers asked do not serve it), DEADLINE_EXCEEDED, CANCELLED, STOPPED.
export class IdnError extends Error {
  constructor (code, message, details = undefined) {
    super(message)
    this.name = 'IdnError'
    this.code = code
    if (details !== undefined) this.details = details
  }
}

// A service descriptor an InitRequest may carry (the C++ side's ise::kMaxDescriptorBytes).
const MAX_DESCRIPTOR_BYTES = 64 * 1024

function invalid (message) {
  return new IdnError('INVALID_ARGUMENT', message)
}

// A base58btc sha2-256 multihash (what `idn publish` prints as "service"), as bytes.
export function parseServiceId (text) {
  if (typeof text !== 'string' || text.length === 0) {
    throw invalid('serviceId must be a non-empty string (the base58btc multihash `idn publish` prints)')
  }
  let bytes
  try {
    bytes = base58btc.baseDecode(text)
  } catch (err) {
    throw invalid(`serviceId '${text}' is not base58btc: ${err.message}`)
  }
  let digest
  try {
    digest = Digest.decode(bytes)
  } catch (err) {
    throw invalid(`serviceId '${text}' is not a multihash: ${err.message}`)
  }
  if (digest.code !== SHA2_256) {
    throw invalid(`serviceId '${text}' must be a sha2-256 multihash, got code 0x${digest.code.toString(16)}`)
  }
  return digest
}

function parseAddr (a, what) {
  let ma
  try {
    ma = isMultiaddr(a) ? a : multiaddr(a)
  } catch (err) {
    throw invalid(`${what}: '${a}' is not a multiaddr: ${err.message}`)
  }
  if (!ma.getComponents().some((c) => c.name === 'p2p')) {
    throw invalid(`${what}: '${ma.toString()}' must end in /p2p/<peer id>`)
  }
  return ma
}

function positiveInt (v, name) {
  if (!Number.isInteger(v) || v <= 0) throw invalid(`${name} must be a positive integer, got ${v}`)
  return v
}

function checkInput (input) {
  if (input == null || typeof input !== 'object') {
    throw invalid('input must be { shape: number[], data: Float32Array | number[] }')
  }
  const { shape, data } = input
  if (!Array.isArray(shape) || shape.length === 0 || !shape.every((d) => Number.isInteger(d) && d > 0)) {
    throw invalid(`input.shape must be a non-empty array of positive integers, got ${JSON.stringify(shape)}`)
  }
  if (!(data instanceof Float32Array) && !Array.isArray(data)) {
    throw invalid('input.data must be a Float32Array or an array of numbers')
  }
  const numel = shape.reduce((a, b) => a * b, 1)
  if (data.length !== numel) {
    throw invalid(`input.data has ${data.length} values, shape [${shape.join(', ')}] needs ${numel}`)
  }
  for (let i = 0; i < data.length; i++) {
    if (typeof data[i] !== 'number' || !Number.isFinite(data[i])) {
      throw invalid(`input.data[${i}] is not a finite number`)
    }
  }
  return f32Tensor(shape, data)
}

function exitRule (opts) {
  if (opts.exitRule == null) return undefined
  const { criterion, threshold } = opts.exitRule
  const names = { modelDefault: 'EXIT_CRITERION_MODEL_DEFAULT', entropy: 'EXIT_CRITERION_ENTROPY', confidence: 'EXIT_CRITERION_CONFIDENCE', lastExit: 'EXIT_CRITERION_LAST_EXIT' }
  if (!(criterion in names)) throw invalid(`exitRule.criterion must be one of ${Object.keys(names).join(', ')}`)
  if (threshold !== undefined && (typeof threshold !== 'number' || !Number.isFinite(threshold))) {
    throw invalid('exitRule.threshold must be a finite number')
  }
  return { criterion: ExitCriterion[names[criterion]], threshold: threshold ?? 0 }
}

function argmax (xs) {
  let best = -1
  for (let i = 0; i < xs.length; i++) if (best < 0 || xs[i] > xs[best]) best = i
  return best
}

let nextRequestId = Math.floor(Math.random() * 0x7fffffff) * 1024

// One request in flight: an async iterable of improving answers.
class InferRun {
  constructor (idn, service, tensor, opts) {
    this.idn = idn
    this.service = service
    this.tensor = tensor
    this.opts = opts
    this.requestId = ++nextRequestId
    this.started = Date.now()
    this.queue = []
    this.wake = null
    this.done = false
    this.error = null
    this.best = null
    this.answers = 0
    this.peers = [] // { peer, outcome, detail, stream, answers, operations, lastExit }
    this.candidates = []
    this.attempts = 0
    this.controller = new AbortController()
    this.timer = setTimeout(() => this.complete(this.best ? null : new IdnError('DEADLINE_EXCEEDED',
      `no answer for service ${opts.serviceText} within ${opts.deadlineMs} ms${this.peerSummary()}`)),
    opts.deadlineMs)
    this.start().catch((err) => this.complete(err))
  }

  peerSummary () {
    if (this.peers.length === 0) return ''
    return ' (' + this.peers.map((p) => `${p.peer}: ${p.outcome}${p.detail ? ' ' + p.detail : ''}`).join('; ') + ')'
  }

  async start () {
    const want = Math.min(this.opts.npeers + this.opts.maxAttempts, 20)
    const cached = this.opts.providers == null ? this.idn.cachedProviders(this.opts.serviceText) : null
    this.candidates = cached ?? await this.idn.findProviders(this.service, want, {
      signal: this.controller.signal,
      providers: this.opts.providers,
      timeoutMs: this.opts.deadlineMs
    })
    if (cached == null && this.opts.providers == null) this.idn.cacheProviders(this.opts.serviceText, this.candidates)
    if (this.done) return
    if (this.candidates.length === 0) {
      this.complete(new IdnError('NOT_FOUND', `no provider of service ${this.opts.serviceText} found through ${this.idn.bootstrapText()}`))
      return
    }
    for (let i = 0; i < this.opts.npeers; i++) this.askNext()
  }

  askNext () {
    if (this.done) return
    if (this.attempts >= this.opts.maxAttempts || this.candidates.length === 0) {
      if (!this.peers.some((p) => p.outcome === 'running')) this.allFailed()
      return
    }
    this.attempts++
    const peer = this.candidates.shift()
    const rec = { peer: peer.toString(), peerId: peer, outcome: 'running', detail: '', stream: null, answers: 0, operations: 0, lastExit: -1 }
    this.peers.push(rec)
    this.armInactivity(rec)
    this.runPeer(rec).catch((err) => this.peerFailed(rec, 'error', err.message))
  }

  allFailed () {
    if (this.done) return
    if (this.best) { this.complete(null); return }
    const codes = this.peers.map((p) => p.code)
    const code = codes.length > 0 && codes.every((c) => c === 'UNKNOWN_SERVICE') ? 'UNKNOWN_SERVICE' : 'UNAVAILABLE'
    const what = code === 'UNKNOWN_SERVICE' ? 'the providers asked do not serve' : 'every provider asked failed for'
    this.complete(new IdnError(code, `${what} service ${this.opts.serviceText}${this.peerSummary()}`))
  }

  peerFailed (rec, outcome, detail, code = undefined) {
    if (rec.outcome !== 'running') return
    clearTimeout(rec.inactivity)
    rec.outcome = outcome
    rec.detail = detail
    rec.code = code
    if (code === 'UNKNOWN_SERVICE') this.idn.forgetProvider(this.opts.serviceText, rec.peer)
    this.closeStream(rec, false)
    this.askNext()
  }

  async runPeer (rec) {
    // Bounded by the deadline, not aborted when the request completes (see stop()): a stream
    // that opens after that is closed at once below.
    const stream = await this.idn.openInfer(rec.peerId, AbortSignal.timeout(this.opts.deadlineMs))
    rec.stream = stream
    // Completed, or replaced for its silence, while the stream opened: nothing was asked.
    if (this.done || rec.outcome !== 'running') { this.closeStream(rec, false); return }
    const request = {
      request_id: this.requestId,
      service_id: this.service.bytes,
      input: this.tensor,
      deadline_ms: Math.max(1, this.opts.deadlineMs - (Date.now() - this.started))
    }
    const rule = exitRule(this.opts)
    if (rule) request.exit_rule = rule
    await this.send(stream, { request })
    for await (const bytes of readMessages(stream)) {
      if (rec.outcome !== 'running') return
      let p
      try {
        p = decodeServerMessage(bytes).progress
      } catch (err) {
        this.peerFailed(rec, 'malformed', `undecodable answer: ${err.message}`)
        return
      }
      if (p == null) { this.peerFailed(rec, 'malformed', 'a server message without progress'); return }
      if (Number(p.request_id) !== this.requestId) { this.peerFailed(rec, 'malformed', `answer for request ${p.request_id}`); return }
      if (p.error !== InferError.INFER_ERROR_NONE) {
        const name = INFER_ERROR_NAMES[p.error] ?? String(p.error)
        this.peerFailed(rec, name === 'BUSY' ? 'busy' : 'error', `${name}${p.error_message ? ': ' + p.error_message : ''}`, name)
        return
      }
      this.armInactivity(rec)
      this.onAnswer(rec, p)
      if (p.final || rec.outcome !== 'running') return
    }
    this.peerFailed(rec, 'vanished', 'the stream ended before a final answer')
  }

  onAnswer (rec, p) {
    const outputs = p.output ? f32FromTensor(p.output) : null
    const shape = (p.output?.shape ?? []).map(Number)
    const numel = shape.reduce((a, b) => a * b, 1)
    const why =
      p.output == null || p.output.dtype !== 0 ? 'an answer that is not an F32 tensor'
        : outputs == null || outputs.length === 0 || outputs.length !== numel ? 'an answer whose data does not match its shape'
          : !outputs.every(Number.isFinite) ? 'an answer with non-finite scores'
            : !(p.confidence >= 0 && p.confidence <= 1) ? `confidence ${p.confidence} outside [0, 1]`
                : p.exit_index < rec.lastExit ? 'an exit index going backwards' : null
    if (why) { this.peerFailed(rec, 'malformed', why); return }
    rec.answers++
    rec.lastExit = p.exit_index
    rec.operations = Number(p.operations)
    this.answers++
    const final = p.final === true
    if (final) rec.outcome = 'answered'
    const improves = this.best == null || p.exit_index > this.best.exit ||
      (p.exit_index === this.best.exit && p.confidence > this.best.confidence)
    if (improves && !this.done) {
      const ev = {
        outputs,
        shape,
        predicted: argmax(outputs),
        confidence: p.confidence,
        entropy: p.entropy,
        exit: p.exit_index,
        peer: rec.peer,
        final,
        operations: rec.operations,
        latencyMs: Date.now() - this.started,
        finish: () => this.finish()
      }
      this.best = ev
      this.push(ev)
    }
    if (final) {
      this.sendReceipt(rec)
      this.closeStream(rec, false)
      this.complete(null)
    } else if (this.opts.finishConfidence != null && p.confidence >= this.opts.finishConfidence) {
      this.complete(null)
    }
  }

  async send (stream, body) {
    if (!stream.send(encodeClientMessage(body))) await stream.onDrain()
  }

  sendReceipt (rec) {
    if (rec.answers === 0 || rec.stream == null || rec.receipted) return
    rec.receipted = true
    const receipt = {
      request_id: this.requestId,
      service_id: this.service.bytes,
      operations: rec.operations,
      server: rec.peerId.toMultihash().bytes,
      signer: this.idn.libp2p.peerId.toMultihash().bytes,
      unix_ms: Date.now()
    }
    this.send(rec.stream, { receipt }).catch(() => {})
  }

  // A peer silent for inactivityMs (from when it was chosen, then since its last answer) is
  // replaced by the next provider, as IDN's C++ session does.
  armInactivity (rec) {
    clearTimeout(rec.inactivity)
    const ms = this.opts.inactivityMs
    if (!ms || rec.outcome !== 'running') return
    rec.inactivity = setTimeout(() => this.peerFailed(rec, 'timed-out', `silent for ${ms} ms`), ms)
  }

  // Closes our side; a stream still open after the grace period is aborted.
  closeStream (rec, cancel) {
    clearTimeout(rec.inactivity)
    const s = rec.stream
    if (s == null || rec.closed) return
    rec.closed = true
    const work = async () => {
      if (cancel) {
        await this.send(s, { cancel: { request_id: this.requestId } })
        this.sendReceipt(rec)
      }
      await s.close()
    }
    const grace = setTimeout(() => s.abort(new Error('cancelled')), 1000)
    work().catch(() => s.abort(new Error('cancelled'))).finally(() => clearTimeout(grace))
  }

  push (ev) {
    this.queue.push(ev)
    this.signal()
  }

  signal () {
    if (this.wake) { const w = this.wake; this.wake = null; w() }
  }

  complete (error) {
    if (this.done) return
    this.done = true
    this.error = error
    clearTimeout(this.timer)
    this.controller.abort()
    for (const rec of this.peers) {
      if (rec.outcome === 'running') {
        rec.outcome = 'finished-early'
        this.closeStream(rec, true)
      }
    }
    this.signal()
  }

  // Stops the request: peers still working get a Cancel, answers not yet taken are dropped,
  // iteration ends. Idempotent.
  finish () {
    this.queue.length = 0
    this.complete(null)
  }

  get summary () {
    return {
      done: this.done,
      best: this.best,
      answers: this.answers,
      error: this.error,
      peers: this.peers.map(({ peer, outcome, detail, answers, operations }) => ({ peer, outcome, detail, answers, operations }))
    }
  }

  [Symbol.asyncIterator] () { return this }

  async next () {
    while (true) {
      if (this.queue.length > 0) return { value: this.queue.shift(), done: false }
      if (this.done) {
        if (this.error) { const e = this.error; this.error = null; throw e }
        return { value: undefined, done: true }
      }
      await new Promise((resolve) => { this.wake = resolve })
    }
  }

  async return () {
    this.finish()
    return { value: undefined, done: true }
  }
}

class Idn {
  constructor (libp2p, bootstrap, options) {
    this.libp2p = libp2p
    this.bootstrap = bootstrap // [{ addr, peerId }]
    this.options = options
    this.stopped = false
    this.dials = new Set() // infer streams being opened
    this.providerCache = new Map() // service ID text -> { peers, expires }
  }

  get peerId () { return this.libp2p.peerId.toString() }

  // The multiaddrs this node listens on (createIdn's `listen`), each ending in /p2p/<id>.
  get addresses () { return this.libp2p.getMultiaddrs().map((a) => a.toString()) }

  // Peer mode: serves `serviceId` from this node. Fetches the service's descriptor and its
  // ONNX form by CID over Bitswap from `options.peers` (multiaddrs ending in /p2p/<id>; default
  // the bootstrap peers), checks every block against its CID and every graph against
  // manifest.json's sha256, loads the graphs with onnxruntime-web (WASM, one thread;
  // `options.wasmPaths` says where a browser finds its .wasm files) and answers
  // /idn/infer/1.0.0 requests as IDN's C++ provider does. Resolves once it serves, with a
  // handle: { serviceId, name, onnxCid, manifest, stats, stop() }. Throws IdnError:
  // INVALID_ARGUMENT (malformed service ID or option, a descriptor or manifest that do not
  // agree), NOT_FOUND (no peer asked has its blocks), FAILED_PRECONDITION (published without
  // an ONNX form), UNAVAILABLE, INTERNAL (onnxruntime-web could not load a graph).
  async serve (serviceId, options = {}) {
    if (this.stopped) throw new IdnError('STOPPED', 'this Idn was stopped')
    parseServiceId(serviceId)
    if (options == null || typeof options !== 'object') throw invalid('serve options must be an object')
    let peers = this.bootstrap.map((b) => b.peerId)
    if (options.peers != null) {
      if (!Array.isArray(options.peers) || options.peers.length === 0) throw invalid('serve: peers must be a non-empty array of multiaddrs')
      peers = []
      for (const [i, a] of options.peers.entries()) {
        const ma = parseAddr(a, `peers[${i}]`)
        const id = peerIdFromString(ma.getComponents().findLast((c) => c.name === 'p2p').value)
        await this.libp2p.peerStore.merge(id, { multiaddrs: [ma.decapsulateCode(421)] })
        peers.push(id)
      }
    }
    this.provider ??= new Provider(this.libp2p, this.options.provider ?? {})
    let model
    try {
      model = await this.provider.add(serviceId, { peers, wasmPaths: options.wasmPaths })
    } catch (err) {
      throw err instanceof IdnError ? err : new IdnError(err.code ?? 'INTERNAL', err.message)
    }
    const provider = this.provider
    let announced = null
    if (options.announce) {
      try {
        if (this.options.relay) await this.waitForRelay()
        await this.announce(serviceId)
        announced = { ok: true, addresses: this.addresses }
      } catch (err) {
        announced = { ok: false, error: err.message }
      }
    }
    return {
      serviceId,
      announced,
      name: model.name,
      onnxCid: model.onnxCid.toString(),
      manifest: model.manifest,
      get stats () { return { ...provider.stats } },
      stop: () => provider.remove(serviceId)
    }
  }

  // This node's relayed addresses (createIdn's relay: .../p2p/NODE/p2p-circuit/p2p/<us>).
  get relayAddresses () { return this.addresses.filter((a) => a.includes('/p2p-circuit/')) }

  // Resolves with relayAddresses once a node holds a relay reservation for us (createIdn's
  // relay option); rejects with UNAVAILABLE after timeoutMs (default dialTimeoutMs).
  async waitForRelay ({ timeoutMs } = {}) {
    if (!this.options.relay) throw invalid('waitForRelay needs createIdn({ relay: true })')
    const ms = timeoutMs ?? this.options.dialTimeoutMs ?? 5000
    if (this.relayAddresses.length > 0) return this.relayAddresses
    let onUpdate
    let timer
    try {
      return await new Promise((resolve, reject) => {
        onUpdate = () => { if (this.relayAddresses.length > 0) resolve(this.relayAddresses) }
        this.libp2p.addEventListener('self:peer:update', onUpdate)
        timer = setTimeout(() => reject(new IdnError('UNAVAILABLE',
          `no relay reservation within ${ms} ms: none of ${this.bootstrapText()} relays for us (does it serve /libp2p/circuit/relay/0.2.0/hop?)`)), ms)
      })
    } finally {
      clearTimeout(timer)
      this.libp2p.removeEventListener('self:peer:update', onUpdate)
    }
  }

  // Announces this node as a provider of `serviceId` (ADD_PROVIDER on /ipfs/kad/1.0.0 to the
  // nodes closest to it, i.e. the bootstrap nodes), with this node's addresses, relayed ones
  // included. serve({ announce: true }) does it once it serves.
  async announce (serviceId, { timeoutMs } = {}) {
    const digest = parseServiceId(serviceId)
    const signal = AbortSignal.timeout(timeoutMs ?? this.options.dialTimeoutMs ?? 5000)
    await this.libp2p.contentRouting.provide(CID.createV1(RAW_CODEC, digest), { signal })
  }

  // The service IDs this node serves (serve()).
  get serving () { return this.provider ? [...this.provider.services.keys()] : [] }

  // Providers looked up for a service are kept providerCacheMs (default 10 s, as the C++ node's
  // cache): a lookup costs more than a request on loopback.
  cachedProviders (serviceText) {
    const c = this.providerCache.get(serviceText)
    if (c == null || Date.now() >= c.expires || c.peers.length === 0) return null
    return [...c.peers]
  }

  cacheProviders (serviceText, peers) {
    const ttl = this.options.providerCacheMs ?? 10000
    if (ttl > 0 && peers.length > 0) this.providerCache.set(serviceText, { peers: [...peers], expires: Date.now() + ttl })
  }

  forgetProvider (serviceText, peer) {
    const c = this.providerCache.get(serviceText)
    if (c) c.peers = c.peers.filter((p) => p.toString() !== peer)
  }

  bootstrapText () {
    return this.bootstrap.map((b) => b.addr.toString()).join(', ') || 'no bootstrap peer'
  }

  // Up to `n` provider peer IDs of `service` (a multihash digest): the `providers` option's
  // peers, dialled, or those the bootstrap peers name on /ipfs/kad/1.0.0 (GET_PROVIDERS).
  async findProviders (service, n, { signal, providers, timeoutMs }) {
    const out = []
    const seen = new Set()
    const add = (id) => {
      const key = id.toString()
      if (!seen.has(key) && out.length < n) { seen.add(key); out.push(id) }
    }
    if (providers != null) {
      // Dialled when asked (openInfer), so an unreachable one costs only its inactivity time.
      for (const ma of providers) {
        const id = peerIdFromString(ma.getComponents().findLast((c) => c.name === 'p2p').value)
        await this.libp2p.peerStore.merge(id, { multiaddrs: [ma.decapsulateCode(421)] })
        add(id)
      }
      return out
    }
    // Providers come from the bootstrap peers' kad-dht answers: an IDN node without the bridge
    // (or a peer that is no IDN node) would leave the query waiting for a DHT peer until the
    // deadline, so say so at once.
    let kad = false
    for (const b of this.bootstrap) {
      const peer = await this.libp2p.peerStore.get(b.peerId).catch(() => null)
      if (peer?.protocols?.includes(KAD_PROTOCOL)) kad = true
    }
    if (!kad) {
      throw new IdnError('UNAVAILABLE', `no bootstrap peer answers ${KAD_PROTOCOL} (${this.bootstrapText()}), so no provider can be looked up: pass the providers option`)
    }
    const cid = CID.createV1(RAW_CODEC, service)
    const lookup = AbortSignal.any
      ? AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)])
      : signal
    try {
      for await (const p of this.libp2p.contentRouting.findProviders(cid, { signal: lookup })) {
        if (p.multiaddrs?.length) await this.libp2p.peerStore.merge(p.id, { multiaddrs: p.multiaddrs })
        add(p.id)
        if (out.length >= n) break
      }
    } catch (err) {
      if (out.length === 0 && !signal.aborted && !lookup.aborted) throw new IdnError('UNAVAILABLE', `finding providers failed: ${err.message}`)
    }
    return out
  }

  async openInfer (peerId, signal) {
    const dial = this.libp2p.dialProtocol(peerId, INFER_PROTOCOL, { signal })
    this.dials.add(dial)
    try {
      return await dial
    } finally {
      this.dials.delete(dial)
    }
  }

  infer (serviceId, input, opts = {}) {
    if (this.stopped) throw new IdnError('STOPPED', 'this Idn was stopped')
    const service = parseServiceId(serviceId)
    const tensor = checkInput(input)
    if (opts == null || typeof opts !== 'object') throw invalid('options must be an object')
    const npeers = positiveInt(opts.npeers ?? 3, 'npeers')
    const deadlineMs = positiveInt(opts.deadlineMs ?? 2000, 'deadlineMs')
    const maxAttempts = positiveInt(opts.maxAttempts ?? Math.max(6, npeers), 'maxAttempts')
    const inactivityMs = opts.inactivityMs === 0 ? 0 : positiveInt(opts.inactivityMs ?? 1000, 'inactivityMs')
    if (opts.finishConfidence != null && !(opts.finishConfidence >= 0 && opts.finishConfidence <= 1)) {
      throw invalid('finishConfidence must be in [0, 1]')
    }
    const providers = opts.providers == null
      ? undefined
      : opts.providers.map((a, i) => parseAddr(a, `providers[${i}]`))
    exitRule(opts) // validates
    return new InferRun(this, service, tensor, {
      ...opts, npeers, deadlineMs, maxAttempts, inactivityMs, providers, serviceText: serviceId
    })
  }

  // InitResults by request ID, from any /idn/swap/1.0.0 stream (the handler is installed on
  // the first initModel; the other swap messages an IDN node sends are read and ignored).
  async swapResults () {
    if (this.swapPending == null) {
      this.swapPending = new Map()
      await this.libp2p.handle(SWAP_PROTOCOL, (stream) => this.readSwap(stream))
    }
    return this.swapPending
  }

  readSwap (stream) {
    (async () => {
      for await (const bytes of readMessages(stream, MAX_SWAP_MESSAGE)) {
        const r = decodeSwapMessage(bytes).init_result
        const p = r && this.swapPending?.get(Number(r.request_id))
        if (p) { this.swapPending.delete(Number(r.request_id)); p.resolve(r) }
      }
      await stream.close()
    })().catch(() => stream.abort(new Error('swap stream failed')))
  }

  // Asks connected IDN peers to host a service (InitRequest on /idn/swap/1.0.0, §7.4) until
  // `npeers` say they host it or every connected peer was asked; each answers with an
  // InitResult on a swap stream it opens to us. `service` is a service ID, or its descriptor
  // (an object or JSON text, e.g. what GET /idn/v1/services/{id} returns under "descriptor"):
  // each peer then stores it under the ID it computes, so a service nobody provides yet can be
  // hosted from its package's CID. Resolves with who hosts it and who declined (with the
  // peer's reason), peers that did not answer by deadlineMs, and serviceId (the one asked for,
  // or the one the hosting peers computed from the descriptor; IdnError INTERNAL if they differ).
  async initModel (service, opts = {}) {
    if (this.stopped) throw new IdnError('STOPPED', 'this Idn was stopped')
    let serviceId = null
    let descriptor = null
    let id = null
    if (typeof service === 'string' && service.trimStart().startsWith('{')) {
      descriptor = service
    } else if (typeof service === 'string') {
      id = parseServiceId(service)
      serviceId = service
    } else if (service != null && typeof service === 'object' && !Array.isArray(service)) {
      descriptor = JSON.stringify(service)
    } else {
      throw invalid('initModel takes a service ID or a service descriptor (an object or JSON text)')
    }
    if (descriptor != null) {
      try {
        JSON.parse(descriptor)
      } catch (err) {
        throw invalid(`the descriptor is not JSON: ${err.message}`)
      }
      descriptor = new TextEncoder().encode(descriptor)
      if (descriptor.length > MAX_DESCRIPTOR_BYTES) {
        throw invalid(`the descriptor is ${descriptor.length} bytes, limit ${MAX_DESCRIPTOR_BYTES}`)
      }
    }
    if (opts == null || typeof opts !== 'object') throw invalid('options must be an object')
    const npeers = positiveInt(opts.npeers ?? 3, 'npeers')
    const deadlineMs = positiveInt(opts.deadlineMs ?? 60000, 'deadlineMs')
    const candidates = []
    for (const id of this.libp2p.getPeers()) {
      const peer = await this.libp2p.peerStore.get(id).catch(() => null)
      if (peer?.protocols?.includes(SWAP_PROTOCOL)) candidates.push(id)
    }
    if (candidates.length === 0) {
      throw new IdnError('UNAVAILABLE', `no connected peer speaks ${SWAP_PROTOCOL} (connected to ${this.bootstrapText()})`)
    }
    const result = { hosting: [], declined: [], unanswered: [], serviceId }
    const computed = new Set() // service IDs the hosting peers reported
    const pending = await this.swapResults()
    const deadline = Date.now() + deadlineMs
    const ask = async (peerId) => {
      const requestId = ++nextRequestId
      const answered = new Promise((resolve) => pending.set(requestId, { owner: result, resolve }))
      const stream = await this.libp2p.dialProtocol(peerId, SWAP_PROTOCOL, { signal: AbortSignal.timeout(Math.max(1, deadline - Date.now())) })
      this.readSwap(stream) // a result may come back on our own stream too
      const request = descriptor == null
        ? { service_id: id.bytes, request_id: requestId }
        : { service_id: new Uint8Array(0), request_id: requestId, descriptor }
      if (!stream.send(encodeSwapMessage({ init_request: request }))) await stream.onDrain()
      let timer
      const timeout = new Promise((resolve) => { timer = setTimeout(() => resolve(null), Math.max(0, deadline - Date.now())) })
      const r = await Promise.race([answered, timeout]).finally(() => clearTimeout(timer))
      pending.delete(requestId)
      stream.close().catch(() => {})
      return r
    }
    try {
      let next = 0
      const worker = async () => {
        while (result.hosting.length < npeers && next < candidates.length && Date.now() < deadline) {
          const peerId = candidates[next++]
          const peer = peerId.toString()
          try {
            const r = await ask(peerId)
            if (r == null) result.unanswered.push(peer)
            else if (r.hosting) {
              result.hosting.push(peer)
              if (r.service_id?.length > 0) computed.add(base58btc.baseEncode(r.service_id))
            } else result.declined.push({ peer, reason: r.reason || 'no reason given' })
          } catch (err) {
            result.declined.push({ peer, reason: `could not ask it: ${err.message}` })
          }
        }
      }
      const workers = []
      for (let i = 0; i < Math.min(npeers, candidates.length); i++) workers.push(worker())
      await Promise.all(workers)
    } finally {
      for (const [rid, p] of pending) if (p.owner === result) pending.delete(rid)
    }
    if (descriptor != null) {
      if (computed.size > 1) {
        throw new IdnError('INTERNAL', `the hosting peers computed different service IDs for the descriptor: ${[...computed].join(', ')}`, result)
      }
      result.serviceId = computed.size === 1 ? [...computed][0] : null
    }
    return result
  }

  async stop () {
    if (this.stopped) return
    this.stopped = true
    await this.provider?.stop()
    // Dials still in progress (a provider asked just before the request completed) finish
    // first, bounded by dialTimeoutMs: Node's WebSocket (undici) keeps the process alive for
    // 10 s after a connection attempt is aborted half-way.
    if (this.dials.size > 0) {
      let timer
      const bound = new Promise((resolve) => { timer = setTimeout(resolve, this.options.dialTimeoutMs ?? 5000) })
      await Promise.race([Promise.allSettled([...this.dials]), bound]).finally(() => clearTimeout(timer))
    }
    await this.libp2p.stop()
  }
}

// Starts a client node and dials `bootstrap` (multiaddrs ending in /p2p/<id>); resolves once at
// least one answered and each that answered was identified (or dialTimeoutMs passed).
// Options: transports (js-libp2p transports; default TCP + WebSockets in Node, WebSockets in a
// browser), connectionGater (js-libp2p's; in a browser the default allows ws:// and private
// addresses, which js-libp2p's browser default refuses), dialTimeoutMs (default 5000),
// providerCacheMs (default 10000; 0: look providers up for every request).
export async function createIdn (options = {}) {
  if (options == null || typeof options !== 'object') throw invalid('createIdn options must be an object')
  const list = options.bootstrap
  if (!Array.isArray(list) || list.length === 0) {
    throw invalid('createIdn needs bootstrap: [multiaddr, ...] of IDN nodes (each ending in /p2p/<peer id>)')
  }
  const addrs = list.map((a, i) => parseAddr(a, `bootstrap[${i}]`))
  const dialTimeoutMs = positiveInt(options.dialTimeoutMs ?? 5000, 'dialTimeoutMs')
  if (options.providerCacheMs != null && !(Number.isInteger(options.providerCacheMs) && options.providerCacheMs >= 0)) {
    throw invalid(`providerCacheMs must be a non-negative integer, got ${options.providerCacheMs}`)
  }
  if (options.listen != null && (!Array.isArray(options.listen) || !options.listen.every((a) => typeof a === 'string' || isMultiaddr(a)))) {
    throw invalid('listen must be an array of multiaddrs')
  }
  // Peer mode through a relay (a browser cannot listen): a node we connect to that serves
  // circuit relay v2 keeps a slot for us, and requests reach us at
  // .../p2p/NODE/p2p-circuit/p2p/<us> over the connection we opened to it.
  // The circuit transport also lets a client dial such a peer (a provider found with a
  // /p2p-circuit address).
  const transports = [...(options.transports ?? defaultTransports()), circuitRelayTransport({ reservationCompletionTimeout: dialTimeoutMs })]
  const listen = (options.listen ?? []).map(String)
  if (options.relay) listen.push('/p2p-circuit')
  const libp2p = await createLibp2p({
    // Peer mode in Node: where requests reach this node (e.g. /ip4/127.0.0.1/tcp/0).
    addresses: { listen },
    transports,
    connectionGater: options.connectionGater ?? defaultConnectionGater(),
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: {
      identify: identify(),
      ping: ping(),
      // Client mode: we ask, never serve. IDN nodes answer GET_PROVIDERS from their own
      // routing; they and their providers may be on private addresses, so keep those.
      dht: kadDHT({ clientMode: true, peerInfoMapper: passthroughMapper, initialQuerySelfInterval: 0 })
    }
  })
  const bootstrap = []
  const failures = []
  // Each bootstrap peer's identify (its protocols: whether it answers kad-dht) before we return.
  const identified = new Set()
  const waiters = new Map()
  const onIdentify = (evt) => {
    const key = evt.detail.peerId.toString()
    identified.add(key)
    waiters.get(key)?.()
  }
  libp2p.addEventListener('peer:identify', onIdentify)
  await Promise.all(addrs.map(async (addr) => {
    try {
      const conn = await libp2p.dial(addr, { signal: AbortSignal.timeout(dialTimeoutMs) })
      bootstrap.push({ addr, peerId: conn.remotePeer })
      const key = conn.remotePeer.toString()
      if (!identified.has(key)) {
        let timer
        await new Promise((resolve) => {
          waiters.set(key, resolve)
          timer = setTimeout(resolve, dialTimeoutMs)
        }).finally(() => clearTimeout(timer))
      }
    } catch (err) {
      failures.push(`${addr.toString()}: ${err.message}`)
    }
  }))
  libp2p.removeEventListener('peer:identify', onIdentify)
  if (bootstrap.length === 0) {
    await libp2p.stop()
    throw new IdnError('UNAVAILABLE', `could not reach any bootstrap peer (${failures.join('; ')})`)
  }
  return new Idn(libp2p, bootstrap, options)
}
