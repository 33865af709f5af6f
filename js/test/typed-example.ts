// The README's example with types: `tsc -p test/tsconfig.json` checks it against src/index.d.ts.
import { createIdn, IdnError, type InferEvent, type ServiceDescriptor } from '@idn/client'

export async function classify (bootstrap: string, serviceId: string, pixels: Float32Array): Promise<number> {
  const idn = await createIdn({ bootstrap: [bootstrap] })
  try {
    const init = await idn.initModel(serviceId, { npeers: 3 })
    console.log(init.hosting.length, init.declined.map((d) => d.reason), init.serviceId)
    let best: InferEvent | undefined
    for await (const ev of idn.infer(serviceId, { shape: [1, 28, 28], data: pixels }, { npeers: 3, deadlineMs: 500 })) {
      const scores: Float32Array = ev.outputs
      console.log(ev.exit, ev.confidence, ev.peer, scores.length)
      best = ev
      if (ev.confidence > 0.9) ev.finish()
    }
    return best?.predicted ?? -1
  } catch (err) {
    if (err instanceof IdnError && err.code === 'NOT_FOUND') return -1
    throw err
  } finally {
    await idn.stop()
  }
}

// Peer mode: serve a published service (its ONNX form) from this node until asked to stop.
export async function serveFor (bootstrap: string, serviceId: string, ms: number): Promise<number> {
  const idn = await createIdn({ bootstrap: [bootstrap], listen: ['/ip4/127.0.0.1/tcp/0'], provider: { maxQueue: 8 } })
  try {
    const serving = await idn.serve(serviceId, { wasmPaths: '/ort/' })
    console.log(serving.name, serving.onnxCid, idn.addresses, idn.serving)
    await new Promise((resolve) => setTimeout(resolve, ms))
    const answered: number = serving.stats.completed
    await serving.stop()
    return answered
  } catch (err) {
    if (err instanceof IdnError && err.code === 'FAILED_PRECONDITION') return 0
    throw err
  } finally {
    await idn.stop()
  }
}

// A browser tab as a peer: reached through the node it is connected to.
export async function serveFromBrowser (wsBootstrap: string, serviceId: string): Promise<string[]> {
  const idn = await createIdn({ bootstrap: [wsBootstrap], relay: true })
  const relayed: string[] = await idn.waitForRelay({ timeoutMs: 10000 })
  const serving = await idn.serve(serviceId, { announce: true })
  if (serving.announced?.ok === false) console.log(serving.announced.error)
  await idn.announce(serviceId, { timeoutMs: 1000 })
  return [...relayed, ...idn.relayAddresses]
}

// initModel from a descriptor (the blog's `idn.initModel(descriptor, { npeers: 3 })`): the
// gateway's copy of a service's descriptor, described anew; the peers report its service ID.
export async function hostDescribed (bootstrap: string, gateway: string, serviceId: string): Promise<string | null> {
  const res = await fetch(`${gateway}/idn/v1/services/${serviceId}`)
  const { descriptor } = await res.json() as { descriptor: ServiceDescriptor }
  const idn = await createIdn({ bootstrap: [bootstrap] })
  try {
    const init = await idn.initModel({ ...descriptor, description: 'my copy' }, { npeers: 3 })
    return init.serviceId
  } finally {
    await idn.stop()
  }
}
