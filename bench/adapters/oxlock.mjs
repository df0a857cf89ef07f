// oxlock adapter: the library under test, used through its public API.
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
// bench/run.mjs passes a copy of oxlock taken at the start of the run (so a rebuild in the
// tree mid-run cannot mix builds); run on its own, the worker loads the tree's.
const SUBJECT = process.env.OXLOCK_BENCH_SUBJECT || '../../index.js'
const TTL = 10000 // ms; far above any hold time here, so no lock ever expires
const noop = () => {}

export const name = 'oxlock'

// In-memory backend. Each scenario loop is written inline in the library's natural API,
// so no library pays for an extra wrapper call per operation.
//   out: null for a throughput batch, or a Float64Array receiving per-op times in ms.
export function memory() {
  const Lock = require(SUBJECT)
  const lock = Lock.create({ retry: -1 })
  return {
    // S1: n sequential lock+unlock cycles over `keys` (length a power of two).
    async s1(keys, n, out) {
      const mask = keys.length - 1
      if (out === null) {
        for (let i = 0; i < n; i++) {
          const h = await lock.lock(keys[i & mask], TTL)
          await h.unlock()
        }
      } else {
        for (let i = 0; i < n; i++) {
          const t = performance.now()
          const h = await lock.lock(keys[i & mask], TTL)
          await h.unlock()
          out[i] = performance.now() - t
        }
      }
    },
    // S2: one of the concurrent tasks on one key; st.section() is the critical section.
    // out[j]: wait from the lock() call to acquisition.
    async s2Task(key, st, out) {
      while (st.started < st.n) {
        const j = st.started++
        const t = out === null ? 0 : performance.now()
        const h = await lock.lock(key, TTL)
        if (out !== null) out[j] = performance.now() - t
        try {
          await st.section()
        } finally {
          await h.unlock()
        }
      }
    },
    // S1u: S1 through using(key, fn).
    async s1u(keys, n, out) {
      const mask = keys.length - 1
      for (let i = 0; i < n; i++) {
        const t = out === null ? 0 : performance.now()
        await lock.using(keys[i & mask], noop, { ttl: TTL })
        if (out !== null) out[i] = performance.now() - t
      }
    },
    // S2u: S2 through using(key, fn).
    async s2uTask(key, st, out) {
      while (st.started < st.n) {
        const j = st.started++
        const t = out === null ? 0 : performance.now()
        await lock.using(key, () => {
          if (out !== null) out[j] = performance.now() - t
          return st.section()
        }, { ttl: TTL })
      }
    },
    stateSize: () => lock.size,
    close: () => lock.destroy(),
  }
}

// Redis backend: one manager over `nodes` (one node, or Redlock over several masters).
// Calls for one key within the manager queue locally; only the head talks to Redis.
export async function redis(nodes, cfg) {
  const Lock = require(SUBJECT)
  const lock = Lock.create({
    type: 'redis',
    connection: nodes.length === 1 ? nodes[0] : nodes,
    lockOptions: {
      retryCount: cfg.retryCount,
      retryDelay: cfg.retryDelay,
      retryJitter: cfg.retryJitter,
      // oxlock-nofence: no fence counter (the peers have none), a plain SET NX PX.
      ...(process.env.OXLOCK_BENCH_NOFENCE ? { fencing: false } : {}),
    },
  })
  const ttl = cfg.ttl
  return {
    // S3 / S6a: n sequential lock+unlock cycles over `keys` (length a power of two).
    async s3(keys, n, out) {
      const mask = keys.length - 1
      if (out === null) {
        for (let i = 0; i < n; i++) {
          const h = await lock.lock(keys[i & mask], ttl)
          await h.unlock()
        }
      } else {
        for (let i = 0; i < n; i++) {
          const t = performance.now()
          const h = await lock.lock(keys[i & mask], ttl)
          await h.unlock()
          out[i] = performance.now() - t
        }
      }
    },
    // S4 / S6b: one of the concurrent tasks, each on its own key; out[j] = one cycle.
    async s4Task(key, st, out) {
      while (st.started < st.n) {
        const j = st.started++
        const t = out === null ? 0 : performance.now()
        const h = await lock.lock(key, ttl)
        await h.unlock()
        if (out !== null) out[j] = performance.now() - t
      }
    },
    // S5: one of the tasks on one key; out[j] = wait from the first lock() call to acquisition.
    async s5Task(key, st, out) {
      for (let j; (j = st.take()) >= 0; ) {
        const t = out === null ? 0 : performance.now()
        let h
        for (;;) {
          try {
            h = await lock.lock(key, ttl)
            break
          } catch (e) {
            st.giveUp(e)
          }
        }
        if (out !== null) out[j] = performance.now() - t
        try {
          await st.section()
        } finally {
          await h.unlock()
        }
      }
    },
    // S5x: one of the tasks on one key, in one of several processes; st (worker.mjs) records
    // the wait (lock call -> acquired) and runs the cross-process critical section.
    async s5xTask(key, st) {
      while (st.running()) {
        const t = performance.now()
        let h
        for (;;) {
          try {
            h = await lock.lock(key, ttl)
            break
          } catch (e) {
            st.giveUp(e)
          }
        }
        st.acquired(t)
        try {
          await st.section()
        } finally {
          await h.unlock()
        }
        st.released()
      }
    },
    stateSize: () => lock.size,
    close: () => lock.destroy(),
  }
}
