// Three processes increment one counter in Redis under the lock (GET, an await, SET + 1):
// no update may be lost, on one node and on three (Redlock).
import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import { fileURLToPath } from 'node:url'

import { runNode } from './helpers.mjs'
import { useRedis, settledValuesOn } from './redis-harness.mjs'

const COUNTER = fileURLToPath(new URL('./fixtures/redis-counter.mjs', import.meta.url))

const servers = await useRedis(3)

async function race(nodes, key, { processes = 3, increments, workers }) {
  const ports = nodes.map((s) => s.port).join(',')
  const runs = await Promise.all(
    Array.from({ length: processes }, () => runNode([COUNTER, ports, key, String(increments), String(workers), String(processes)], { killAfter: 30000 })),
  )
  for (const r of runs) {
    assert.equal(r.code, 0, `a counter process failed (code ${r.code}, signal ${r.signal}):\n${r.stderr}`)
    const done = r.lines.find((l) => l.ev === 'done')
    assert.ok(done, `no 'done' line:\n${r.stdout}\n${r.stderr}`)
    assert.equal(done.done, increments)
  }
  return runs
}

describe('several processes, one counter', { timeout: 60000 }, () => {
  test('3 processes × 30 increments on one node: the counter ends at 90', async () => {
    const key = 'oxlock:proc:one'
    const runs = await race([servers[0]], key, { increments: 30, workers: 1 })
    assert.equal(await servers[0].get(`${key}:counter`), '90', 'lost update: two processes held the lock at once')
    assert.equal(await servers[0].get(key), null, 'the lock key is gone at the end')
    // the processes did contend through Redis
    assert.ok(runs.some((r) => r.lines.find((l) => l.ev === 'done').maxAttempts >= 2), 'no lock() ever had to retry: no contention')
  })

  test('3 processes × 2 local workers × 20 increments over 3 nodes (Redlock): the counter ends at 60', async () => {
    const key = 'oxlock:proc:three'
    await race(servers, key, { increments: 20, workers: 2 })
    assert.equal(await servers[0].get(`${key}:counter`), '60', 'lost update: two holders at once')
    // the last unlock() resolved at quorum: the third node's delete may still be on its way
    assert.deepEqual(await settledValuesOn(servers, key, [null, null, null]), [null, null, null])
  })
})
