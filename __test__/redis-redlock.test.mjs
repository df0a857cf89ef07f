// Redlock over several real redis-server masters: quorum with killed nodes, recovery after a
// restart on the same port, a paused (SIGSTOP) node, and foreign values on a minority or a
// majority of the nodes.
import { test, describe, after, beforeEach } from 'node:test'
import assert from 'node:assert/strict'
import util from 'node:util'

import { create, LockError } from '../index.mjs'
import { since, rejectsWith, checkError, withTimeout } from './helpers.mjs'
import { useRedis, valuesOn, settledValuesOn } from './redis-harness.mjs'

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

const managers = []
after(() => Promise.all(managers.map((m) => m.destroy())))

const five = await useRedis(5)
const three = await useRedis(3)

function mk(servers, lockOptions = {}) {
  const m = create({ type: 'redis', connection: servers.map((s) => s.url), lockOptions })
  managers.push(m)
  return m
}

let n = 0
const key = (what) => `oxlock:redlock:${what}:${++n}`

/** Every server running and answering (undoes kills and pauses of a failed test). */
async function allUp(servers) {
  for (const s of servers) {
    if (s.paused) s.resume()
    if (!s.running) await s.restart()
  }
}

const QUICK = { retryCount: 2, retryDelay: 50, retryJitter: 0, nodeTimeout: 200, connectTimeout: 200 }

describe('Redlock over 5 nodes: killed nodes', { timeout: 30000 }, () => {
  beforeEach(() => allUp(five))
  after(() => allUp(five))

  test('healthy: the key is set on all 5 nodes, unlock clears all 5', async () => {
    const m = mk(five, QUICK)
    const k = key('healthy')
    const h = await m.lock(k, 5000)
    assert.equal(h.attempts, 1)
    // The quorum decides early; the last SETs may land a moment later.
    const end = Date.now() + 1000
    let vals = await valuesOn(five, k)
    while (!vals.every((v) => v === h.value) && Date.now() < end) {
      await sleep(10)
      vals = await valuesOn(five, k)
    }
    assert.deepEqual(vals, Array(5).fill(h.value))
    for (const s of five) {
      const pttl = await s.pttl(k)
      assert.ok(pttl > 4000 && pttl <= 5000, `PTTL on ${s.label}: ${pttl}`)
    }
    await h.unlock()
    assert.deepEqual(await settledValuesOn(five, k, Array(5).fill(null)), Array(5).fill(null))
  })

  test('with 2 of 5 killed the lock still works (quorum 3) and is set on the 3 live nodes', async () => {
    const m = mk(five, QUICK)
    await (await m.lock(key('warm'), 1000)).unlock()
    await five[0].kill()
    await five[3].kill()
    const live = [five[1], five[2], five[4]]
    const k = key('two-down')
    const t0 = Date.now()
    const h = await m.lock(k, 5000)
    assert.ok(since(t0) < 2000, `took ${since(t0)} ms`)
    assert.deepEqual(await valuesOn(live, k), Array(3).fill(h.value))
    // extend works on the quorum too
    await h.extend(4000)
    for (const s of live) {
      const pttl = await s.pttl(k)
      assert.ok(pttl > 3000 && pttl <= 4000, `PTTL on ${s.label} after extend: ${pttl}`)
    }
    // a second manager sees the lock as busy
    const other = mk(five, { ...QUICK, retryCount: 0 })
    await rejectsWith(other.lock(k, 1000), LockError, 'E_LOCK_BUSY')
    const t1 = Date.now()
    await withTimeout(h.unlock(), 3000, 'unlock() with 2 nodes down')
    assert.ok(since(t1) < 2000, `unlock took ${since(t1)} ms`)
    assert.deepEqual(await valuesOn(live, k), Array(3).fill(null))
  })

  test('with 3 of 5 killed lock() rejects E_UNAVAILABLE within the retry budget, naming the dead nodes, and leaves no key', async () => {
    const m = mk(five, QUICK)
    await (await m.lock(key('warm'), 1000)).unlock()
    const dead = [five[0], five[2], five[4]]
    const live = [five[1], five[3]]
    await Promise.all(dead.map((s) => s.kill()))
    const k = key('three-down')
    const t0 = Date.now()
    const err = await withTimeout(
      m.lock(k, 5000).then(
        (h) => assert.fail(`lock() succeeded without a quorum (value ${h.value})`),
        (e) => e,
      ),
      8000,
      'lock() without a quorum should give up',
    )
    const took = since(t0)
    checkError(err, LockError, 'E_UNAVAILABLE', (msg) => msg.startsWith(`Unable to reach a quorum of Redis nodes for the resource "${k}" after 3 attempts`))
    assert.equal(err.attempts, 3)
    assert.equal(err.resource, k)
    // 3 attempts, each bounded by nodeTimeout (200) + the release round (200), 2 × 50 ms between
    assert.ok(took < 5000, `took ${took} ms`)
    assert.ok(Array.isArray(err.causes), util.inspect(err))
    for (const s of dead) {
      assert.ok(err.causes.some((c) => c.startsWith(`${s.label}: `)), `causes should name ${s.label}: ${util.inspect(err.causes)}`)
      assert.ok(err.message.includes(s.label))
    }
    for (const s of live) assert.ok(!err.causes.some((c) => c.startsWith(`${s.label}:`)), `a live node is blamed: ${util.inspect(err.causes)}`)
    assert.deepEqual(await settledValuesOn(live, k, [null, null]), [null, null], 'a failed attempt must leave no key on the live nodes')
  })

  test('extend() without a quorum fails and never deletes our key on the live nodes', async () => {
    const m = mk(five, QUICK)
    const k = key('extend-no-quorum')
    const h = await m.lock(k, 10000)
    // (lock() resolves at a quorum: let the last SETs land before nodes are killed.)
    await settledValuesOn(five, k, Array(5).fill(h.value))
    const live = [five[0], five[1]]
    await Promise.all([five[2], five[3], five[4]].map((s) => s.kill()))
    const t0 = Date.now()
    const err = await withTimeout(h.extend(10000).then(() => null, (e) => e), 6000, 'extend() without a quorum')
    assert.ok(since(t0) < 5000, `took ${since(t0)} ms`)
    checkError(err, LockError, 'E_UNAVAILABLE')
    assert.ok(err.causes.length >= 3, util.inspect(err.causes))
    assert.deepEqual(await valuesOn(live, k), [h.value, h.value], 'our key survives a failed extend')
    await h.unlock()
    assert.deepEqual(await valuesOn(live, k), [null, null])
  })

  test('a lock held while nodes die can still be unlocked (bounded) and frees the live nodes', async () => {
    const m = mk(five, QUICK)
    const k = key('die-while-held')
    const h = await m.lock(k, 10000)
    await five[1].kill()
    await five[2].kill()
    const t0 = Date.now()
    await withTimeout(h.unlock(), 3000, 'unlock() with dead nodes')
    assert.ok(since(t0) < 2000, `unlock took ${since(t0)} ms`)
    assert.deepEqual(await valuesOn([five[0], five[3], five[4]], k), [null, null, null])
  })

  test('killed nodes restarted on the same ports are used again', async () => {
    const m = mk(five, QUICK)
    await (await m.lock(key('warm'), 1000)).unlock()
    const dead = [five[0], five[1], five[2]]
    await Promise.all(dead.map((s) => s.kill()))
    await rejectsWith(m.lock(key('down'), 1000), LockError, 'E_UNAVAILABLE')
    await Promise.all(dead.map((s) => s.restart()))
    // The connections come back by themselves; allow a little time for the reconnect.
    const k = key('restarted')
    const t0 = Date.now()
    let vals = null
    let last
    while (since(t0) < 5000) {
      let h
      try {
        h = await m.lock(k, 5000)
      } catch (e) {
        last = e
        await sleep(100)
        continue
      }
      await sleep(20)
      vals = await valuesOn(five, k)
      const ok = vals.every((v) => v === h.value)
      await h.unlock()
      if (ok) break
      await sleep(100)
    }
    assert.ok(vals !== null, `no lock() succeeded after the restart; last error: ${last && last.message}`)
    assert.ok(
      vals.every((v) => v !== null),
      `later locks should set the key on every node again, restarted ones included: ${util.inspect(vals)}`,
    )
    // unlock() resolved at quorum: the last nodes' deletes may still be on their way
    assert.deepEqual(await settledValuesOn(five, k, Array(5).fill(null)), Array(5).fill(null))
  })
})

describe('a paused (SIGSTOP) node', { timeout: 30000 }, () => {
  beforeEach(async () => {
    await allUp(three)
    await allUp(five)
  })
  after(async () => {
    await allUp(three)
    await allUp(five)
  })

  for (const [name, servers, paused] of [
    ['1 of 3', () => three, [2]],
    ['2 of 5', () => five, [0, 4]],
  ]) {
    test(`${name} paused: lock and unlock do not wait for the paused node beyond nodeTimeout`, async () => {
      const nodes = servers()
      const NODE_TIMEOUT = 2000
      const m = mk(nodes, { retryCount: 0, nodeTimeout: NODE_TIMEOUT, connectTimeout: 1000 })
      // healthy baseline (and connected)
      const hb = await m.lock(key('baseline'), 5000)
      await hb.unlock()
      const stopped = paused.map((i) => nodes[i])
      const live = nodes.filter((s) => !stopped.includes(s))
      for (const s of stopped) s.pause()
      try {
        for (let i = 0; i < 2; i++) {
          const k = key('paused')
          const t0 = Date.now()
          const h = await withTimeout(m.lock(k, 5000), NODE_TIMEOUT * 3, 'lock() with a paused node')
          const took = since(t0)
          // The live nodes form a quorum: the decision does not wait for the stopped node.
          assert.ok(took < NODE_TIMEOUT, `lock() took ${took} ms with a paused node; the quorum should decide without it`)
          assert.equal(h.attempts, 1)
          assert.deepEqual(await valuesOn(live, k), live.map(() => h.value))
          const e0 = Date.now()
          await withTimeout(h.extend(5000), NODE_TIMEOUT * 3, 'extend() with a paused node')
          assert.ok(since(e0) < NODE_TIMEOUT, `extend() took ${since(e0)} ms`)
          const t1 = Date.now()
          await withTimeout(h.unlock(), NODE_TIMEOUT * 3, 'unlock() with a paused node')
          const took2 = since(t1)
          assert.ok(took2 < NODE_TIMEOUT + 1000, `unlock() took ${took2} ms: it should be bounded by nodeTimeout (${NODE_TIMEOUT})`)
          assert.deepEqual(await valuesOn(live, k), live.map(() => null))
        }
      } finally {
        for (const s of stopped) s.resume()
      }
    })
  }

  test('a lock set while a node was paused is gone from that node once it resumes and the unlock went through', async () => {
    const m = mk(three, { retryCount: 0, nodeTimeout: 300 })
    await (await m.lock(key('warm'), 1000)).unlock()
    const k = key('resume')
    three[0].pause()
    let h
    try {
      h = await m.lock(k, 3000)
      await h.unlock()
    } finally {
      three[0].resume()
    }
    // The paused node runs its queued commands (SET then the release) when it resumes;
    // at worst the key lives until its ttl. Either way it never outlives the ttl.
    const end = Date.now() + 4000
    while ((await three[0].get(k)) !== null && Date.now() < end) await sleep(50)
    assert.equal(await three[0].get(k), null)
  })

  test('a failed attempt whose SETs time out on paused nodes: the take-back is sent again until it lands, no token of ours is left', async () => {
    const m = mk(three, { retryCount: 0, nodeTimeout: 100, connectTimeout: 100 })
    await (await m.lock(key('warm'), 1000)).unlock()
    const k = key('take-back')
    await three[0].cmd('SET', k, 'foreign-0')
    three[1].pause()
    three[2].pause()
    try {
      // Decided once both SETs timed out; the take-back goes out after that, and times out too.
      await assert.rejects(m.lock(k, 4000), LockError)
      await sleep(400)
    } finally {
      three[1].resume()
      three[2].resume()
    }
    const want = ['foreign-0', null, null]
    assert.deepEqual(await settledValuesOn(three, k, want, 2000), want, 'our token stayed on a node that was paused')
    await Promise.all(three.map((s) => s.cmd('DEL', k)))
  })
})

describe('foreign values on some of the 5 nodes', { timeout: 30000 }, () => {
  beforeEach(() => allUp(five))

  test('a foreign value on a minority (2): lock succeeds on the other 3, the foreign values are untouched', async () => {
    const m = mk(five, QUICK)
    const k = key('minority')
    await five[0].cmd('SET', k, 'foreign-0')
    await five[3].cmd('SET', k, 'foreign-3', 'PX', 60000)
    const h = await m.lock(k, 5000)
    await sleep(20)
    const vals = await valuesOn(five, k)
    assert.deepEqual(vals, ['foreign-0', h.value, h.value, 'foreign-3', h.value])
    assert.equal(await five[0].pttl(k), -1, 'no expiry was put on the foreign key')
    await h.extend(3000)
    assert.equal(await five[0].pttl(k), -1, 'extend leaves the foreign key alone')
    assert.equal(await five[0].get(k), 'foreign-0')
    await h.unlock()
    const left = ['foreign-0', null, null, 'foreign-3', null]
    assert.deepEqual(await settledValuesOn(five, k, left), left)
    assert.ok((await five[3].pttl(k)) > 50000)
    await Promise.all(five.map((s) => s.cmd('DEL', k)))
  })

  test('a foreign value on a majority (3): E_LOCK_BUSY, our token on no node afterwards, foreign values untouched', async () => {
    const m = mk(five, { ...QUICK, retryCount: 1 })
    const k = key('majority')
    await five[1].cmd('SET', k, 'foreign-1')
    await five[2].cmd('SET', k, 'foreign-2')
    await five[4].cmd('SET', k, 'foreign-4', 'PX', 60000)
    const err = await rejectsWith(m.lock(k, 5000), LockError, 'E_LOCK_BUSY', `Exceeded 1 attempts to lock the resource "${k}".`)
    assert.equal(err.attempts, 2)
    // The failed attempts' tokens are taken back everywhere (awaited on the nodes that
    // answered; a node still out gets its delete right behind the SET).
    const left = [null, 'foreign-1', 'foreign-2', null, 'foreign-4']
    assert.deepEqual(await settledValuesOn(five, k, left), left)
    assert.equal(await five[1].pttl(k), -1)
    assert.ok((await five[4].pttl(k)) > 50000)
    // still nothing of ours a moment later (a late SET would show up now)
    await sleep(100)
    assert.deepEqual(await valuesOn(five, k), [null, 'foreign-1', 'foreign-2', null, 'foreign-4'])
    await Promise.all(five.map((s) => s.cmd('DEL', k)))
  })

  test('a foreign value on a majority that goes away during the retries: the lock is taken', async () => {
    const m = mk(five, { retryCount: 20, retryDelay: 50, retryJitter: 10, nodeTimeout: 200 })
    const k = key('majority-clears')
    for (const i of [0, 1, 2]) await five[i].cmd('SET', k, `foreign-${i}`, 'PX', 300)
    const t0 = Date.now()
    const h = await m.lock(k, 5000)
    assert.ok(since(t0) >= 200, `locked after ${since(t0)} ms, while a majority held foreign values`)
    assert.ok(h.attempts >= 2)
    // Every node ends up ours or empty: no foreign value, no token of an earlier failed
    // attempt (on a slow host a take-back may need a second send, after this lock was won
    // on the other four).
    const end = Date.now() + 2000
    let vals = await valuesOn(five, k)
    while (!vals.every((v) => v === h.value) && Date.now() < end) {
      if (vals.every((v) => v === h.value || v === null)) break
      await sleep(10)
      vals = await valuesOn(five, k)
    }
    assert.ok(vals.every((v) => v === h.value || v === null), `values: ${vals}`)
    assert.ok(vals.filter((v) => v === h.value).length >= 3, `values: ${vals}`)
    await h.unlock()
  })
})
