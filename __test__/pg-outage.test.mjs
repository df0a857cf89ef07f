// The PostgreSQL backend while its server goes away: stopped (pg_ctl stop -m fast) and started
// again, killed (SIGKILL), paused (SIGSTOP). Calls that need the server reject E_UNAVAILABLE
// within the timeouts (never hang), the same manager works again once the server is back
// (its pool reconnects by itself, and so does its NOTIFY listener), and fences keep
// increasing across a restart.
import { test, describe, after, afterEach } from 'node:test'
import assert from 'node:assert/strict'
import util from 'node:util'

import { create, LockError } from '../index.mjs'
import { since, rejectsWith, checkError, withTimeout, state } from './helpers.mjs'
import { usePostgres } from './pg-harness.mjs'

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

const pg = await usePostgres()

let managers = []
async function destroyAll() {
  pg.resume()
  const ms = managers
  managers = []
  await Promise.allSettled(ms.map((m) => withTimeout(m.destroy(), 15000, 'destroy()')))
}
after(destroyAll)

// Short timeouts: every call that needs the server gives up quickly while it is away.
const FAST = { connectTimeout: 500, queryTimeout: 500, retryCount: 1, retryDelay: 50, retryJitter: 0 }
function mk(lockOptions = {}) {
  const m = create({ type: 'postgres', connection: pg.url, lockOptions: { ...FAST, ...lockOptions } })
  managers.push(m)
  return m
}

let n = 0
const key = (what) => `oxlock:pg:outage:${what}:${++n}`

/** The error of `p` (which must reject within `ms`). */
async function failsWithin(p, ms, what) {
  return withTimeout(
    p.then(
      (v) => assert.fail(`${what} should fail, it resolved ${util.inspect(v, { depth: 0 })}`),
      (e) => e,
    ),
    ms,
    `${what} hung`,
  )
}

function checkUnavailable(err, what) {
  checkError(err, LockError, 'E_UNAVAILABLE')
  const list = Array.isArray(err.failures) ? err.failures : err.causes
  assert.ok(Array.isArray(list) && list.length >= 1, `${what}: causes ${util.inspect(err)}`)
  for (const c of list) {
    const node = typeof c === 'string' ? c.slice(0, c.indexOf(': ')) : c.node
    assert.equal(node, pg.label, `${what}: the cause names the server`)
  }
}

/** lock() until it works (the pool may need a moment to notice the server is back), at most `ms`. */
async function lockWhenBack(m, k, ttl, ms = 10000) {
  const t0 = Date.now()
  let last
  for (;;) {
    try {
      return await m.lock(k, ttl)
    } catch (e) {
      last = e
      if (since(t0) > ms) assert.fail(`lock() still fails ${ms} ms after the server came back: ${e.code} ${e.message}`)
      await sleep(100)
    }
  }
}

describe('server stopped and started again mid-run', { timeout: 90000 }, () => {
  afterEach(destroyAll)

  test('while down: lock(), extend() reject E_UNAVAILABLE within the timeouts, unlock() settles; after start the same manager works', async () => {
    const m = mk()
    const k = key('stop')
    const h0 = await m.lock(k, 30000)
    const f0 = h0.fence
    await pg.stop()
    try {
      // connectTimeout 500 × 2 attempts + slack
      let t0 = Date.now()
      const err = await failsWithin(m.lock(key('down'), 1000), 6000, 'lock() while the server is down')
      checkUnavailable(err, 'lock()')
      assert.ok(since(t0) < 4000, `lock() gave up after ${since(t0)} ms`)
      t0 = Date.now()
      const eerr = await failsWithin(h0.extend(30000), 6000, 'extend() while the server is down')
      assert.ok(eerr instanceof LockError && ['E_UNAVAILABLE', 'E_LOCK_EXPIRED'].includes(eerr.code), `extend(): ${eerr.code} ${eerr.message}`)
      assert.ok(since(t0) < 4000, `extend() gave up after ${since(t0)} ms`)
      t0 = Date.now()
      await withTimeout(h0.unlock().catch((e) => checkError(e, LockError, 'E_UNAVAILABLE')), 6000, 'unlock() while the server is down')
      // a queued lock() behind a local holder does not hang either
      const busy = mk({ retryCount: 3 })
      const k2 = key('queued')
      const failures = await Promise.all([busy.lock(k2, 1000), busy.lock(k2, 1000)].map((p) => failsWithin(p, 10000, 'lock() while down')))
      for (const e of failures) checkUnavailable(e, 'queued lock()')
    } finally {
      await pg.start()
    }
    const h1 = await lockWhenBack(m, key('back'), 5000)
    assert.ok(h1.fence > f0, `fence after the restart ${h1.fence} > ${f0} before it`)
    await h1.unlock()
    // and it works again right away, many times, without being recreated
    for (let i = 0; i < 5; i++) await (await m.lock(key('again'), 1000)).unlock()
    // the row of the lock held before the stop is either gone (unlock sent later) or expires by its ttl
    const row = await pg.lockRow(k)
    if (row) assert.equal(row.token, h0.value)
  })

  test('fences keep increasing across a restart, for the same manager and a new one', async () => {
    const m = mk()
    const k = key('fence')
    let last = 0
    for (let i = 0; i < 3; i++) {
      const h = await m.lock(k, 2000)
      assert.ok(h.fence > last)
      last = h.fence
      await h.unlock()
    }
    await pg.stop()
    await pg.start()
    const h = await lockWhenBack(m, k, 2000)
    assert.ok(h.fence > last, `fence ${h.fence} after the restart is not above ${last}`)
    last = h.fence
    await h.unlock()
    const fresh = mk()
    const h2 = await fresh.lock(k, 2000)
    assert.ok(h2.fence > last, `a new manager's fence ${h2.fence} is not above ${last}`)
    await h2.unlock()
  })

  test('after a restart a waiter in another manager is woken by NOTIFY again (the listener reconnects)', async () => {
    const holder = mk()
    const waiter = mk({ retryCount: 20, retryDelay: 1000, retryJitter: 0 })
    const k = key('notify')
    await (await waiter.lock(key('warm'), 100)).unlock()
    await pg.stop()
    await pg.start()
    await (await lockWhenBack(waiter, key('warm'), 100)).unlock()
    await (await lockWhenBack(holder, key('warm'), 100)).unlock()
    // give the listener time to come back (it may reconnect on its own schedule)
    await sleep(2000)
    const delays = []
    for (let round = 0; round < 2; round++) {
      const h = await holder.lock(k, 10000)
      const p = waiter.lock(k, 5000)
      await sleep(300)
      assert.equal(await state(p), 'pending')
      const t0 = Date.now()
      await h.unlock()
      const h2 = await withTimeout(p, 5000, 'the waiter')
      delays.push(since(t0))
      await h2.unlock()
    }
    assert.ok(delays.every((d) => d < 300), `after the restart the waiter got the key ${delays.join(', ')} ms after the unlock: no NOTIFY (retry timer 1000 ms)`)
  })
})

describe('server killed (SIGKILL)', { timeout: 60000 }, () => {
  afterEach(destroyAll)

  test('calls reject E_UNAVAILABLE within the timeouts; after a start the same manager works', async () => {
    const m = mk()
    const h = await m.lock(key('kill-held'), 30000)
    await pg.kill()
    try {
      const t0 = Date.now()
      const err = await failsWithin(m.lock(key('kill'), 1000), 6000, 'lock() on a killed server')
      checkUnavailable(err, 'lock()')
      assert.ok(since(t0) < 4000, `took ${since(t0)} ms`)
      const eerr = await failsWithin(h.extend(5000), 6000, 'extend() on a killed server')
      assert.ok(['E_UNAVAILABLE', 'E_LOCK_EXPIRED'].includes(eerr.code), eerr.code)
      await withTimeout(h.unlock().catch(() => {}), 6000, 'unlock() on a killed server')
    } finally {
      await pg.start()
    }
    const h2 = await lockWhenBack(m, key('kill-back'), 2000)
    assert.equal((await pg.lockRow(h2.resource)).token, h2.value)
    await h2.unlock()
  })
})

describe('server paused (SIGSTOP)', { timeout: 60000 }, () => {
  afterEach(destroyAll)

  test('lock() and extend() reject within queryTimeout + slack, not hang; after resume the same manager works', async () => {
    const m = mk({ retryCount: 0, queryTimeout: 500, connectTimeout: 500 })
    const h = await m.lock(key('pause-held'), 30000) // the pool is connected
    pg.pause()
    try {
      let t0 = Date.now()
      const err = await failsWithin(m.lock(key('pause'), 1000), 5000, 'lock() on a paused server')
      checkUnavailable(err, 'lock()')
      if (Array.isArray(err.failures)) assert.ok(err.failures.every((f) => f.kind === 'timeout'), util.inspect(err.failures))
      assert.ok(since(t0) < 500 + 2000, `lock() took ${since(t0)} ms with queryTimeout 500`)
      t0 = Date.now()
      const eerr = await failsWithin(h.extend(30000), 5000, 'extend() on a paused server')
      assert.ok(['E_UNAVAILABLE', 'E_LOCK_EXPIRED'].includes(eerr.code), eerr.code)
      assert.ok(since(t0) < 500 + 2000, `extend() took ${since(t0)} ms`)
      // several at once: none waits behind another for longer than the timeouts
      t0 = Date.now()
      const errs = await Promise.all(Array.from({ length: 6 }, (_, i) => failsWithin(m.lock(key(`pause-${i}`), 1000), 8000, 'lock() on a paused server')))
      for (const e of errs) checkError(e, LockError, 'E_UNAVAILABLE')
      assert.ok(since(t0) < 6000, `6 parallel lock() calls took ${since(t0)} ms`)
    } finally {
      pg.resume()
    }
    const h2 = await lockWhenBack(m, key('pause-back'), 2000)
    assert.equal((await pg.lockRow(h2.resource)).token, h2.value)
    await h2.unlock()
    await h.unlock()
  })

  test('a lock() whose connection is being opened while the server is paused gives up within connectTimeout + slack', async () => {
    const m = mk({ retryCount: 0, queryTimeout: 500, connectTimeout: 500 })
    pg.pause() // before the first connection: the TCP connect succeeds, the startup never answers
    try {
      const t0 = Date.now()
      const err = await failsWithin(m.lock(key('pause-connect'), 1000), 5000, 'lock() connecting to a paused server')
      checkUnavailable(err, 'lock()')
      assert.ok(since(t0) < 500 + 500 + 2000, `took ${since(t0)} ms`)
    } finally {
      pg.resume()
    }
    const h = await lockWhenBack(m, key('pause-connect-back'), 1000)
    await h.unlock()
  })
})
