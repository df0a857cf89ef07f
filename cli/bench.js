'use strict'

// `oxlock bench`: a quick throughput check on this machine: lock/unlock cycles per second
// in memory (the two call shapes), and on the given store when there is one (sequential
// cycles, and 64 tasks on distinct keys). For comparisons with other libraries, bench/.

const { performance } = require('node:perf_hooks')
const Lock = require('../index.js')

async function rate(seconds, loop) {
  const until = performance.now() + seconds * 1000
  let ops = 0
  const t0 = performance.now()
  while (performance.now() < until) ops += await loop()
  return Math.round(ops / ((performance.now() - t0) / 1000))
}

async function bench({ seconds, storeOptions }) {
  const results = []
  const mem = Lock.create({ lockConfig: { type: 'inMemory' } })
  results.push({
    store: 'inMemory',
    shape: 'await lock(); await unlock()',
    opsPerSec: await rate(seconds, async () => {
      for (let i = 0; i < 1000; i++) await (await mem.lock('bench', 1000)).unlock()
      return 1000
    }),
  })
  results.push({
    store: 'inMemory',
    shape: 'using(key, fn)',
    opsPerSec: await rate(seconds, async () => {
      for (let i = 0; i < 1000; i++) await mem.using('bench', () => {})
      return 1000
    }),
  })
  await mem.destroy()
  if (storeOptions) {
    const remote = Lock.create({ ...storeOptions, namespace: `oxlock-bench-${process.pid}` })
    try {
      results.push({
        store: remote.type,
        shape: 'sequential lock + unlock',
        opsPerSec: await rate(seconds, async () => {
          await (await remote.lock('seq', 5000)).unlock()
          return 1
        }),
      })
      results.push({
        store: remote.type,
        shape: '64 tasks, distinct keys',
        opsPerSec: await rate(seconds, async () => {
          await Promise.all(Array.from({ length: 64 }, (_, i) => remote.lock(`k${i}`, 5000).then((h) => h.unlock())))
          return 64
        }),
      })
    } finally {
      await remote.destroy()
    }
  }
  return results
}

module.exports = { bench }
