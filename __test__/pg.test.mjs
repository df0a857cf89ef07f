// The PostgreSQL backend (`type: 'postgres'`) against one real server (pg-harness.mjs): the
// table it keeps (key bytea, token, expires_at by the database's clock) and the fence
// sequence, busy / expiry / extend / unlock rules on the token, the local FIFO queue and
// AbortSignal, NOTIFY wake-ups between managers, destroy(). Options, unreachable servers and
// a default zone other than UTC: pg-config.test.mjs; processes: pg-processes.test.mjs;
// outages: pg-outage.test.mjs.
import { test, describe, after, afterEach } from 'node:test'
import assert from 'node:assert/strict'
import util from 'node:util'

import { create, LockError, ConfigError, AbortError, DestroyedError } from '../index.mjs'
import { since, state, rejectsWith, rejectsAtOnce, checkError, withTimeout } from './helpers.mjs'
import { usePostgres } from './pg-harness.mjs'

const HEX32 = /^[0-9a-f]{32}$/
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

const pg = await usePostgres()

// Managers are destroyed after each test (each holds a pool: many at once would use up the
// server's connections), and after the file whatever happened.
let managers = []
async function destroyAll() {
  const ms = managers
  managers = []
  await Promise.allSettled(ms.map((m) => m.destroy()))
}
afterEach(destroyAll)
after(destroyAll)

/** A postgres manager on `pg` (destroyed after the test). */
function mk(lockOptions = {}, extra = {}) {
  const m = create({ type: 'postgres', connection: pg.url, lockOptions, ...extra })
  managers.push(m)
  return m
}

let n = 0
/** A key no other test uses. */
const key = (what) => `oxlock:pg:${what}:${++n}`

/** Asserts the row for `k` is held by `h` and expires in about `ttl` ms by the database's clock. */
async function assertRow(k, h, ttl, table) {
  const row = await pg.lockRow(k, table)
  assert.ok(row, `no row for ${k} while it is held`)
  assert.equal(row.token, h.value, 'the row holds the handle\'s token')
  assert.ok(row.leftMs > ttl - 1500 && row.leftMs <= ttl + 50, `the row should expire ~${ttl} ms from the database's now(), expires in ${row.leftMs} ms`)
}

describe('the table, the token and the fence', { timeout: 30000 }, () => {
  afterEach(destroyAll)

  test('lock() writes a row (key, token, expires_at) while held; extend() moves expires_at; unlock() deletes it', async () => {
    const m = mk()
    const k = key('basic')
    const t0 = Date.now()
    const h = await m.lock(k, 5000)
    const t1 = Date.now()
    assert.equal(h.resource, k)
    assert.match(h.value, HEX32)
    assert.ok(Number.isSafeInteger(h.fence) && h.fence > 0, `fence should be a positive safe integer, got ${util.inspect(h.fence)}`)
    assert.ok(h.expiration >= t0 + 5000 - 250 && h.expiration <= t1 + 5000 + 250, `expiration should be ~5000 ms after the call: t0 + ${h.expiration - t0} ms`)
    await assertRow(k, h, 5000)

    const t2 = Date.now()
    const r = await h.extend(3000)
    const t3 = Date.now()
    assert.equal(r, h, 'extend resolves the same handle')
    assert.ok(h.expiration >= t2 + 3000 - 250 && h.expiration <= t3 + 3000 + 250, `expiration after extend(3000): t2 + ${h.expiration - t2} ms`)
    await assertRow(k, h, 3000) // a reset, not an addition
    await h.extend(8000)
    await assertRow(k, h, 8000)

    assert.equal(await h.unlock(), undefined)
    assert.equal(await pg.lockRow(k), null, 'unlock() deletes the row')
    assert.equal(h.expiration, 0)
    assert.equal(await h.unlock(), undefined, 'a second unlock() resolves too')
    assert.equal(m.size, 0)
  })

  test('the table and the fence sequence are created on first use (key bytea primary key, token text, expires_at timestamptz, waiting_until)', async () => {
    const table = `oxlock_first_${process.pid}`
    const exists = async () => (await pg.query('select to_regclass($1) as t, to_regclass($2) as s', [table, `${table}_fence`]))[0]
    assert.deepEqual(await exists(), { t: null, s: null })
    const m = mk({ tableName: table })
    const h = await m.lock(key('first'), 2000)
    const now = await exists()
    assert.equal(now.t, table, 'the table exists')
    assert.equal(now.s, `${table}_fence`, 'the sequence <table>_fence exists')
    const cols = await pg.query(
      'select column_name, data_type, is_nullable from information_schema.columns where table_name = $1 order by ordinal_position',
      [table],
    )
    assert.deepEqual(
      cols.map((c) => ({ ...c })),
      [
        { column_name: 'key', data_type: 'bytea', is_nullable: 'NO' },
        { column_name: 'token', data_type: 'text', is_nullable: 'NO' },
        { column_name: 'expires_at', data_type: 'timestamp with time zone', is_nullable: 'NO' },
        // A waiter elsewhere marks the row (fairness: README, "Waking waiters").
        { column_name: 'waiting_until', data_type: 'timestamp with time zone', is_nullable: 'YES' },
      ],
    )
    const [pk] = await pg.query(
      "select array_agg(a.attname::text) as cols from pg_constraint c join pg_attribute a on a.attrelid = c.conrelid and a.attnum = any(c.conkey) where c.conrelid = $1::regclass and c.contype = 'p'",
      [table],
    )
    assert.deepEqual(pk.cols, ['key'], 'key is the primary key')
    await assertRow(h.resource, h, 2000, table)
    await h.unlock()
    // A second manager on the existing table (and sequence) works as well.
    const m2 = mk({ tableName: table })
    const h2 = await m2.lock(h.resource, 2000)
    assert.ok(h2.fence > h.fence)
    await h2.unlock()
  })

  test('keys are stored as their UTF-8 bytes; lockNs() locks `${namespace}:${key}`', async () => {
    const m = mk({}, { namespace: 'app' })
    const k = `${key('utf8')}:ключ:🔒`
    const h = await m.lockNs(k, 2000)
    assert.equal(h.resource, `app:${k}`)
    await assertRow(`app:${k}`, h, 2000)
    assert.equal(await pg.lockRow(k), null)
    const [{ hex }] = await pg.query("select encode(key, 'hex') as hex from oxlock_locks where token = $1", [h.value])
    assert.equal(hex, Buffer.from(`app:${k}`, 'utf8').toString('hex'))
    await h.unlock()
    await rejectsWith(mk().lockNs('x', 1000), ConfigError, 'E_CONFIG')
  })

  test('a multi-resource lock is refused with E_UNSUPPORTED, writing no row', async () => {
    const m = mk()
    const [a, b] = [key('multi-a'), key('multi-b')]
    const err = await rejectsWith(m.lock([a, b], 1000), LockError, 'E_UNSUPPORTED')
    assert.match(err.message, /no multi-resource locks/)
    assert.equal(await pg.lockRow(a), null)
    const h = await m.lock([a], 1000) // one key in an array is a plain lock
    assert.deepEqual(h.resource, [a])
    await h.unlock()
  })

  test('each acquisition gets a fresh token and a larger fence', async () => {
    const m = mk()
    const other = mk()
    const k = key('fences')
    const tokens = new Set()
    let last = 0
    for (let i = 0; i < 6; i++) {
      const h = await (i % 2 ? other : m).lock(k, 2000)
      assert.match(h.value, HEX32)
      tokens.add(h.value)
      assert.ok(h.fence > last, `fence ${h.fence} after ${last}`)
      last = h.fence
      await h.unlock()
    }
    assert.equal(tokens.size, 6)
  })

  test('lock(key) without a ttl holds it for 10 s', async () => {
    const m = mk()
    const k = key('default-ttl')
    const h = await m.lock(k)
    await assertRow(k, h, 10000)
    await h.unlock()
  })

  test('h[Symbol.asyncDispose]() unlocks (the `await using` protocol)', async () => {
    const m = mk()
    const k = key('dispose')
    const h = await m.lock(k, 5000)
    assert.equal(typeof h[Symbol.asyncDispose], 'function')
    await h[Symbol.asyncDispose]()
    assert.equal(await pg.lockRow(k), null)
  })
})

describe('busy, expiry, extend and unlock by token', { timeout: 30000 }, () => {
  afterEach(destroyAll)

  test('a second manager sees the key busy: retryCount 0 fails at once with E_LOCK_BUSY', async () => {
    const holder = mk()
    const m = mk({ retryCount: 0 })
    const k = key('busy0')
    const h = await holder.lock(k, 5000)
    const t0 = Date.now()
    const err = await rejectsWith(m.lock(k, 1000), LockError, 'E_LOCK_BUSY', `Exceeded 0 attempts to lock the resource "${k}".`)
    assert.ok(since(t0) < 2000, `one attempt, took ${since(t0)} ms`)
    assert.equal(err.resource, k)
    await assertRow(k, h, 5000)
    await h.unlock()
  })

  test('retryCount 2 / retryDelay 50 gives up after 3 attempts; a key freed during the retries is taken', async () => {
    const holder = mk()
    const m = mk({ retryCount: 2, retryDelay: 50, retryJitter: 0 })
    const k = key('busy2')
    const h = await holder.lock(k, 5000)
    const t0 = Date.now()
    const err = await rejectsWith(m.lock(k, 1000), LockError, 'E_LOCK_BUSY', `Exceeded 2 attempts to lock the resource "${k}".`)
    assert.equal(err.attempts, 3)
    assert.ok(since(t0) >= 95, `two retry delays first, took ${since(t0)} ms`)
    const m2 = mk({ retryCount: 50, retryDelay: 50 })
    const p = m2.lock(k, 2000)
    await sleep(150)
    await h.unlock()
    const h2 = await withTimeout(p, 5000, 'the waiter should get the freed key')
    await assertRow(k, h2, 2000)
    await h2.unlock()
  })

  test('a lock nobody releases expires after its ttl and another manager takes it', async () => {
    const m = mk()
    const other = mk({ retryCount: 0 })
    const k = key('expiry')
    const t0 = Date.now()
    const h = await m.lock(k, 400)
    await rejectsWith(other.lock(k, 1000), LockError, 'E_LOCK_BUSY')
    await sleep(Math.max(0, 600 - since(t0)))
    const h2 = await other.lock(k, 3000)
    assert.ok(h2.fence > h.fence)
    await assertRow(k, h2, 3000)
    await h.unlock() // stale: resolves, deletes nothing
    await assertRow(k, h2, 3000)
    await h2.unlock()
  })

  test('an expired row is taken over by exactly one of 10 managers racing for it', async () => {
    const k = key('takeover')
    const ms = Array.from({ length: 10 }, () => mk({ retryCount: 0, poolSize: 1 }))
    await (await ms[0].lock(key('warm'), 100)).unlock() // the table exists
    await pg.query("insert into oxlock_locks (key, token, expires_at) values (convert_to($1, 'UTF8'), 'old-holder', now() - interval '1 second')", [k])
    const results = await Promise.allSettled(ms.map((m) => m.lock(k, 5000)))
    const won = results.filter((r) => r.status === 'fulfilled')
    assert.equal(won.length, 1, `exactly one takes the expired row: ${results.map((r) => r.status === 'fulfilled' ? 'won' : r.reason.code).join(', ')}`)
    for (const r of results) if (r.status === 'rejected') checkError(r.reason, LockError, 'E_LOCK_BUSY')
    await assertRow(k, won[0].value, 5000)
    await won[0].value.unlock()
  })

  test('extend() after the lock was lost (expired and taken by another) rejects E_LOCK_EXPIRED and takes nothing', async () => {
    const m = mk()
    const other = mk({ retryCount: 20, retryDelay: 50 })
    const k = key('extend-lost')
    const h = await m.lock(k, 200)
    await sleep(400)
    const h2 = await other.lock(k, 5000)
    await rejectsWith(h.extend(5000), LockError, 'E_LOCK_EXPIRED', `Cannot extend lock on resource "${k}" because the lock has already expired.`)
    await assertRow(k, h2, 5000)
    await h2.unlock()
  })

  test('extend() of a row deleted or overwritten behind our back rejects E_LOCK_EXPIRED; it never recreates or moves it', async () => {
    const m = mk()
    const k = key('extend-foreign')
    const h = await m.lock(k, 5000)
    await pg.query("delete from oxlock_locks where key = convert_to($1, 'UTF8')", [k])
    await rejectsWith(h.extend(2000), LockError, 'E_LOCK_EXPIRED')
    assert.equal(await pg.lockRow(k), null, 'extend must not recreate the row')
    await pg.query("insert into oxlock_locks (key, token, expires_at) values (convert_to($1, 'UTF8'), 'someone-else', now() + interval '4 seconds')", [k])
    await rejectsWith(h.extend(20000), LockError, 'E_LOCK_EXPIRED')
    const row = await pg.lockRow(k)
    assert.equal(row.token, 'someone-else')
    assert.ok(row.leftMs <= 4000, `the foreign row's expiry is untouched (${row.leftMs} ms left)`)
    await h.unlock()
    assert.equal((await pg.lockRow(k)).token, 'someone-else', "a stale unlock never deletes another holder's row")
    await pg.query("delete from oxlock_locks where key = convert_to($1, 'UTF8')", [k])
  })

  test("a stale unlock (expired, taken by another manager) resolves and leaves the other holder's row", async () => {
    const m = mk()
    const other = mk({ retryCount: 20, retryDelay: 50 })
    const k = key('stale-unlock')
    const h = await m.lock(k, 200)
    await sleep(350)
    const h2 = await other.lock(k, 5000)
    assert.equal(await h.unlock(), undefined)
    await assertRow(k, h2, 5000)
    await h2.unlock()
    assert.equal(await pg.lockRow(k), null)
  })
})

describe('one manager: local FIFO queue and AbortSignal', { timeout: 30000 }, () => {
  afterEach(destroyAll)

  test('FIFO: lock() calls made in one tick get the key in call order (5 rounds × 50 callers), one holder at a time', async () => {
    const m = mk({ retryCount: -1 })
    const k = key('fifo')
    const bad = []
    let inside = 0
    let max = 0
    for (let round = 0; round < 5; round++) {
      const order = []
      await Promise.all(
        Array.from({ length: 50 }, async (_, i) => {
          const h = await m.lock(k, 5000)
          inside++
          max = Math.max(max, inside)
          order.push(i)
          inside--
          await h.unlock()
        }),
      )
      const at = order.findIndex((v, i) => v !== i)
      if (at >= 0) bad.push(`round ${round}: ... ${order.slice(Math.max(0, at - 2), at + 4).join(', ')} ...`)
    }
    assert.deepEqual(bad, [], 'lock() calls were served out of call order')
    assert.equal(max, 1)
    assert.equal(await pg.lockRow(k), null)
  })

  test('waiters queued behind a holder are served in order, each without waiting for retryDelay', async () => {
    const m = mk({ retryCount: 10, retryDelay: 1000, retryJitter: 0 })
    const k = key('fifo-holder')
    const h = await m.lock(k, 5000)
    const order = []
    const all = []
    for (let i = 0; i < 10; i++) {
      all.push(
        m.lock(k, 5000).then(async (w) => {
          order.push(i)
          await assertRow(k, w, 5000)
          await w.unlock()
        }),
      )
      await sleep(5)
    }
    const t0 = Date.now()
    await h.unlock()
    await Promise.all(all)
    assert.deepEqual(order, Array.from({ length: 10 }, (_, i) => i))
    assert.ok(since(t0) < 3000, `10 hand-offs took ${since(t0)} ms: a local waiter must not wait for retryDelay (1000)`)
  })

  test('an aborted waiter rejects E_ABORTED at once, never gets the lock and leaves no row', async () => {
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
    checkError(err, AbortError, 'E_ABORTED')
    assert.equal(err.cause, reason)
    await h.unlock()
    await sleep(300)
    assert.equal(await pg.lockRow(k), null, 'the aborted waiter must not take the key')
    assert.equal(m.size, 0)
  })

  test('aborting the head of the queue while it retries against another manager: no row appears later', async () => {
    const holder = mk()
    const m = mk({ retryCount: -1, retryDelay: 50, retryJitter: 0 })
    const k = key('abort-retrying')
    const h = await holder.lock(k, 5000)
    const ac = new AbortController()
    const p = m.lock(k, { ttl: 5000, signal: ac.signal })
    await sleep(150)
    ac.abort()
    checkError(await rejectsAtOnce(p), AbortError, 'E_ABORTED')
    await h.unlock()
    await sleep(400)
    assert.equal(await pg.lockRow(k), null, 'the aborted lock() must not take the key later')
    const after = await mk({ retryCount: 0 }).lock(k, 1000)
    await after.unlock()
  })

  test('an already aborted signal rejects without writing a row', async () => {
    const m = mk()
    const k = key('abort-early')
    checkError(await rejectsAtOnce(m.lock(k, { ttl: 1000, signal: AbortSignal.abort() })), AbortError, 'E_ABORTED')
    assert.equal(await pg.lockRow(k), null)
  })
})

describe('NOTIFY: a waiter in another manager is woken by the unlock, not by its retry timer', { timeout: 30000 }, () => {
  afterEach(destroyAll)

  test('retryDelay 1000: the other manager acquires within a few tens of ms of the unlock (3 rounds)', async () => {
    const holder = mk()
    const waiter = mk({ retryCount: 20, retryDelay: 1000, retryJitter: 0 })
    const k = key('notify')
    await (await waiter.lock(key('warm'), 100)).unlock() // pool and listener up
    for (let round = 0; round < 3; round++) {
      const h = await holder.lock(k, 10000)
      const p = waiter.lock(k, 5000)
      // the first attempt fails at once; the next one by the timer would be ~1000 ms later
      await sleep(300)
      assert.equal(await state(p), 'pending')
      const t0 = Date.now()
      await h.unlock()
      const h2 = await withTimeout(p, 5000, 'the waiter')
      const took = since(t0)
      assert.ok(took < 300, `round ${round}: the waiter got the key ${took} ms after the unlock: woken by its 1000 ms retry timer, not by NOTIFY`)
      await h2.unlock()
    }
  })

  test('a waiter behind a holder with a short ttl gets it soon after the expiry, not a whole retryDelay later', async () => {
    // Nobody unlocks: the waiter knows when the row expires (expires_at) or hears it from
    // whoever notices; with retryDelay 2000 a plain retry timer would come ~2 s after the try.
    const holder = mk()
    const waiter = mk({ retryCount: 10, retryDelay: 2000, retryJitter: 0 })
    const k = key('notify-expiry')
    await (await waiter.lock(key('warm'), 100)).unlock()
    const h = await holder.lock(k, 600)
    const t0 = Date.now()
    const h2 = await withTimeout(waiter.lock(k, 5000), 8000, 'the waiter')
    assert.ok(since(t0) >= 450, `got it after ${since(t0)} ms, before the holder's ttl`)
    assert.ok(since(t0) < 1500, `got it ${since(t0)} ms after the holder's 600 ms lock: it waited for its 2000 ms retry timer`)
    await h.unlock()
    await h2.unlock()
  })
})

test('destroy(): held rows are deleted, queued lock() calls reject E_DESTROYED, later calls too', { timeout: 20000 }, async () => {
  const m = create({ type: 'postgres', connection: pg.url, lockOptions: { retryCount: -1 } })
  const a = key('destroy-a')
  const b = key('destroy-b')
  const ha = await m.lock(a, 60000)
  const hb = await m.lock(b, 60000)
  const queued = m.lock(a, 60000)
  await sleep(50)
  assert.equal(await state(queued), 'pending')
  await m.destroy()
  await rejectsWith(queued, DestroyedError, 'E_DESTROYED')
  assert.equal(await pg.lockRow(a), null, 'destroy() deletes the held rows')
  assert.equal(await pg.lockRow(b), null)
  await rejectsWith(m.lock(a, 1000), DestroyedError, 'E_DESTROYED')
  assert.equal(await ha.unlock(), undefined)
  assert.equal(await hb.unlock(), undefined)
  await m.destroy() // idempotent
})
