// The Redis backend against one real redis-server (see redis-harness.mjs): the wire format
// (key = resource, value = token, PX = ttl), busy / retry / expiry / extend / unlock rules,
// the local FIFO queue of one manager, bad options, refused connections, and AbortSignal.
import { test, describe, after } from 'node:test'
import assert from 'node:assert/strict'
import util from 'node:util'

import { create, LockError, ConfigError, AbortError, DestroyedError } from '../index.mjs'
import { since, state, rejectsWith, rejectsAtOnce, checkError, throwsWith, withTimeout } from './helpers.mjs'
import { useRedis, RedisServer, freePort } from './redis-harness.mjs'

const HEX32 = /^[0-9a-f]{32}$/
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
/** node-redlock's drift for a ttl: round(0.01 × ttl) + 2 ms. */
const drift = (ttl, factor = 0.01) => Math.round(factor * ttl) + 2

const managers = []
after(() => Promise.all(managers.map((m) => m.destroy())))

const [server] = await useRedis(1)

/** A Redis manager on `server` (destroyed after the file). */
function mk(lockOptions = {}, extra = {}) {
  const m = create({ type: 'redis', connection: server.options, lockOptions, ...extra })
  managers.push(m)
  return m
}

let n = 0
/** A key no other test uses. */
const key = (what) => `oxlock:test:${what}:${++n}`

async function eventually(pred, maxMs, what) {
  const end = Date.now() + maxMs
  for (;;) {
    if (await pred()) return
    if (Date.now() > end) assert.fail(`timed out after ${maxMs} ms waiting for ${what}`)
    await sleep(10)
  }
}

describe('single node: the wire format', { timeout: 20000 }, () => {
  test('lock() stores the token under the resource with PX ttl; unlock() deletes it', async () => {
    const m = mk()
    const k = key('basic')
    const t0 = Date.now()
    const h = await m.lock(k, 5000)
    const t1 = Date.now()
    assert.equal(h.resource, k)
    assert.match(h.value, HEX32)
    assert.equal(h.attempts, 1)
    // Validity: start of the attempt + ttl − drift.
    const d = drift(5000)
    assert.ok(
      h.expiration >= t0 + 5000 - d - 2 && h.expiration <= t1 + 5000 - d + 2,
      `expiration should be ttl − drift after the call: got t0 + ${h.expiration - t0} ms (${t1 - t0} ms elapsed)`,
    )
    assert.equal(await server.get(k), h.value, 'the Redis key is exactly the resource and holds h.value')
    const pttl = await server.pttl(k)
    assert.ok(pttl > 5000 - 1000 && pttl <= 5000, `PTTL should be about 5000, got ${pttl}`)
    assert.equal(await h.unlock(), undefined)
    assert.equal(await server.get(k), null, 'unlock() deletes the key')
    assert.equal(h.expiration, 0)
    assert.equal(await h.unlock(), undefined, 'a second unlock() resolves too')
    assert.equal(m.size, 0)
  })

  test('each lock gets a fresh token', async () => {
    const m = mk()
    const k = key('tokens')
    const seen = new Set()
    for (let i = 0; i < 5; i++) {
      const h = await m.lock(k, 1000)
      assert.match(h.value, HEX32)
      seen.add(h.value)
      await h.unlock()
    }
    assert.equal(seen.size, 5)
  })

  test('lockNs() locks `${namespace}:${key}`', async () => {
    const m = mk({}, { namespace: 'app' })
    const k = key('ns')
    const h = await m.lockNs(k, 2000)
    assert.equal(h.resource, `app:${k}`)
    assert.equal(await server.get(`app:${k}`), h.value)
    assert.equal(await server.get(k), null)
    await h.unlock()
    assert.equal(await server.get(`app:${k}`), null)
  })

  test('driftFactor shortens the validity: expiration = start + ttl − (driftFactor × ttl + 2)', async () => {
    const m = mk({ driftFactor: 0.1 })
    const k = key('drift')
    const t0 = Date.now()
    const h = await m.lock(k, 2000)
    const t1 = Date.now()
    const d = drift(2000, 0.1)
    assert.ok(h.expiration >= t0 + 2000 - d - 2 && h.expiration <= t1 + 2000 - d + 2, `t0 + ${h.expiration - t0} ms, expected ${2000 - d}`)
    const pttl = await server.pttl(k)
    assert.ok(pttl > 1500 && pttl <= 2000, `the key itself gets the full ttl: PTTL ${pttl}`)
    await h.unlock()
  })

  test('lockNs() without a namespace rejects E_CONFIG', async () => {
    const m = mk()
    await rejectsWith(m.lockNs('x', 1000), ConfigError, 'E_CONFIG')
  })

  test('lockConfig nesting and a redis:// URL work as well', async () => {
    const m = create({ namespace: 'nested', lockConfig: JSON.stringify({ type: 'redis', connection: server.url }) })
    managers.push(m)
    const h = await m.lockNs('x', 2000)
    assert.equal(await server.get('nested:x'), h.value)
    await h.unlock()
  })

  test('non-ASCII keys are stored exactly (UTF-8)', async () => {
    const m = mk()
    const k = `${key('utf8')}:ключ:🔒:é`
    const h = await m.lock(k, 2000)
    assert.equal(await server.get(k), h.value)
    await h.unlock()
    assert.equal(await server.get(k), null)
  })

  test('a fractional ttl is rounded up to whole ms', async () => {
    const m = mk()
    const k = key('frac')
    const h = await m.lock(k, { ttl: 3000.2 })
    const pttl = await server.pttl(k)
    assert.ok(pttl > 2000 && pttl <= 3001, `PTTL ${pttl}`)
    await h.unlock()
  })

  test('lock(key) without a ttl uses the 10 s default', async () => {
    const m = mk()
    const k = key('default-ttl')
    const h = await m.lock(k)
    const pttl = await server.pttl(k)
    assert.ok(pttl > 9000 && pttl <= 10000, `PTTL ${pttl}`)
    await h.unlock()
  })
})

describe('single node: busy, retries, expiry', { timeout: 20000 }, () => {
  test('busy with retryCount 0 fails at once: attempts 1, node-redlock message', async () => {
    const holder = mk()
    const m = mk({ retryCount: 0 })
    const k = key('busy0')
    const h = await holder.lock(k, 5000)
    const t0 = Date.now()
    const err = await rejectsWith(m.lock(k, 1000), LockError, 'E_LOCK_BUSY', `Exceeded 0 attempts to lock the resource "${k}".`)
    assert.ok(since(t0) < 1000, `should fail after one round trip, took ${since(t0)} ms`)
    assert.equal(err.name, 'LockError')
    assert.equal(err.attempts, 1)
    assert.equal(err.resource, k)
    assert.equal(await server.get(k), h.value, 'the holder keeps its key')
    await h.unlock()
  })

  test('busy inside one manager with retryCount 0 (local queue) fails at once the same way', async () => {
    const m = mk({ retryCount: 0 })
    const k = key('busy0-local')
    const h = await m.lock(k, 5000)
    const t0 = Date.now()
    const err = await rejectsWith(m.lock(k, 1000), LockError, 'E_LOCK_BUSY', `Exceeded 0 attempts to lock the resource "${k}".`)
    assert.equal(err.attempts, 1)
    assert.ok(since(t0) < 1000, `took ${since(t0)} ms`)
    await h.unlock()
    assert.equal(await server.get(k), null)
  })

  test('retryCount 2 / retryDelay 50 fails after 3 attempts and >= ~100 ms', async () => {
    const holder = mk()
    const m = mk({ retryCount: 2, retryDelay: 50, retryJitter: 0 })
    const k = key('busy2')
    const h = await holder.lock(k, 5000)
    const t0 = Date.now()
    const err = await rejectsWith(m.lock(k, 1000), LockError, 'E_LOCK_BUSY', `Exceeded 2 attempts to lock the resource "${k}".`)
    const took = since(t0)
    assert.equal(err.attempts, 3)
    assert.ok(took >= 95, `two retry delays of 50 ms should pass first, took ${took} ms`)
    assert.ok(took < 5000, `took ${took} ms`)
    assert.equal(await server.get(k), h.value)
    await h.unlock()
  })

  test('a lock freed by its holder during the retries is taken on a later attempt', async () => {
    const holder = mk()
    const m = mk({ retryCount: 20, retryDelay: 50, retryJitter: 10 })
    const k = key('retry-win')
    const h = await holder.lock(k, 5000)
    const p = m.lock(k, 2000)
    await sleep(150)
    await h.unlock()
    const h2 = await p
    assert.ok(h2.attempts >= 2, `attempts ${h2.attempts}`)
    assert.equal(await server.get(k), h2.value)
    await h2.unlock()
  })

  test('a lock nobody releases expires in Redis after its ttl', async () => {
    const m = mk()
    const other = mk({ retryCount: 0 })
    const k = key('expiry')
    const t0 = Date.now()
    const h = await m.lock(k, 300)
    assert.equal(await server.get(k), h.value)
    await eventually(async () => (await server.get(k)) === null, 3000, 'the key to expire')
    assert.ok(since(t0) >= 250, `the key vanished after ${since(t0)} ms, before its ttl`)
    assert.equal(await server.pttl(k), -2)
    const h2 = await other.lock(k, 1000)
    assert.equal(await server.get(k), h2.value)
    await h2.unlock()
    await h.unlock() // stale: resolves, deletes nothing
  })
})

describe('single node: extend and unlock rules', { timeout: 20000 }, () => {
  test('extend(ms) resets PTTL to ~ms and resolves the same handle with a new expiration', async () => {
    const m = mk()
    const k = key('extend')
    const h = await m.lock(k, 1000)
    const value = h.value
    await sleep(300)
    const t0 = Date.now()
    const r = await h.extend(3000)
    const t1 = Date.now()
    assert.equal(r, h, 'extend resolves the same handle')
    assert.equal(h.value, value)
    const pttl = await server.pttl(k)
    assert.ok(pttl > 2000 && pttl <= 3000, `PTTL after extend(3000) should be about 3000, got ${pttl}`)
    assert.equal(await server.get(k), value)
    const d = drift(3000)
    assert.ok(
      h.expiration >= t0 + 3000 - d - 2 && h.expiration <= t1 + 3000 - d + 2,
      `expiration should be ~3000 ms after extend(): t0 + ${h.expiration - t0} ms`,
    )
    // extend is a reset, not an addition
    await h.extend(1000)
    const pttl2 = await server.pttl(k)
    assert.ok(pttl2 > 500 && pttl2 <= 1000, `PTTL after extend(1000) ${pttl2}`)
    // the extended lock outlives its first ttl
    await sleep(1100 - 300)
    await h.extend(2000)
    assert.equal(await server.get(k), value)
    await h.unlock()
    assert.equal(await server.get(k), null)
  })

  test('extend() after the local validity passed rejects E_LOCK_EXPIRED at once, without I/O', async () => {
    const m = mk({ nodeTimeout: 2000, retryCount: 5 })
    const k = key('extend-expired')
    const h = await m.lock(k, 200)
    await sleep(300)
    // With the server stopped, any I/O would take up to nodeTimeout (2 s); the refusal is local.
    server.pause()
    try {
      const t0 = Date.now()
      const err = await rejectsAtOnce(h.extend(1000))
      checkError(err, LockError, 'E_LOCK_EXPIRED', `Cannot extend lock on resource "${k}" because the lock has already expired.`)
      // (Far below the 2 s any I/O would take; a loaded machine may delay a timer a lot.)
      assert.ok(since(t0) < 1000, `took ${since(t0)} ms`)
    } finally {
      server.resume()
    }
    assert.equal(await server.get(k), null)
  })

  test('extend() when the key was deleted or taken by someone else rejects E_LOCK_EXPIRED and writes nothing', async () => {
    const m = mk()
    const k = key('extend-lost')
    const h = await m.lock(k, 5000)
    await server.cmd('DEL', k)
    await rejectsWith(h.extend(2000), LockError, 'E_LOCK_EXPIRED', `Cannot extend lock on resource "${k}" because the lock has already expired.`)
    assert.equal(await server.get(k), null, 'extend must not recreate the key')
    await server.cmd('SET', k, 'someone-else', 'PX', 5000)
    await rejectsWith(h.extend(2000), LockError, 'E_LOCK_EXPIRED')
    assert.equal(await server.get(k), 'someone-else')
    const pttl = await server.pttl(k)
    assert.ok(pttl > 3000 && pttl <= 5000, `the foreign key's expiry is untouched (PTTL ${pttl})`)
    await h.unlock()
    assert.equal(await server.get(k), 'someone-else', 'unlock never deletes someone else\'s value')
    await server.cmd('DEL', k)
  })

  test('an extend() that cannot reach the node fails without deleting our key', async () => {
    const m = mk({ nodeTimeout: 200, retryCount: 0 })
    const k = key('extend-unavailable')
    const h = await m.lock(k, 5000)
    server.pause()
    let err
    try {
      const t0 = Date.now()
      err = await withTimeout(h.extend(5000).then(() => null, (e) => e), 4000, 'extend() on a stopped server should give up')
      assert.ok(since(t0) < 3000, `took ${since(t0)} ms`)
    } finally {
      server.resume()
    }
    assert.ok(err instanceof LockError, `expected a LockError, got ${err}`)
    assert.ok(['E_UNAVAILABLE', 'E_LOCK_EXPIRED'].includes(err.code), err.code)
    assert.equal(await server.get(k), h.value, 'our key must survive a failed extend')
    await h.unlock()
    assert.equal(await server.get(k), null)
  })

  test('unlock() of an expired handle after someone else took the key resolves and leaves their key', async () => {
    const m = mk()
    const other = mk({ retryCount: 20, retryDelay: 50 })
    const k = key('stale-unlock')
    const h = await m.lock(k, 200)
    await sleep(300)
    const h2 = await other.lock(k, 5000)
    assert.equal(await server.get(k), h2.value)
    assert.equal(await h.unlock(), undefined)
    assert.equal(await server.get(k), h2.value, 'the other holder keeps its key')
    const pttl = await server.pttl(k)
    assert.ok(pttl > 3000, `PTTL ${pttl}`)
    await h2.unlock()
    assert.equal(await server.get(k), null)
  })

  test('unlock() with the server stopped resolves within about nodeTimeout', async () => {
    const m = mk({ nodeTimeout: 300 })
    const k = key('unlock-stopped')
    const h = await m.lock(k, 5000)
    server.pause()
    try {
      const t0 = Date.now()
      await withTimeout(h.unlock(), 3000, 'unlock() with the server stopped')
      assert.ok(since(t0) < 1500, `unlock took ${since(t0)} ms`)
    } finally {
      server.resume()
    }
    // the release was sent; once the server runs again it deletes the key (or the ttl does)
    const end = Date.now() + 6000
    while ((await server.get(k)) !== null && Date.now() < end) await sleep(50)
    assert.equal(await server.get(k), null)
  })

  test('extend() without a ttl uses the 10 s default', async () => {
    const m = mk()
    const k = key('extend-default')
    const h = await m.lock(k, 1000)
    await h.extend()
    const pttl = await server.pttl(k)
    assert.ok(pttl > 9000 && pttl <= 10000, `PTTL ${pttl}`)
    await h.unlock()
  })

  test('unlock() of a handle whose key was overwritten leaves the foreign value', async () => {
    const m = mk()
    const k = key('foreign-unlock')
    const h = await m.lock(k, 5000)
    await server.cmd('SET', k, 'foreign')
    await h.unlock()
    assert.equal(await server.get(k), 'foreign')
    await server.cmd('DEL', k)
  })
})

describe('one manager: local FIFO queue', { timeout: 20000 }, () => {
  test('20 concurrent lock() on one key: exclusion, every call served, hand-off without waiting for retryDelay', async () => {
    const m = mk({ retryCount: 10, retryDelay: 1000, retryJitter: 0 })
    const k = key('queue')
    let inside = 0
    let max = 0
    const order = []
    const t0 = Date.now()
    await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const h = await m.lock(k, 5000)
        inside++
        max = Math.max(max, inside)
        order.push(i)
        assert.equal(await server.get(k), h.value, 'the holder\'s token is in Redis')
        await sleep(2)
        inside--
        await h.unlock()
      }),
    )
    const took = since(t0)
    assert.equal(max, 1, 'two holders at once')
    assert.deepEqual([...order].sort((a, b) => a - b), Array.from({ length: 20 }, (_, i) => i), 'every lock() was served once')
    // 19 hand-offs: any retry timer in between would cost 1000 ms.
    assert.ok(took < 3000, `20 hand-offs took ${took} ms: waiters should not wait for retryDelay`)
    assert.equal(await server.get(k), null)
    assert.equal(m.size, 0)
  })

  test('FIFO: lock() calls made in one tick get the key in call order (10 rounds × 200 callers)', async () => {
    // The order is decided when each call joins the key's queue; calls made back to back
    // must join in the order they were made. (One round shows a reordering only now and
    // then, so the test runs several with many callers.)
    const m = mk({ retryCount: -1 })
    const k = key('fifo')
    const bad = []
    for (let round = 0; round < 10; round++) {
      const order = []
      await Promise.all(
        Array.from({ length: 200 }, async (_, i) => {
          const h = await m.lock(k, 5000)
          order.push(i)
          await h.unlock()
        }),
      )
      const at = order.findIndex((v, i) => v !== i)
      if (at >= 0) bad.push(`round ${round}: ... ${order.slice(Math.max(0, at - 2), at + 4).join(', ')} ...`)
    }
    assert.deepEqual(bad, [], `lock() calls were served out of call order in ${bad.length} of 10 rounds`)
  })

  test('FIFO behind a holder: waiters queued one per tick are served in order', async () => {
    const m = mk({ retryCount: -1 })
    const k = key('fifo-holder')
    const h = await m.lock(k, 5000)
    const order = []
    const all = []
    for (let i = 0; i < 20; i++) {
      all.push(
        m.lock(k, 5000).then(async (w) => {
          order.push(i)
          await w.unlock()
        }),
      )
      await sleep(5)
    }
    await h.unlock()
    await Promise.all(all)
    assert.deepEqual(order, Array.from({ length: 20 }, (_, i) => i))
  })

  test('the next local waiter gets the key right after unlock()', async () => {
    const m = mk({ retryCount: 10, retryDelay: 1000, retryJitter: 0 })
    const k = key('handoff')
    const h = await m.lock(k, 5000)
    const p = m.lock(k, 5000)
    await sleep(100)
    assert.equal(await state(p), 'pending')
    assert.equal(m.size, 1)
    const t0 = Date.now()
    await h.unlock()
    const h2 = await p
    assert.ok(since(t0) < 800, `hand-off took ${since(t0)} ms`)
    assert.equal(h2.attempts, 1, 'the waiter got the key on its first Redis attempt')
    assert.equal(await server.get(k), h2.value)
    await h2.unlock()
  })

  test('a local waiter gets the key after the holder\'s ttl runs out', async () => {
    const m = mk({ retryCount: 10, retryDelay: 300, retryJitter: 0 })
    const k = key('ttl-handoff')
    const t0 = Date.now()
    const h = await m.lock(k, 300)
    const h2 = await m.lock(k, 5000)
    assert.ok(since(t0) >= 250, `the waiter got the key after ${since(t0)} ms, before the holder's ttl`)
    assert.notEqual(h2.value, h.value)
    assert.equal(await server.get(k), h2.value)
    await h.unlock() // stale
    assert.equal(await server.get(k), h2.value)
    await h2.unlock()
  })

  test('different keys do not queue behind each other', async () => {
    const m = mk({ retryCount: 0 })
    const hs = await Promise.all(Array.from({ length: 10 }, (_, i) => m.lock(`${key('multi')}-${i}`, 5000)))
    assert.equal(m.size, 10)
    for (const h of hs) assert.equal(await server.get(h.resource), h.value)
    await Promise.all(hs.map((h) => h.unlock()))
    assert.equal(m.size, 0)
  })

  test('a local waiter gives up after retryCount × retryDelay with E_LOCK_BUSY', async () => {
    const m = mk({ retryCount: 2, retryDelay: 100, retryJitter: 0 })
    const k = key('local-budget')
    const h = await m.lock(k, 10000)
    const t0 = Date.now()
    const err = await rejectsWith(m.lock(k, 1000), LockError, 'E_LOCK_BUSY', `Exceeded 2 attempts to lock the resource "${k}".`)
    assert.equal(err.attempts, 3)
    assert.ok(since(t0) >= 150 && since(t0) < 5000, `took ${since(t0)} ms`)
    assert.equal(await server.get(k), h.value)
    await h.unlock()
  })
})

describe('AbortSignal', { timeout: 20000 }, () => {
  test('a lock() queued behind a holder and aborted rejects E_ABORTED at once; nobody holds the key after unlock', async () => {
    const m = mk({ retryCount: -1 })
    const k = key('abort-queued')
    const h = await m.lock(k, 5000)
    const ac = new AbortController()
    const p = m.lock(k, { ttl: 5000, signal: ac.signal })
    await sleep(50)
    assert.equal(await state(p), 'pending')
    const reason = new Error('stop waiting')
    ac.abort(reason)
    const err = await rejectsAtOnce(p)
    checkError(err, AbortError, 'E_ABORTED', `The wait for the lock on resource "${k}" was aborted.`)
    assert.equal(err.name, 'AbortError')
    assert.equal(err.cause, reason)
    assert.equal(err.resource, k)
    await h.unlock()
    await sleep(300)
    assert.equal(await server.get(k), null, 'the aborted waiter must not take the key')
    assert.equal(m.size, 0)
    // and the key is free for anyone
    const other = mk({ retryCount: 0 })
    const h2 = await other.lock(k, 1000)
    await h2.unlock()
  })

  test('aborting the head of the queue while it retries against a foreign holder', async () => {
    const holder = mk()
    const m = mk({ retryCount: -1, retryDelay: 50, retryJitter: 0 })
    const k = key('abort-retrying')
    const h = await holder.lock(k, 5000)
    const ac = new AbortController()
    const p = m.lock(k, { ttl: 5000, signal: ac.signal })
    await sleep(120)
    ac.abort()
    const err = await rejectsAtOnce(p)
    checkError(err, AbortError, 'E_ABORTED')
    await h.unlock()
    await sleep(300)
    assert.equal(await server.get(k), null, 'the aborted lock() must not take the key later')
    assert.equal(m.size, 0)
  })

  test('an already aborted signal rejects without touching Redis', async () => {
    const m = mk()
    const k = key('abort-early')
    const err = await rejectsAtOnce(m.lock(k, { ttl: 1000, signal: AbortSignal.abort() }))
    checkError(err, AbortError, 'E_ABORTED')
    assert.equal(await server.get(k), null)
    assert.equal(m.size, 0)
  })

  test('a waiter behind an aborted one still gets the key in order', async () => {
    const m = mk({ retryCount: 10, retryDelay: 1000, retryJitter: 0 })
    const k = key('abort-middle')
    const h = await m.lock(k, 5000)
    const ac = new AbortController()
    const a = m.lock(k, { ttl: 5000, signal: ac.signal })
    const b = m.lock(k, 5000)
    ac.abort()
    await rejectsWith(a, AbortError, 'E_ABORTED')
    const t0 = Date.now()
    await h.unlock()
    const hb = await b
    assert.ok(since(t0) < 800, `took ${since(t0)} ms`)
    assert.equal(await server.get(k), hb.value)
    await hb.unlock()
  })
})

describe('bad options and unreachable servers', { timeout: 30000 }, () => {
  const PW = 's3cret-pw'
  const noPassword = (text, what) => assert.ok(!String(text).includes(PW) && !String(text).includes('s3cret'), `${what} leaks the password: ${text}`)

  test('bad connections and lock options: E_CONFIG errors naming the field', () => {
    const cases = [
      [{ connection: 'http://u:s3cret-pw@127.0.0.1:1' }, ConfigError, /^connection\b/],
      [{ connection: 'redis://:s3cret-pw@127.0.0.1:notaport' }, ConfigError, /^connection\b/],
      [{ connection: 'not a url s3cret-pw' }, ConfigError, /^connection\b/],
      [{ connection: '' }, ConfigError, /^connection\b/],
      [{ connection: [] }, ConfigError, /^connection must list at least one Redis node/],
      [{ lockConfig: { type: 'redis', connection: [] } }, ConfigError, /^lockConfig\.connection\b/],
      [{ connection: 42 }, TypeError, /^connection\b/],
      [{ connection: true }, TypeError, /^connection\b/],
      [{ connection: [server.url, 7] }, TypeError, /^connection\[1\]/],
      [{ connection: [server.url, 'redis://:s3cret-pw@h:x'] }, ConfigError, /^connection\[1\]/],
      [{ connection: { host: '127.0.0.1', port: '6379' } }, TypeError, /^connection\.port must be a number, got string$/],
      [{ connection: { port: 0 } }, RangeError, /^connection\.port\b/],
      [{ connection: { port: 70000 } }, RangeError, /^connection\.port\b/],
      [{ connection: { port: 1.5 } }, RangeError, /^connection\.port\b/],
      [{ connection: { host: 5 } }, TypeError, /^connection\.host\b/],
      [{ connection: { port: 1, password: 5 } }, TypeError, /^connection\.password\b/],
      [{ connection: { port: 1, db: -1, password: PW } }, RangeError, /^connection\.db\b/],
      [{ connection: [{ port: 1 }, { port: 'x', password: PW }] }, TypeError, /^connection\[1\]\.port\b/],
      [{ connection: { port: 1 }, lockOptions: 'fast' }, TypeError, /^lockOptions\b/],
      [{ connection: { port: 1 }, lockOptions: { retryCount: 1.5 } }, RangeError, /^lockOptions\.retryCount\b/],
      [{ connection: { port: 1 }, lockOptions: { retryCount: '3' } }, TypeError, /^lockOptions\.retryCount\b/],
      [{ connection: { port: 1 }, lockOptions: { retryDelay: -1 } }, RangeError, /^lockOptions\.retryDelay\b/],
      [{ connection: { port: 1 }, lockOptions: { retryJitter: NaN } }, RangeError, /^lockOptions\.retryJitter\b/],
      [{ connection: { port: 1 }, lockOptions: { driftFactor: 2 } }, RangeError, /^lockOptions\.driftFactor\b/],
      [{ connection: { port: 1 }, lockOptions: { nodeTimeout: 0 } }, RangeError, /^lockOptions\.nodeTimeout\b/],
      [{ connection: { port: 1 }, lockOptions: { nodeTimeout: 'x' } }, TypeError, /^lockOptions\.nodeTimeout\b/],
      [{ connection: { port: 1 }, lockOptions: { connectTimeout: Infinity } }, RangeError, /^lockOptions\.connectTimeout\b/],
    ]
    for (const [opts, Class, re] of cases) {
      const what = util.inspect(opts)
      const err = throwsWith(() => create({ type: 'redis', ...opts }), Class, 'E_CONFIG')
      assert.match(err.message, re, `${what}: ${err.message}`)
      noPassword(err.message, what)
      noPassword(util.inspect(err), what)
    }
  })

  test('a refused connection: lock() rejects E_UNAVAILABLE within a few seconds, causes name the node, no password anywhere', async () => {
    const port = await freePort()
    const label = `127.0.0.1:${port}`
    const connections = [
      { host: '127.0.0.1', port, password: PW },
      { host: '127.0.0.1', port, username: 'admin', password: PW },
      `redis://admin:${PW}@127.0.0.1:${port}/0`,
      [`redis://:${PW}@127.0.0.1:${port}`],
    ]
    let ticks = 0
    const tick = setInterval(() => ticks++, 10)
    const t0 = Date.now()
    let results
    try {
      results = await Promise.all(
        connections.map((connection) => {
          const m = mk({ retryCount: 2, retryDelay: 50, retryJitter: 0, nodeTimeout: 300, connectTimeout: 300 }, { connection })
          return withTimeout(
            m.lock('refused', 1000).then(
              () => assert.fail('lock() succeeded against a port nothing listens on'),
              (e) => ({ err: e, took: since(t0), connection }),
            ),
            8000,
            'lock() against a refused port should give up',
          )
        }),
      )
    } finally {
      clearInterval(tick)
    }
    const took = since(t0)
    for (const { err, took, connection } of results) {
      const what = util.inspect(connection)
      checkError(err, LockError, 'E_UNAVAILABLE', (msg) => msg.startsWith('Unable to reach a quorum of Redis nodes for the resource "refused" after 3 attempts'))
      assert.ok(took < 6000, `${what}: took ${took} ms`)
      assert.equal(err.resource, 'refused')
      assert.equal(err.attempts, 3)
      assert.ok(Array.isArray(err.causes) && err.causes.length >= 1, `causes: ${util.inspect(err.causes)}`)
      for (const c of err.causes) assert.ok(c.startsWith(`${label}: `), `cause should name ${label}: ${c}`)
      assert.ok(err.message.includes(label), err.message)
      noPassword(err.message, what)
      noPassword(err.causes.join('\n'), what)
      noPassword(util.inspect(err, { depth: 5 }), what)
      noPassword(JSON.stringify(err), what)
      noPassword(err.stack, what)
    }
    // the event loop kept running during the wait
    assert.ok(ticks >= Math.min(5, took / 40), `only ${ticks} timer ticks in ${took} ms: the JS thread was blocked`)
  })

  test('a wrong password: E_AUTH at the first attempt (no retry budget spent), message and causes without the password', async () => {
    const authed = new RedisServer(await freePort(), ['--requirepass', 'the-right-one'])
    await authed.start()
    try {
      // 10 retries 500 ms apart: a retried refusal would take 5 s.
      const m = mk({ retryCount: 10, retryDelay: 500, nodeTimeout: 500 }, { connection: { host: '127.0.0.1', port: authed.port, password: PW } })
      const t0 = Date.now()
      const err = await withTimeout(m.lock('k', 1000).then(() => null, (e) => e), 5000, 'lock() with a wrong password')
      checkError(err, LockError, 'E_AUTH')
      assert.ok(since(t0) < 2500, `took ${since(t0)} ms: the refusal was retried`)
      assert.equal(err.attempts, 1)
      assert.deepEqual(err.failures.map((f) => [f.node, f.kind]), [[authed.label, 'auth']])
      assert.match(err.message, /Access was refused .*credentials/)
      noPassword(err.message, 'message')
      noPassword(err.causes.join('\n'), 'causes')
      noPassword(util.inspect(err, { depth: 5 }), 'inspect')
      noPassword(JSON.stringify(err), 'JSON')
      // the right one works
      const ok = mk({ retryCount: 0 }, { connection: { host: '127.0.0.1', port: authed.port, password: 'the-right-one' } })
      const h = await ok.lock('k', 1000)
      await h.unlock()
    } finally {
      await authed.kill()
    }
  })

  test('Redlock over 3 nodes: one refusing the password does not stop the other two; two refusing is E_AUTH at once', async () => {
    const guarded = []
    for (let i = 0; i < 2; i++) {
      const s = new RedisServer(await freePort(), ['--requirepass', 'only-here'])
      await s.start()
      guarded.push(s)
    }
    const plain = new RedisServer(await freePort())
    await plain.start()
    try {
      const url = (s) => ({ host: '127.0.0.1', port: s.port, password: 'only-here' })
      // The password is right on the guarded ones; a server without requirepass refuses AUTH.
      const ok = mk({ retryCount: 0 }, { connection: [url(guarded[0]), url(guarded[1]), url(plain)] })
      const h = await ok.lock('k3', 1000)
      await h.unlock()
      const wrong = (s) => ({ host: '127.0.0.1', port: s.port, password: PW })
      const bad = mk({ retryCount: 10, retryDelay: 500 }, { connection: [wrong(guarded[0]), wrong(guarded[1]), { host: '127.0.0.1', port: plain.port }] })
      const t0 = Date.now()
      const err = await withTimeout(bad.lock('k3', 1000).then(() => null, (e) => e), 5000, 'lock() refused by 2 of 3')
      checkError(err, LockError, 'E_AUTH')
      assert.ok(since(t0) < 2500, `took ${since(t0)} ms`)
      assert.deepEqual(err.failures.map((f) => f.node).sort(), guarded.map((s) => s.label).sort())
      noPassword(JSON.stringify(err), 'JSON')
      // Nothing of the refused attempt is left on the node that answered.
      assert.equal(await plain.get('k3'), null)
    } finally {
      await Promise.all([...guarded, plain].map((s) => s.kill()))
    }
  })

  test('after a refused connection the process stays healthy, and the connection comes back when a server starts on the port', async () => {
    const port = await freePort()
    const m = mk({ retryCount: 1, retryDelay: 50, retryJitter: 0, nodeTimeout: 300, connectTimeout: 300 }, { connection: { host: '127.0.0.1', port } })
    await rejectsWith(m.lock('back', 1000), LockError, 'E_UNAVAILABLE')
    await rejectsWith(m.lock('back', 1000), LockError, 'E_UNAVAILABLE')
    // other managers are not affected
    const healthy = mk({ retryCount: 0 })
    const hh = await healthy.lock(key('healthy'), 1000)
    await hh.unlock()

    const late = new RedisServer(port)
    await late.start()
    try {
      let h = null
      let last
      const t0 = Date.now()
      while (h === null && since(t0) < 5000) {
        try {
          h = await m.lock('back', 2000)
        } catch (e) {
          last = e
          await sleep(100)
        }
      }
      assert.ok(h !== null, `lock() should succeed once the server is up; last error: ${last && last.message}`)
      assert.equal(await late.get('back'), h.value)
      await h.unlock()
      assert.equal(await late.get('back'), null)
    } finally {
      await late.kill()
    }
  })
})

describe('destroy()', { timeout: 20000 }, () => {
  test('releases held locks in Redis and rejects queued lock() with E_DESTROYED', async () => {
    const m = create({ type: 'redis', connection: server.options, lockOptions: { retryCount: -1 } })
    const k1 = key('destroy-held')
    const k2 = key('destroy-held')
    const h1 = await m.lock(k1, 60000)
    const h2 = await m.lock(k2, 60000)
    const queued = rejectsWith(m.lock(k1, 60000), DestroyedError, 'E_DESTROYED')
    await sleep(50)
    const t0 = Date.now()
    await m.destroy()
    assert.ok(since(t0) < 2000, `destroy took ${since(t0)} ms`)
    await queued
    assert.equal(await server.get(k1), null, 'destroy deletes held keys')
    assert.equal(await server.get(k2), null)
    await rejectsWith(m.lock(k1, 1000), DestroyedError, 'E_DESTROYED')
    assert.equal(await h1.unlock(), undefined)
    await rejectsWith(h2.extend(1000), DestroyedError, 'E_DESTROYED')
    assert.equal(await m.destroy(), undefined, 'destroy is idempotent')
  })

  test('a lock() in flight when destroy() is called does not leave an orphaned key in Redis', async () => {
    const m = create({ type: 'redis', connection: server.options, lockOptions: { retryCount: 0, nodeTimeout: 3000 } })
    const k = key('destroy-inflight')
    await (await m.lock(key('warm-up'), 1000)).unlock() // connected
    server.pause()
    let p
    try {
      p = m.lock(k, 60000).then(
        (h) => ({ h }),
        (e) => ({ e }),
      )
      await sleep(100) // the SET is on the wire, unanswered
      await m.destroy()
    } finally {
      server.resume()
    }
    const r = await p
    if (r.h) assert.fail('lock() resolved after destroy()')
    checkError(r.e, DestroyedError, 'E_DESTROYED')
    // The SET runs once the server resumes; the caller was told it has no lock, so nobody
    // will ever release it: the manager should have cleaned it up (as a failed attempt does).
    await sleep(300)
    const v = await server.get(k)
    const pttl = await server.pttl(k)
    await server.cmd('DEL', k)
    assert.equal(v, null, `destroy() left the key of an in-flight lock() in Redis, held by nobody for ${pttl} ms`)
  })
})
