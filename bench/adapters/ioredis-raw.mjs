// Raw ioredis baseline (single node only): lock = `SET key token NX PX ttl`, unlock = EVALSHA
// of a compare-and-delete script (ioredis defineCommand: EVALSHA, EVAL on NOSCRIPT).
// Token: crypto.randomUUID(). Contended (S5): retry SET NX every retryDelay ms (fixed, no
// jitter), give up after retryCount retries. No local queue. ioredis-raw-ap.mjs is the
// same code with `enableAutoPipelining: true`.
import { createRequire } from 'node:module'
import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'

const require = createRequire(import.meta.url)

export const name = 'ioredis-raw'

const CAD = `if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) else return 0 end`

export function redis(nodes, cfg) {
  return make(nodes, cfg, false)
}

export async function make(nodes, cfg, enableAutoPipelining) {
  if (nodes.length !== 1) throw new Error('the raw ioredis baseline is single-node only')
  const Redis = require('ioredis')
  const client = new Redis({ host: nodes[0].host, port: nodes[0].port, enableAutoPipelining })
  client.defineCommand('cad', { numberOfKeys: 1, lua: CAD })
  await client.ping()
  const ttl = cfg.ttl
  const busy = (key) => new Error(`SET NX on "${key}" refused: the key is held`)
  return {
    async s3(keys, n, out) {
      const mask = keys.length - 1
      if (out === null) {
        for (let i = 0; i < n; i++) {
          const key = keys[i & mask]
          const token = randomUUID()
          if ((await client.set(key, token, 'PX', ttl, 'NX')) !== 'OK') throw busy(key)
          await client.cad(key, token)
        }
      } else {
        for (let i = 0; i < n; i++) {
          const t = performance.now()
          const key = keys[i & mask]
          const token = randomUUID()
          if ((await client.set(key, token, 'PX', ttl, 'NX')) !== 'OK') throw busy(key)
          await client.cad(key, token)
          out[i] = performance.now() - t
        }
      }
    },
    async s4Task(key, st, out) {
      while (st.started < st.n) {
        const j = st.started++
        const t = out === null ? 0 : performance.now()
        const token = randomUUID()
        if ((await client.set(key, token, 'PX', ttl, 'NX')) !== 'OK') throw busy(key)
        await client.cad(key, token)
        if (out !== null) out[j] = performance.now() - t
      }
    },
    async s5Task(key, st, out) {
      for (let j; (j = st.take()) >= 0; ) {
        const t = out === null ? 0 : performance.now()
        const token = randomUUID()
        let retries = 0
        while ((await client.set(key, token, 'PX', ttl, 'NX')) !== 'OK') {
          if (retries++ >= cfg.retryCount) {
            st.giveUp(new Error(`Exceeded ${cfg.retryCount} attempts to lock the resource "${key}".`))
            retries = 0
          } else await sleep(cfg.retryDelay)
        }
        if (out !== null) out[j] = performance.now() - t
        try {
          await st.section()
        } finally {
          await client.cad(key, token)
        }
      }
    },
    // S5x: one of the tasks on one key, in one of several processes (S5's polling loop).
    async s5xTask(key, st) {
      while (st.running()) {
        const t = performance.now()
        const token = randomUUID()
        let retries = 0
        while ((await client.set(key, token, 'PX', ttl, 'NX')) !== 'OK') {
          if (retries++ >= cfg.retryCount) {
            st.giveUp(new Error(`Exceeded ${cfg.retryCount} attempts to lock the resource "${key}".`))
            retries = 0
          } else await sleep(cfg.retryDelay)
        }
        st.acquired(t)
        try {
          await st.section()
        } finally {
          await client.cad(key, token)
        }
        st.released()
      }
    },
    close: () => client.quit(),
  }
}
