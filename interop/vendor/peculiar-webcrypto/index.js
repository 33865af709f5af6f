// Node ships WebCrypto; hand it out where @peculiar/webcrypto's Crypto class is expected.
import { webcrypto } from 'node:crypto'

export class Crypto {
  constructor () {
    return webcrypto
  }
}
