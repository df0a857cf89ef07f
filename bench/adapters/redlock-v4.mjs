// redlock@4 adapter (peer): `lock = await redlock.lock(key, ttl)`, `await lock.unlock()`,
// over one ioredis client per node (ioredis defaults, as a user would have them).
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)

export const name = 'redlock-v4'

export async function redis(nodes, cfg) {
  const Redlock = require('redlock')
  const Redis = require('ioredis')
  const clients = nodes.map((n) => new Redis({ host: n.host, port: n.port }))
  await Promise.all(clients.map((c) => c.ping()))
  const redlock = new Redlock(clients, { retryCount: cfg.retryCount, retryDelay: cfg.retryDelay, retryJitter: cfg.retryJitter })
  redlock.on('clientError', () => {}) // counted by the scenario when a lock() rejects
  const ttl = cfg.ttl
  return {
    async s3(keys, n, out) {
      const mask = keys.length - 1
      if (out === null) {
        for (let i = 0; i < n; i++) {
          const l = await redlock.lock(keys[i & mask], ttl)
          await l.unlock()
        }
      } else {
        for (let i = 0; i < n; i++) {
          const t = performance.now()
          const l = await redlock.lock(keys[i & mask], ttl)
          await l.unlock()
          out[i] = performance.now() - t
        }
      }
    },
    async s4Task(key, st, out) {
      while (st.started < st.n) {
        const j = st.started++
        const t = out === null ? 0 : performance.now()
        const l = await redlock.lock(key, ttl)
        await l.unlock()
        if (out !== null) out[j] = performance.now() - t
      }
    },
    async s5Task(key, st, out) {
      for (let j; (j = st.take()) >= 0; ) {
        const t = out === null ? 0 : performance.now()
        let l
        for (;;) {
          try {
            l = await redlock.lock(key, ttl)
            break
          } catch (e) {
            st.giveUp(e)
          }
        }
        if (out !== null) out[j] = performance.now() - t
        try {
          await st.section()
        } finally {
          await l.unlock()
        }
      }
    },
    // S5x: one of the tasks on one key, in one of several processes; st (worker.mjs) records
    // the wait (lock call -> acquired) and runs the cross-process critical section.
    async s5xTask(key, st) {
      while (st.running()) {
        const t = performance.now()
        let l
        for (;;) {
          try {
            l = await redlock.lock(key, ttl)
            break
          } catch (e) {
            st.giveUp(e)
          }
        }
        st.acquired(t)
        try {
          await st.section()
        } finally {
          await l.unlock()
        }
        st.released()
      }
    },
    close: () => Promise.all(clients.map((c) => c.quit())),
  }
}
