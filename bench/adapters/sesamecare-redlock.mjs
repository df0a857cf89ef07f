// @sesamecare-oss/redlock adapter (peer, redlock v5 API): `lock = await redlock.acquire([key], ttl)`,
// `await lock.release()`, over one ioredis client per node (ioredis defaults).
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)

export const name = 'sesamecare-redlock'

export async function redis(nodes, cfg) {
  const { Redlock } = require('@sesamecare-oss/redlock')
  const Redis = require('ioredis')
  const clients = nodes.map((n) => new Redis({ host: n.host, port: n.port }))
  await Promise.all(clients.map((c) => c.ping()))
  const redlock = new Redlock(clients, { retryCount: cfg.retryCount, retryDelay: cfg.retryDelay, retryJitter: cfg.retryJitter })
  // It emits 'error' for every vote against (a busy resource included); with no listener
  // that would throw. Give-ups are counted by the scenario when acquire() rejects.
  redlock.on('error', () => {})
  const ttl = cfg.ttl
  return {
    async s3(keys, n, out) {
      const mask = keys.length - 1
      if (out === null) {
        for (let i = 0; i < n; i++) {
          const l = await redlock.acquire([keys[i & mask]], ttl)
          await l.release()
        }
      } else {
        for (let i = 0; i < n; i++) {
          const t = performance.now()
          const l = await redlock.acquire([keys[i & mask]], ttl)
          await l.release()
          out[i] = performance.now() - t
        }
      }
    },
    async s4Task(key, st, out) {
      const resources = [key]
      while (st.started < st.n) {
        const j = st.started++
        const t = out === null ? 0 : performance.now()
        const l = await redlock.acquire(resources, ttl)
        await l.release()
        if (out !== null) out[j] = performance.now() - t
      }
    },
    async s5Task(key, st, out) {
      const resources = [key]
      for (let j; (j = st.take()) >= 0; ) {
        const t = out === null ? 0 : performance.now()
        let l
        for (;;) {
          try {
            l = await redlock.acquire(resources, ttl)
            break
          } catch (e) {
            st.giveUp(e)
          }
        }
        if (out !== null) out[j] = performance.now() - t
        try {
          await st.section()
        } finally {
          await l.release()
        }
      }
    },
    // S5x: one of the tasks on one key, in one of several processes; st (worker.mjs) records
    // the wait (lock call -> acquired) and runs the cross-process critical section.
    async s5xTask(key, st) {
      const resources = [key]
      while (st.running()) {
        const t = performance.now()
        let l
        for (;;) {
          try {
            l = await redlock.acquire(resources, ttl)
            break
          } catch (e) {
            st.giveUp(e)
          }
        }
        st.acquired(t)
        try {
          await st.section()
        } finally {
          await l.release()
        }
        st.released()
      }
    },
    close: () => Promise.all(clients.map((c) => c.quit())),
  }
}
