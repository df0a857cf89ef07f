// Multi-resource locks: `lock([k1, k2, …])` takes every key or none. On Redis, one script per
// node with node-redlock v4's multi-key semantics, so redlock@4's multi-resource locks and
// ours exclude each other (one node and three); every key holds the same token, an attempt
// that finds one key held sets none. Two requests for the same keys in different orders, in
// one manager or in two, never deadlock. In memory, the keys are taken in one order too.
import { test, describe, after } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'

import { create, LockError, AbortError } from '../index.mjs'
import { rejectsWith, withTimeout } from './helpers.mjs'
import { useRedis, valuesOn, settledValuesOn } from './redis-harness.mjs'

const require = createRequire(import.meta.url)
const Redlock = require('redlock')
const IORedis = require('ioredis')

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
async function until(pred, ms, what) {
  const end = Date.now() + ms
  while (!(await pred())) {
    if (Date.now() > end) assert.fail(`timed out after ${ms} ms waiting for ${what}`)
    await sleep(5)
  }
}
const managers = []
const clients = []
after(async () => {
  await Promise.allSettled(managers.map((m) => m.destroy()))
  await Promise.allSettled(clients.map((c) => c.quit().catch(() => c.disconnect())))
})

const servers = await useRedis(3)
const [one] = servers
let n = 0
const key = (what) => `oxlock:multi:${what}:${++n}`

function ox(nodes, lockOptions = {}, options = {}) {
  const m = create({ type: 'redis', connection: nodes.map((s) => s.options), lockOptions, ...options })
  managers.push(m)
  return m
}

function redlock(nodes) {
  const cs = nodes.map((s) => new IORedis({ host: '127.0.0.1', port: s.port, maxRetriesPerRequest: 1 }))
  clients.push(...cs)
  const r = new Redlock(cs, { driftFactor: 0.01, retryCount: 0, retryDelay: 50, retryJitter: 0 })
  r.on('clientError', () => {})
  return r
}

// Many tasks over a few managers lock overlapping key sets in opposite orders; a section
// that finds one of its keys in use by another section is an exclusion violation.
async function noDeadlockRun(managers, rounds) {
  const inUse = new Set()
  let sections = 0
  const sets = [['a', 'b'], ['b', 'a'], ['b', 'c', 'a'], ['c', 'a'], ['a'], ['c']]
  const base = key('run')
  const tasks = []
  for (const [i, m] of managers.entries()) {
    for (const [j, set] of sets.entries()) {
      tasks.push((async () => {
        for (let r = 0; r < rounds; r++) {
          const keys = set.map((k) => `${base}:${k}`)
          const h = await m.lock(keys.length === 1 && (i + j) % 2 ? keys[0] : keys, 5000)
          for (const k of keys) {
            assert.ok(!inUse.has(k), `${k} is held twice`)
            inUse.add(k)
          }
          await sleep(1)
          for (const k of keys) inUse.delete(k)
          sections++
          await h.unlock()
        }
      })())
    }
  }
  await withTimeout(Promise.all(tasks), 60000, 'a deadlock: the run did not finish')
  return sections
}

for (const [name, nodes] of [['one node', [one]], ['three nodes', servers]]) {
  describe(`multi-resource locks on Redis, ${name}`, { timeout: 90000 }, () => {
    test('every key holds the same token until unlock; the fence is above each key\'s earlier fences', async () => {
      const m = ox(nodes)
      const [a, b] = [key('a'), key('b')]
      const before = await m.lock(b, 1000)
      await before.unlock()
      // (unlock() resolves at a quorum: a node still holding b would refuse [b, a] as a whole.)
      await settledValuesOn(nodes, b, nodes.map(() => null))
      const keys = [b, a]
      const h = await m.lock(keys, 5000)
      assert.deepEqual(h.resource, keys, 'the keys as given')
      assert.match(h.value, /^[0-9a-f]{32}$/)
      // (A lock resolves at quorum: the last node may answer a moment later.)
      assert.deepEqual(await settledValuesOn(nodes, a, nodes.map(() => h.value)), nodes.map(() => h.value))
      assert.deepEqual(await settledValuesOn(nodes, b, nodes.map(() => h.value)), nodes.map(() => h.value))
      assert.ok(Number.isSafeInteger(h.fence) && h.fence > before.fence, `fence ${h.fence} after ${before.fence}`)
      assert.ok(m.isLocked(a) && m.isLocked(b))
      await h.unlock()
      assert.deepEqual(await settledValuesOn(nodes, a, nodes.map(() => null)), nodes.map(() => null))
      assert.deepEqual(await settledValuesOn(nodes, b, nodes.map(() => null)), nodes.map(() => null))
      // Every counter was raised to the lock's fence: a later lock of either key draws above it.
      const after = await m.lock(a, 1000)
      assert.ok(after.fence > h.fence, `fence ${after.fence} after ${h.fence}`)
      await after.unlock()
    })

    test('all or nothing: with one key held elsewhere, none is set', async () => {
      const holder = ox(nodes)
      const m = ox(nodes, { retryCount: 1, retryDelay: 30 })
      const [a, b, c] = [key('a'), key('b'), key('c')]
      const h = await holder.lock(b, 5000)
      // (Held on every node first: a node whose SET of b came late could take all three.)
      await settledValuesOn(nodes, b, nodes.map(() => h.value))
      const err = await rejectsWith(m.lock([a, b, c], 1000), LockError, 'E_LOCK_BUSY')
      assert.equal(err.resource, `${a},${b},${c}`)
      assert.deepEqual(err.resources, [a, b, c])
      assert.deepEqual(await settledValuesOn(nodes, a, nodes.map(() => null)), nodes.map(() => null))
      assert.deepEqual(await settledValuesOn(nodes, c, nodes.map(() => null)), nodes.map(() => null))
      await h.unlock()
      const got = await m.lock([a, b, c], 1000)
      await got.unlock()
    })

    test('redlock@4 multi-resource locks and ours exclude each other', async () => {
      const rl = redlock(nodes)
      const m = ox(nodes, { retryCount: 0 })
      const [a, b, c] = [key('a'), key('b'), key('c')]
      const theirs = await rl.lock([a, b], 5000)
      await rejectsWith(m.lock([b, c], 1000), LockError, 'E_LOCK_BUSY')
      await rejectsWith(m.lock(a, 1000), LockError, 'E_LOCK_BUSY')
      assert.deepEqual(await valuesOn(nodes, c), nodes.map(() => null), 'our failed attempt set nothing')
      await theirs.unlock()
      const ours = await m.lock([a, b], 5000)
      await assert.rejects(rl.lock([b, c], 1000), /attempts to lock/)
      await assert.rejects(rl.lock([a], 1000), /attempts to lock/)
      assert.deepEqual(await valuesOn(nodes, c), nodes.map(() => null))
      // redlock@4 extends and unlocks by value: ours keep their token.
      await ours.unlock()
      // (unlock() resolves at a quorum: let the last node's delete land before redlock@4's
      // SET NX there, or that node ends up with neither value.)
      await settledValuesOn(nodes, b, nodes.map(() => null))
      const again = await rl.lock([b, c], 1000)
      assert.deepEqual(await valuesOn(nodes, b), nodes.map(() => again.value))
      await again.unlock()
    })

    test('extend resets every key; a key taken behind our back makes it E_LOCK_EXPIRED', async () => {
      const m = ox(nodes)
      const [a, b] = [key('a'), key('b')]
      const h = await m.lock([a, b], 500)
      await h.extend(5000)
      for (const k of [a, b]) {
        for (const s of nodes) await until(async () => (await s.pttl(k)) > 1000, 2000, `${k} extended on ${s.label}`)
      }
      await Promise.all(nodes.map((s) => s.cmd('SET', b, 'someone-else')))
      await rejectsWith(h.extend(5000), LockError, 'E_LOCK_EXPIRED')
      await h.unlock()
      assert.deepEqual(await valuesOn(nodes, b), nodes.map(() => 'someone-else'), 'unlock left the other holder alone')
      await Promise.all(nodes.map((s) => s.cmd('DEL', b)))
    })

    test('local queues: a multi lock queues on its first key and holds no later key while it waits', async () => {
      const m = ox(nodes)
      const [a, b] = [key('a'), key('b')]
      const first = await m.lock(a, 5000)
      const order = []
      const multi = m.lock([b, a], 5000).then((h) => (order.push('multi'), h))
      const later = m.lock(a, 5000).then((h) => (order.push('later a'), h))
      // b is not taken while the multi lock waits for a: a single lock of b is served now.
      const single = await m.lock(b, 5000)
      await single.unlock()
      assert.deepEqual(order, [])
      await first.unlock()
      const h = await multi
      await sleep(30)
      assert.deepEqual(order, ['multi'], 'the later lock of a waits behind the multi lock (FIFO on a)')
      await h.unlock()
      await (await later).unlock()
      assert.equal(m.size, 0, 'no key left in the local queues')
    })

    test('a caller nesting single locks in sorted order never deadlocks with a multi lock of the same keys', async () => {
      const m = ox(nodes, { retryCount: -1, retryDelay: 20 })
      const [a, b] = [key('a'), key('b')]
      const outer = await m.lock(a, 5000)
      const multi = m.lock([a, b], 5000)
      // Holding a, take b (a before b): the multi lock, queued on a, must not sit on b.
      const inner = await withTimeout(m.lock(b, 5000), 5000, 'deadlock: b held by a waiting multi lock')
      await inner.unlock()
      await outer.unlock()
      await (await withTimeout(multi, 5000, 'the multi lock never came')).unlock()
    })

    test('no deadlock with reversed orders: 2 managers × 6 tasks, overlapping sets', async () => {
      const ms = [ox(nodes, { retryCount: -1, retryDelay: 20 }), ox(nodes, { retryCount: -1, retryDelay: 20 })]
      const sections = await noDeadlockRun(ms, 8)
      assert.equal(sections, 2 * 6 * 8)
      for (const m of ms) assert.equal(m.size, 0)
    })

    test('a queued multi lock gives up (budget, abort) without stranding the keys', async () => {
      const m = ox(nodes, { retryCount: 2, retryDelay: 20 })
      const [a, b] = [key('a'), key('b')]
      const h = await m.lock(b, 5000)
      await rejectsWith(m.lock([a, b], 1000), LockError, 'E_LOCK_BUSY')
      const ac = new AbortController()
      const aborted = m.lock([b, a], { ttl: 1000, signal: ac.signal })
      setTimeout(() => ac.abort(), 20)
      await rejectsWith(aborted, AbortError, 'E_ABORTED')
      const single = await m.lock(a, 1000)
      await single.unlock()
      await h.unlock()
      const both = await m.lock([a, b], 1000)
      await both.unlock()
      assert.equal(m.size, 0)
    })

    test('lockNs and using() take arrays; lost is reported per key', async () => {
      const m = ox(nodes, {}, { namespace: key('ns') })
      const lost = []
      m.on('lost', (e) => lost.push(e.resource))
      const result = await m.usingNs(['x', 'y'], async (signal, h) => {
        assert.deepEqual(h.resource, [`${m.namespace}:x`, `${m.namespace}:y`])
        await settledValuesOn(nodes, `${m.namespace}:y`, nodes.map(() => h.value))
        return 42
      }, { ttl: 1000 })
      assert.equal(result, 42)
      const h = await m.lockNs(['p', 'q'], 150)
      // At the lock's expiry (plus a node timeout when a node had not answered yet).
      await until(() => lost.length >= 2, 5000, 'two lost events')
      await sleep(50)
      assert.deepEqual(lost.sort(), [`${m.namespace}:p`, `${m.namespace}:q`])
      await h.unlock()
    })
  })
}

describe('multi-resource locks: arguments and other stores', () => {
  test('bad keys are TypeError / RangeError', async () => {
    const m = create()
    managers.push(m)
    await rejectsWith(m.lock([], 100), RangeError, 'E_OUT_OF_RANGE')
    await rejectsWith(m.lock(['a', 1], 100), TypeError, 'E_INVALID_ARG')
    await rejectsWith(m.lock(['a', ''], 100), RangeError, 'E_OUT_OF_RANGE')
    await rejectsWith(m.using(['a', null], () => 1), TypeError, 'E_INVALID_ARG')
  })
})

describe('multi-resource locks in memory', () => {
  test('all keys held together; a single lock of one waits; fence above each key\'s', async () => {
    const m = create()
    managers.push(m)
    const before = await m.lock('b', 1000)
    await before.unlock()
    const h = await m.lock(['b', 'a'], 1000)
    assert.deepEqual(h.resource, ['b', 'a'])
    assert.ok(m.isLocked('a') && m.isLocked('b'))
    assert.ok(h.fence > before.fence)
    let got = false
    const single = m.lock('a', 1000).then((x) => { got = true; return x })
    await sleep(20)
    assert.equal(got, false)
    await h.unlock()
    await (await single).unlock()
    assert.ok(!m.isLocked('b'))
  })

  test('all or nothing within the budget; reversed orders never deadlock', async () => {
    const m = create({ retry: 0 })
    managers.push(m)
    const h = await m.lock('y', 1000)
    await rejectsWith(m.lock(['x', 'y'], 1000), LockError, 'E_LOCK_BUSY')
    assert.ok(!m.isLocked('x'), 'x was given back')
    await h.unlock()
    const w = create({ retry: -1 })
    managers.push(w)
    assert.equal(await noDeadlockRun([w, w], 20), 2 * 6 * 20)
  })
})
