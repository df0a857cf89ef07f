// async-lock adapter (peer): `await al.acquire(key, fn)`; the lock is held while fn runs.
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const noop = () => {}

export const name = 'async-lock'

export function memory() {
  const AsyncLock = require('async-lock')
  const al = new AsyncLock({ maxPending: Infinity })
  return {
    async s1(keys, n, out) {
      const mask = keys.length - 1
      if (out === null) {
        for (let i = 0; i < n; i++) await al.acquire(keys[i & mask], noop)
      } else {
        for (let i = 0; i < n; i++) {
          const t = performance.now()
          await al.acquire(keys[i & mask], noop)
          out[i] = performance.now() - t
        }
      }
    },
    async s2Task(key, st, out) {
      while (st.started < st.n) {
        const j = st.started++
        if (out === null) {
          await al.acquire(key, st.section)
        } else {
          const t = performance.now()
          await al.acquire(key, () => {
            out[j] = performance.now() - t
            return st.section()
          })
        }
      }
    },
    stateSize: () => Object.keys(al.queues).length,
    close() {},
  }
}
