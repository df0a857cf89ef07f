// redis-semaphore adapter (peer): one `Mutex` (one node) or `RedlockMutex` (several) per
// acquisition, `await m.acquire()`, `await m.release()`, over one ioredis client per node
// (ioredis defaults). Its Redis key is `mutex:<key>`. refreshInterval 0: no auto-refresh
// timer (nothing here outlives the ttl). acquireTimeout = retryCount × retryDelay, with
// retryInterval = retryDelay (it has no jitter).
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)

export const name = 'redis-semaphore'

export async function redis(nodes, cfg) {
  const { Mutex, RedlockMutex } = require('redis-semaphore')
  const Redis = require('ioredis')
  const clients = nodes.map((n) => new Redis({ host: n.host, port: n.port }))
  await Promise.all(clients.map((c) => c.ping()))
  const opts = {
    lockTimeout: cfg.ttl,
    acquireTimeout: cfg.retryCount * cfg.retryDelay,
    retryInterval: cfg.retryDelay,
    refreshInterval: 0,
  }
  const client = clients[0]
  const mutex = clients.length === 1 ? (key) => new Mutex(client, key, opts) : (key) => new RedlockMutex(clients, key, opts)
  return {
    async s3(keys, n, out) {
      const mask = keys.length - 1
      if (out === null) {
        for (let i = 0; i < n; i++) {
          const m = mutex(keys[i & mask])
          await m.acquire()
          await m.release()
        }
      } else {
        for (let i = 0; i < n; i++) {
          const t = performance.now()
          const m = mutex(keys[i & mask])
          await m.acquire()
          await m.release()
          out[i] = performance.now() - t
        }
      }
    },
    async s4Task(key, st, out) {
      while (st.started < st.n) {
        const j = st.started++
        const t = out === null ? 0 : performance.now()
        const m = mutex(key)
        await m.acquire()
        await m.release()
        if (out !== null) out[j] = performance.now() - t
      }
    },
    async s5Task(key, st, out) {
      for (let j; (j = st.take()) >= 0; ) {
        const t = out === null ? 0 : performance.now()
        const m = mutex(key)
        for (;;) {
          try {
            await m.acquire()
            break
          } catch (e) {
            st.giveUp(e)
          }
        }
        if (out !== null) out[j] = performance.now() - t
        try {
          await st.section()
        } finally {
          await m.release()
        }
      }
    },
    // S5x: one of the tasks on one key, in one of several processes; st (worker.mjs) records
    // the wait (lock call -> acquired) and runs the cross-process critical section.
    async s5xTask(key, st) {
      while (st.running()) {
        const t = performance.now()
        const m = mutex(key)
        for (;;) {
          try {
            await m.acquire()
            break
          } catch (e) {
            st.giveUp(e)
          }
        }
        st.acquired(t)
        try {
          await st.section()
        } finally {
          await m.release()
        }
        st.released()
      }
    },
    close: () => Promise.all(clients.map((c) => c.quit())),
  }
}
