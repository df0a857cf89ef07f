// Raw ioredis baseline with `enableAutoPipelining: true` (commands issued in the same tick go
// out in one write). The code is ioredis-raw.mjs's.
import { make } from './ioredis-raw.mjs'

export const name = 'ioredis-raw-ap'

export function redis(nodes, cfg) {
  return make(nodes, cfg, true)
}
