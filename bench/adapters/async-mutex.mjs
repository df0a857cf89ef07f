// async-mutex adapter (peer). async-mutex has no keys: as a user would, keep a
// Map<key, Mutex>, create a Mutex on first use and delete it when it falls idle.
// release() hands the mutex to the next waiter synchronously, so `!m.isLocked()` right
// after release() means nobody waits and the entry can go.
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)

export const name = 'async-mutex'

export function memory() {
  const { Mutex } = require('async-mutex')
  const mutexes = new Map()
  const mutexFor = (key) => {
    let m = mutexes.get(key)
    if (m === undefined) mutexes.set(key, (m = new Mutex()))
    return m
  }
  return {
    async s1(keys, n, out) {
      const mask = keys.length - 1
      if (out === null) {
        for (let i = 0; i < n; i++) {
          const key = keys[i & mask]
          const m = mutexFor(key)
          const release = await m.acquire()
          release()
          if (!m.isLocked()) mutexes.delete(key)
        }
      } else {
        for (let i = 0; i < n; i++) {
          const t = performance.now()
          const key = keys[i & mask]
          const m = mutexFor(key)
          const release = await m.acquire()
          release()
          if (!m.isLocked()) mutexes.delete(key)
          out[i] = performance.now() - t
        }
      }
    },
    async s2Task(key, st, out) {
      while (st.started < st.n) {
        const j = st.started++
        const t = out === null ? 0 : performance.now()
        const m = mutexFor(key)
        const release = await m.acquire()
        if (out !== null) out[j] = performance.now() - t
        try {
          await st.section()
        } finally {
          release()
          if (!m.isLocked()) mutexes.delete(key)
        }
      }
    },
    stateSize: () => mutexes.size,
    close() {},
  }
}
