// Types of @idn/client (hand-written; test/typed-example.ts is checked against them with
// `tsc --noEmit` by tests/cli/js_client_test.sh).
import type { Multiaddr } from '@multiformats/multiaddr'
import type { Libp2p } from '@libp2p/interface'

export declare const INFER_PROTOCOL: '/idn/infer/1.0.0'
export declare const KAD_PROTOCOL: '/ipfs/kad/1.0.0'
export declare const SWAP_PROTOCOL: '/idn/swap/1.0.0'

export type IdnErrorCode =
  | 'INVALID_ARGUMENT'
  | 'UNAVAILABLE'
  | 'NOT_FOUND'
  | 'UNKNOWN_SERVICE'
  | 'DEADLINE_EXCEEDED'
  | 'CANCELLED'
  | 'STOPPED'
  | 'FAILED_PRECONDITION'
  | 'INTERNAL'

export declare class IdnError extends Error {
  readonly code: IdnErrorCode
  readonly details?: unknown
  constructor (code: IdnErrorCode, message: string, details?: unknown)
}

export interface CreateIdnOptions {
  /** IDN nodes to join through: multiaddrs ending in /p2p/<peer id>. At least one must answer. */
  bootstrap: Array<string | Multiaddr>
  /** js-libp2p transports; default TCP + WebSockets in Node, WebSockets in a browser. */
  transports?: unknown[]
  /** js-libp2p connection gater; in a browser the default allows ws:// and private addresses. */
  connectionGater?: unknown
  /** Per bootstrap dial; default 5000. */
  dialTimeoutMs?: number
  /** How long providers looked up for a service are reused; default 10000, 0 = never. */
  providerCacheMs?: number
  /** Peer mode in Node: multiaddrs to listen on (e.g. '/ip4/127.0.0.1/tcp/0'); default none. */
  listen?: Array<string | Multiaddr>
  /** Peer mode limits (serve()). */
  provider?: ProviderOptions
  /**
   * Peer mode for a node that cannot listen (a browser): a connected node that serves circuit
   * relay v2 keeps a slot for it, and it is reached at .../p2p/NODE/p2p-circuit/p2p/<us>.
   */
  relay?: boolean
}

export interface ProviderOptions {
  /** Requests waiting behind a running one beyond this are answered BUSY; default 64. */
  maxQueue?: number
  /** When a request's deadline_ms is 0; default 10000. */
  defaultDeadlineMs?: number
  /** Requests on one keep_open stream before it is closed; default 1000. */
  maxRequestsPerStream?: number
  /** A keep_open stream with no next request this long is closed; default 30000. */
  streamIdleMs?: number
  /** Awaited before each stage a request runs: for tests (to hold requests) and tracing. */
  beforeStage?: (serviceId: string, stage: number) => void | Promise<void>
}

export interface ServeOptions {
  /** Peers that hold the service's blocks (multiaddrs ending in /p2p/<id>); default the bootstrap peers. */
  peers?: Array<string | Multiaddr>
  /** Where onnxruntime-web finds its .wasm files in a browser; default next to the bundle. */
  wasmPaths?: string
  /** Announce this node as a provider (ADD_PROVIDER) once it serves; with relay, after the reservation. */
  announce?: boolean
}

/** Counters of this node's provider (all services served), since the first serve(). */
export interface ServeStats {
  requests: number
  completed: number
  cancelled: number
  busy: number
  invalid: number
  unknown_service: number
  deadline_exceeded: number
  failed: number
  receipts: number
  /** Cancel messages read. */
  cancels: number
  /** Operations (FLOPs) of the requests answered. */
  operations: number
}

/** A service this node serves (Idn.serve). */
export interface Serving {
  readonly serviceId: string
  /** The model's name (manifest.json). */
  readonly name: string
  /** CID of the ONNX directory it was loaded from. */
  readonly onnxCid: string
  /** The ONNX export's manifest.json. */
  readonly manifest: Record<string, unknown>
  readonly stats: ServeStats
  /** With announce: whether the ADD_PROVIDER went out, and the addresses it named. */
  readonly announced: { ok: true, addresses: string[] } | { ok: false, error: string } | null
  /** Stops serving it: later requests get UNKNOWN_SERVICE (or, with none left, no protocol). */
  stop (): Promise<void>
}

/** A model input: row-major float32 values of `shape` (e.g. [1, 28, 28], pixels in [0, 1]). */
export interface InferInput {
  shape: number[]
  data: Float32Array | number[]
}

export interface ExitRule {
  criterion: 'modelDefault' | 'entropy' | 'confidence' | 'lastExit'
  threshold?: number
}

export interface InferOptions {
  /** Providers asked at once; default 3. */
  npeers?: number
  /** Whole request; default 2000. With no answer by then iteration throws DEADLINE_EXCEEDED. */
  deadlineMs?: number
  /** A provider silent this long (ms) is replaced by the next; default 1000, 0 = never. */
  inactivityMs?: number
  /** Providers tried in total (failed ones are replaced); default max(6, npeers). */
  maxAttempts?: number
  /** Sent to the peers; default: the thresholds recorded in the model package. */
  exitRule?: ExitRule
  /** Complete the request as soon as an answer reaches this confidence. */
  finishConfidence?: number
  /** Ask these peers (multiaddrs ending in /p2p/<id>) instead of looking providers up. */
  providers?: Array<string | Multiaddr>
}

/** One answer that improved on every answer before it in the same request. */
export interface InferEvent {
  /** Class probabilities of the exit (the calibrated softmax). */
  outputs: Float32Array
  shape: number[]
  /** argmax of outputs. */
  predicted: number
  confidence: number
  entropy: number
  /** Which exit produced it (0 = the first). */
  exit: number
  /** Peer ID of the provider that computed it. */
  peer: string
  /** The provider will send nothing more: the request is complete. */
  final: boolean
  /** The provider's cumulative operations (FLOPs) for this request. */
  operations: number
  latencyMs: number
  /** Stops the request (Cancel to every peer still working); iteration ends. */
  finish (): void
}

export type PeerOutcome =
  | 'running' | 'answered' | 'finished-early' | 'busy' | 'error' | 'malformed' | 'vanished'
  | 'timed-out'

export interface InferSummary {
  done: boolean
  best: InferEvent | null
  answers: number
  error: IdnError | null
  peers: Array<{ peer: string, outcome: PeerOutcome, detail: string, answers: number, operations: number }>
}

export interface InitOptions {
  /** Peers that should host it; default 3. */
  npeers?: number
  /** Default 60000 (a peer fetches the package before it answers). */
  deadlineMs?: number
}

export interface InitOutcome {
  /** Peer IDs that host the service now. */
  hosting: string[]
  /** Peers that declined, with their reason (e.g. "[ise] auto_host = false"). */
  declined: Array<{ peer: string, reason: string }>
  /** Peers that did not answer by the deadline. */
  unanswered: string[]
  /**
   * The service: the ID asked for, or the one the hosting peers computed from the descriptor
   * (null when none hosts it).
   */
  serviceId: string | null
}

/**
 * A service descriptor (§7.4) as `GET /idn/v1/services/{id}` returns it under "descriptor";
 * peers validate it and compute its service ID (sha2-256 of its canonical JSON).
 */
export interface ServiceDescriptor {
  format: 'idn-service'
  version: number
  name: string
  description: string
  model: { cid: string, hash: string }
  [key: string]: unknown
}

/** A request in flight: iterate it for improving answers. Breaking out of the loop finishes it. */
export interface InferRun extends AsyncIterableIterator<InferEvent> {
  readonly requestId: number
  readonly summary: InferSummary
  finish (): void
}

export interface Idn {
  readonly libp2p: Libp2p
  readonly peerId: string
  /** Throws IdnError INVALID_ARGUMENT at once for a malformed service ID, input or option. */
  infer (serviceId: string, input: InferInput, options?: InferOptions): InferRun
  /**
   * Asks connected IDN peers to host a service (InitRequest on /idn/swap/1.0.0) until `npeers`
   * host it or every connected peer was asked. `service`: a published service's ID, or a
   * descriptor (object or JSON text) that each peer stores under the ID it computes, so a
   * service nobody provides yet is hosted from its package's CID; the outcome's serviceId is
   * then the hosting peers' ID. Rejects with INVALID_ARGUMENT (not an ID, not JSON, over
   * 64 KiB), UNAVAILABLE when no connected peer speaks /idn/swap/1.0.0, INTERNAL when hosting
   * peers computed different IDs.
   */
  initModel (service: string | ServiceDescriptor, options?: InitOptions): Promise<InitOutcome>
  /**
   * Peer mode: fetches the service's descriptor and ONNX form by CID (Bitswap, verified),
   * loads it with onnxruntime-web and answers /idn/infer/1.0.0 for it as IDN's C++ provider
   * does. Rejects with IdnError: INVALID_ARGUMENT, NOT_FOUND (no peer has its blocks),
   * FAILED_PRECONDITION (published without an ONNX form), UNAVAILABLE, INTERNAL.
   */
  serve (serviceId: string, options?: ServeOptions): Promise<Serving>
  /** Service IDs this node serves. */
  readonly serving: string[]
  /** Multiaddrs this node listens on (createIdn's listen), each ending in /p2p/<id>. */
  readonly addresses: string[]
  /** Its relayed addresses (createIdn's relay), .../p2p-circuit/p2p/<id>. */
  readonly relayAddresses: string[]
  /** Resolves with relayAddresses once a node holds a slot for us; rejects UNAVAILABLE after timeoutMs. */
  waitForRelay (options?: { timeoutMs?: number }): Promise<string[]>
  /** ADD_PROVIDER for the service to the nodes closest to it (the bootstrap nodes), with our addresses. */
  announce (serviceId: string, options?: { timeoutMs?: number }): Promise<void>
  stop (): Promise<void>
}

export declare function createIdn (options: CreateIdnOptions): Promise<Idn>
/** Checks a service ID (base58btc sha2-256 multihash) and returns its digest. */
export declare function parseServiceId (text: string): { code: number, digest: Uint8Array, bytes: Uint8Array }
