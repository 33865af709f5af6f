// onnxruntime-web in a browser: the WASM-only build (onnxruntime-web/wasm). Bundled with the
// "onnxruntime-web-use-extern-wasm" condition (scripts/build-browser.mjs), it loads
// ort-wasm-simd-threaded.mjs and .wasm at run time from ort.env.wasm.wasmPaths, by default
// the folder the bundle is served from (the build copies them there).
export async function loadOrt () {
  return await import('onnxruntime-web/wasm')
}
