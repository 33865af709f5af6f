// Bundles @idn/client for browsers into dist/idn.browser.js (one ES module; load it with
// <script type="module"> or import()). The "browser" condition makes package.json's #transports
// import resolve to src/transports-browser.js (WebSockets only, ws:// allowed). polyfill.js's
// Node-only imports (node:crypto, undici) sit behind `typeof process` checks and stay external:
// a browser never loads them. Usage: node scripts/build-browser.mjs [--outfile PATH]
import { build } from 'esbuild'
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
  external: ['node:crypto', 'undici'],
  outfile,
  logLevel: 'warning'
})
