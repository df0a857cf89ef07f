// oxlock/exclusive-lock: the drop-in for exclusive-lock 2.0.0 / @logdna/exclusive-lock
// (target-apis §4 and §6.4), against real redis-server processes (redis-harness.mjs).
//
// The upstream suite (§4.3, cases 1-16) is adapted: oxlock reads the ioredis client's options
// and opens its own connection, so the upstream tests that monkey-patched pexpire/del/multi
// are driven by real failures here (the server killed or SIGSTOPped). Then the fixes of issue
// 9 (compare-and-PEXPIRE refresh with ELOCKLOST, compare-and-delete release, no crash without
// an 'error' listener), interop with a plain client writing the keys as the old package did,
// and three contending processes.
import { test, describe, after } from 'node:test'
import assert from 'node:assert/strict'
import { EventEmitter } from 'node:events'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

import { runNode, withTimeout, eventually } from './helpers.mjs'
import { useRedis, startRedis, redisCmd, freePort } from './redis-harness.mjs'

const require = createRequire(import.meta.url)
const ExclusiveLock = require('../compat/exclusive-lock.js')
const Redis = require('ioredis')

const CHILD = fileURLToPath(new URL('./fixtures/exclusive-lock-child.mjs', import.meta.url))
const WORKER = fileURLToPath(new URL('./fixtures/exclusive-lock-worker.mjs', import.meta.url))
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

// ---- bookkeeping: every lock is released and every client disconnected after the file
// (registered before useRedis, so it runs before the servers are killed).
const locks = []
const clients = []
const extraServers = []
after(async () => {
  await Promise.allSettled(locks.map((l) => l.release()))
  for (const c of clients) c.disconnect()
  for (const s of extraServers) s.resume()
  await Promise.allSettled(extraServers.map((s) => s.kill()))
})

const [server] = await useRedis(1)

/** A lazily connecting ioredis client (never connected by oxlock: it only reads .options). */
function client(port = server.port, extra = {}) {
  const c = new Redis({ host: '127.0.0.1', port, lazyConnect: true, ...extra })
  clients.push(c)
  return c
}

/** An ioredis client that does connect (for checks in another db / with a password). */
function liveClient(port, extra = {}) {
  const c = new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: 1, ...extra })
  c.on('error', () => {})
  clients.push(c)
  return c
}

/** A fresh server for a destructive test (killed after the file at the latest). */
async function ownServer(args = []) {
  const s = await startRedis(args)
  extraServers.push(s)
  return s
}

/**
 * A lock, released after the file. Its events are recorded in `lock.events` (each with the
 * instance's state at emit time); the recorder is also an 'error' listener.
 */
function mk(opts) {
  const lock = new ExclusiveLock(opts)
  locks.push(lock)
  const evs = []
  for (const ev of ['acquired', 'refreshed', 'released', 'error']) {
    lock.on(ev, (...args) => evs.push({ ev, args, acquired: lock.acquired, timer: lock.refresh_timer, at: Date.now() }))
  }
  evs.of = (ev) => evs.filter((e) => e.ev === ev)
  evs.names = () => evs.map((e) => e.ev)
  lock.events = evs
  return lock
}

let n = 0
/** A lock name no other test uses. */
const uname = (what) => `oxlock-el-${what}-${++n}`

/** A logger that records its calls (pino's level methods). */
function recLog() {
  const calls = []
  const log = {}
  for (const level of ['fatal', 'error', 'warn', 'info', 'debug', 'trace']) log[level] = (...args) => calls.push({ level, args })
  log.child = () => log
  log.calls = calls
  log.of = (level) => calls.filter((c) => c.level === level)
  return log
}

async function until(pred, ms, what) {
  await eventually(pred, ms, what)
}

async function commandsProcessed(port) {
  const info = await redisCmd(port, ['INFO', 'stats'])
  return Number(/total_commands_processed:(\d+)/.exec(info)[1])
}

/** Asserts the ajv-style validation error. */
function checkInvalid(fn, instancePath, message) {
  let err
  assert.throws(fn, (e) => ((err = e), true))
  assert.ok(err instanceof Error, 'an Error')
  assert.equal(err.constructor, Error, `a plain Error, got ${err.constructor.name}`)
  assert.equal(err.message, 'Input validation failed')
  assert.equal(err.code, 'EINVAL')
  assert.ok(Array.isArray(err.errors), 'err.errors is an array')
  assert.equal(err.errors.length, 1, `first error only: ${JSON.stringify(err.errors)}`)
  assert.deepEqual({ ...err.errors[0] }, { instancePath, message })
  return err
}

// =====================================================================================
describe('the module and the constructor', { timeout: 120000 }, () => {
  test('the export is the ExclusiveLock class, an EventEmitter', () => {
    assert.equal(typeof ExclusiveLock, 'function')
    assert.equal(ExclusiveLock.name, 'ExclusiveLock')
    const lock = mk({ name: uname('shape'), cache_connection: client() })
    assert.ok(lock instanceof ExclusiveLock)
    assert.ok(lock instanceof EventEmitter)
  })

  test("upstream 7: toString() returns our class's name", () => {
    const lock = mk({ name: uname('tostring'), cache_connection: client() })
    assert.equal(lock.toString(), '[object ExclusiveLock]')
    assert.equal(String(lock), '[object ExclusiveLock]')
    assert.equal(Object.prototype.toString.call(lock), '[object ExclusiveLock]')
  })

  test('defaults and public fields: 3000 / 1000 / "1" / exclusive-lock, acquired false, refresh_timer null', () => {
    const c = client()
    const lock = mk({ name: 'plain-name', cache_connection: c })
    assert.equal(lock.cache_connection, c)
    assert.equal(lock.name, 'plain-name')
    assert.equal(lock.lock_ttl_ms, 3000)
    assert.equal(lock.lock_refresh_ms, 1000)
    assert.equal(lock.lock_contents, '1')
    assert.equal(lock.key, 'exclusive-lock:plain-name')
    assert.equal(lock.acquired, false)
    assert.equal(lock.is_refreshing, false)
    assert.equal(lock.refresh_timer, null)
    for (const level of ['info', 'warn', 'error', 'debug', 'trace']) assert.equal(typeof lock.log[level], 'function', `default log.${level}`)
    const log = recLog()
    assert.equal(mk({ name: 'x', cache_connection: c, log }).log, log, 'opts.log is kept')
  })

  test('the slug: every run of whitespace / non-word characters becomes one "-", in name and key_prefix', () => {
    const lock = mk({ name: ' a  b\t\nc!!d_e.f ', key_prefix: 'my app::v2', cache_connection: client() })
    assert.equal(lock.name, '-a-b-c-d_e-f-')
    assert.equal(lock.key, 'my-app-v2:-a-b-c-d_e-f-')
    assert.equal(mk({ name: 'ключ 1', cache_connection: client() }).key, 'exclusive-lock:-1', 'non-ASCII letters are non-word characters for \\W')
  })

  test('upstream 2: specifying key_prefix uses it in the lock name', () => {
    const name = uname('prefix')
    const lock = mk({ name, cache_connection: client(), key_prefix: 'my-special-key   with  spaces' })
    assert.equal(lock.key, `my-special-key-with-spaces:${name}`)
  })

  test('upstream 9: instantiation errors, in upstream order, with upstream classes, messages and codes', () => {
    const c = client()
    checkInvalid(() => new ExclusiveLock(), '', "must have required property 'name'")
    checkInvalid(() => new ExclusiveLock(null), '', "must have required property 'name'")
    checkInvalid(() => new ExclusiveLock({ cache_connection: c }), '', "must have required property 'name'")
    checkInvalid(() => new ExclusiveLock({ name: 'my-locking-app' }), '', "must have required property 'cache_connection'")

    let err
    assert.throws(() => new ExclusiveLock({ name: 'my-locking-app', cache_connection: {} }), (e) => ((err = e), true))
    assert.ok(err instanceof TypeError, `TypeError, got ${err.constructor.name}`)
    assert.equal(err.name, 'TypeError')
    assert.equal(err.message, 'A valid cache_connection to a cache store is required')
    assert.equal(err.code, 'EINVAL')
    assert.throws(() => new ExclusiveLock({ name: 'x', cache_connection: { set: 'not a function' } }), TypeError)

    checkInvalid(() => new ExclusiveLock({ name: 'my-locking-app', cache_connection: c, lock_ttl_ms: 5000 }), '', 'must have property lock_refresh_ms when property lock_ttl_ms is present')
    checkInvalid(() => new ExclusiveLock({ name: 'my-locking-app', cache_connection: c, lock_refresh_ms: 5000 }), '', 'must have property lock_ttl_ms when property lock_refresh_ms is present')

    assert.throws(() => new ExclusiveLock({ name: 'my-locking-app', cache_connection: c, lock_ttl_ms: 500, lock_refresh_ms: 100 }), (e) => ((err = e), true))
    assert.ok(err instanceof RangeError, `RangeError, got ${err.constructor.name}`)
    assert.equal(err.name, 'RangeError')
    assert.equal(err.message, 'lock_refresh_ms must be at least 500ms less than lock_ttl_ms')
    assert.equal(err.code, 'EINVAL')
    assert.deepEqual({ ...err.meta }, { lock_ttl_ms: 500, lock_refresh_ms: 100, diff: 400 })

    checkInvalid(() => new ExclusiveLock({ name: 'my-locking-app', cache_connection: c, lock_contents: null }), '/lock_contents', 'must be string')
  })

  test('upstream 9: the order of the checks (schema, then cache_connection, then the ttl/refresh spacing)', () => {
    // a schema error wins over a bad cache_connection
    checkInvalid(() => new ExclusiveLock({ name: 'x', cache_connection: {}, lock_ttl_ms: 5000 }), '', 'must have property lock_refresh_ms when property lock_ttl_ms is present')
    checkInvalid(() => new ExclusiveLock({ name: 'x', cache_connection: {}, lock_contents: null }), '/lock_contents', 'must be string')
    // a bad cache_connection wins over a bad spacing
    assert.throws(() => new ExclusiveLock({ name: 'x', cache_connection: {}, lock_ttl_ms: 500, lock_refresh_ms: 100 }), TypeError)
  })

  test('upstream 9: the spacing boundary: diff 500 is accepted, 499 is a RangeError with meta', () => {
    const c = client()
    const ok = mk({ name: uname('spacing'), cache_connection: c, lock_ttl_ms: 1000, lock_refresh_ms: 500 })
    assert.equal(ok.lock_ttl_ms, 1000)
    assert.equal(ok.lock_refresh_ms, 500)
    let err
    assert.throws(() => new ExclusiveLock({ name: 'x', cache_connection: c, lock_ttl_ms: 999, lock_refresh_ms: 500 }), (e) => ((err = e), true))
    assert.ok(err instanceof RangeError)
    assert.equal(err.code, 'EINVAL')
    assert.deepEqual({ ...err.meta }, { lock_ttl_ms: 999, lock_refresh_ms: 500, diff: 499 })
  })

  test('upstream 8 (adapted: the schema fixture is not exported): the schema types, minLength and extra properties', () => {
    const c = client()
    checkInvalid(() => new ExclusiveLock({ name: '', cache_connection: c }), '/name', 'must NOT have fewer than 1 characters')
    checkInvalid(() => new ExclusiveLock({ name: 5, cache_connection: c }), '/name', 'must be string')
    checkInvalid(() => new ExclusiveLock({ name: 'x', cache_connection: c, key_prefix: 5 }), '/key_prefix', 'must be string')
    checkInvalid(() => new ExclusiveLock({ name: 'x', cache_connection: c, lock_ttl_ms: '3000', lock_refresh_ms: 1000 }), '/lock_ttl_ms', 'must be number')
    // extra properties are allowed and ignored (the upstream tests pass auto_refresh: false)
    const lock = mk({ name: uname('extra'), cache_connection: c, auto_refresh: false, something_else: 1 })
    assert.equal(lock.acquired, false)
  })

  test('upstream 9: a validation failure is logged with log.error before it is thrown', () => {
    const log = recLog()
    let err
    assert.throws(() => new ExclusiveLock({ name: 'x', log }), (e) => ((err = e), true))
    assert.equal(err.message, 'Input validation failed')
    assert.ok(
      log.of('error').some((c) => c.args.includes(err)),
      `log.error should have been called with the thrown error; calls: ${JSON.stringify(log.calls.map((c) => c.level))}`,
    )
  })
})

// =====================================================================================
describe('acquire / refresh / inspect / release on one server', { timeout: 120000 }, () => {
  test('two acquire() calls in flight on one instance: one true, one false, no exception', async () => {
    const lock = mk({ name: uname('twice'), cache_connection: client(), lock_ttl_ms: 1000, lock_refresh_ms: 10 })
    const got = await Promise.all([lock.acquire(), lock.acquire()])
    assert.deepEqual([...got].sort(), [false, true])
    await new Promise((r) => setTimeout(r, 50))
    assert.ok(lock.events.names().includes('refreshed'))
    await lock.release()
  })

  test('refresh reports that arrive with the acquisition come after acquired and after acquire() resolved', async () => {
    const lock = mk({ name: uname('early'), cache_connection: client(), lock_ttl_ms: 1000, lock_refresh_ms: 10 })
    const order = lock.events
    const p = lock.acquire().then((v) => (order.push({ ev: 'resolved' }), v))
    // A busy JS thread: the acquisition's outcome and the first refreshes are delivered together.
    const until = Date.now() + 200
    while (Date.now() < until);
    assert.equal(await p, true)
    await new Promise((r) => setTimeout(r, 50))
    const names = order.names()
    assert.deepEqual(names.slice(0, 2), ['acquired', 'resolved'], names.join(','))
    assert.ok(names.includes('refreshed'), names.join(','))
    assert.ok(order.of('refreshed').every((e) => e.acquired === true), 'acquired is true whenever refreshed is emitted')
    await lock.release()
  })

  test('upstream 1: successful lock with default key_prefix (ttl 600 / refresh 50)', async () => {
    const c = client()
    const log = recLog()
    const lock_ttl_ms = 600
    const lock_refresh_ms = 50
    const lock = mk({ name: 'some deployment "name" with spaces', cache_connection: c, log, lock_ttl_ms, lock_refresh_ms })
    const key = 'exclusive-lock:some-deployment-name-with-spaces'
    assert.equal(lock.key, key, 'the key was slugified')
    assert.equal(lock.name, 'some-deployment-name-with-spaces')

    const order = lock.events
    const got = await lock.acquire().then((v) => (order.push({ ev: 'resolved' }), v))
    assert.equal(got, true)
    assert.deepEqual(order.names().slice(0, 2), ['acquired', 'resolved'], `'acquired' is emitted before acquire() resolves: ${order.names()}`)
    assert.deepEqual(order.of('acquired')[0].args, [key])

    assert.equal(await server.get(key), '1', 'default contents')
    const pttl = await server.pttl(key)
    assert.ok(pttl > lock_ttl_ms - 300 && pttl <= lock_ttl_ms, `PTTL near ${lock_ttl_ms}, got ${pttl}`)
    assert.equal(lock.acquired, true)
    assert.equal(lock.lock_ttl_ms, lock_ttl_ms)
    assert.equal(lock.lock_refresh_ms, lock_refresh_ms)
    assert.ok(lock.refresh_timer, 'a refresh timer is started')

    await until(() => order.of('refreshed').length > 0, 5000, "a 'refreshed' event")
    assert.deepEqual(order.of('refreshed')[0].args, [{ key, lock_ttl_ms }])

    // Longer than the ttl: only the refresh keeps the key alive.
    await sleep(900)
    assert.equal(await server.get(key), '1', 'the key outlived its ttl: it is refreshed')
    const refreshedTtl = await server.pttl(key)
    assert.ok(refreshedTtl > 0 && refreshedTtl <= lock_ttl_ms, `refreshed PTTL ${refreshedTtl}`)
    assert.ok(order.of('refreshed').length >= 2, `several refreshes, got ${order.of('refreshed').length}`)
    assert.equal(order.of('error').length, 0, `no error: ${order.of('error').map((e) => e.args[0]?.message)}`)

    assert.equal(await lock.release(), undefined)
    assert.deepEqual(
      order.of('released').map((e) => e.args),
      [[key]],
      "'released' (once, with the key) by the time release() resolves",
    )
    assert.equal(lock.acquired, false)
    assert.equal(lock.refresh_timer, null)
    assert.equal(await server.get(key), null, 'the lock key was removed')
    const refreshes = order.of('refreshed').length
    await sleep(200)
    assert.equal(order.of('refreshed').length, refreshes, 'no refresh after release()')
  })

  test('upstream 3: only 1 of 2 competing instances gets the lock; both release cleanly', async () => {
    const name = uname('compete')
    const c = client()
    const a = mk({ name, cache_connection: c, lock_ttl_ms: 600, lock_refresh_ms: 50 })
    const b = mk({ name, cache_connection: c, lock_ttl_ms: 600, lock_refresh_ms: 50 })
    const results = await Promise.all([a.acquire(), b.acquire()])
    assert.deepEqual([...results].sort(), [false, true], `exactly one wins: ${results}`)
    assert.notEqual(a.acquired, b.acquired)
    const [winner, loser] = a.acquired ? [a, b] : [b, a]
    assert.ok(winner.refresh_timer, 'the winner has a refresh timer')
    assert.equal(loser.refresh_timer, null, 'the loser has none')
    assert.equal(loser.events.length, 0, `the loser emitted nothing: ${loser.events.names()}`)

    // the winner keeps it past the ttl; the loser still cannot take it
    await sleep(700)
    assert.equal(await loser.acquire(), false)
    assert.equal(loser.refresh_timer, null)

    assert.equal(await winner.release(), undefined)
    assert.equal(winner.acquired, false)
    assert.equal(winner.refresh_timer, null)
    assert.equal(await loser.release(), undefined, 'a release without the lock is a no-op')
    assert.equal(loser.acquired, false)
    assert.equal(loser.refresh_timer, null)
    assert.equal(loser.events.of('released').length, 0, "no 'released' from the loser")
    assert.equal(await server.get(winner.key), null)
  })

  test('upstream 4: inspect returns TTL and contents of a key set manually (PX 10000), without acquire', async () => {
    const lock = mk({ name: uname('inspect'), cache_connection: client(), auto_refresh: false })
    assert.equal(await redisCmd(server.port, ['SET', lock.key, lock.lock_contents, 'PX', 10000]), 'OK')
    const result = await lock.inspect()
    assert.equal(result.lock_contents, '1')
    assert.equal(typeof result.lock_ttl_ms, 'number')
    assert.ok(result.lock_ttl_ms > 10000 - 2000 && result.lock_ttl_ms <= 10000, `TTL near 10000, got ${result.lock_ttl_ms}`)
    assert.deepEqual(Object.keys(result).sort(), ['lock_contents', 'lock_ttl_ms'])
    assert.equal(lock.acquired, false, 'inspect does not take the lock')
    assert.equal(lock.events.length, 0)
    await redisCmd(server.port, ['DEL', lock.key])
  })

  test('upstream 4: inspect of a key without expiry reports PTTL -1 and the raw (unparsed) contents', async () => {
    const lock = mk({ name: uname('inspect-noexp'), cache_connection: client() })
    await redisCmd(server.port, ['SET', lock.key, '{"a":1}'])
    assert.deepEqual(await lock.inspect(), { lock_ttl_ms: -1, lock_contents: '{"a":1}' })
    await redisCmd(server.port, ['DEL', lock.key])
  })

  test('upstream 5: inspect returns null if there is no lock', async () => {
    const lock = mk({ name: uname('inspect-none'), cache_connection: client(), auto_refresh: false })
    assert.equal(await lock.inspect(), null)
  })

  test('upstream 6: the lock contents can be specified (inspect and a plain GET see them)', async () => {
    const lock_contents = 'some sort of meta information here'
    const lock = mk({ name: uname('contents'), cache_connection: client(), auto_refresh: false, lock_contents })
    assert.equal(lock.lock_contents, lock_contents)
    assert.equal(await lock.acquire(), true)
    const result = await lock.inspect()
    assert.equal(result.lock_contents, lock_contents)
    assert.ok(result.lock_ttl_ms > 0 && result.lock_ttl_ms <= 3000, `TTL ${result.lock_ttl_ms}`)
    assert.equal(await server.get(lock.key), lock_contents)
    await lock.release()
    assert.equal(await lock.inspect(), null)
  })

  test('upstream 10: providing a (pino-like) log instance works for acquire + release', async () => {
    const log = recLog()
    const lock = mk({ name: 'my-locking-app', cache_connection: client(), log })
    assert.equal(lock.log, log)
    assert.equal(await lock.acquire(), true)
    assert.equal(await lock.release(), undefined)
    assert.equal(lock.acquired, false)
  })

  test('upstream 11: re-acquiring the same lock resolves true: no Redis call, no second event', async () => {
    const own = await ownServer()
    const log = recLog()
    const lock = mk({ log, name: uname('reacquire'), cache_connection: client(own.port), lock_ttl_ms: 20000, lock_refresh_ms: 10000 })
    assert.equal(await lock.acquire(), true)
    assert.equal(lock.events.of('acquired').length, 1)
    // baseline: INFO → INFO on an otherwise idle server
    const b0 = await commandsProcessed(own.port)
    const b1 = await commandsProcessed(own.port)
    const before = await commandsProcessed(own.port)
    const warns = log.of('warn').length
    assert.equal(await lock.acquire(), true, 'the lock is already acquired')
    const afterCount = await commandsProcessed(own.port)
    assert.equal(afterCount - before, b1 - b0, 'the second acquire() sent no command to Redis')
    assert.equal(lock.events.of('acquired').length, 1, "no second 'acquired'")
    assert.equal(lock.acquired, true)
    assert.ok(log.of('warn').length > warns, 'upstream logs a warning on re-acquire (log.warn)')
    await lock.release()
    assert.equal(await own.get(lock.key), null)
  })

  test('upstream 12 (adapted: the server paused 150 ms instead of a slow patched pexpire): overlapping refreshes are skipped, refreshed still arrives', async () => {
    const own = await ownServer()
    const lock = mk({ name: uname('overlap'), cache_connection: client(own.port), lock_ttl_ms: 2000, lock_refresh_ms: 10 })
    try {
      assert.equal(await lock.acquire(), true)
      await until(() => lock.events.of('refreshed').length > 0, 5000, 'a first refresh')
      own.pause()
      // a refresh is in flight and cannot finish; had every 10 ms tick sent its own
      // PEXPIRE, ~15 replies would arrive at once when the server answers again
      await sleep(150)
      const before = lock.events.of('refreshed').length
      own.resume()
      await until(() => lock.events.of('refreshed').length > before, 5000, "'refreshed' after the server answers again")
      const first = lock.events.of('refreshed')[before].at
      await sleep(25)
      const burst = lock.events.of('refreshed').filter((e) => e.at >= first && e.at <= first + 20).length
      assert.ok(burst <= 5, `refreshes overlapped: ${burst} 'refreshed' events within 20 ms after the pause`)
      assert.equal(lock.events.of('error').length, 0, `no error: ${lock.events.of('error').map((e) => e.args[0]?.message)}`)
      assert.equal(lock.acquired, true)
      await lock.release()
      assert.equal(lock.is_refreshing, false)
      assert.equal(await own.get(lock.key), null)
    } finally {
      own.resume()
    }
  })

  test('upstream 12: is_refreshing is true while a refresh is in flight (the server paused)', async () => {
    const own = await ownServer()
    const lock = mk({ name: uname('is-refreshing'), cache_connection: client(own.port), lock_ttl_ms: 2000, lock_refresh_ms: 10 })
    try {
      assert.equal(await lock.acquire(), true)
      assert.equal(lock.is_refreshing, false)
      await until(() => lock.events.of('refreshed').length > 0, 5000, 'a first refresh')
      own.pause()
      await sleep(150)
      assert.equal(lock.is_refreshing, true, 'upstream sets is_refreshing for the duration of a refresh')
    } finally {
      own.resume()
      await lock.release().catch(() => {})
    }
    assert.equal(lock.is_refreshing, false)
  })

  test('upstream 13 (adapted: a refresh that times out on a paused server): error(err), then the auto-release emits released(key); is_refreshing reset', async () => {
    const own = await ownServer()
    const contents = `mine-${process.pid}-13`
    const lock = mk({ name: uname('refresh-error'), cache_connection: client(own.port), lock_ttl_ms: 20000, lock_refresh_ms: 100, lock_contents: contents })
    // the server comes back the moment the refresh error is reported, so the release can work
    lock.once('error', () => own.resume())
    try {
      assert.equal(await lock.acquire(), true)
      own.pause()
      await until(() => lock.events.of('released').length > 0 || lock.events.of('error').length > 1, 20000, "the refresh error and the auto-release")
      const names = lock.events.names().filter((e) => e !== 'refreshed')
      assert.deepEqual(names, ['acquired', 'error', 'released'], `events: ${lock.events.names()}`)
      const err = lock.events.of('error')[0].args[0]
      assert.ok(err instanceof Error, 'the error is an Error')
      assert.notEqual(err.code, 'ELOCKLOST', `a Redis error is not a lost lock: ${err.code} ${err.message}`)
      assert.deepEqual(lock.events.of('released')[0].args, [lock.key])
      assert.equal(lock.acquired, false)
      assert.equal(lock.refresh_timer, null)
      assert.equal(lock.is_refreshing, false, 'is_refreshing was reset even on error')
      assert.equal(await own.get(lock.key), null, 'the auto-release deleted our key (it still held our contents)')
      const count = lock.events.length
      await sleep(300)
      assert.equal(lock.events.length, count, `nothing after the auto-release: ${lock.events.names()}`)
    } finally {
      own.resume()
    }
  })

  test('upstream 14 (adapted: the server killed): the refresh error and then the release error are both emitted; is_refreshing reset', async () => {
    const own = await ownServer()
    const lock = mk({ name: uname('two-errors'), cache_connection: client(own.port), lock_ttl_ms: 20000, lock_refresh_ms: 100 })
    assert.equal(await lock.acquire(), true)
    await own.kill()
    await until(() => lock.events.of('error').length >= 2, 20000, 'two error events')
    const [e1, e2] = lock.events.of('error').map((e) => e.args[0])
    assert.ok(e1 instanceof Error && e2 instanceof Error)
    assert.notEqual(e1.code, 'ELOCKLOST', `a refused connection is not a lost lock: ${e1.code} ${e1.message}`)
    await sleep(300)
    assert.equal(lock.events.of('error').length, 2, `exactly two errors: ${lock.events.of('error').map((e) => e.args[0]?.message)}`)
    assert.equal(lock.events.of('released').length, 0, "no 'released' when the release failed")
    assert.equal(lock.acquired, false, 'the instance no longer thinks it holds the lock')
    assert.equal(lock.refresh_timer, null)
    assert.equal(lock.is_refreshing, false, 'is_refreshing was reset even on error')
    assert.equal(await lock.release(), undefined, 'a later release() is a no-op')
  })

  test('upstream 15 (adapted: the server killed): release() rejects and still resets acquired, without released', async () => {
    const own = await ownServer()
    const lock = mk({ name: uname('release-error'), cache_connection: client(own.port), lock_ttl_ms: 20000, lock_refresh_ms: 10000 })
    assert.equal(await lock.acquire(), true)
    await own.kill()
    await assert.rejects(withTimeout(lock.release(), 15000, 'release() on a dead server'), (e) => e instanceof Error)
    assert.equal(lock.acquired, false, 'acquired was reset despite the error')
    assert.equal(lock.refresh_timer, null)
    assert.equal(lock.events.of('released').length, 0, "no 'released' after a failed release")
    assert.equal(await lock.release(), undefined, 'then a no-op')
  })

  test('upstream 16 (adapted: real failures instead of a patched pipeline): inspect rejects on Redis errors', async () => {
    const own = await ownServer()
    const lock = mk({ name: uname('inspect-error'), cache_connection: client(own.port) })
    await redisCmd(own.port, ['SET', lock.key, 'x', 'PX', 60000])
    assert.equal((await lock.inspect()).lock_contents, 'x')
    own.pause()
    try {
      await assert.rejects(withTimeout(lock.inspect(), 15000, 'inspect() on a paused server'), (e) => e instanceof Error && !(e instanceof assert.AssertionError))
    } finally {
      own.resume()
    }
    await own.kill()
    await assert.rejects(withTimeout(lock.inspect(), 15000, 'inspect() on a dead server'), (e) => e instanceof Error && !(e instanceof assert.AssertionError))
    // and a lock key holding a non-string value is an error too (WRONGTYPE)
    const other = await ownServer()
    const lock2 = mk({ name: uname('inspect-wrongtype'), cache_connection: client(other.port) })
    await redisCmd(other.port, ['HSET', lock2.key, 'f', 'v'])
    await assert.rejects(lock2.inspect(), (e) => e instanceof Error && /WRONGTYPE/.test(e.message))
  })

  test('acquire() rejects on Redis errors (nothing listens on the port); no event, no timer', async () => {
    const port = await freePort()
    const lock = mk({ name: uname('acquire-refused'), cache_connection: client(port) })
    await assert.rejects(withTimeout(lock.acquire(), 15000, 'acquire() on a refused port'), (e) => e instanceof Error && !(e instanceof assert.AssertionError))
    assert.equal(lock.acquired, false)
    assert.equal(lock.refresh_timer, null)
    assert.equal(lock.events.length, 0)
  })
})

// =====================================================================================
describe('the cache_connection', { timeout: 120000 }, () => {
  test("oxlock reads the ioredis client's options and never calls its methods (the client stays unconnected)", async () => {
    const c = client()
    const calls = []
    for (const m of ['set', 'get', 'del', 'pexpire', 'pttl', 'multi', 'eval', 'evalsha', 'call', 'sendCommand', 'connect', 'pipeline']) {
      c[m] = (...args) => {
        calls.push(m)
        throw new Error(`ioredis.${m} must not be called`)
      }
    }
    const lock = mk({ name: uname('no-calls'), cache_connection: c, lock_ttl_ms: 600, lock_refresh_ms: 50 })
    assert.equal(await lock.acquire(), true)
    await until(() => lock.events.of('refreshed').length >= 2, 5000, 'refreshes')
    assert.equal((await lock.inspect()).lock_contents, '1')
    await lock.release()
    assert.deepEqual(calls, [])
    assert.equal(c.status, 'wait', 'the lazy ioredis client was never connected')
    assert.equal(lock.events.of('error').length, 0)
  })

  test('an oxlock connection config { host, port } is accepted as cache_connection', async () => {
    const lock = mk({ name: uname('cfg-object'), cache_connection: { host: '127.0.0.1', port: server.port } })
    assert.equal(await lock.acquire(), true)
    assert.equal(await server.get(lock.key), '1')
    await lock.release()
    assert.equal(await server.get(lock.key), null)
  })

  test('a redis:// URL is accepted as cache_connection', async () => {
    const lock = mk({ name: uname('cfg-url'), cache_connection: server.url })
    assert.equal(await lock.acquire(), true)
    assert.equal(await server.get(lock.key), '1')
    assert.deepEqual(Object.keys(await lock.inspect()).sort(), ['lock_contents', 'lock_ttl_ms'])
    await lock.release()
    assert.equal(await server.get(lock.key), null)
  })

  test("the ioredis client's db is used", async () => {
    const lock = mk({ name: uname('db'), cache_connection: client(server.port, { db: 3 }) })
    assert.equal(await lock.acquire(), true)
    const db3 = liveClient(server.port, { db: 3 })
    try {
      assert.equal(await db3.get(lock.key), '1', 'the key is in db 3')
      assert.equal(await server.get(lock.key), null, 'not in db 0')
      await lock.release()
      assert.equal(await db3.get(lock.key), null)
    } finally {
      db3.disconnect()
    }
  })

  test("the ioredis client's password is used (and a wrong one makes acquire() reject)", async () => {
    const own = await ownServer(['--requirepass', 'sekret'])
    const lock = mk({ name: uname('auth'), cache_connection: client(own.port, { password: 'sekret' }) })
    assert.equal(await lock.acquire(), true)
    const live = liveClient(own.port, { password: 'sekret' })
    try {
      assert.equal(await live.get(lock.key), '1')
      assert.equal((await lock.inspect()).lock_contents, '1')
      await lock.release()
      assert.equal(await live.get(lock.key), null)
    } finally {
      live.disconnect()
    }
    const wrong = mk({ name: uname('auth-wrong'), cache_connection: client(own.port, { password: 'nope' }) })
    await assert.rejects(withTimeout(wrong.acquire(), 15000, 'acquire() with a wrong password'), (e) => e instanceof Error && !(e instanceof assert.AssertionError))
    assert.equal(wrong.acquired, false)
    assert.equal(wrong.refresh_timer, null)
  })
})

// =====================================================================================
describe('interop with a plain client writing the keys as the old package did', { timeout: 120000 }, () => {
  test('a key set by a plain SET key contents PX ms NX blocks acquire(); after a plain DEL acquire() wins', async () => {
    const lock = mk({ name: uname('interop-block'), cache_connection: client(), lock_ttl_ms: 600, lock_refresh_ms: 50 })
    assert.equal(await redisCmd(server.port, ['SET', lock.key, 'old-process', 'PX', 10000, 'NX']), 'OK')
    assert.equal(await lock.acquire(), false)
    assert.equal(lock.acquired, false)
    assert.equal(lock.refresh_timer, null, 'no timer on contention')
    assert.equal(lock.events.length, 0, 'no event on contention')
    assert.equal(await server.get(lock.key), 'old-process', 'the other holder is untouched')
    assert.equal(await lock.release(), undefined, 'release without the lock: no-op')
    assert.equal(await server.get(lock.key), 'old-process', 'release() without the lock does not delete the old holder')
    await redisCmd(server.port, ['DEL', lock.key])
    assert.equal(await lock.acquire(), true)
    assert.equal(await server.get(lock.key), '1')
    await lock.release()
  })

  test('our lock is seen by a plain GET / PTTL, and blocks a plain SET NX until released', async () => {
    const lock = mk({ name: uname('interop-seen'), cache_connection: client(), lock_ttl_ms: 5000, lock_refresh_ms: 1000, lock_contents: 'new-process' })
    assert.equal(await lock.acquire(), true)
    assert.equal(await server.get(lock.key), 'new-process', 'value = the contents, unchanged format')
    const pttl = await server.pttl(lock.key)
    assert.ok(pttl > 3000 && pttl <= 5000, `PX ttl in ms: PTTL ${pttl}`)
    assert.equal(await redisCmd(server.port, ['TYPE', lock.key]), 'string')
    assert.equal(await redisCmd(server.port, ['SET', lock.key, 'old-process', 'PX', 5000, 'NX']), null, 'the old process cannot take it')
    await lock.release()
    assert.equal(await server.get(lock.key), null)
    assert.equal(await redisCmd(server.port, ['SET', lock.key, 'old-process', 'PX', 5000, 'NX']), 'OK', 'after release the old process can')
    await redisCmd(server.port, ['DEL', lock.key])
  })
})

// =====================================================================================
describe('fixes (issue 9)', { timeout: 120000 }, () => {
  test('fix: a refresh that finds the key gone sets acquired false, refresh_timer null, emits error ELOCKLOST then released(key)', async () => {
    const lock = mk({ name: uname('lost-gone'), cache_connection: client(), lock_ttl_ms: 600, lock_refresh_ms: 50, lock_contents: `mine-${process.pid}` })
    assert.equal(await lock.acquire(), true)
    await until(() => lock.events.of('refreshed').length > 0, 5000, 'a refresh')
    assert.equal(await redisCmd(server.port, ['DEL', lock.key]), 1)
    await until(() => lock.events.of('released').length > 0, 5000, "'released' after the lock was lost")
    const names = lock.events.names().filter((e) => e !== 'refreshed')
    assert.deepEqual(names, ['acquired', 'error', 'released'], `events: ${lock.events.names()}`)
    const errEv = lock.events.of('error')[0]
    assert.ok(errEv.args[0] instanceof Error)
    assert.equal(errEv.args[0].code, 'ELOCKLOST')
    assert.equal(errEv.acquired, false, "acquired is false when 'error' is emitted")
    assert.equal(errEv.timer, null, "refresh_timer is null when 'error' is emitted")
    assert.deepEqual(lock.events.of('released')[0].args, [lock.key])
    assert.equal(lock.acquired, false)
    assert.equal(lock.refresh_timer, null)
    await until(() => lock.is_refreshing === false, 2000, 'is_refreshing false')
    const count = lock.events.length
    await sleep(200)
    assert.equal(lock.events.length, count, `no refresh after the lost lock: ${lock.events.names()}`)
    assert.equal(await server.get(lock.key), null, 'nothing recreated the key')
    assert.equal(await lock.release(), undefined, 'release() is then a no-op')
    assert.equal(lock.events.of('released').length, 1)
  })

  test('fix: a refresh that finds other contents reports ELOCKLOST and leaves the other holder\'s key', async () => {
    const lock = mk({ name: uname('lost-other'), cache_connection: client(), lock_ttl_ms: 600, lock_refresh_ms: 50, lock_contents: `mine-${process.pid}` })
    assert.equal(await lock.acquire(), true)
    assert.equal(await redisCmd(server.port, ['SET', lock.key, 'someone-else', 'PX', 10000]), 'OK')
    await until(() => lock.events.of('released').length > 0, 5000, "'released' after the lock was taken over")
    assert.deepEqual(lock.events.names().filter((e) => e !== 'refreshed'), ['acquired', 'error', 'released'])
    assert.equal(lock.events.of('error')[0].args[0].code, 'ELOCKLOST')
    assert.equal(lock.acquired, false)
    assert.equal(lock.refresh_timer, null)
    await sleep(200)
    assert.equal(await server.get(lock.key), 'someone-else', 'the other holder keeps its key')
    const pttl = await server.pttl(lock.key)
    assert.ok(pttl > 8000, `and its ttl was not touched by our refresh: PTTL ${pttl}`)
    await redisCmd(server.port, ['DEL', lock.key])
  })

  test("fix: release() is a compare-and-delete: it never deletes another holder's key", async () => {
    const lock = mk({ name: uname('cad'), cache_connection: client(), lock_ttl_ms: 20000, lock_refresh_ms: 10000, lock_contents: `mine-${process.pid}` })
    assert.equal(await lock.acquire(), true)
    // behind its back (no refresh runs within this test), another holder took the key
    assert.equal(await redisCmd(server.port, ['SET', lock.key, 'someone-else', 'PX', 10000]), 'OK')
    await Promise.allSettled([withTimeout(lock.release(), 10000, 'release()')])
    assert.equal(lock.acquired, false)
    assert.equal(lock.refresh_timer, null)
    assert.equal(await server.get(lock.key), 'someone-else', 'upstream deleted it unconditionally; the fix must not')
    await redisCmd(server.port, ['DEL', lock.key])
  })

  test("fix: our lock expires while the server is paused 1 s, another holder takes it, then release() leaves the other key", async () => {
    const own = await ownServer()
    const lock = mk({ name: uname('expired'), cache_connection: client(own.port), lock_ttl_ms: 600, lock_refresh_ms: 50, lock_contents: `mine-${process.pid}` })
    try {
      assert.equal(await lock.acquire(), true)
      await until(() => lock.events.of('refreshed').length > 0, 5000, 'a refresh')
      own.pause()
      await sleep(1000)
      own.resume()
      // the key's expiry time has passed: a plain client takes it over
      assert.equal(await redisCmd(own.port, ['SET', lock.key, 'other-holder', 'PX', 20000, 'NX']), 'OK', 'our key had expired')
      await Promise.allSettled([withTimeout(lock.release(), 15000, 'release()')])
      await until(() => lock.acquired === false && lock.refresh_timer === null, 15000, 'the instance to give the lock up')
      await sleep(300) // several refresh intervals: any late refresh / auto-release would have run
      assert.equal(await own.get(lock.key), 'other-holder', "the other holder's key survived release()")
      const pttl = await own.pttl(lock.key)
      assert.ok(pttl > 15000, `its ttl was not shortened nor extended by us: PTTL ${pttl}`)
      assert.equal(lock.acquired, false)
      assert.equal(lock.refresh_timer, null)
    } finally {
      own.resume()
    }
  })

  test('fix: without an error listener a lost lock neither crashes the process nor skips the auto-release (child process)', async () => {
    const name = uname('child-lost')
    const key = `exclusive-lock:${name}`
    const seen = []
    const r = await runNode([CHILD, String(server.port), name, 'lost'], {
      killAfter: 20000,
      onLine: (obj) => {
        seen.push(obj.ev)
        if (obj.ev === 'acquired') redisCmd(server.port, ['DEL', key]).catch(() => {})
      },
    })
    assert.equal(r.signal, null, `the child did not exit by itself (killed by ${r.signal}); stdout:\n${r.stdout}\nstderr:\n${r.stderr}`)
    assert.equal(r.code, 0, `the child crashed (code ${r.code}):\n${r.stderr}`)
    const acq = r.lines.find((l) => l.ev === 'acquired')
    assert.ok(acq && acq.got === true && acq.timer === true, `acquired: ${r.stdout}`)
    const rel = r.lines.find((l) => l.ev === 'released')
    assert.ok(rel, `no 'released' from the child:\n${r.stdout}\n${r.stderr}`)
    assert.equal(rel.key, key)
    assert.equal(rel.acquired, false)
    assert.equal(rel.timerNull, true)
    assert.equal(rel.errorListeners, 0, 'the child had no error listener')
    assert.equal(await server.get(key), null)
  })

  test('holding the lock keeps the process alive, as upstream\'s refresh setInterval did; it exits by itself once the lock is lost (child process)', async () => {
    const name = uname('child-hold')
    const key = `exclusive-lock:${name}`
    let acquiredAt = 0
    let exitedEarly = null
    let check = null
    const r = await runNode([CHILD, String(server.port), name, 'hold'], {
      killAfter: 20000,
      onLine: (obj) => {
        if (obj.ev !== 'acquired') return
        acquiredAt = Date.now()
        // 1.5 s (well past the 600 ms ttl) later, the child should still hold and refresh it
        check = setTimeout(async () => {
          try {
            exitedEarly = (await server.get(key)) === null
          } catch {}
          redisCmd(server.port, ['DEL', key]).catch(() => {})
        }, 1500)
      },
    })
    clearTimeout(check)
    await redisCmd(server.port, ['DEL', key]).catch(() => {})
    assert.ok(acquiredAt > 0, `the child did not acquire:\n${r.stdout}\n${r.stderr}`)
    assert.equal(r.signal, null, `the child did not exit by itself after losing the lock (${r.signal}):\n${r.stdout}\n${r.stderr}`)
    assert.equal(r.code, 0, r.stderr)
    assert.ok(
      r.exitedAt - acquiredAt >= 1400,
      `the child exited ${r.exitedAt - acquiredAt} ms after acquiring, while it held the lock (upstream's setInterval keeps the process alive)`,
    )
    assert.equal(exitedEarly, false, 'the lock was still held (refreshed) 1.5 s after acquire')
    assert.ok(r.lines.find((l) => l.ev === 'released'), `no 'released' from the child:\n${r.stdout}`)
  })

  test('after release() nothing keeps the process alive (child process)', async () => {
    const name = uname('child-release')
    const r = await runNode([CHILD, String(server.port), name, 'release'], { killAfter: 20000 })
    assert.equal(r.signal, null, `the child did not exit by itself after release() (killed by ${r.signal}); stdout:\n${r.stdout}\nstderr:\n${r.stderr}`)
    assert.equal(r.code, 0, `the child failed (code ${r.code}):\n${r.stderr}`)
    assert.deepEqual(
      r.lines.map((l) => l.ev),
      ['acquired', 'released', 'after-release'],
    )
    const done = r.lines.find((l) => l.ev === 'after-release')
    assert.equal(done.acquired, false)
    assert.equal(done.timerNull, true)
    assert.equal(await server.get(`exclusive-lock:${name}`), null)
  })
})

// =====================================================================================
describe('contention between processes', { timeout: 90000 }, () => {
  test('3 processes loop acquire / critical section / release on one name: never two holders', async () => {
    const name = uname('procs')
    const rounds = 15
    const runs = await Promise.all(
      Array.from({ length: 3 }, () => runNode([WORKER, String(server.port), name, String(rounds), '3'], { killAfter: 45000 })),
    )
    let lost = 0
    for (const r of runs) {
      assert.equal(r.signal, null, `a worker did not exit by itself (${r.signal}):\n${r.stdout}\n${r.stderr}`)
      assert.equal(r.code, 0, `a worker failed (code ${r.code}):\n${r.stderr}`)
      const done = r.lines.find((l) => l.ev === 'done')
      assert.ok(done, `no 'done' line:\n${r.stdout}\n${r.stderr}`)
      assert.equal(done.violations, 0, `two holders at once (or a bad state) in pid ${done.pid}`)
      assert.deepEqual(done.errors, [], `errors in pid ${done.pid}`)
      assert.equal(done.done, rounds, `pid ${done.pid} finished only ${done.done} rounds`)
      lost += done.lost
    }
    assert.equal(await server.get(`${name}:total`), String(3 * rounds))
    assert.equal(await server.get(`${name}:holders`), '0')
    assert.equal(await server.get(`exclusive-lock:${name}`), null, 'the lock key is gone at the end')
    assert.ok(lost > 0, 'no acquire() ever lost: the processes did not contend')
  })
})
