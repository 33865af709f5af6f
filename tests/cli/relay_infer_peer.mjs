// A JavaScript IDN peer behind a relay, for tests/cli/relay_infer_test.sh: @idn/client in Node
// with createIdn({ relay: true }) connects to a node, reserves a circuit relay slot on it,
// serves --service (its ONNX form fetched by CID from the node) and announces it (kad-dht
// ADD_PROVIDER). Prints one line once it serves:
//   {"peerId":"12D3KooW...","relayAddresses":[".../p2p/NODE/p2p-circuit/p2p/<us>"],"announced":{ok,..}}
// then serves until stdin closes, and prints {"stopped":true}. A failure prints {"error":"..."}.
// Usage: node relay_infer_peer.mjs --bootstrap MULTIADDR --service ID
import { createIdn } from '../../js/src/index.js'

const args = {}
for (let i = 2; i + 1 < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1]
const emit = (o) => process.stdout.write(JSON.stringify(o) + '\n')

let idn
try {
  idn = await createIdn({ bootstrap: [args.bootstrap], relay: true })
  await idn.waitForRelay({ timeoutMs: 10000 })
  const serving = await idn.serve(args.service, { announce: true })
  emit({ peerId: idn.peerId, relayAddresses: idn.relayAddresses, announced: serving.announced })
} catch (err) {
  emit({ error: err.message })
  process.exit(1)
}
const stop = async () => {
  await idn.stop()
  emit({ stopped: true })
  process.exit(0)
}
process.stdin.on('end', stop)
process.stdin.resume()
