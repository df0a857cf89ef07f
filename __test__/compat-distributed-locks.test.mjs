// The drop-in faces `oxlock/distributed-locks` (compat/distributed-locks.js: the LocksFactory
// of distributed-locks 1.0.5) and `oxlock/distributed-locks-redis` (compat/distributed-locks-
// redis.js: RedisStorage) against a real redis-server (redis-harness.mjs) and against a plain
// JS storage object written here. Upstream's six storage cases (target-apis §5.5) for both
// storages, the fixes of §6.5 (a throwing storage rejects instead of hanging, fractional ttl,
// FailedToObtainKey's name and code), the README example, interop with a plain client that
// reads and writes the keys like the old package (SET NX EX, compare-and-delete), and three
// processes contending for one key.
import { test, describe, after } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

import { withTimeout, runNode } from './helpers.mjs'
import { useRedis } from './redis-harness.mjs'

const require = createRequire(import.meta.url)
const LocksFactory = require('../compat/distributed-locks.js')
const RedisModule = require('../compat/distributed-locks-redis.js')
const { RedisStorage } = RedisModule
const { FailedToObtainKey } = LocksFactory

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const WORKER = fileURLToPath(new URL('./fixtures/distributed-locks-worker.mjs', import.meta.url))
const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}'
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const busyMessage = (k) => `Failed to obtain lock for key ${k}, metaData:[object Object]`

const [server] = await useRedis(1)

// Every factory is closed after the file, whatever happened (close() twice must be harmless
// for the tests that close their own).
const factories = []
after(async () => {
  await Promise.allSettled(factories.map((f) => f.close()))
})

let n = 0
/** A key no other test uses. */
const key = (what) => `dl-test-${what}-${++n}`

/** A factory over a RedisStorage on the test server. */
function redisFactory(storageOptions = {}, factoryOptions) {
  const f = new LocksFactory(new RedisStorage({ url: server.url, ...storageOptions }), factoryOptions)
  factories.push(f)
  return f
}

/**
 * A plain JS storage (the interface of distributed-locks-common): keys expire `ttl` seconds
 * after they were taken. Records every call. `set` answers through a promise unless `sync`.
 */
class MemoryStorage {
  constructor({ sync = false } = {}) {
    this.sync = sync
    this.map = new Map()
    this.calls = []
  }

  async init() {
    this.calls.push({ op: 'init' })
  }

  _set(key, value, opts) {
    this.calls.push({ op: 'set', key, value, opts, at: Date.now() })
    const now = Date.now()
    const held = this.map.get(key)
    if (held && held.expires > now) return false
    this.map.set(key, { value, expires: now + opts.ttl * 1000 })
    return true
  }

  set(key, value, opts) {
    return this.sync ? this._set(key, value, opts) : Promise.resolve().then(() => this._set(key, value, opts))
  }

  async unSet(key, value) {
    this.calls.push({ op: 'unSet', key, value })
    const held = this.map.get(key)
    if (held && held.value === value) this.map.delete(key)
    return true
  }

  async close() {
    this.calls.push({ op: 'close' })
  }

  sets(k) {
    return this.calls.filter((c) => c.op === 'set' && (k === undefined || c.key === k))
  }
}

function memoryFactory(storage = new MemoryStorage(), factoryOptions) {
  const f = new LocksFactory(storage, factoryOptions)
  factories.push(f)
  return f
}

/** Asserts `promise` rejects with a FailedToObtainKey for `k`; returns the error. */
async function rejectsBusy(promise, k, ms = 20000) {
  let err
  await withTimeout(
    assert.rejects(promise, (e) => {
      err = e
      return true
    }),
    ms,
    `lock(${k}) should reject with FailedToObtainKey`,
  )
  assert.ok(err instanceof FailedToObtainKey, `expected FailedToObtainKey, got ${err && err.name}: ${err && err.message}`)
  assert.ok(err instanceof Error)
  assert.equal(err.message, busyMessage(k))
  return err
}

// ---------------------------------------------------------------------------------------------

describe('module shape', () => {
  test('module.exports is LocksFactory, also at .default / .LocksFactory / .LockFactory', () => {
    assert.equal(typeof LocksFactory, 'function')
    assert.equal(LocksFactory.default, LocksFactory)
    assert.equal(LocksFactory.LocksFactory, LocksFactory)
    assert.equal(LocksFactory.LockFactory, LocksFactory)
    assert.equal(typeof LocksFactory.FailedToObtainKey, 'function')
    assert.equal(typeof LocksFactory.Lock, 'function')
    assert.equal(typeof LocksFactory.RedisStorage, 'function')
    assert.equal(typeof LocksFactory.PostgresqlStorage, 'function')
    assert.equal(typeof LocksFactory.MongoStorage, 'function')
    assert.ok(FailedToObtainKey.prototype instanceof Error, 'FailedToObtainKey extends Error')
  })

  test('distributed-locks-redis exports { RedisStorage }', () => {
    assert.equal(typeof RedisModule.RedisStorage, 'function')
  })

  test('createLock() returns a Lock', () => {
    const f = memoryFactory()
    const l = f.createLock('x')
    assert.ok(l instanceof LocksFactory.Lock)
    assert.equal(typeof l.lock, 'function')
    assert.equal(typeof l.unlock, 'function')
  })

  test('ESM: import LocksFactory, { FailedToObtainKey } from "oxlock/distributed-locks" works', { timeout: 30000 }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'oxlock-dl-esm-'))
    try {
      fs.mkdirSync(path.join(dir, 'node_modules'))
      fs.symlinkSync(ROOT, path.join(dir, 'node_modules', 'oxlock'), 'dir')
      fs.writeFileSync(
        path.join(dir, 'esm.mjs'),
        [
          "import LocksFactory, { FailedToObtainKey } from 'oxlock/distributed-locks'",
          "import { RedisStorage } from 'oxlock/distributed-locks-redis'",
          "import { createRequire } from 'node:module'",
          'const cjs = createRequire(import.meta.url)("oxlock/distributed-locks")',
          'console.log(JSON.stringify({',
          "  factory: typeof LocksFactory, sameAsCjs: LocksFactory === cjs, lockFactory: LocksFactory.LockFactory === LocksFactory,",
          "  failed: typeof FailedToObtainKey, failedSame: FailedToObtainKey === cjs.FailedToObtainKey,",
          "  lock: typeof LocksFactory.Lock, redis: typeof RedisStorage,",
          '}))',
        ].join('\n'),
      )
      const r = await runNode([path.join(dir, 'esm.mjs')], { cwd: dir, killAfter: 20000 })
      assert.equal(r.code, 0, `child failed: ${r.stderr}`)
      assert.deepEqual(
        { ...r.lines[0], at: undefined },
        { factory: 'function', sameAsCjs: true, lockFactory: true, failed: 'function', failedSame: true, lock: 'function', redis: 'function', at: undefined },
      )
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})

// ---------------------------------------------------------------------------------------------
// The six upstream cases (target-apis §5.5), once per storage.

function upstreamCases(label, mk) {
  describe(`upstream cases: ${label}`, { timeout: 60000 }, () => {
    test('upstream 1: obtains a lock with defaults and unlocks', async () => {
      const f = mk()
      await f.init()
      const l = f.createLock(key('u1'))
      assert.equal(await l.lock(), true)
      assert.equal(await l.unlock(), true)
    })

    test('upstream 2: a second Lock on the same key fails with FailedToObtainKey (retries 3, interval 0.5) while the first (ttl 10) is held', async () => {
      const f = mk()
      const k = key('u2')
      const l1 = f.createLock(k)
      const l2 = f.createLock(k)
      assert.equal(await l1.lock({ ttl: 10 }), true)
      const t0 = Date.now()
      await rejectsBusy(l2.lock({ retries: 3, interval: 0.5 }), k)
      // 3 attempts, so at least 2 waits of 0.5 s between them.
      assert.ok(Date.now() - t0 >= 950, `3 attempts 0.5 s apart take at least 1 s, took ${Date.now() - t0} ms`)
      assert.equal(await l1.unlock(), true)
    })

    test('upstream 3: after unlock() a new Lock obtains the key', async () => {
      const f = mk()
      const k = key('u3')
      const l1 = f.createLock(k)
      assert.equal(await l1.lock(), true)
      assert.equal(await l1.unlock(), true)
      const l2 = f.createLock(k)
      assert.equal(await l2.lock({ retries: 1 }), true, 'obtained on the first attempt')
      assert.equal(await l2.unlock(), true)
    })

    test('upstream 4: after the ttl (2 s) elapses a new Lock obtains the key', async () => {
      const f = mk()
      const k = key('u4')
      const l1 = f.createLock(k)
      assert.equal(await l1.lock({ ttl: 2 }), true)
      await rejectsBusy(f.createLock(k).lock({ retries: 1 }), k)
      await sleep(3000)
      const l2 = f.createLock(k)
      assert.equal(await l2.lock({ retries: 1 }), true, 'the expired key is free on the first attempt')
      assert.equal(await l2.unlock(), true)
    })

    test('upstream 5: a new Lock with retries 10 / interval 1 obtains the key once the 2 s ttl runs out', async () => {
      const f = mk()
      const k = key('u5')
      const l1 = f.createLock(k)
      assert.equal(await l1.lock({ ttl: 2 }), true)
      const t0 = Date.now()
      const l2 = f.createLock(k)
      assert.equal(await withTimeout(l2.lock({ retries: 10, interval: 1 }), 30000, 'l2.lock()'), true)
      assert.ok(Date.now() - t0 >= 1000, `it had to wait for the ttl, took only ${Date.now() - t0} ms`)
      assert.equal(await l2.unlock(), true)
    })

    test('upstream 6: a stale unlock is harmless', async () => {
      const f = mk()
      const k = key('u6')
      const l1 = f.createLock(k)
      assert.equal(await l1.lock({ ttl: 1 }), true)
      await sleep(3000)
      const l2 = f.createLock(k)
      assert.equal(await l2.lock({ ttl: 10, retries: 1 }), true)
      assert.equal(await l1.unlock(), true, 'the stale unlock resolves true')
      await rejectsBusy(f.createLock(k).lock({ retries: 1 }), k)
      assert.equal(await l2.unlock(), true)
      const l4 = f.createLock(k)
      assert.equal(await l4.lock({ retries: 1 }), true)
      assert.equal(await l4.unlock(), true)
    })
  })
}

upstreamCases('RedisStorage', () => redisFactory())
upstreamCases('a plain JS storage object', () => memoryFactory())
upstreamCases('a plain JS storage object with synchronous set()', () => memoryFactory(new MemoryStorage({ sync: true })))

// ---------------------------------------------------------------------------------------------

describe('LocksFactory and Lock over any storage object', { timeout: 30000 }, () => {
  test('init() and close() call the storage; set() gets (key, <key>-<machineId>-<uuid>, { ttl })', async () => {
    const s = new MemoryStorage()
    const f = new LocksFactory(s)
    await f.init()
    assert.deepEqual(s.calls, [{ op: 'init' }])
    const l = f.createLock('alpha')
    assert.equal(await l.lock(), true)
    const [set] = s.sets()
    assert.equal(set.key, 'alpha', 'the storage gets the raw key (it adds its own prefix)')
    assert.match(set.value, new RegExp(`^alpha-1-${UUID}$`), 'default machineId is "1"')
    assert.equal(set.opts.ttl, 10, 'default ttl is 10 (seconds)')
    assert.equal(await l.unlock(), true)
    const unSet = s.calls.find((c) => c.op === 'unSet')
    assert.deepEqual(unSet, { op: 'unSet', key: 'alpha', value: set.value })
    await f.close()
    assert.equal(s.calls.at(-1).op, 'close')
  })

  test('the value is fixed at construction: the same for every lock() of one Lock, distinct between Locks', async () => {
    const s = new MemoryStorage()
    const f = memoryFactory(s, { machineId: 'm-42' })
    const l = f.createLock('beta')
    await l.lock()
    await l.unlock()
    await l.lock()
    await l.unlock()
    const other = f.createLock('beta')
    await other.lock()
    await other.unlock()
    const values = s.sets('beta').map((c) => c.value)
    assert.equal(values.length, 3)
    assert.match(values[0], new RegExp(`^beta-m-42-${UUID}$`))
    assert.equal(values[1], values[0])
    assert.notEqual(values[2], values[0])
  })

  test('defaults: 3 attempts, 1 s apart', async () => {
    const s = new MemoryStorage()
    const f = memoryFactory(s)
    const k = key('defaults')
    await f.createLock(k).lock({ ttl: 60 })
    const t0 = Date.now()
    await rejectsBusy(f.createLock(k).lock(), k)
    const sets = s.sets(k)
    assert.equal(sets.length, 1 + 3, 'three attempts by the second lock')
    assert.ok(sets[2].at - sets[1].at >= 950 && sets[3].at - sets[2].at >= 950, 'interval 1 s between attempts')
    assert.ok(Date.now() - t0 >= 1900)
  })

  test('retries = total attempts, interval × 1000 ms between them', async () => {
    const s = new MemoryStorage()
    const f = memoryFactory(s)
    const k = key('attempts')
    await f.createLock(k).lock({ ttl: 60 })
    await rejectsBusy(f.createLock(k).lock({ retries: 5, interval: 0.1 }), k)
    const sets = s.sets(k).slice(1)
    assert.equal(sets.length, 5)
    for (let i = 1; i < sets.length; i++) assert.ok(sets[i].at - sets[i - 1].at >= 90, `gap ${i}: ${sets[i].at - sets[i - 1].at} ms`)
  })

  test('fix: retries 0 rejects with FailedToObtainKey without calling set()', async () => {
    const s = new MemoryStorage()
    const f = memoryFactory(s)
    const k = key('zero')
    await rejectsBusy(f.createLock(k).lock({ retries: 0 }), k, 5000)
    assert.equal(s.sets().length, 0)
    // Over Redis too: no key written.
    const rf = redisFactory()
    const rk = key('zero-redis')
    await rejectsBusy(rf.createLock(rk).lock({ retries: 0 }), rk, 5000)
    assert.equal(await server.get(`distributed-locks:${rk}`), null)
  })

  test('negative or non-integer retries retry until the storage says yes', async () => {
    for (const retries of [-1, 2.5]) {
      let calls = 0
      const s = {
        init: async () => {},
        set: async () => ++calls > 5,
        unSet: async () => true,
        close: async () => {},
      }
      const f = memoryFactory(s)
      assert.equal(await withTimeout(f.createLock('k').lock({ retries, interval: 0.01 }), 10000, `lock({ retries: ${retries} })`), true)
      assert.equal(calls, 6, `retries ${retries}: five refusals, then the sixth attempt obtains`)
    }
  })

  test('fix: FailedToObtainKey has name "FailedToObtainKey", a code, and the upstream message', async () => {
    const f = memoryFactory()
    const k = key('name')
    await f.createLock(k).lock({ ttl: 60 })
    const err = await rejectsBusy(f.createLock(k).lock({ retries: 1 }), k)
    assert.equal(err.name, 'FailedToObtainKey')
    assert.equal(typeof err.code, 'string')
    assert.ok(err.code.length > 0, 'a non-empty code')
    assert.equal(err.message, `Failed to obtain lock for key ${k}, metaData:[object Object]`)
    assert.match(String(err), /^FailedToObtainKey: Failed to obtain lock for key /)
  })

  test('fix: a storage whose set() throws makes lock() reject with that error (upstream hung)', async () => {
    const boom = new Error('boom: set threw')
    const f = memoryFactory({
      init: async () => {},
      set: () => {
        throw boom
      },
      unSet: async () => true,
      close: async () => {},
    })
    const err = await withTimeout(
      f.createLock('t').lock().then(
        () => assert.fail('lock() should reject'),
        (e) => e,
      ),
      5000,
      'lock() over a throwing storage must settle',
    )
    assert.equal(err, boom)
  })

  test('fix: a storage whose set() rejects makes lock() reject with that error (upstream hung)', async () => {
    const boom = new Error('boom: set rejected')
    let calls = 0
    const f = memoryFactory({
      init: async () => {},
      set: async () => {
        calls++
        throw boom
      },
      unSet: async () => true,
      close: async () => {},
    })
    const err = await withTimeout(
      f.createLock('t').lock({ retries: 5, interval: 0.01 }).then(
        () => assert.fail('lock() should reject'),
        (e) => e,
      ),
      5000,
      'lock() over a rejecting storage must settle',
    )
    assert.equal(err, boom)
    assert.ok(calls >= 1 && calls <= 5, `set() called ${calls} times`)
  })

  test('upstream behaviour: a Lock is not re-entrant (a second lock() on a held Lock fails)', async () => {
    const f = redisFactory()
    const k = key('reentrant')
    const l = f.createLock(k)
    assert.equal(await l.lock(), true)
    await rejectsBusy(l.lock({ retries: 1 }), k)
    assert.equal(await l.unlock(), true)
  })
})

// ---------------------------------------------------------------------------------------------

describe('RedisStorage: key layout and fixes', { timeout: 30000 }, () => {
  test('key <keyPrefix>:<key>, value <key>-<machineId>-<uuid>, TTL = ttl seconds; unlock deletes it', async () => {
    const f = redisFactory({}, { machineId: 'm7' })
    const k = key('layout')
    const l = f.createLock(k)
    assert.equal(await l.lock({ ttl: 10 }), true)
    const v = await server.get(`distributed-locks:${k}`)
    assert.match(v, new RegExp(`^${k}-m7-${UUID}$`))
    const ttl = await server.cmd('TTL', `distributed-locks:${k}`)
    assert.ok(ttl >= 8 && ttl <= 10, `TTL should be about 10 s, got ${ttl}`)
    assert.equal(await server.get(k), null, 'nothing written under the bare key')
    assert.equal(await l.unlock(), true)
    assert.equal(await server.get(`distributed-locks:${k}`), null)
    assert.equal(await l.unlock(), true, 'unlock() of a free key resolves true')
  })

  test('custom keyPrefix; { host, port } works like { url }', async () => {
    const k = key('prefix')
    const f = new LocksFactory(new RedisStorage({ host: '127.0.0.1', port: server.port, keyPrefix: 'my-locks' }))
    factories.push(f)
    await f.init()
    const l = f.createLock(k)
    assert.equal(await l.lock(), true)
    assert.match(await server.get(`my-locks:${k}`), new RegExp(`^${k}-1-${UUID}$`))
    assert.equal(await server.get(`distributed-locks:${k}`), null)
    // The default prefix is another namespace: the same key is free there.
    const other = redisFactory().createLock(k)
    assert.equal(await other.lock({ retries: 1 }), true)
    await other.unlock()
    assert.equal(await l.unlock(), true)
    assert.equal(await server.get(`my-locks:${k}`), null)
    await f.close()
  })

  test('fix: fractional ttl (0.5 s) works and expires within about a second', async () => {
    const f = redisFactory()
    const k = key('fraction')
    const l = f.createLock(k)
    assert.equal(await withTimeout(l.lock({ ttl: 0.5 }), 5000, 'lock({ ttl: 0.5 })'), true)
    const pttl = await server.pttl(`distributed-locks:${k}`)
    // Either PX 500 or EX 1 (rounded up): at most a second, and set (not -1 = no expiry).
    assert.ok(pttl > 0 && pttl <= 1000, `PTTL should be in (0, 1000], got ${pttl}`)
    const l2 = f.createLock(k)
    assert.equal(await withTimeout(l2.lock({ retries: 100, interval: 0.05 }), 10000, 'l2.lock()'), true)
    await l2.unlock()
    // On a plain JS storage the factory does not choke on it either.
    const s = new MemoryStorage()
    const mf = memoryFactory(s)
    assert.equal(await mf.createLock('frac').lock({ ttl: 0.5 }), true)
  })

  test('init() and close() resolve; close() twice is harmless', async () => {
    const f = new LocksFactory(new RedisStorage({ url: server.url }))
    await f.init()
    const l = f.createLock(key('close'))
    assert.equal(await l.lock(), true)
    assert.equal(await l.unlock(), true)
    await f.close()
    await f.close()
  })
})

// ---------------------------------------------------------------------------------------------

describe('interop with old processes (a plain client doing what distributed-locks-redis did)', { timeout: 30000 }, () => {
  test('a key taken by a plain SET NX EX blocks lock(); our unlock() does not free it; after DEL we obtain it', async () => {
    const f = redisFactory()
    const k = key('old-holder')
    const rk = `distributed-locks:${k}`
    const oldValue = `${k}-old-11111111-2222-3333-4444-555555555555`
    assert.equal(await server.cmd('SET', rk, oldValue, 'NX', 'EX', 10), 'OK')
    const l = f.createLock(k)
    await rejectsBusy(l.lock({ retries: 2, interval: 0.1 }), k)
    assert.equal(await l.unlock(), true)
    assert.equal(await server.get(rk), oldValue, "our unlock() left the old process's lock in place")
    // The old process's unlock: compare-and-delete.
    assert.equal(await server.cmd('EVAL', "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end return 'OK'", 1, rk, oldValue), 'OK')
    assert.equal(await l.lock({ retries: 1 }), true)
    assert.equal(await l.unlock(), true)
  })

  test('a key taken by an old process with a ttl is obtained once it expires', async () => {
    const f = redisFactory()
    const k = key('old-expiry')
    assert.equal(await server.cmd('SET', `distributed-locks:${k}`, 'old', 'NX', 'EX', 1), 'OK')
    assert.equal(await withTimeout(f.createLock(k).lock({ retries: 20, interval: 0.25 }), 15000, 'lock()'), true)
  })

  test('our key is read by plain GET / TTL, blocks an old SET NX, and an old compare-and-delete with our value frees it', async () => {
    const f = redisFactory()
    const k = key('new-holder')
    const rk = `distributed-locks:${k}`
    const l = f.createLock(k)
    assert.equal(await l.lock({ ttl: 5 }), true)
    const v = await server.get(rk)
    assert.match(v, new RegExp(`^${k}-1-${UUID}$`))
    const ttl = await server.cmd('TTL', rk)
    assert.ok(ttl >= 3 && ttl <= 5, `TTL about 5, got ${ttl}`)
    assert.equal(await server.cmd('SET', rk, 'old', 'NX', 'EX', 10), null, 'an old SET NX fails while we hold it')
    // An old process's compare-and-delete with a wrong value leaves it alone...
    await server.cmd('EVAL', "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end return 'OK'", 1, rk, 'not-ours')
    assert.equal(await server.get(rk), v)
    // ...with our value it frees it, and our unlock() after that is harmless.
    await server.cmd('EVAL', "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end return 'OK'", 1, rk, v)
    assert.equal(await server.get(rk), null)
    assert.equal(await server.cmd('SET', rk, 'old', 'NX', 'EX', 10), 'OK')
    assert.equal(await l.unlock(), true)
    assert.equal(await server.get(rk), 'old', "our unlock() does not delete the old process's new lock")
  })

  test('ioredis as the old client: SET NX EX from ioredis blocks, GET sees our value', async () => {
    const { default: Redis } = await import('ioredis')
    const client = new Redis({ host: '127.0.0.1', port: server.port, lazyConnect: true, maxRetriesPerRequest: 1 })
    try {
      await client.connect()
      const f = redisFactory({ keyPrefix: 'io' })
      const k = key('ioredis')
      const l = f.createLock(k)
      assert.equal(await l.lock(), true)
      assert.match(await client.get(`io:${k}`), new RegExp(`^${k}-1-${UUID}$`))
      assert.equal(await client.set(`io:${k}`, 'x', 'EX', 10, 'NX'), null)
      assert.equal(await l.unlock(), true)
      assert.equal(await client.set(`io:${k}`, 'x', 'EX', 10, 'NX'), 'OK')
      await rejectsBusy(l.lock({ retries: 1 }), k)
      await client.del(`io:${k}`)
    } finally {
      client.disconnect()
    }
  })
})

// ---------------------------------------------------------------------------------------------
// README (distributed-locks 1.0.5, "Usage"), as published. Edits, all needed to run it at all:
// the package names become oxlock's entry points; `redisUrl` is defined; the README's two
// typos that make it fail under any implementation (`instanceOF` is a syntax error, the
// imported `LocksFactory` is used as `LockFactory`) are fixed by a binding, the comment lines
// are where the probe goes. `retires: 3` (typo) stays: it must be ignored.

const README_USAGE = `import LocksFactory, {FailedToObtainKey} from 'distributed-locks'
import {RedisStorage} from 'distributed-locks-redis'

const storage = new RedisStorage({ keyPrefix:'my-locks', url: redisUrl });
const locksFactory = new LockFactory(storage);

// Value of the key should represent the critical section
const lock = locksFactory.createLock('my-key');

try {
    await lock.lock({ttl: 10, interval: 5, retires: 3});
    // execute some code
    // ...
    // ...
}
catch(err){
    if(err instanceOF FailedToObtainKey) {
        // Couldn't get lock
    }
}
finally {
    await lock.unlock()
}`

describe('README example', { timeout: 60000 }, () => {
  async function runReadme(url, probe = '') {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'oxlock-dl-readme-'))
    try {
      fs.mkdirSync(path.join(dir, 'node_modules'))
      fs.symlinkSync(ROOT, path.join(dir, 'node_modules', 'oxlock'), 'dir')
      let src = README_USAGE.replace("from 'distributed-locks'", "from 'oxlock/distributed-locks'")
        .replace("from 'distributed-locks-redis'", "from 'oxlock/distributed-locks-redis'")
        .replace('instanceOF', 'instanceof')
        .replace('// execute some code', probe)
        .replace('// Couldn\'t get lock', "console.log(JSON.stringify({ ev: 'busy', name: err.name }))")
      src += `\nconsole.log(JSON.stringify({ ev: 'end' }))\nawait locksFactory.close()\n`
      src = `const redisUrl = ${JSON.stringify(url)}\n` + src.replace(/^(import .*\n)+/, (imports) => imports + 'const LockFactory = LocksFactory\n')
      fs.writeFileSync(path.join(dir, 'readme.mjs'), src)
      return await runNode([path.join(dir, 'readme.mjs')], { cwd: dir, killAfter: 30000 })
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }

  test('README usage: locks my-locks:my-key during the critical section, unlocks in finally, exits by itself', async () => {
    // The probe (in place of "// execute some code"): a raw GET of the lock key from inside
    // the critical section.
    const resp = '*2\r\n$3\r\nGET\r\n$15\r\nmy-locks:my-key\r\n'
    const probe =
      `{ const net = await import('node:net'); const v = await new Promise((res, rej) => { ` +
      `const s = net.connect(${server.port}, '127.0.0.1'); let b = ''; s.setEncoding('utf8'); ` +
      `s.on('connect', () => s.write(${JSON.stringify(resp)})); ` +
      `s.on('data', (d) => { b += d; if (/\\r\\n.*\\r\\n$/s.test(b) || b.startsWith('$-1')) { s.destroy(); res(b) } }); ` +
      `s.on('error', rej) }); console.log(JSON.stringify({ ev: 'held', reply: v })) }`
    const r = await runReadme(server.url, probe)
    assert.equal(r.code, 0, `the README example failed: ${r.stderr}`)
    assert.equal(r.signal, null, 'it exited by itself (not killed by the safety timer)')
    const held = r.lines.find((x) => x.ev === 'held')
    assert.ok(held, `the critical section ran: ${r.stdout}`)
    assert.match(held.reply, new RegExp(`^\\$\\d+\\r\\nmy-key-1-${UUID}\\r\\n$`))
    assert.ok(r.lines.some((x) => x.ev === 'end'))
    assert.equal(await server.get('my-locks:my-key'), null, 'unlocked in finally')
  })

  test('README usage while my-key is held elsewhere: catch sees FailedToObtainKey, finally unlock is harmless', async () => {
    await server.cmd('SET', 'my-locks:my-key', 'someone-else', 'EX', 60)
    try {
      // retires: 3 is a typo, so retries stays 3 and interval is 5 s: about 10 s.
      const r = await runReadme(server.url, "console.log(JSON.stringify({ ev: 'held' }))")
      assert.equal(r.code, 0, `the README example failed: ${r.stderr}`)
      assert.equal(r.signal, null)
      assert.ok(!r.lines.some((x) => x.ev === 'held'))
      assert.deepEqual(r.lines.find((x) => x.ev === 'busy')?.name, 'FailedToObtainKey')
      assert.equal(await server.get('my-locks:my-key'), 'someone-else', 'the finally unlock() left the other holder alone')
    } finally {
      await server.cmd('DEL', 'my-locks:my-key')
    }
  })
})

// ---------------------------------------------------------------------------------------------

describe('contention between processes', { timeout: 120000 }, () => {
  test('3 processes loop lock / critical section / unlock on one key (retries -1, interval 0.01): never two holders', async () => {
    const k = key('contend')
    const PROCS = 3
    const ITER = 30
    const runs = await Promise.all(
      Array.from({ length: PROCS }, () => runNode([WORKER, String(server.port), k, String(ITER), String(PROCS)], { killAfter: 90000 })),
    )
    for (const r of runs) {
      assert.equal(r.signal, null, `a worker was killed (hung, or kept alive after close()): ${r.stderr}`)
      assert.equal(r.code, 0, `a worker failed: ${r.stderr}`)
      const done = r.lines.find((x) => x.ev === 'done')
      assert.ok(done, `a worker did not finish: ${r.stdout}`)
      assert.equal(done.done, ITER)
      assert.equal(done.violations, 0, 'two holders at once')
    }
    assert.equal(Number(await server.get(`${k}:counter`)), PROCS * ITER, 'no lost update under the lock')
    assert.equal(await server.get(`distributed-locks:${k}`), null, 'the key is free at the end')
  })
})
