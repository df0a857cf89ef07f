// A manager is an EventEmitter: 'lost' (a held lock expired or was taken before its unlock),
// 'extended', 'error' (a node failed a call: host:port, never credentials) and 'reconnect'
// (it answers again). No listener means no crash. On real Redis, PostgreSQL and in memory.
import { test, describe, after } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'

import { create } from '../index.mjs'
import { withTimeout } from './helpers.mjs'
import { useRedis } from './redis-harness.mjs'

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const [server, spare] = await useRedis(2)
const managers = []
after(() => Promise.allSettled(managers.map((m) => m.destroy())))
let n = 0
const key = (what) => `oxlock:events:${what}:${++n}`

for (const [name, make] of [
  ['redis', () => create({ type: 'redis', connection: server.options })],
  ['inMemory', () => create()],
]) {
  describe(`events (${name})`, { timeout: 20000 }, () => {
    const mk = () => {
      const m = make()
      managers.push(m)
      return m
    }

    test("'extended' after a successful extend, with the new expiration", async () => {
      const m = mk()
      const k = key('extended')
      const h = await m.lock(k, 1000)
      const seen = once(m, 'extended')
      await h.extend(5000)
      const [e] = await withTimeout(seen, 2000, "no 'extended'")
      assert.equal(e.resource, k)
      assert.equal(e.value, h.value)
      assert.ok(e.expiration > Date.now() + 4000)
      await h.unlock()
    })

    test("'lost' when a held lock expires before its unlock; not after an unlock", async () => {
      const m = mk()
      const lost = []
      m.on('lost', (e) => lost.push(e.resource))
      const k = key('lost')
      const released = key('released')
      const h1 = await m.lock(k, 300)
      const h2 = await m.lock(released, 300)
      await h2.unlock()
      await sleep(900)
      assert.deepEqual(lost, [k])
      await h1.unlock() // late: resolves, changes nothing
    })
  })
}

describe('events of a Redis node', { timeout: 30000 }, () => {
  test("'error' when a node fails a call, 'reconnect' when it answers again; the lock still works", async () => {
    const m = create({ type: 'redis', connection: spare.options, lockOptions: { retryCount: 0, nodeTimeout: 300 } })
    managers.push(m)
    const errors = []
    const reconnects = []
    m.on('error', (e) => errors.push(e))
    m.on('reconnect', (e) => reconnects.push(e.node))
    await (await m.lock(key('warm'), 1000)).unlock()
    spare.pause()
    try {
      await assert.rejects(m.lock(key('paused'), 1000), (e) => e.code === 'E_UNAVAILABLE')
    } finally {
      spare.resume()
    }
    assert.ok(errors.length >= 1, 'no error event')
    assert.equal(errors[0].code, 'E_NODE_FAILURE')
    assert.equal(errors[0].node, spare.label)
    assert.equal(errors[0].kind, 'timeout')
    await (await m.lock(key('back'), 1000)).unlock()
    assert.deepEqual(reconnects, [errors[0].node])
  })

  test("no 'error' listener: a failing node crashes nothing", async () => {
    const m = create({ type: 'redis', connection: spare.options, lockOptions: { retryCount: 0, nodeTimeout: 200 } })
    managers.push(m)
    spare.pause()
    try {
      await assert.rejects(m.lock(key('nobody-listens'), 1000), (e) => e.code === 'E_UNAVAILABLE')
    } finally {
      spare.resume()
    }
    await sleep(50)
    await (await m.lock(key('after'), 1000)).unlock()
  })
})

describe('events of a PostgreSQL manager', { timeout: 60000 }, () => {
  test("'error' while the database is down, 'reconnect' once it is back", async () => {
    const { usePostgres } = await import('./pg-harness.mjs')
    const pg = await usePostgres()
    const m = create({ type: 'postgres', connection: pg.url, lockOptions: { retryCount: 0, connectTimeout: 1000, queryTimeout: 1000 } })
    managers.push(m)
    const errors = []
    const reconnects = []
    m.on('error', (e) => errors.push(e))
    m.on('reconnect', (e) => reconnects.push(e.node))
    await (await m.lock(key('pg-warm'), 1000)).unlock()
    await pg.stop()
    await assert.rejects(m.lock(key('pg-down'), 1000), (e) => e.code === 'E_UNAVAILABLE')
    assert.ok(errors.length >= 1, 'no error event')
    assert.equal(errors[0].code, 'E_NODE_FAILURE')
    assert.equal(errors[0].node, pg.label)
    await pg.start()
    await (await m.lock(key('pg-back'), 1000)).unlock()
    assert.deepEqual(reconnects, [pg.label])
  })
})
