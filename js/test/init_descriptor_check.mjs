// initModel from a descriptor (the blog's `idn.initModel(descriptor, { npeers })`) against
// running `idn node`s, for tests/cli/js_init_test.sh. Prints one JSON object per line:
//   {"same":{"serviceId":ID,"hosting":N}}      the descriptor GET /idn/v1/services/{id} returned
//   {"anew":{"serviceId":ID,"hosting":N}}      the same, described anew, sent as JSON text
//   {"malformed":{"hosting":0,"declined":[{peer,reason}]}}   a descriptor peers refuse
//   {"bad_args":["INVALID_ARGUMENT",...]}      arguments refused before anything is sent
// Usage: node init_descriptor_check.mjs --bootstrap MULTIADDR --gateway http://HOST:PORT --service ID
import { emit, parseArgs } from './check_util.mjs'
import { createIdn, IdnError } from '@idn/client'

const args = parseArgs({})
const res = await fetch(`${args.gateway}/idn/v1/services/${args.service}`)
if (!res.ok) throw new Error(`GET service: ${res.status}`)
const { descriptor } = await res.json()

const idn = await createIdn({ bootstrap: [args.bootstrap] })
try {
  const same = await idn.initModel(descriptor, { npeers: 1, deadlineMs: 30000 })
  emit({ same: { serviceId: same.serviceId, hosting: same.hosting.length, declined: same.declined } })
  // A new service over the same package: nobody provides its ID, so the peer finds the
  // descriptor only in the request, and the package by its CID.
  const text = JSON.stringify({ ...descriptor, description: 'described anew by the JS client' }, null, 2)
  const anew = await idn.initModel(text, { npeers: 1, deadlineMs: 30000 })
  emit({ anew: { serviceId: anew.serviceId, hosting: anew.hosting.length, declined: anew.declined } })
  const bad = await idn.initModel({ ...descriptor, format: 'not-idn' }, { npeers: 1, deadlineMs: 10000 })
  emit({ malformed: { hosting: bad.hosting.length, declined: bad.declined, serviceId: bad.serviceId } })
  const codes = []
  for (const arg of [42, '{not json', ['a'], { x: 'y'.repeat(70000) }]) {
    try {
      await idn.initModel(arg)
      codes.push('resolved')
    } catch (err) {
      codes.push(err instanceof IdnError ? err.code : String(err))
    }
  }
  emit({ bad_args: codes })
} finally {
  await idn.stop()
}
