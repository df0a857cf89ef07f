// The PostgreSQL backend (`type: 'postgres'`): bad options (E_CONFIG naming the field,
// TypeError / RangeError), unreachable servers (a refused port, a wrong password that never
// shows in errors, a server that appears later), and a server whose default zone is not UTC.
import { test, describe, after, afterEach } from 'node:test'
import assert from 'node:assert/strict'
import util from 'node:util'

import { create, LockError, ConfigError } from '../index.mjs'
import { since, rejectsWith, checkError, throwsWith, withTimeout } from './helpers.mjs'
import { usePostgres, startPostgres, freePort } from './pg-harness.mjs'

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

/** The nodes an E_UNAVAILABLE names, from `failures` ({ node }) or `causes` ({ node } or 'node: why'). */
function causeNodes(err) {
  const list = Array.isArray(err.failures) ? err.failures : err.causes
  assert.ok(Array.isArray(list) && list.length >= 1, `E_UNAVAILABLE should list its causes: ${util.inspect(err)}`)
  return list.map((c) => (typeof c === 'string' ? c.slice(0, c.indexOf(': ')) : c.node))
}

describe('bad options and unreachable servers', { timeout: 60000 }, () => {
  afterEach(destroyAll)
  const PW = 's3cret-pw'
  const noPassword = (text, what) => assert.ok(!String(text).includes(PW) && !String(text).includes('s3cret'), `${what} leaks the password: ${text}`)

  test('bad connections and lock options: E_CONFIG errors naming the field', () => {
    const ok = { host: '127.0.0.1', port: pg.port }
    const cases = [
      [{ connection: 42 }, TypeError, /^connection\b/],
      [{ connection: true }, TypeError, /^connection\b/],
      [{ connection: { ...ok, bogus: 1 } }, ConfigError, /connection\.bogus\b/],
      [{ connection: { ...ok, cluster: [] } }, ConfigError, /connection\.cluster\b/],
      [{ connection: { ...ok, port: '5433' } }, TypeError, /^connection\.port\b/],
      [{ connection: { ...ok, port: 0 } }, RangeError, /^connection\.port\b/],
      [{ connection: { ...ok, port: 70000 } }, RangeError, /^connection\.port\b/],
      [{ connection: { ...ok, host: 5 } }, TypeError, /^connection\.host\b/],
      [{ connection: { ...ok, ssl: { servername: 'db.example' } } }, ConfigError, /^connection\.ssl\.servername\b/],
      [{ connection: { ...ok, password: 5 } }, TypeError, /^connection\.password\b/],
      [{ connection: `redis://u:${PW}@127.0.0.1:1` }, ConfigError, /^connection\b/],
      [{ connection: `postgres://u:${PW}@127.0.0.1:notaport/db` }, ConfigError, /^connection\b/],
      [{ connection: `not a url ${PW}` }, ConfigError, /^connection\b/],
      [{ connection: ok, lockOptions: { poolSize: 0 } }, RangeError, /^lockOptions\.poolSize\b/],
      [{ connection: ok, lockOptions: { poolSize: 2.5 } }, RangeError, /^lockOptions\.poolSize\b/],
      [{ connection: ok, lockOptions: { poolSize: '4' } }, TypeError, /^lockOptions\.poolSize\b/],
      [{ connection: ok, lockOptions: { queryTimeout: 0 } }, RangeError, /^lockOptions\.queryTimeout\b/],
      [{ connection: ok, lockOptions: { connectTimeout: -1 } }, RangeError, /^lockOptions\.connectTimeout\b/],
      [{ connection: ok, lockOptions: { connectTimeout: 'x' } }, TypeError, /^lockOptions\.connectTimeout\b/],
      [{ connection: ok, lockOptions: { retryCount: 1.5 } }, RangeError, /^lockOptions\.retryCount\b/],
      [{ connection: ok, lockOptions: { retryDelay: -1 } }, RangeError, /^lockOptions\.retryDelay\b/],
      [{ connection: ok, lockOptions: { driftFactor: 0.01 } }, ConfigError, /lockOptions\.driftFactor\b/],
      [{ connection: ok, lockOptions: { tableName: 5 } }, TypeError, /^lockOptions\.tableName\b/],
    ]
    for (const [opts, Class, re] of cases) {
      const what = util.inspect(opts)
      const err = throwsWith(() => create({ type: 'postgres', ...opts }), Class, 'E_CONFIG')
      assert.match(err.message, re, `${what}: ${err.message}`)
      noPassword(err.message, what)
      noPassword(util.inspect(err), what)
    }
    // a table name that is not a plain identifier is refused (it is put into SQL)
    for (const tableName of ['', 'a;drop table x', 'a"b', 'x'.repeat(200)]) {
      const err = throwsWith(() => create({ type: 'postgres', connection: ok, lockOptions: { tableName } }), Error, 'E_CONFIG')
      assert.match(err.message, /lockOptions\.tableName\b/, err.message)
    }
  })

  test('a refused port: lock() rejects E_UNAVAILABLE within a few seconds, causes name the node, the event loop keeps running', async () => {
    const port = await freePort()
    const label = `127.0.0.1:${port}`
    let ticks = 0
    const tick = setInterval(() => ticks++, 10)
    const t0 = Date.now()
    let err
    try {
      for (const connection of [{ host: '127.0.0.1', port }, `postgres://postgres@127.0.0.1:${port}/postgres`]) {
        const m = mk({ retryCount: 1, retryDelay: 50, retryJitter: 0, connectTimeout: 500, queryTimeout: 500 }, { connection })
        const t1 = Date.now()
        err = await withTimeout(m.lock('refused', 1000).then(() => assert.fail('lock() succeeded on a refused port'), (e) => e), 8000, 'lock() on a refused port')
        checkError(err, LockError, 'E_UNAVAILABLE')
        assert.ok(since(t1) < 5000, `took ${since(t1)} ms`)
        assert.equal(err.resource, 'refused')
        for (const node of causeNodes(err)) assert.equal(node, label)
        if (Array.isArray(err.failures)) assert.ok(err.failures.every((f) => f.kind === 'refused'), util.inspect(err.failures))
      }
    } finally {
      clearInterval(tick)
    }
    assert.ok(ticks >= Math.min(5, since(t0) / 40), `only ${ticks} timer ticks in ${since(t0)} ms: the JS thread was blocked`)
  })

  test('a wrong password: E_AUTH at the first attempt, never in errors or causes; the right one works', async () => {
    const role = await pg.createRole('oxlock_pw_user', 'the-right-one')
    // 10 retries 500 ms apart: a retried refusal would take 5 s.
    const lockOptions = { retryCount: 10, retryDelay: 500, connectTimeout: 2000, tableName: 'oxlock_pw_locks' }
    for (const connection of [
      { host: '127.0.0.1', port: pg.port, user: role.user, password: PW, database: 'postgres' },
      pg.urlFor(role.user, PW),
    ]) {
      const what = util.inspect(connection)
      const m = mk(lockOptions, { connection })
      const t0 = Date.now()
      const err = await withTimeout(m.lock('k', 1000).then(() => null, (e) => e), 8000, 'lock() with a wrong password')
      checkError(err, LockError, 'E_AUTH')
      assert.equal(err.attempts, 1)
      assert.ok(Date.now() - t0 < 4000, `took ${Date.now() - t0} ms: the refusal was retried`)
      assert.deepEqual([...new Set(causeNodes(err))], [pg.label])
      assert.ok(err.failures.length > 0 && err.failures.every((f) => f.kind === 'auth'), util.inspect(err.failures))
      noPassword(err.message, what)
      noPassword(util.inspect(err, { depth: 5 }), what)
      noPassword(JSON.stringify(err), what)
      noPassword(err.stack, what)
      noPassword(JSON.stringify(err.causes) + JSON.stringify(err.failures), what)
    }
    const ok = mk(lockOptions, { connection: role.url })
    const h = await ok.lock('k', 1000)
    assert.equal((await pg.lockRow('k', 'oxlock_pw_locks')).token, h.value)
    await h.unlock()
  })

  test('after a refused start the manager recovers by itself when a server appears on the port', async () => {
    const late = await startPostgres()
    const port = late.port
    await late.stop()
    const m = mk({ retryCount: 0, connectTimeout: 500, queryTimeout: 500 }, { connection: { host: '127.0.0.1', port, user: 'postgres' } })
    await rejectsWith(m.lock('back', 1000), LockError, 'E_UNAVAILABLE')
    await late.start()
    try {
      let h = null
      let last
      const t0 = Date.now()
      while (h === null && since(t0) < 10000) {
        h = await m.lock('back', 2000).catch((e) => ((last = e), null))
        if (h === null) await sleep(100)
      }
      assert.ok(h, `lock() should work once the server is up; last error: ${last && last.message}`)
      assert.equal((await late.lockRow('back')).token, h.value)
      await h.unlock()
    } finally {
      await m.destroy()
      await late.kill()
    }
  })
})

describe("a server whose default zone is not UTC ('America/New_York')", { timeout: 30000 }, () => {
  afterEach(destroyAll)

  test('a 2 s ttl expires in about 2 s, not hours; the row says so by the database clock', async () => {
    const ny = await startPostgres({ timezone: 'America/New_York' })
    try {
      const [{ tz }] = await ny.query("select current_setting('TimeZone') as tz")
      assert.equal(tz, 'America/New_York')
      const m = create({ type: 'postgres', connection: ny.url })
      const other = create({ type: 'postgres', connection: ny.options, lockOptions: { retryCount: 0 } })
      managers.push(m, other)
      const k = key('tz')
      const t0 = Date.now()
      const h = await m.lock(k, 2000)
      assert.ok(Math.abs(h.expiration - (t0 + 2000)) < 1000, `expiration is t0 + ${h.expiration - t0} ms`)
      const row = await ny.lockRow(k)
      assert.ok(row.leftMs > 500 && row.leftMs <= 2050, `the row expires in ${row.leftMs} ms`)
      await rejectsWith(other.lock(k, 1000), LockError, 'E_LOCK_BUSY')
      await sleep(Math.max(0, 2300 - since(t0)))
      const h2 = await withTimeout(other.lock(k, 1000), 5000, 'the expired key')
      assert.ok(since(t0) < 6000)
      await h2.unlock()
      await h.unlock()
    } finally {
      await destroyAll()
      await ny.kill()
    }
  })
})

