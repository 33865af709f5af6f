// What the stock js-libp2p test peers (js_peer.mjs, relay_peer.mjs) share: their JSON-lines
// output, timeouts, the /interop/echo/1.0.0 protocol on both sides, and stopping when stdin
// closes or on SIGTERM/SIGINT. Imports nothing from libp2p itself.
export const ECHO_PROTOCOL = '/interop/echo/1.0.0'

// One JSON object per line on stdout.
export function emit (obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

// {"event":"error","message":...} and exit 1.
export function fail (message) {
  emit({ event: 'error', message })
  process.exit(1)
}

export function withTimeout (promise, ms, what) {
  let timer
  const timeout = new Promise((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not complete within ${ms} ms`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

// The echo server: writes back every byte it reads, then closes its write side when the remote
// closes its own. `tag` names the script in diagnostics.
export async function serveEcho (stream, tag) {
  try {
    for await (const chunk of stream) {
      const data = chunk.subarray ? chunk.subarray() : chunk
      if (!stream.send(data)) await stream.onDrain()
    }
    await stream.close()
  } catch (err) {
    process.stderr.write(`${tag}: echo stream failed: ${err.message}\n`)
    stream.abort(err)
  }
}

// The echo client: sends n pseudo-random bytes on the stream `open()` gives, closes its write
// side, checks the same bytes come back; returns the round trip in ms.
export async function echoOnce (open, n, timeoutMs) {
  const sent = new Uint8Array(n)
  let x = 0x12345678
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0
    sent[i] = x >>> 24
  }
  const start = performance.now()
  const stream = await open()
  const reading = (async () => {
    const got = new Uint8Array(n)
    let off = 0
    for await (const chunk of stream) {
      const data = chunk.subarray ? chunk.subarray() : chunk
      if (off + data.length > n) throw new Error(`echo returned more than the ${n} bytes sent`)
      got.set(data, off)
      off += data.length
    }
    return got.subarray(0, off)
  })()
  const chunk = 16384
  for (let off = 0; off < n; off += chunk) {
    if (!stream.send(sent.subarray(off, Math.min(n, off + chunk)))) await stream.onDrain()
  }
  await stream.close()
  const got = await withTimeout(reading, timeoutMs, 'echo')
  if (got.length !== n) throw new Error(`echo returned ${got.length} bytes, sent ${n}`)
  for (let i = 0; i < n; i++) {
    if (got[i] !== sent[i]) throw new Error(`echo differs at byte ${i}`)
  }
  return performance.now() - start
}

// Stops the node when stdin closes or on SIGTERM/SIGINT, printing {"event":"stopped"}, exit 0.
export function stopOnStdinClose (node) {
  let stopping = false
  const stop = async () => {
    if (stopping) return
    stopping = true
    await node.stop()
    emit({ event: 'stopped' })
    process.exit(0)
  }
  process.stdin.on('end', stop)
  process.stdin.on('close', stop)
  process.stdin.resume()
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
}
