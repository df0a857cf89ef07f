// Interop with node-redlock v4 (redlock@4.2.0 over ioredis@5) on the same real servers:
// each library sees the other's locks as busy, stale unlocks never delete the other's key,
// and the two exclude each other on one key.
import { test, describe, after } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'

import { create, LockError } from '../index.mjs'
import { rejectsWith } from './helpers.mjs'
import { useRedis, valuesOn, settledValuesOn } from './redis-harness.mjs'

const require = createRequire(import.meta.url)
const Redlock = require('redlock')
const IORedis = require('ioredis')

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const HEX32 = /^[0-9a-f]{32}$/

const managers = []
const clients = []
after(async () => {
  await Promise.all(managers.map((m) => m.destroy()))
  await Promise.all(clients.map((c) => c.quit().catch(() => c.disconnect())))
})

const servers = await useRedis(3)
const [one] = servers

function ox(nodes, lockOptions = {}) {
  const m = create({ type: 'redis', connection: nodes.map((s) => s.options), lockOptions })
  managers.push(m)
  return m
}

function redlock(nodes, options = {}) {
  const cs = nodes.map((s) => new IORedis({ host: '127.0.0.1', port: s.port, lazyConnect: false, maxRetriesPerRequest: 1 }))
  clients.push(...cs)
  const r = new Redlock(cs, { driftFactor: 0.01, retryCount: 0, retryDelay: 50, retryJitter: 0, ...options })
  r.on('clientError', () => {})
  return r
}

let n = 0
const key = (what) => `oxlock:interop:${what}:${++n}`

for (const [name, nodes] of [
  ['one node', [one]],
  ['three nodes', servers],
]) {
  describe(`node-redlock v4 interop, ${name}`, { timeout: 20000 }, () => {
    test('redlock holds: oxlock with retryCount 0 rejects E_LOCK_BUSY and leaves the key', async () => {
      const rl = redlock(nodes)
      const m = ox(nodes, { retryCount: 0 })
      const k = key('js-holds')
      const j = await rl.lock(k, 5000)
      assert.match(j.value, HEX32)
      assert.deepEqual(await valuesOn(nodes, k), nodes.map(() => j.value))
      const err = await rejectsWith(m.lock(k, 1000), LockError, 'E_LOCK_BUSY', `Exceeded 0 attempts to lock the resource "${k}".`)
      assert.equal(err.attempts, 1)
      assert.deepEqual(await valuesOn(nodes, k), nodes.map(() => j.value), 'the failed attempt left redlock\'s key alone')
      await j.unlock()
      const h = await m.lock(k, 1000)
      await h.unlock()
    })

    test('oxlock holds: redlock.lock rejects with its LockError and leaves the key', async () => {
      const rl = redlock(nodes)
      const m = ox(nodes)
      const k = key('ox-holds')
      const h = await m.lock(k, 5000)
      // (lock() resolves at a quorum: the last node's SET may land a moment later.)
      assert.deepEqual(await settledValuesOn(nodes, k, nodes.map(() => h.value)), nodes.map(() => h.value))
      await assert.rejects(rl.lock(k, 1000), (e) => e instanceof Redlock.LockError && /Exceeded 0 attempts/.test(e.message))
      assert.deepEqual(await valuesOn(nodes, k), nodes.map(() => h.value))
      // redlock's extend of a key it does not hold fails too, and changes nothing
      await h.extend(4000)
      await h.unlock()
      assert.deepEqual(await settledValuesOn(nodes, k, nodes.map(() => null)), nodes.map(() => null))
      const j = await rl.lock(k, 1000)
      await j.unlock()
    })

    test('redlock can extend and unlock its lock while oxlock waits, then oxlock gets it', async () => {
      const rl = redlock(nodes)
      const m = ox(nodes, { retryCount: 50, retryDelay: 20, retryJitter: 5 })
      const k = key('js-extend')
      let j = await rl.lock(k, 800)
      const p = m.lock(k, 2000)
      await sleep(300)
      j = await j.extend(2000)
      await sleep(600)
      // without the extend the key would have expired by now
      assert.deepEqual(await valuesOn(nodes, k), nodes.map(() => j.value))
      await j.unlock()
      const h = await p
      assert.ok(h.attempts >= 2)
      assert.deepEqual(await settledValuesOn(nodes, k, nodes.map(() => h.value)), nodes.map(() => h.value))
      await h.unlock()
    })

    test('a stale redlock unlock does not delete oxlock\'s key', async () => {
      const rl = redlock(nodes)
      const m = ox(nodes, { retryCount: 20, retryDelay: 30 })
      const k = key('stale-js')
      const j = await rl.lock(k, 200)
      await sleep(300)
      const h = await m.lock(k, 5000)
      await settledValuesOn(nodes, k, nodes.map(() => h.value))
      // redlock v4 rejects an unlock that removes nothing: that is its behaviour, not ours.
      await j.unlock().catch(() => {})
      assert.deepEqual(await valuesOn(nodes, k), nodes.map(() => h.value), 'oxlock\'s key survives')
      await h.unlock()
    })

    test('a stale oxlock unlock does not delete redlock\'s key (and resolves)', async () => {
      const rl = redlock(nodes, { retryCount: 20, retryDelay: 30 })
      const m = ox(nodes)
      const k = key('stale-ox')
      const h = await m.lock(k, 200)
      await sleep(300)
      // (A node whose SET came late holds ours a little longer.)
      await settledValuesOn(nodes, k, nodes.map(() => null))
      const j = await rl.lock(k, 5000)
      assert.equal(await h.unlock(), undefined)
      assert.deepEqual(await valuesOn(nodes, k), nodes.map(() => j.value), 'redlock\'s key survives')
      await assert.rejects(h.extend(1000), (e) => e.code === 'E_LOCK_EXPIRED')
      assert.deepEqual(await valuesOn(nodes, k), nodes.map(() => j.value))
      await j.unlock()
    })

    test('mutual exclusion across the two libraries on one key (shared counter)', async () => {
      const rl = redlock(nodes, { retryCount: 1000, retryDelay: 10, retryJitter: 5 })
      // One manager per worker: a manager's own lock() calls hand the key over locally, so
      // with one shared manager the redlock clients would only get in once it is idle.
      const oxOptions = { retryCount: 1000, retryDelay: 10, retryJitter: 5 }
      const k = key('mutex')
      const counter = `${k}:counter`
      const ROUNDS = 8
      let inside = 0
      let max = 0
      let oxTurns = 0
      let jsTurns = 0
      const seq = []
      const critical = async () => {
        inside++
        max = Math.max(max, inside)
        const v = Number((await one.get(counter)) ?? 0)
        await sleep(1)
        await one.cmd('SET', counter, v + 1)
        inside--
      }
      const oxWorker = async () => {
        const m = ox(nodes, oxOptions)
        for (let i = 0; i < ROUNDS; i++) {
          const h = await m.lock(k, 5000)
          await critical()
          oxTurns++
          seq.push('o')
          await h.unlock()
        }
      }
      const jsWorker = async () => {
        for (let i = 0; i < ROUNDS; i++) {
          const j = await rl.lock(k, 5000)
          await critical()
          jsTurns++
          seq.push('j')
          await j.unlock()
        }
      }
      await Promise.all([oxWorker(), oxWorker(), oxWorker(), jsWorker(), jsWorker(), jsWorker()])
      assert.equal(max, 1, 'an oxlock holder and a redlock holder were inside at the same time')
      assert.equal(oxTurns, 3 * ROUNDS)
      assert.equal(jsTurns, 3 * ROUNDS)
      assert.equal(await one.get(counter), String(6 * ROUNDS), 'lost update')
      const switches = seq.filter((c, i) => i > 0 && c !== seq[i - 1]).length
      assert.ok(switches >= 1, `the two libraries never alternated: ${seq.join('')}`)
      // unlock() resolves once a quorum deleted the key; the last node's delete may still be on its way
      assert.deepEqual(await settledValuesOn(nodes, k, nodes.map(() => null)), nodes.map(() => null))
      await one.cmd('DEL', counter)
    })
  })
}
