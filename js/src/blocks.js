// Content by CID over the libp2p connections a client already has: a minimal Bitswap 1.2.0
// client (want-block with send-dont-have, one peer at a time; the peer answers on a stream it
// opens to us, as IDN's store/bitswap.h and every IPFS node do) and a UnixFS reader (dag-pb
// directories and files, raw leaves). Every block is checked against its CID (sha2-256 of its
// bytes) before anything reads it; a block that does not hash to what was asked is dropped.
// A browser peer fetches a service's descriptor and its ONNX form this way from the node it is
// connected to: no HTTP origin, no CORS, and the same bytes an IPFS node would serve.
import protobuf from 'protobufjs/light.js'
import { sha256 } from '@noble/hashes/sha2.js'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { frame, readMessages } from './wire.js'

export const BITSWAP_PROTOCOL = '/ipfs/bitswap/1.2.0'
export const RAW_CODEC = 0x55
export const DAG_PB_CODEC = 0x70
const SHA2_256 = 0x12
// Bitswap peers refuse blocks over 2 MiB; a message carries a few of them.
const MAX_BITSWAP_MESSAGE = 4 * 1024 * 1024

// boxo/bitswap/message/pb/message.proto, dag-pb (PBNode, PBLink) and UnixFS Data, as
// protobufjs JSON (the light build has no .proto parser).
const root = protobuf.Root.fromJSON({
  nested: {
    bitswap: {
      nested: {
        Message: {
          fields: {
            wantlist: { type: 'Wantlist', id: 1 },
            blocks: { rule: 'repeated', type: 'bytes', id: 2 },
            payload: { rule: 'repeated', type: 'Block', id: 3 },
            blockPresences: { rule: 'repeated', type: 'BlockPresence', id: 4 },
            pendingBytes: { type: 'int32', id: 5 }
          },
          nested: {
            Wantlist: {
              fields: {
                entries: { rule: 'repeated', type: 'Entry', id: 1 },
                full: { type: 'bool', id: 2 }
              },
              nested: {
                Entry: {
                  fields: {
                    block: { type: 'bytes', id: 1 },
                    priority: { type: 'int32', id: 2 },
                    cancel: { type: 'bool', id: 3 },
                    wantType: { type: 'int32', id: 4 },
                    sendDontHave: { type: 'bool', id: 5 }
                  }
                }
              }
            },
            Block: { fields: { prefix: { type: 'bytes', id: 1 }, data: { type: 'bytes', id: 2 } } },
            BlockPresence: { fields: { cid: { type: 'bytes', id: 1 }, type: { type: 'int32', id: 2 } } }
          }
        },
        PBLink: {
          fields: {
            Hash: { type: 'bytes', id: 1 },
            Name: { type: 'string', id: 2 },
            Tsize: { type: 'uint64', id: 3 }
          }
        },
        PBNode: {
          fields: {
            Links: { rule: 'repeated', type: 'PBLink', id: 2 },
            Data: { type: 'bytes', id: 1 }
          }
        },
        UnixfsData: {
          fields: {
            Type: { type: 'int32', id: 1 },
            Data: { type: 'bytes', id: 2 },
            filesize: { type: 'uint64', id: 3 },
            blocksizes: { rule: 'repeated', type: 'uint64', id: 4 },
            hashType: { type: 'uint64', id: 5 },
            fanout: { type: 'uint64', id: 6 }
          }
        }
      }
    }
  }
})
const BitswapMessage = root.lookupType('bitswap.Message')
const PBNode = root.lookupType('bitswap.PBNode')
const UnixfsData = root.lookupType('bitswap.UnixfsData')
const WANT_BLOCK = 0
const DONT_HAVE = 1
const UNIXFS_RAW = 0
const UNIXFS_DIRECTORY = 1
const UNIXFS_FILE = 2

function readUvarint (bytes, off) {
  let n = 0
  let mul = 1
  for (let i = 0; i < 9 && off < bytes.length; i++) {
    const b = bytes[off++]
    n += (b & 0x7f) * mul
    mul *= 0x80
    if ((b & 0x80) === 0) return [n, off]
  }
  throw new Error('malformed varint in a CID prefix')
}

// The CID of `data` under a Bitswap payload prefix (version, codec, hash code, digest length),
// or null when the prefix names a hash other than sha2-256.
function cidOf (prefix, data) {
  let off = 0
  let version, codec, code, len
  ;[version, off] = readUvarint(prefix, off)
  ;[codec, off] = readUvarint(prefix, off)
  ;[code, off] = readUvarint(prefix, off)
  ;[len] = readUvarint(prefix, off)
  if (code !== SHA2_256 || len !== 32) return null
  const digest = Digest.create(SHA2_256, sha256(data))
  return version === 0 ? CID.createV0(digest) : CID.createV1(codec, digest)
}

function key (cid) {
  return cid.toV1().toString()
}

export class BlockError extends Error {
  constructor (code, message) {
    super(message)
    this.name = 'BlockError'
    this.code = code
  }
}

// Fetches blocks from peers already connected (or dialable) over Bitswap. One instance per
// libp2p node; start() installs the handler for the answers.
export class BlockFetcher {
  constructor (libp2p, { wantTimeoutMs = 10000, maxBytes = 64 * 1024 * 1024 } = {}) {
    this.libp2p = libp2p
    this.wantTimeoutMs = wantTimeoutMs
    this.maxBytes = maxBytes // a fetched file (or DAG) larger than this is refused
    this.pending = new Map() // key(cid) -> [{ peer, resolve }]
    this.outbound = new Map() // peer id text -> Promise<stream>
    this.stats = { blocks: 0, bytes: 0, rejected: 0 }
    this.started = false
  }

  async start () {
    if (this.started) return
    this.started = true
    await this.libp2p.handle(BITSWAP_PROTOCOL, (stream, connection) => this.read(stream, connection?.remotePeer?.toString()),
      { runOnLimitedConnection: true })
  }

  async stop () {
    if (!this.started) return
    this.started = false
    await this.libp2p.unhandle(BITSWAP_PROTOCOL)
    for (const s of this.outbound.values()) s.then((st) => st.abort(new Error('stopped'))).catch(() => {})
    this.outbound.clear()
  }

  read (stream, from) {
    (async () => {
      for await (const bytes of readMessages(stream, MAX_BITSWAP_MESSAGE)) this.onMessage(BitswapMessage.decode(bytes), from)
    })().catch(() => stream.abort(new Error('bitswap stream failed')))
  }

  onMessage (m, from) {
    for (const b of m.payload ?? []) {
      let cid
      try {
        cid = cidOf(b.prefix, b.data)
      } catch {
        cid = null
      }
      const waiters = cid && this.pending.get(key(cid))
      if (!waiters) { this.stats.rejected++; continue } // unasked, or not what it claims to be
      this.pending.delete(key(cid))
      this.stats.blocks++
      this.stats.bytes += b.data.length
      for (const w of waiters) w.resolve({ data: b.data })
    }
    for (const p of m.blockPresences ?? []) {
      if (p.type !== DONT_HAVE) continue
      let cid
      try { cid = CID.decode(p.cid) } catch { continue }
      const waiters = this.pending.get(key(cid))
      if (!waiters) continue
      for (const w of waiters.filter((w) => from == null || w.peer === from)) w.resolve({ dontHave: true })
    }
  }

  async streamTo (peerId) {
    const k = peerId.toString()
    let s = this.outbound.get(k)
    if (s == null) {
      s = this.libp2p.dialProtocol(peerId, BITSWAP_PROTOCOL, { signal: AbortSignal.timeout(this.wantTimeoutMs), runOnLimitedConnection: true })
      this.outbound.set(k, s)
      s.then((st) => this.read(st, k), () => this.outbound.delete(k))
    }
    return s
  }

  async ask (peerId, cid) {
    const k = key(cid)
    let entry
    const answer = new Promise((resolve) => {
      entry = { peer: peerId.toString(), resolve }
      const list = this.pending.get(k) ?? []
      list.push(entry)
      this.pending.set(k, list)
    })
    let timer
    const timeout = new Promise((resolve) => { timer = setTimeout(() => resolve({ timedOut: true }), this.wantTimeoutMs) })
    try {
      const stream = await this.streamTo(peerId)
      const msg = BitswapMessage.encode(BitswapMessage.create({
        wantlist: { entries: [{ block: cid.bytes, priority: 1, wantType: WANT_BLOCK, sendDontHave: true }] }
      })).finish()
      if (!stream.send(frame(msg))) await stream.onDrain()
      return await Promise.race([answer, timeout])
    } catch (err) {
      this.outbound.delete(peerId.toString())
      return { failed: err.message }
    } finally {
      clearTimeout(timer)
      const list = this.pending.get(k)
      if (list) {
        const rest = list.filter((w) => w !== entry)
        if (rest.length > 0) this.pending.set(k, rest)
        else this.pending.delete(k)
      }
    }
  }

  // One block's bytes, verified against `cid` (a CID or its text): asks `peers` in turn until
  // one has it. Throws BlockError NOT_FOUND naming what each peer said.
  async block (cid, peers) {
    cid = typeof cid === 'string' ? CID.parse(cid) : cid
    if (cid.multihash.code !== SHA2_256) throw new BlockError('UNSUPPORTED', `CID ${cid} is not a sha2-256 CID`)
    const tried = []
    for (const p of peers) {
      const r = await this.ask(p, cid)
      if (r.data) return r.data
      tried.push(`${p}: ${r.dontHave ? 'does not have it' : r.timedOut ? `no answer in ${this.wantTimeoutMs} ms` : r.failed}`)
    }
    throw new BlockError('NOT_FOUND', `no peer gave block ${cid} (${tried.join('; ') || 'no peer to ask'})`)
  }

  // A UnixFS file's bytes (raw leaf, or dag-pb file node with its children in order).
  async file (cid, peers, budget = { left: this.maxBytes }) {
    cid = typeof cid === 'string' ? CID.parse(cid) : cid
    const data = await this.block(cid, peers)
    if (cid.code === RAW_CODEC) return take(budget, data, cid)
    if (cid.code !== DAG_PB_CODEC) throw new BlockError('UNSUPPORTED', `block ${cid}: codec 0x${cid.code.toString(16)} is neither raw nor dag-pb`)
    const node = PBNode.decode(data)
    const fs = UnixfsData.decode(node.Data ?? new Uint8Array(0))
    if (fs.Type !== UNIXFS_FILE && fs.Type !== UNIXFS_RAW) throw new BlockError('UNSUPPORTED', `block ${cid} is not a UnixFS file (type ${fs.Type})`)
    const parts = [take(budget, fs.Data ?? new Uint8Array(0), cid)]
    const children = await Promise.all(node.Links.map((l) => this.file(CID.decode(l.Hash), peers, budget)))
    parts.push(...children)
    return concat(parts)
  }

  // A UnixFS directory's entries: Map name -> CID (plain directories, not HAMT shards).
  async directory (cid, peers) {
    cid = typeof cid === 'string' ? CID.parse(cid) : cid
    if (cid.code !== DAG_PB_CODEC) throw new BlockError('UNSUPPORTED', `${cid} is not a dag-pb (UnixFS directory) CID`)
    const node = PBNode.decode(await this.block(cid, peers))
    const fs = UnixfsData.decode(node.Data ?? new Uint8Array(0))
    if (fs.Type !== UNIXFS_DIRECTORY) throw new BlockError('UNSUPPORTED', `block ${cid} is not a plain UnixFS directory (type ${fs.Type})`)
    return new Map(node.Links.map((l) => [l.Name, CID.decode(l.Hash)]))
  }
}

function take (budget, bytes, cid) {
  budget.left -= bytes.length
  if (budget.left < 0) throw new BlockError('TOO_LARGE', `DAG under ${cid} exceeds the size limit`)
  return bytes
}

function concat (parts) {
  const n = parts.reduce((a, p) => a + p.length, 0)
  const out = new Uint8Array(n)
  let off = 0
  for (const p of parts) { out.set(p, off); off += p.length }
  return out
}

export function sha256Hex (bytes) {
  return Array.from(sha256(bytes), (b) => b.toString(16).padStart(2, '0')).join('')
}
