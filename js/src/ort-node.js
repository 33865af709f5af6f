// onnxruntime-web in Node (its "node" export: the WASM backend, loaded from the package's own
// files). A browser build resolves #ort to ort-browser.js instead. Loaded on the first serve()
// only, so a client that never serves never loads it.
export async function loadOrt () {
  return await import('onnxruntime-web')
}
