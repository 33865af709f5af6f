// Module resolve hook (registered by polyfill.mjs): @libp2p/tls, which helia's libp2p defaults
// import, loads @peculiar/webcrypto, whose ESM build is not marked as a module and fails on
// Node 18. Node ships WebCrypto, so hand out the one-file stand-in in vendor/ instead.
const standIn = new URL('./vendor/peculiar-webcrypto/index.js', import.meta.url).href

export async function resolve (specifier, context, nextResolve) {
  if (specifier === '@peculiar/webcrypto') return { url: standIn, shortCircuit: true }
  return nextResolve(specifier, context)
}
