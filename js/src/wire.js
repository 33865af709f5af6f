// IDN's /idn/infer/1.0.0 and /idn/swap/1.0.0 messages on a js-libp2p stream: uvarint length
// prefix + one protobuf envelope (proto/idn_infer.proto, proto/idn_swap.proto), encoded with
// protobufjs from the generated schema.
import protobuf from 'protobufjs/light.js'
import schema from './proto.js'

export const INFER_PROTOCOL = '/idn/infer/1.0.0'
// Same bound as the C++ side (rpc/message_io.h kMaxInferMessage).
export const MAX_INFER_MESSAGE = 16 * 1024 * 1024

const root = protobuf.Root.fromJSON(schema)
export const InferClientMessage = root.lookupType('idn.v1.InferClientMessage')
export const InferServerMessage = root.lookupType('idn.v1.InferServerMessage')
export const SwapMessage = root.lookupType('idn.v1.SwapMessage')
export const SWAP_PROTOCOL = '/idn/swap/1.0.0'
// Same bound as the C++ side (rpc/message_io.h kMaxSwapMessage).
export const MAX_SWAP_MESSAGE = 1024 * 1024
export const DType = root.lookupEnum('idn.v1.DType').values
export const InferError = root.lookupEnum('idn.v1.InferError').values
export const ExitCriterion = root.lookupEnum('idn.v1.ExitCriterion').values
export const INFER_ERROR_NAMES = Object.fromEntries(
  Object.entries(InferError).map(([k, v]) => [v, k.replace(/^INFER_ERROR_/, '')]))

export function uvarint (n) {
  const out = []
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80)
    n = Math.floor(n / 0x80)
  }
  out.push(n)
  return Uint8Array.from(out)
}

export function frame (bytes) {
  const prefix = uvarint(bytes.length)
  const out = new Uint8Array(prefix.length + bytes.length)
  out.set(prefix, 0)
  out.set(bytes, prefix.length)
  return out
}

export function encodeClientMessage (body) {
  const err = InferClientMessage.verify(body)
  if (err != null) throw new Error(`internal: bad InferClientMessage: ${err}`)
  return frame(InferClientMessage.encode(InferClientMessage.create(body)).finish())
}

// Yields each length-prefixed message of `stream` (a js-libp2p Stream or any async iterable of
// Uint8Array / Uint8ArrayList). Throws on an oversized or truncated message.
export async function * readMessages (stream, maxBytes = MAX_INFER_MESSAGE) {
  let buf = new Uint8Array(0)
  for await (const chunk of stream) {
    const bytes = chunk instanceof Uint8Array ? chunk : chunk.subarray()
    if (buf.length === 0) {
      buf = bytes
    } else {
      const joined = new Uint8Array(buf.length + bytes.length)
      joined.set(buf, 0)
      joined.set(bytes, buf.length)
      buf = joined
    }
    while (true) {
      let len = 0
      let mul = 1
      let off = 0
      let complete = false
      while (off < buf.length && off < 9) {
        const b = buf[off++]
        len += (b & 0x7f) * mul
        mul *= 0x80
        if ((b & 0x80) === 0) { complete = true; break }
      }
      if (!complete) {
        if (off >= 9) throw new Error('malformed length prefix')
        break
      }
      if (len > maxBytes) throw new Error(`message of ${len} bytes exceeds the ${maxBytes}-byte limit`)
      if (buf.length < off + len) break
      yield buf.subarray(off, off + len)
      buf = buf.subarray(off + len)
    }
  }
  if (buf.length > 0) throw new Error('stream ended in the middle of a message')
}

export function encodeSwapMessage (body) {
  const err = SwapMessage.verify(body)
  if (err != null) throw new Error(`internal: bad SwapMessage: ${err}`)
  return frame(SwapMessage.encode(SwapMessage.create(body)).finish())
}

export function decodeSwapMessage (bytes) {
  return SwapMessage.decode(bytes)
}

export function decodeServerMessage (bytes) {
  return InferServerMessage.decode(bytes)
}

// The serving side (peer mode): what a provider sends and reads.
export function encodeServerMessage (body) {
  const err = InferServerMessage.verify(body)
  if (err != null) throw new Error(`internal: bad InferServerMessage: ${err}`)
  return frame(InferServerMessage.encode(InferServerMessage.create(body)).finish())
}

export function decodeClientMessage (bytes) {
  return InferClientMessage.decode(bytes)
}

// DType enum value -> IDN's name for it ("F32"), as the C++ side's error messages say it.
export const DTYPE_NAMES = Object.fromEntries(
  Object.entries(DType).map(([k, v]) => [v, k.replace(/^DTYPE_/, '')]))

// F32 tensor <-> protobuf Tensor (row-major, little-endian).
export function f32Tensor (shape, data) {
  const bytes = new Uint8Array(data.length * 4)
  const view = new DataView(bytes.buffer)
  for (let i = 0; i < data.length; i++) view.setFloat32(i * 4, data[i], true)
  return { dtype: DType.DTYPE_F32, shape, data: bytes }
}

export function f32FromTensor (t) {
  const bytes = t.data ?? new Uint8Array(0)
  if (bytes.length % 4 !== 0) return null
  const out = new Float32Array(bytes.length / 4)
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(i * 4, true)
  return out
}
