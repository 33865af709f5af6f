// Bundles @idn/client for browsers into dist/idn.browser.js (one ES module; load it with
// <script type="module"> or import()). The "browser" condition makes package.json's #transports
// import resolve to src/transports-browser.js (WebSockets only, ws:// allowed) and #ort to
// src/ort-browser.js (onnxruntime-web's WASM-only build, for peer mode). polyfill.js's
// Node-only imports (node:crypto, undici) sit behind `typeof process` checks and stay external:
// a browser never loads them. With the "onnxruntime-web-use-extern-wasm" condition
// onnxruntime-web loads its WASM runtime at run time instead of inlining it: the build copies
// ort-wasm-simd-threaded.{mjs,wasm} next to the bundle, where it looks by default (serve()'s
// wasmPaths option points elsewhere). Usage: node scripts/build-browser.mjs [--outfile PATH]
import { build } from 'esbuild'
import { copyFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const i = process.argv.indexOf('--outfile')
const outfile = i > 0 ? process.argv[i + 1] : `${root}dist/idn.browser.js`
await build({
  entryPoints: [`${root}src/index.js`],
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  conditions: ['onnxruntime-web-use-extern-wasm'],
  external: ['node:crypto', 'undici'],
  outfile,
  logLevel: 'warning'
})
for (const f of ['ort-wasm-simd-threaded.mjs', 'ort-wasm-simd-threaded.wasm']) {
  copyFileSync(join(root, 'node_modules/onnxruntime-web/dist', f), join(dirname(outfile), f))
}
