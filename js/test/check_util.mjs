// What the JS test drivers (infer_check.mjs, browser_check.mjs, node_page_check.mjs) share: `--key value` arguments,
// one JSON object per stdout line, and 8-bit binary PGM images read as `idn infer --input` reads
// them ([1, H, W], pixel / max).
import { readFileSync } from 'node:fs'

export function parseArgs (defaults) {
  const args = { ...defaults }
  for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1]
  return args
}

export const emit = (o) => process.stdout.write(JSON.stringify(o) + '\n')

// data: Float32Array (what the client takes); the browser driver turns it into an array to pass
// it into the page.
export function readPgm (path) {
  const bytes = readFileSync(path)
  const m = /^P5\s+(\d+)\s+(\d+)\s+(\d+)\s/.exec(bytes.subarray(0, 64).toString('latin1'))
  if (!m) throw new Error(`${path}: not an 8-bit binary PGM`)
  const [w, h, max] = [Number(m[1]), Number(m[2]), Number(m[3])]
  const px = bytes.subarray(m[0].length, m[0].length + w * h)
  return { shape: [1, h, w], data: Float32Array.from(px, (v) => v / max) }
}
