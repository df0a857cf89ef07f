// `oxlock/distributed-locks-mongodb` (compat/distributed-locks-mongodb.js: MongoStorage on the
// Rust core's `mongodb` driver) under `oxlock/distributed-locks`' LocksFactory, against a real
// MongoDB-wire server (mongo-harness.mjs: SecantusDB). Upstream's six storage cases (target-
// apis §5.5), the document layout of distributed-locks-mongodb (§5.4), its fixes (calls before
// init() connect first, one atomic findOneAndUpdate, expired documents cleaned up, fractional
// ttl, bounded failures), interop with distributed-locks-mongodb@1.0.3 itself and with its
// algorithm on the Node driver (fixtures/mongo-upstream.mjs) on one collection, both ways, in
// this process and in others, and failures of the server mid-run.
import { test, describe, after } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

import { withTimeout, runNode } from './helpers.mjs'
import { useMongo, startMongo, freePort, serverNow } from './mongo-harness.mjs'
import { UpstreamStyleStorage } from './fixtures/mongo-upstream.mjs'

const require = createRequire(import.meta.url)
const LocksFactory = require('../compat/distributed-locks.js')
const MongoModule = require('../compat/distributed-locks-mongodb.js')
const { MongoStorage } = MongoModule
const { FailedToObtainKey } = LocksFactory
const { MongoStorage: UpstreamMongoStorage } = require('distributed-locks-mongodb')

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const WORKER = fileURLToPath(new URL('./fixtures/mongo-worker.mjs', import.meta.url))
const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}'
const DB = 'oxlock_test'
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const busyMessage = (k) => `Failed to obtain lock for key ${k}, metaData:[object Object]`

const [server] = await useMongo(1)
const client = await server.client()
const locks = client.db(DB).collection('locks')

// Every storage and factory is closed after the file, whatever happened (close() twice must be
// harmless for the tests that close their own).
const closers = []
after(async () => {
  await Promise.allSettled(closers.map((c) => c.close()))
})

let n = 0
/** A key no other test uses. */
const key = (what) => `mongo-test-${what}-${++n}`

function storage(options = {}, url = server.url) {
  const s = new MongoStorage({ url, database: DB, ...options })
  closers.push(s)
  return s
}

function mongoFactory(storageOptions = {}, factoryOptions) {
  const f = new LocksFactory(storage(storageOptions), factoryOptions)
  closers.push(f)
  return f
}

async function upstreamStyle(options = {}) {
  const s = new UpstreamStyleStorage({ url: server.url, database: DB, ...options })
  await s.init()
  closers.push(s)
  return s
}

async function upstreamPackage(options = {}) {
  const s = new UpstreamMongoStorage({ url: server.url, database: DB, ...options })
  await s.init()
  closers.push(s)
  return s
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
  assert.equal(err.message, busyMessage(k))
  return err
}

/** Asserts `promise` rejects with E_UNAVAILABLE within `ms`; returns the error and the time it took. */
async function rejectsUnavailable(promise, ms, what) {
  const t0 = Date.now()
  let err
  await withTimeout(
    assert.rejects(promise, (e) => {
      err = e
      return true
    }),
    ms,
    `${what} should reject with E_UNAVAILABLE`,
  )
  assert.equal(err.code, 'E_UNAVAILABLE', `${what}: ${err && err.message}`)
  assert.ok(Array.isArray(err.failures) && err.failures.length === 1, `one failure: ${JSON.stringify(err.failures)}`)
  return { err, took: Date.now() - t0 }
}

/** Resolves once `set(k, ...)` succeeds (the server is back), or fails after `ms`. */
async function recovers(s, k, ms = 20000) {
  const end = Date.now() + ms
  let last
  while (Date.now() < end) {
    try {
      if (await s.set(k, 'recovered', { ttl: 5 })) return
    } catch (e) {
      last = e
    }
    await sleep(100)
  }
  assert.fail(`no recovery within ${ms} ms: ${last && last.message}`)
}

// ---------------------------------------------------------------------------------------------

describe('module shape and options', () => {
  test('oxlock/distributed-locks-mongodb exports { MongoStorage }, the one of oxlock/distributed-locks', () => {
    assert.equal(typeof MongoModule.MongoStorage, 'function')
    assert.equal(LocksFactory.MongoStorage, MongoStorage)
  })

  test('ESM: import { MongoStorage } from "oxlock/distributed-locks-mongodb" works', { timeout: 30000 }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'oxlock-dl-mongo-esm-'))
    try {
      fs.mkdirSync(path.join(dir, 'node_modules'))
      fs.symlinkSync(ROOT, path.join(dir, 'node_modules', 'oxlock'), 'dir')
      fs.writeFileSync(
        path.join(dir, 'esm.mjs'),
        [
          "import { MongoStorage } from 'oxlock/distributed-locks-mongodb'",
          "import LocksFactory from 'oxlock/distributed-locks'",
          'console.log(JSON.stringify({ type: typeof MongoStorage, same: MongoStorage === LocksFactory.MongoStorage }))',
        ].join('\n'),
      )
      const r = await runNode([path.join(dir, 'esm.mjs')], { cwd: dir, killAfter: 20000 })
      assert.equal(r.code, 0, `child failed: ${r.stderr}`)
      assert.deepEqual({ ...r.lines[0], at: undefined }, { type: 'function', same: true, at: undefined })
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  test('the constructor checks its options and touches nothing: no I/O before the first call', async () => {
    assert.throws(() => new MongoStorage({ database: DB }), (e) => e instanceof TypeError && e.code === 'E_CONFIG' && /url/.test(e.message))
    assert.throws(() => new MongoStorage(), (e) => e instanceof TypeError && e.code === 'E_CONFIG')
    assert.throws(() => new MongoStorage({ url: 'http://127.0.0.1' }), (e) => e.code === 'E_CONFIG' && /connection string/.test(e.message))
    assert.throws(
      () => new MongoStorage({ url: 'mongodb+srv://cluster0.example.net' }),
      (e) => e.code === 'E_CONFIG' && /mongodb\+srv/.test(e.message),
    )
    assert.throws(() => new MongoStorage({ url: server.url, database: 'a.b' }), (e) => e instanceof RangeError && e.code === 'E_CONFIG')
    assert.throws(() => new MongoStorage({ url: server.url, collectionName: 'a$b' }), (e) => e instanceof RangeError && e.code === 'E_CONFIG')
    assert.throws(() => new MongoStorage({ url: server.url, collectionName: 7 }), (e) => e instanceof TypeError && e.code === 'E_CONFIG')
    assert.throws(() => new MongoStorage({ url: server.url, cleanupInterval: -1 }), (e) => e instanceof RangeError && e.code === 'E_CONFIG')
    // A URL with a password that does not parse: the message never shows the password.
    assert.throws(
      () => new MongoStorage({ url: 'mongodb://user:hunter2secret@127.0.0.1:notaport' }),
      (e) => e.code === 'E_CONFIG' && !e.message.includes('hunter2secret'),
    )
    // Nothing listens on this port: constructing and closing never notice.
    const s = new MongoStorage({ url: `mongodb://127.0.0.1:${await freePort()}`, database: DB })
    assert.equal(s.collectionName, 'locks')
    assert.equal(s.database, DB)
    await withTimeout(s.close(), 1000, 'close() of a storage that never connected')
  })

  test('set() rejects a ttl that is not a positive number of seconds (RangeError)', async () => {
    const s = storage()
    for (const ttl of [0, -1, NaN, undefined, 'x', 2 ** 31]) {
      await assert.rejects(s.set(key('ttl'), 'v', { ttl }), (e) => e instanceof RangeError, `ttl ${ttl}`)
    }
  })
})

// ---------------------------------------------------------------------------------------------
// The six upstream cases (target-apis §5.5).

describe('upstream cases: MongoStorage', { timeout: 60000 }, () => {
  const mk = () => mongoFactory()

  test('upstream 1: obtains a lock with defaults and unlocks', async () => {
    const f = mk()
    await f.init()
    const l = f.createLock(key('u1'))
    assert.equal(await l.lock(), true)
    assert.equal(await l.unlock(), true)
  })

  test('upstream 2: a second Lock on the same key fails with FailedToObtainKey (retries 3, interval 0.5) while the first (ttl 10) is held', async () => {
    const f = mk()
    await f.init()
    const k = key('u2')
    const l1 = f.createLock(k)
    const l2 = f.createLock(k)
    assert.equal(await l1.lock({ ttl: 10 }), true)
    const t0 = Date.now()
    await rejectsBusy(l2.lock({ retries: 3, interval: 0.5 }), k)
    assert.ok(Date.now() - t0 >= 950, `3 attempts 0.5 s apart take at least 1 s, took ${Date.now() - t0} ms`)
    assert.equal(await l1.unlock(), true)
  })

  test('upstream 3: after unlock() a new Lock obtains the key', async () => {
    const f = mk()
    await f.init()
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
    await f.init()
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
    await f.init()
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
    await f.init()
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

// ---------------------------------------------------------------------------------------------

describe('MongoStorage: document layout and fixes', { timeout: 60000 }, () => {
  test('document { _id: <raw key>, value: <key>-<machineId>-<uuid>, ttl: 10, obtained_at: server date }; unlock deletes it', async () => {
    const f = mongoFactory({}, { machineId: 'm7' })
    await f.init()
    const k = key('layout')
    const l = f.createLock(k)
    const before = await serverNow(client)
    assert.equal(await l.lock({ ttl: 10 }), true)
    const after = await serverNow(client)
    const doc = await locks.findOne({ _id: k })
    assert.deepEqual(Object.keys(doc).sort(), ['_id', 'obtained_at', 'ttl', 'value'])
    assert.equal(doc._id, k, 'the raw key, no prefix')
    assert.match(doc.value, new RegExp(`^${k}-m7-${UUID}$`))
    assert.equal(doc.ttl, 10)
    assert.equal(typeof doc.ttl, 'number')
    assert.ok(doc.obtained_at instanceof Date, 'a BSON date')
    const at = doc.obtained_at.getTime()
    assert.ok(at >= before - 1 && at <= after + 1, `obtained_at is the server's clock at the call: ${before} <= ${at} <= ${after}`)
    assert.equal(await l.unlock(), true)
    assert.equal(await locks.findOne({ _id: k }), null)
    assert.equal(await l.unlock(), true, 'unlock() of a free key resolves true')
  })

  test('collectionName and database are used; the URL\'s database when none is given', async () => {
    const k = key('names')
    const s = storage({ collectionName: 'my_locks', database: 'other_db' })
    await s.init()
    assert.equal(await s.set(k, 'v', { ttl: 10 }), true)
    assert.equal((await client.db('other_db').collection('my_locks').findOne({ _id: k })).value, 'v')
    assert.equal(await locks.findOne({ _id: k }), null, 'nothing in the default collection')
    const fromUrl = storage({ database: undefined }, `${server.url}/url_db`)
    assert.equal(await fromUrl.set(k, 'w', { ttl: 10 }), true)
    assert.equal((await client.db('url_db').collection('locks').findOne({ _id: k })).value, 'w')
    const byDefault = storage({ database: undefined })
    assert.equal(await byDefault.set(k, 'x', { ttl: 10 }), true)
    assert.equal((await client.db('test').collection('locks').findOne({ _id: k })).value, 'x', 'the Node driver\'s default database, "test"')
  })

  test('fix: calls before init() connect first and really lock (upstream reported success without touching the database)', async () => {
    const k = key('no-init')
    const a = storage()
    const b = storage()
    assert.equal(await a.set(k, 'a', { ttl: 10 }), true, 'set() before init() works')
    assert.equal((await locks.findOne({ _id: k })).value, 'a', 'and wrote the document')
    assert.equal(await b.set(k, 'b', { ttl: 10 }), false, 'another storage, also without init(), sees it held')
    assert.equal(await b.unSet(k, 'a'), true)
    assert.equal(await locks.findOne({ _id: k }), null, 'unSet() before init() deletes too')
    // And through the factory, never calling init().
    const f = mongoFactory()
    const l = f.createLock(key('no-init-factory'))
    assert.equal(await l.lock(), true)
    await rejectsBusy(f.createLock(l.key).lock({ retries: 1 }), l.key)
    assert.equal(await l.unlock(), true)
  })

  test('fix: a fractional ttl (0.5 s) holds for 0.5 s: ttl rounded up, obtained_at moved back, so obtained_at + ttl = now + 0.5 s for every reader', async () => {
    const f = mongoFactory()
    await f.init()
    const k = key('fraction')
    const l = f.createLock(k)
    const before = await serverNow(client)
    assert.equal(await withTimeout(l.lock({ ttl: 0.5 }), 5000, 'lock({ ttl: 0.5 })'), true)
    const after = await serverNow(client)
    const doc = await locks.findOne({ _id: k })
    assert.equal(doc.ttl, 1, 'whole seconds, as upstream readers add them')
    const expires = doc.obtained_at.getTime() + doc.ttl * 1000
    assert.ok(expires >= before + 500 - 1 && expires <= after + 500 + 1, `expires 0.5 s after the call: ${expires - before} ms after it started`)
    await rejectsBusy(f.createLock(k).lock({ retries: 1 }), k)
    const t0 = Date.now()
    const l2 = f.createLock(k)
    assert.equal(await withTimeout(l2.lock({ retries: 200, interval: 0.02 }), 10000, 'l2.lock()'), true)
    const waited = Date.now() - t0
    assert.ok(waited <= 1500, `obtained about 0.5 s after the first lock, waited ${waited} ms`)
    assert.equal(await l2.unlock(), true)
    // ttl 1.25: ttl 2 and obtained_at 0.75 s back.
    const k2 = key('fraction2')
    const s = storage()
    assert.equal(await s.set(k2, 'v', { ttl: 1.25 }), true)
    const d2 = await locks.findOne({ _id: k2 })
    assert.equal(d2.ttl, 2)
    const left = d2.obtained_at.getTime() + 2000 - (await serverNow(client))
    assert.ok(left > 1000 && left <= 1250 + 1, `about 1.25 s left, got ${left} ms`)
  })

  test('fix: 50 parallel set() on one key from 5 storages: exactly one true, and the document is the winner\'s', async () => {
    const k = key('race')
    const storages = Array.from({ length: 5 }, () => storage())
    await Promise.all(storages.map((s) => s.init()))
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) => storages[i % 5].set(k, `v${i}`, { ttl: 10 }).then((ok) => ({ ok, i }))),
    )
    const winners = results.filter((r) => r.ok)
    assert.equal(winners.length, 1, `exactly one set() took the key: ${JSON.stringify(winners)}`)
    assert.equal((await locks.findOne({ _id: k })).value, `v${winners[0].i}`)
    // And once it expired, 50 parallel takeovers: exactly one again.
    await locks.updateOne({ _id: k }, { $set: { obtained_at: new Date((await serverNow(client)) - 20000) } })
    const again = await Promise.all(Array.from({ length: 50 }, (_, i) => storages[i % 5].set(k, `w${i}`, { ttl: 10 })))
    assert.equal(again.filter(Boolean).length, 1, 'exactly one takeover of the expired key')
  })

  test('a takeover of an expired lock writes our value, our ttl and a fresh obtained_at (upstream kept the old one elsewhere)', async () => {
    const k = key('takeover')
    const old = new Date((await serverNow(client)) - 60000)
    await locks.insertOne({ _id: k, value: 'old-holder', ttl: 5, obtained_at: old })
    const s = storage()
    const before = await serverNow(client)
    assert.equal(await s.set(k, 'new-holder', { ttl: 7 }), true)
    const doc = await locks.findOne({ _id: k })
    assert.equal(doc.value, 'new-holder')
    assert.equal(doc.ttl, 7)
    assert.ok(doc.obtained_at.getTime() >= before - 1, 'obtained_at is now')
    assert.equal(await s.set(k, 'third', { ttl: 7 }), false, 'held again')
  })

  test('expiry is decided on the server\'s clock, to within a few ms', async () => {
    const k = key('clock')
    const s = storage()
    await s.init()
    // A lock that expires 400 ms from now on the server's clock.
    const now = await serverNow(client)
    await locks.insertOne({ _id: k, value: 'other', ttl: 2, obtained_at: new Date(now - 1600) })
    assert.equal(await s.set(k, 'mine', { ttl: 5 }), false, 'still held before it expires')
    await sleep(250)
    // (Checked only while the server's clock says it is still held: a slow machine may be past it.)
    const before = now + 400 - (await serverNow(client))
    const held = await s.set(k, 'mine', { ttl: 5 })
    if (before > 50) assert.equal(held, false, `still held ${before} ms before it expires`)
    const end = Date.now() + 2000
    let got = held
    while (!got && Date.now() < end) {
      got = await s.set(k, 'mine', { ttl: 5 })
      if (!got) await sleep(10)
    }
    const late = (await serverNow(client)) - (now + 400)
    assert.ok(got, 'taken once expired')
    assert.ok(late >= 0 && late < 200, `taken ${late} ms after it expired on the server's clock`)
  })

  test('documents without a usable obtained_at or ttl count as expired', async () => {
    const k = key('odd')
    await locks.insertOne({ _id: k, value: 'broken' })
    const s = storage()
    assert.equal(await s.set(k, 'mine', { ttl: 5 }), true)
    assert.equal((await locks.findOne({ _id: k })).value, 'mine')
  })

  test('keys and values are stored as given: "$", dots and unicode', async () => {
    const s = storage()
    for (const k of ['$weird.key', 'ключ-🔒', 'a.b.c']) {
      for (const ttl of [5, 0.5]) {
        const kk = `${k}-${ttl}-${++n}`
        assert.equal(await s.set(kk, `$value.${kk}`, { ttl }), true, kk)
        const doc = await locks.findOne({ _id: kk })
        assert.equal(doc.value, `$value.${kk}`, 'a value starting with $ is a string, not a field path')
        assert.equal(await s.unSet(kk, `$value.${kk}`), true)
        assert.equal(await locks.findOne({ _id: kk }), null)
      }
    }
  })
})

// ---------------------------------------------------------------------------------------------

describe('MongoStorage: expired documents are cleaned up', { timeout: 60000 }, () => {
  test('init() deletes expired lock documents and leaves held ones and other documents alone', async () => {
    const col = client.db(DB).collection('sweep_init')
    const now = await serverNow(client)
    await col.insertMany([
      { _id: 'expired-1', value: 'a', ttl: 1, obtained_at: new Date(now - 5000) },
      { _id: 'expired-2', value: 'b', ttl: 0.5, obtained_at: new Date(now - 1000) },
      { _id: 'held', value: 'c', ttl: 60, obtained_at: new Date(now) },
      { _id: 'not-a-lock', note: 'no ttl, no obtained_at' },
    ])
    const s = storage({ collectionName: 'sweep_init' })
    await s.init()
    const left = (await col.find().toArray()).map((d) => d._id).sort()
    assert.deepEqual(left, ['held', 'not-a-lock'])
  })

  test('while open, a background sweep deletes documents as they expire (cleanupInterval); close() stops it', async () => {
    const col = client.db(DB).collection('sweep_bg')
    const s = storage({ collectionName: 'sweep_bg', cleanupInterval: 0.2 })
    await s.init()
    assert.equal(await s.set('short', 'v', { ttl: 0.5 }), true)
    assert.equal(await s.set('long', 'v', { ttl: 60 }), true)
    const end = Date.now() + 5000
    while ((await col.findOne({ _id: 'short' })) !== null) {
      assert.ok(Date.now() < end, 'the expired document was not deleted within 5 s')
      await sleep(50)
    }
    assert.notEqual(await col.findOne({ _id: 'long' }), null, 'the held one stays')
    await s.close()
    await col.insertOne({ _id: 'after-close', value: 'v', ttl: 1, obtained_at: new Date((await serverNow(client)) - 10000) })
    await sleep(800)
    assert.notEqual(await col.findOne({ _id: 'after-close' }), null, 'no sweep after close()')
  })

  test('cleanupInterval: 0 deletes nothing, not even at init()', async () => {
    const col = client.db(DB).collection('sweep_off')
    await col.insertOne({ _id: 'expired', value: 'a', ttl: 1, obtained_at: new Date((await serverNow(client)) - 5000) })
    const s = storage({ collectionName: 'sweep_off', cleanupInterval: 0 })
    await s.init()
    await sleep(300)
    assert.notEqual(await col.findOne({ _id: 'expired' }), null)
    assert.equal(await s.set('expired', 'mine', { ttl: 5 }), true, 'an expired document is still taken over')
  })
})

// ---------------------------------------------------------------------------------------------

describe('interop with distributed-locks-mongodb on one collection', { timeout: 60000 }, () => {
  test('upstream\'s own package (1.0.3) takes a free key: we see it held; its unSet frees it; it cannot free ours', async () => {
    const old = await upstreamPackage()
    const s = storage()
    const k = key('pkg')
    assert.equal(await old.set(k, 'old-value', { ttl: 10 }), true)
    const doc = await locks.findOne({ _id: k })
    assert.deepEqual(Object.keys(doc).sort(), ['_id', 'obtained_at', 'ttl', 'value'], 'the same document shape as ours')
    assert.equal(doc.ttl, 10)
    assert.equal(await s.set(k, 'new-value', { ttl: 10 }), false, 'we see its lock')
    assert.equal(await s.unSet(k, 'new-value'), true)
    assert.equal((await locks.findOne({ _id: k })).value, 'old-value', 'our unSet() left its lock alone')
    assert.equal(await old.unSet(k, 'old-value'), true)
    assert.equal(await s.set(k, 'new-value', { ttl: 10 }), true, 'free after its unSet()')
    assert.equal(await old.unSet(k, 'old-value'), true)
    assert.equal((await locks.findOne({ _id: k })).value, 'new-value', 'its unSet() does not free ours')
  })

  test('upstream\'s own package cannot read a held key on this server ($$NOW, 17276): what the emulation below is for', async () => {
    const old = await upstreamPackage()
    const s = storage()
    const k = key('pkg-now')
    assert.equal(await s.set(k, 'ours', { ttl: 10 }), true)
    await assert.rejects(old.set(k, 'theirs', { ttl: 10 }), (e) => e.code === 17276 && /NOW/.test(e.message))
    assert.equal((await locks.findOne({ _id: k })).value, 'ours', 'and it never took it')
  })

  test('upstream\'s algorithm (Node driver) sees our lock held, and takes it over once our ttl ran out (fractional too)', async () => {
    const old = await upstreamStyle()
    const s = storage()
    const k = key('old-reads')
    assert.equal(await s.set(k, 'ours', { ttl: 1.5 }), true)
    assert.equal(await old.set(k, 'theirs', { ttl: 10 }), false, 'held')
    await sleep(800)
    assert.equal(await old.set(k, 'theirs', { ttl: 10 }), false, 'still held 0.8 s in (a truncated 1.5 s would read as 1 s; we store 2 s from 0.5 s back)')
    const end = Date.now() + 5000
    while (!(await old.set(k, 'theirs', { ttl: 10 }))) {
      assert.ok(Date.now() < end, 'never taken over')
      await sleep(50)
    }
    assert.equal(await s.set(k, 'ours', { ttl: 10 }), false, 'we see its lock')
  })

  test('we see upstream-written locks held and take them over once expired (its takeover kept the old obtained_at; ours writes now)', async () => {
    const old = await upstreamStyle()
    const s = storage()
    const k = key('new-reads')
    assert.equal(await old.set(k, 'theirs', { ttl: 1 }), true)
    assert.equal(await s.set(k, 'ours', { ttl: 5 }), false)
    const t0 = Date.now()
    while (!(await s.set(k, 'ours', { ttl: 5 }))) {
      assert.ok(Date.now() - t0 < 5000, 'never taken over')
      await sleep(20)
    }
    assert.ok(Date.now() - t0 >= 700, `taken only once its 1 s ran out, after ${Date.now() - t0} ms`)
    assert.equal(await old.set(k, 'theirs', { ttl: 1 }), false, 'and upstream sees ours')
    assert.equal(await old.unSet(k, 'theirs'), true)
    assert.equal((await locks.findOne({ _id: k })).value, 'ours')
  })

  test('a process on upstream\'s package holds a key: ours waits for its unSet(); then it cannot take ours', { timeout: 60000 }, async () => {
    const k = key('proc-pkg')
    const script = [
      "import { createRequire } from 'node:module'",
      `const require = createRequire(${JSON.stringify(path.join(ROOT, 'package.json'))})`,
      "const { MongoStorage } = require('distributed-locks-mongodb')",
      `const s = new MongoStorage({ url: ${JSON.stringify(server.url)}, database: ${JSON.stringify(DB)} })`,
      'await s.init()',
      `console.log(JSON.stringify({ ev: 'held', ok: await s.set(${JSON.stringify(k)}, 'old-process', { ttl: 30 }) }))`,
      'await new Promise((r) => setTimeout(r, 1500))',
      `await s.unSet(${JSON.stringify(k)}, 'old-process')`,
      "console.log(JSON.stringify({ ev: 'released' }))",
      'await new Promise((r) => setTimeout(r, 1000))',
      `let r; try { r = await s.set(${JSON.stringify(k)}, 'old-process', { ttl: 30 }) } catch (e) { r = e.code }`,
      "console.log(JSON.stringify({ ev: 'again', r }))",
      'await s.close()',
    ].join('\n')
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'oxlock-mongo-old-'))
    try {
      fs.writeFileSync(path.join(dir, 'old.mjs'), script)
      let held
      const heldNow = new Promise((r) => (held = r))
      const child = runNode([path.join(dir, 'old.mjs')], { killAfter: 30000, onLine: (l) => l.ev === 'held' && held(l) })
      assert.equal((await withTimeout(heldNow, 20000, 'the old process took the key')).ok, true)
      const f = mongoFactory()
      const l = f.createLock(k)
      assert.equal(await withTimeout(l.lock({ retries: -1, interval: 0.05 }), 20000, 'lock() after the old process released'), true)
      const r = await child
      assert.equal(r.code, 0, r.stderr)
      const released = r.lines.find((x) => x.ev === 'released')
      assert.ok(released, r.stdout)
      const again = r.lines.find((x) => x.ev === 'again')
      // Upstream answers false on MongoDB; on this server its $$NOW read errors (17276).
      assert.ok(again.r === false || again.r === 17276, `the old process did not take our lock: ${JSON.stringify(again)}`)
      assert.match((await locks.findOne({ _id: k })).value, new RegExp(`^${k}-1-${UUID}$`))
      assert.equal(await l.unlock(), true)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})

// ---------------------------------------------------------------------------------------------

describe('contention between processes', { timeout: 120000 }, () => {
  test('3 oxlock processes loop lock / critical section / unlock on one key: never two holders, no lost update', async () => {
    const k = key('contend')
    await contend(k, ['oxlock', 'oxlock', 'oxlock'], 25)
  })

  test('2 oxlock processes and 1 on upstream\'s algorithm on one collection: never two holders', async () => {
    const k = key('contend-mixed')
    await contend(k, ['oxlock', 'oxlock', 'upstream'], 15)
  })

  async function contend(k, kinds, iter) {
    const runs = await Promise.all(
      kinds.map((kind) => runNode([WORKER, server.url, DB, k, String(iter), String(kinds.length), kind], { killAfter: 100000 })),
    )
    for (const r of runs) {
      assert.equal(r.signal, null, `a worker was killed (hung, or kept alive after close()): ${r.stderr}`)
      assert.equal(r.code, 0, `a worker failed: ${r.stderr}`)
      const done = r.lines.find((x) => x.ev === 'done')
      assert.ok(done, `a worker did not finish: ${r.stdout}`)
      assert.equal(done.done, iter)
      assert.equal(done.violations, 0, 'two holders at once')
    }
    const state = await client.db(DB).collection('state').findOne({ _id: k })
    assert.equal(state.counter, kinds.length * iter, 'no lost update under the lock')
    assert.equal(await locks.findOne({ _id: k }), null, 'the key is free at the end')
  }
})

// ---------------------------------------------------------------------------------------------

describe('failures: bounded, E_UNAVAILABLE, and recovery', { timeout: 120000 }, () => {
  test('nothing listening: init(), set(), unSet() and lock() reject with E_UNAVAILABLE within a few seconds, naming the host, never the password', async () => {
    const port = await freePort()
    const s = storage({}, `mongodb://locker:hunter2secret@127.0.0.1:${port}/?authSource=admin`)
    const { err, took } = await rejectsUnavailable(s.init(), 8000, 'init()')
    assert.ok(took < 6000, `bounded: took ${took} ms`)
    assert.equal(err.failures[0].node, `127.0.0.1:${port}`)
    assert.equal(err.failures[0].kind, 'refused')
    assert.ok(!JSON.stringify({ m: err.message, f: err.failures, c: err.causes }).includes('hunter2secret'), 'no password in the error')
    await rejectsUnavailable(s.set('k', 'v', { ttl: 1 }), 8000, 'set()')
    await rejectsUnavailable(s.unSet('k', 'v'), 8000, 'unSet()')
    const f = new LocksFactory(s)
    const e = await rejectsUnavailable(f.createLock('k').lock({ retries: 3, interval: 0.1 }), 8000, 'lock()')
    assert.ok(!(e.err instanceof FailedToObtainKey), 'a failure is not "busy"')
  })

  test('the server killed mid-run: calls reject with E_UNAVAILABLE (no hang); restarted on its port, the same storage works again', async () => {
    const srv = await startMongo()
    try {
      const s = storage({}, srv.url)
      await s.init()
      assert.equal(await s.set('k1', 'v', { ttl: 10 }), true)
      // Calls every 10 ms, the server killed among them: each one settles, taken or E_UNAVAILABLE.
      const calls = []
      const pump = (async () => {
        for (let i = 0; i < 40; i++) {
          calls.push(s.set(`m${i}`, 'v', { ttl: 10 }).then((ok) => (ok ? 'taken' : 'held'), (e) => e.code))
          await sleep(10)
        }
      })()
      await sleep(150)
      await srv.kill()
      await pump
      const settled = await withTimeout(Promise.all(calls), 10000, 'every call in flight settles')
      assert.ok(settled.includes('taken') && settled.includes('E_UNAVAILABLE'), JSON.stringify(settled))
      assert.deepEqual([...new Set(settled)].sort(), ['E_UNAVAILABLE', 'taken'])
      const { err, took } = await rejectsUnavailable(s.set('k2', 'v', { ttl: 10 }), 10000, 'set() with the server gone')
      assert.ok(took < 6000, `bounded: took ${took} ms`)
      assert.match(err.failures[0].node, /^127\.0\.0\.1:\d+$/)
      await srv.restart()
      await recovers(s, 'k3')
      // Its data was in memory: k1 is gone, and free.
      assert.equal(await s.set('k1', 'again', { ttl: 10 }), true)
    } finally {
      await srv.kill()
    }
  })

  test('the server stopped (SIGTERM) and started again: rejects while down, recovers after', async () => {
    const srv = await startMongo()
    try {
      const s = storage({}, srv.url)
      await s.init()
      assert.equal(await s.set('a', 'v', { ttl: 10 }), true)
      await srv.stop()
      await rejectsUnavailable(s.set('b', 'v', { ttl: 10 }), 10000, 'set() with the server stopped')
      await srv.start()
      await recovers(s, 'c')
    } finally {
      await srv.kill()
    }
  })

  test('a paused server (accepts, never answers): set() rejects within the operation bound; resumed, it recovers', async () => {
    const srv = await startMongo()
    try {
      const s = storage({}, srv.url)
      await s.init()
      await srv.pause()
      const { err, took } = await rejectsUnavailable(s.set('p', 'v', { ttl: 10 }), 12000, 'set() on a paused server')
      assert.ok(took < 8000, `bounded: took ${took} ms`)
      assert.equal(err.failures[0].kind, 'timeout')
      srv.resume()
      await recovers(s, 'q')
    } finally {
      srv.resume()
      await srv.kill()
    }
  })

  test('close() lets a child process exit by itself, and calls after close() reject', { timeout: 30000 }, async () => {
    const script = [
      `const LocksFactory = require(${JSON.stringify(path.join(ROOT, 'compat/distributed-locks.js'))})`,
      `const { MongoStorage } = require(${JSON.stringify(path.join(ROOT, 'compat/distributed-locks-mongodb.js'))})`,
      ';(async () => {',
      `  const f = new LocksFactory(new MongoStorage({ url: ${JSON.stringify(server.url)}, database: ${JSON.stringify(DB)}, cleanupInterval: 0.1 }))`,
      '  await f.init()',
      `  const l = f.createLock(${JSON.stringify(key('child'))})`,
      '  await l.lock()',
      '  await l.unlock()',
      '  await f.close()',
      '  let after',
      "  try { await f.storage.set('x', 'y', { ttl: 1 }); after = 'resolved' } catch (e) { after = e.message }",
      "  console.log(JSON.stringify({ ev: 'closed', after }))",
      '})()',
    ].join('\n')
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'oxlock-mongo-close-'))
    try {
      fs.writeFileSync(path.join(dir, 'child.js'), script)
      const t0 = Date.now()
      const r = await runNode([path.join(dir, 'child.js')], { killAfter: 20000 })
      assert.equal(r.signal, null, `the child was killed: it did not exit by itself (${r.stderr})`)
      assert.equal(r.code, 0, r.stderr)
      const closed = r.lines.find((x) => x.ev === 'closed')
      assert.ok(closed, r.stdout)
      assert.match(closed.after, /closed/)
      assert.ok(Date.now() - t0 < 15000)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  test('close() twice is harmless', async () => {
    const s = new MongoStorage({ url: server.url, database: DB })
    await s.init()
    await s.close()
    await s.close()
  })
})
