// The drop-in `oxlock/fast-locky` (compat/fast-locky.js) against real redis-server processes:
// the upstream fast-locky 1.0.0 suite (test/locky.js 1-11, test/formatter.js, test/redis.js
// adapted from stubs to real servers), the fixes of issue 9 (ttl applied at lock time, extend
// in ms and always a promise, expire only for keys really gone and once across instances and
// processes, no polling without ttl, close() leaves nothing alive), the README examples,
// interop with an old fast-locky process (played by a plain client writing the same keys),
// one round trip per batch, and three contending processes.
//
// Upstream tests 10 and 11 relied on the TTL < 0 bug (a held key without expiry was reported
// "expired" within ttl/2 ms): here a held key never emits `expire`, and a key whose ttl runs
// out emits exactly one.
import { test, describe, after } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { EventEmitter } from 'node:events'
import { fileURLToPath, pathToFileURL } from 'node:url'
import net from 'node:net'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

import { runNode, withTimeout } from './helpers.mjs'
import { useRedis, startRedis, freePort } from './redis-harness.mjs'

const require = createRequire(import.meta.url)
const Locky = require('../compat/fast-locky.js')
const Redis = require('ioredis')

const CONTEND = fileURLToPath(new URL('./fixtures/fast-locky-contend.mjs', import.meta.url))
const CLOSE_CHILD = fileURLToPath(new URL('./fixtures/fast-locky-close.mjs', import.meta.url))
const WATCH = fileURLToPath(new URL('./fixtures/fast-locky-watch.mjs', import.meta.url))
const ROOT = fileURLToPath(new URL('..', import.meta.url))

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

const [server, quiet] = await useRedis(2) // `quiet`: a server only the polling test talks to

// ---- instances: every Locky and ioredis client is closed after its test (or after the file)
const open = new Set()
const clients = new Set()
after(async () => {
  await Promise.allSettled([...open].map((l) => l.close()))
  open.clear()
  for (const c of clients) c.disconnect()
  clients.clear()
})

/** A Locky on `server` (or the given redis option); closed by `done()` or after the file. */
function mk(options = {}) {
  const l = new Locky({ redis: server.options, ...options })
  open.add(l)
  // Upstream emits 'error' on Redis errors: without a listener EventEmitter would throw.
  l.errors = []
  l.on('error', (e) => l.errors.push(e))
  return l
}

async function done(...lockies) {
  for (const l of lockies) {
    if (!open.has(l)) continue
    open.delete(l)
    await withTimeout(l.close(), 10000, 'close() did not resolve')
  }
}

/** A plain ioredis client (the "old process" / an inspector), disconnected after the file. */
function plain(options = {}) {
  const c = new Redis({ host: '127.0.0.1', port: server.port, maxRetriesPerRequest: 2, ...options })
  clients.add(c)
  return c
}

async function quitPlain(c) {
  clients.delete(c)
  try {
    await c.quit()
  } catch {
    c.disconnect()
  }
}

/** Records every event of interest, in order, as [name, ...args]. */
function record(locky, names = ['lock', 'unlock', 'extend', 'expire']) {
  const events = []
  for (const n of names) locky.on(n, (...args) => events.push([n, ...args]))
  return events
}

let n = 0
/** A name (key prefix) no other test uses. */
const uname = (what) => `fl${++n}-${what}`

const keyOf = (name, r) => (name ? `${name}:lock:resource:${r}` : `lock:resource:${r}`)
const setOf = (name) => (name ? `${name}:lock:currents` : 'lock:currents')

async function eventually(pred, maxMs, what) {
  const end = Date.now() + maxMs
  for (;;) {
    if (await pred()) return
    if (Date.now() > end) assert.fail(`timed out after ${maxMs} ms waiting for ${what}`)
    await sleep(10)
  }
}

const members = async (set, port = server.port) => {
  const c = plain({ port })
  try {
    return (await c.smembers(set)).sort()
  } finally {
    await quitPlain(c)
  }
}

// ---------------------------------------------------------------------------------------------

describe('module shape', { timeout: 20000 }, () => {
  test('module.exports is the Locky class, an EventEmitter', async () => {
    assert.equal(typeof Locky, 'function')
    const l = mk()
    try {
      assert.ok(l instanceof Locky)
      assert.ok(l instanceof EventEmitter)
      for (const m of ['lock', 'unlock', 'extend', 'getLockers', 'getLocker', 'getLocks', 'expireLocks', 'close', 'error']) {
        assert.equal(typeof l[m], 'function', `method ${m}`)
      }
    } finally {
      await done(l)
    }
  })

  test("require('oxlock/fast-locky') through node_modules/oxlock resolves to the same class (optional)", async (t) => {
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'))
    if (!pkg.exports || !pkg.exports['./fast-locky']) {
      t.diagnostic('package.json has no exports["./fast-locky"] entry yet')
    }
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'oxlock-fl-'))
    try {
      fs.mkdirSync(path.join(dir, 'node_modules'))
      fs.symlinkSync(ROOT, path.join(dir, 'node_modules', 'oxlock'), 'dir')
      const req = createRequire(path.join(dir, 'app.js'))
      assert.equal(req('oxlock/fast-locky'), Locky)
      // and the ESM entry, imported through the same package name
      fs.writeFileSync(path.join(dir, 'app.mjs'), "export { default } from 'oxlock/fast-locky'\n")
      const esm = await import(pathToFileURL(path.join(dir, 'app.mjs')).href)
      assert.equal(esm.default, Locky, "import Locky from 'oxlock/fast-locky' is the same class")
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('upstream test/locky.js: constructor', { timeout: 20000 }, () => {
  test('upstream 1: instantiates a redis connection', async () => {
    const l = mk()
    try {
      assert.ok(l.redis, 'locky.redis is truthy')
    } finally {
      await done(l)
    }
  })

  test('upstream 2: default ttl is null', async () => {
    const l = mk()
    try {
      assert.equal(l.ttl, null)
    } finally {
      await done(l)
    }
  })

  test('upstream 3: keeps a passed ttl', async () => {
    const l = mk({ ttl: 5000 })
    try {
      assert.equal(l.ttl, 5000)
    } finally {
      await done(l)
    }
  })

  test('upstream 4: default set name is <name>:lock:currents', async () => {
    const l = mk({ name: 'test' })
    const m = mk()
    try {
      assert.equal(l.set, 'test:lock:currents')
      assert.equal(m.set, 'lock:currents', 'without a name')
    } finally {
      await done(l, m)
    }
  })

  test('upstream 5: keeps a passed set name', async () => {
    const l = mk({ name: 'test', set: 'coucou' })
    try {
      assert.equal(l.set, 'coucou')
    } finally {
      await done(l)
    }
  })
})

describe('upstream test/formatter.js', { timeout: 20000 }, () => {
  test('upstream formatter: with a name', async () => {
    const l = mk({ name: 'test' })
    try {
      assert.equal(l.formatter.getKey('a123'), 'test:lock:resource:a123')
      assert.equal(l.formatter.getResource('test:lock:resource:a123'), 'a123')
      assert.equal(l.set, 'test:lock:currents')
      // resources with colons survive the round trip
      assert.equal(l.formatter.getKey('article:12'), 'test:lock:resource:article:12')
      assert.equal(l.formatter.getResource('test:lock:resource:article:12'), 'article:12')
    } finally {
      await done(l)
    }
  })

  test('upstream formatter: without a name', async () => {
    const l = mk()
    try {
      assert.equal(l.formatter.getKey('a123'), 'lock:resource:a123')
      assert.equal(l.formatter.getResource('lock:resource:a123'), 'a123')
      assert.equal(l.set, 'lock:currents')
      assert.equal(l.formatter.getResource(l.formatter.getKey('article:12')), 'article:12')
    } finally {
      await done(l)
    }
  })
})

describe('upstream test/locky.js: actions', { timeout: 30000 }, () => {
  test('upstream 6: locks resources (set holds the full keys, lock events in order before resolve)', async () => {
    const name = uname('lock')
    const l = mk({ name })
    try {
      const events = record(l)
      let atResolve
      const res = await l.lock([
        { resource: 'a1', locker: 'l1' },
        { resource: 'a2', locker: 'l2' },
        { resource: 'a3', locker: 'l3' },
      ]).then((v) => {
        atResolve = events.slice()
        return v
      })
      assert.equal(res, true)
      assert.deepEqual(atResolve, [
        ['lock', 'a1', 'l1'],
        ['lock', 'a2', 'l2'],
        ['lock', 'a3', 'l3'],
      ], 'the lock events are emitted in input order before the promise resolves')
      assert.deepEqual(await members(setOf(name)), [keyOf(name, 'a1'), keyOf(name, 'a2'), keyOf(name, 'a3')])
      assert.equal(await server.get(keyOf(name, 'a2')), 'l2')
      assert.equal(await server.pttl(keyOf(name, 'a2')), -1, 'no ttl option: no expiry')
      assert.deepEqual((await l.getLocks()).sort(), [keyOf(name, 'a1'), keyOf(name, 'a2'), keyOf(name, 'a3')])
    } finally {
      await done(l)
    }
  })

  test('upstream 6b: a held resource is not taken without force; lock() still resolves true', async () => {
    const name = uname('nx')
    const l = mk({ name })
    try {
      await l.lock([{ resource: 'b', locker: 'first' }])
      const events = record(l)
      const res = await l.lock([
        { resource: 'a', locker: 'x' },
        { resource: 'b', locker: 'second' },
        { resource: 'c', locker: 'y' },
      ])
      assert.equal(res, true, 'resolves true even if not every item was locked (upstream)')
      assert.deepEqual(events, [
        ['lock', 'a', 'x'],
        ['lock', 'c', 'y'],
      ])
      assert.equal(await server.get(keyOf(name, 'b')), 'first')
      const again = record(l)
      assert.equal(await l.lock([{ resource: 'b', locker: 'third' }]), true, 'nothing locked: still true')
      assert.deepEqual(again, [])
    } finally {
      await done(l)
    }
  })

  test('upstream 7: locks force resources', async () => {
    const name = uname('force')
    const l = mk({ name })
    try {
      await l.lock([{ resource: 'a2', locker: 'old' }])
      const events = record(l)
      const res = await l.lock(
        [
          { resource: 'a1', locker: 'l1' },
          { resource: 'a2', locker: 'l2' },
          { resource: 'a3', locker: 'l3' },
        ],
        true,
      )
      assert.equal(res, true)
      assert.deepEqual(events, [
        ['lock', 'a1', 'l1'],
        ['lock', 'a2', 'l2'],
        ['lock', 'a3', 'l3'],
      ])
      assert.deepEqual(await members(setOf(name)), [keyOf(name, 'a1'), keyOf(name, 'a2'), keyOf(name, 'a3')])
      assert.equal(await server.get(keyOf(name, 'a2')), 'l2', 'force overwrites the holder')
    } finally {
      await done(l)
    }
  })

  test('upstream 8: unlocks resources', async () => {
    const name = uname('unlock')
    const l = mk({ name })
    try {
      await l.lock([
        { resource: 'a1', locker: 'l1' },
        { resource: 'a2', locker: 'l2' },
        { resource: 'a3', locker: 'l3' },
      ])
      const events = record(l)
      const res = await l.unlock(['a1', 'a3', 'free'])
      assert.equal(res, true)
      assert.deepEqual(events, [
        ['unlock', 'a1'],
        ['unlock', 'a3'],
      ], 'unlock events only for keys DEL removed, in input order')
      assert.deepEqual(await members(setOf(name)), [keyOf(name, 'a2')])
      assert.equal(await server.get(keyOf(name, 'a1')), null)
      assert.equal(await server.get(keyOf(name, 'a2')), 'l2')
      const again = record(l)
      assert.equal(await l.unlock(['a1']), true, 'unlocking a free resource resolves true')
      assert.deepEqual(again, [], 'and emits nothing')
    } finally {
      await done(l)
    }
  })

  test('upstream 9: gets lockers (aligned with the input, strings, null for free)', async () => {
    const name = uname('lockers')
    const l = mk({ name })
    try {
      await l.lock([
        { resource: 'a1', locker: 'l1' },
        { resource: 'a2', locker: 20 },
        { resource: 'a3', locker: 'l3' },
        { resource: 'a4', locker: 'l4' },
      ])
      const lockers = await l.getLockers(['a3', 'free', 'a1', 'a2'])
      assert.deepEqual(lockers, ['l3', null, 'l1', '20'])
      assert.deepEqual([...lockers].sort(), [null, '20', 'l1', 'l3'].sort(), 'upstream compares sorted')
      assert.deepEqual(await l.getLocker(['a2', 'nope']), ['20', null], 'getLocker is an alias')
      assert.equal(await server.get(keyOf(name, 'a2')), '20', 'locker stored as a string')
    } finally {
      await done(l)
    }
  })

  test('upstream 10 (adapted): extends locks — PEXPIRE ms, extend events, a lock extended in time never expires', async () => {
    const name = uname('extend')
    const ttl = 1000
    const l = mk({ name, ttl })
    try {
      const events = record(l)
      await l.lock([
        { resource: 'a1', locker: 'l1' },
        { resource: 'a2', locker: 'l2' },
        { resource: 'a3', locker: 'l3' },
      ])
      // Upstream's own call: extend(getLocks()) passes full keys, so it extends nothing.
      const full = await l.getLocks()
      assert.equal(full.length, 3)
      assert.equal(await l.extend(full), true)
      assert.deepEqual(events.filter((e) => e[0] === 'extend'), [], 'full keys name no locked resource')
      // extend(resources): PEXPIRE in ms, one extend event per existing key
      const res = await l.extend(['a1', 'free', 'a2', 'a3'])
      assert.equal(res, true)
      assert.deepEqual(events.filter((e) => e[0] === 'extend'), [
        ['extend', 'a1'],
        ['extend', 'a2'],
        ['extend', 'a3'],
      ])
      const pttl = await server.pttl(keyOf(name, 'a1'))
      assert.ok(pttl > 0 && pttl <= ttl, `PEXPIRE ${ttl} ms, not EXPIRE ${ttl} s: PTTL ${pttl}`)
      assert.equal(await server.pttl(keyOf(name, 'free')), -2, 'extend does not create keys')
      // Keep extending well before the ttl for 2.5 ttl: never an expire event.
      const until = Date.now() + 2500
      while (Date.now() < until) {
        await l.extend(['a1', 'a2', 'a3'])
        await sleep(100)
      }
      assert.deepEqual(events.filter((e) => e[0] === 'expire'), [], 'a lock extended before its ttl never expires')
      assert.deepEqual(await l.getLockers(['a1', 'a2', 'a3']), ['l1', 'l2', 'l3'])
      assert.equal((await l.getLocks()).length, 3, 'set still has 3')
      // Stop extending: each key runs out once, the set empties.
      await eventually(async () => events.filter((e) => e[0] === 'expire').length >= 3, 10000, '3 expire events')
      await eventually(async () => (await members(setOf(name))).length === 0, 5000, 'the set to empty')
      await sleep(600)
      assert.deepEqual(events.filter((e) => e[0] === 'expire').map((e) => e[1]).sort(), ['a1', 'a2', 'a3'], 'exactly one expire per resource')
    } finally {
      await done(l)
    }
  })

  test('upstream 11 (adapted): catches expired locks — exactly one expire per resource whose ttl ran out', async () => {
    const name = uname('expire')
    const ttl = 200
    const l = mk({ name, ttl })
    try {
      const events = record(l)
      const t0 = Date.now()
      await l.lock([
        { resource: 'a1', locker: 'l1' },
        { resource: 'a2', locker: 'l2' },
        { resource: 'a3', locker: 'l3' },
      ])
      const pttl = await server.pttl(keyOf(name, 'a1'))
      // (-2 only if this machine stalled past the ttl already)
      assert.ok(pttl === -2 || (pttl > 0 && pttl <= ttl), `fix: lock() applies PX ttl: PTTL ${pttl}`)
      await eventually(async () => events.length >= 6, 10000, '3 expire events')
      await sleep(3 * ttl) // several more watcher rounds: no duplicate
      assert.deepEqual(events.slice(0, 3), [
        ['lock', 'a1', 'l1'],
        ['lock', 'a2', 'l2'],
        ['lock', 'a3', 'l3'],
      ])
      assert.deepEqual(events.slice(3).map((e) => e[0]), ['expire', 'expire', 'expire'])
      assert.deepEqual(events.slice(3).map((e) => e[1]).sort(), ['a1', 'a2', 'a3'])
      assert.ok(Date.now() - t0 >= ttl, 'no expire before the ttl')
      assert.deepEqual(await members(setOf(name)), [], 'expired keys are removed from the set')
      assert.deepEqual(await l.getLockers(['a1', 'a2', 'a3']), [null, null, null])
    } finally {
      await done(l)
    }
  })
})

describe('upstream test/redis.js (adapted to real servers)', { timeout: 30000 }, () => {
  test('upstream redis 1: an options object connects to that server (db / database honoured)', async () => {
    const name = uname('opts')
    const a = mk({ name, redis: { host: '127.0.0.1', port: server.port } })
    const b = mk({ name, redis: { host: '127.0.0.1', port: server.port, db: 2 } })
    const c = mk({ name, redis: { host: '127.0.0.1', port: server.port, database: 3 } })
    const db2 = plain({ db: 2 })
    const db3 = plain({ db: 3 })
    try {
      await a.lock([{ resource: 'r', locker: 'in-db0' }])
      await b.lock([{ resource: 'r', locker: 'in-db2' }])
      await c.lock([{ resource: 'r', locker: 'in-db3' }])
      assert.equal(await server.get(keyOf(name, 'r')), 'in-db0')
      assert.equal(await db2.get(keyOf(name, 'r')), 'in-db2', '{ db: 2 }')
      assert.equal(await db3.get(keyOf(name, 'r')), 'in-db3', '{ database: 3 }')
      assert.deepEqual(await db2.smembers(setOf(name)), [keyOf(name, 'r')])
    } finally {
      await done(a, b, c)
      await quitPlain(db2)
      await quitPlain(db3)
    }
  })

  test('upstream redis 1b: a redis:// URL string', async () => {
    const name = uname('url')
    const l = mk({ name, redis: server.url })
    const u4 = mk({ name, redis: `${server.url}/4` })
    const db4 = plain({ db: 4 })
    try {
      await l.lock([{ resource: 'r', locker: 'via-url' }])
      assert.equal(await server.get(keyOf(name, 'r')), 'via-url')
      await u4.lock([{ resource: 'r', locker: 'url-db4' }])
      assert.equal(await db4.get(keyOf(name, 'r')), 'url-db4', 'the /4 path of the URL selects db 4')
    } finally {
      await done(l, u4)
      await quitPlain(db4)
    }
  })

  test('upstream redis 1c: password (options object, URL, factory client) on a server with requirepass', async () => {
    const secured = await startRedis(['--requirepass', 'pw-fl'])
    const name = uname('auth')
    let created = 0
    const ls = []
    try {
      ls.push(mk({ name, redis: { host: '127.0.0.1', port: secured.port, password: 'pw-fl' } }))
      ls.push(mk({ name, redis: `redis://:pw-fl@127.0.0.1:${secured.port}` }))
      ls.push(
        mk({
          name,
          redis: () => {
            created++
            return plain({ port: secured.port, password: 'pw-fl' })
          },
        }),
      )
      for (const [i, l] of ls.entries()) {
        await l.lock([{ resource: `r${i}`, locker: `w${i}` }], true)
        assert.deepEqual(await l.getLockers([`r${i}`]), [`w${i}`], `instance ${i}`)
        assert.deepEqual(l.errors, [], `instance ${i}: no error events`)
      }
      assert.equal(created, 1)
    } finally {
      await done(...ls)
      await secured.kill()
    }
  })

  test('upstream redis 2: a factory function is called once; its client options are used; its client is quit', async () => {
    const name = uname('factory')
    let calls = 0
    let quits = 0
    let client
    const factory = () => {
      calls++
      client = plain({ db: 5 })
      const q = client.quit.bind(client)
      client.quit = (...args) => {
        quits++
        clients.delete(client)
        return q(...args)
      }
      return client
    }
    const l = mk({ name, redis: factory })
    const db5 = plain({ db: 5 })
    try {
      assert.ok(l.redis, 'locky.redis is truthy')
      await l.lock([{ resource: 'a', locker: 'f1' }])
      await l.getLockers(['a'])
      await l.extend(['a'])
      await l.getLocks()
      assert.equal(calls, 1, 'the factory is called exactly once')
      assert.equal(await db5.get(keyOf(name, 'a')), 'f1', "the client's options (db 5) are used")
      assert.equal(await server.get(keyOf(name, 'a')), null, 'not db 0')
      await eventually(async () => quits === 1, 5000, "the factory client's quit()")
      await eventually(async () => client.status === 'end', 5000, 'the factory client to end')
      assert.deepEqual(l.errors, [])
    } finally {
      await done(l)
      await quitPlain(db5)
    }
  })

  test('upstream redis 3 (adapted): the ops of one batch apply in input order', async () => {
    const name = uname('order')
    const l = mk({ name })
    try {
      const events = record(l)
      await l.lock([
        { resource: 'same', locker: 'first' },
        { resource: 'same', locker: 'second' },
      ])
      assert.deepEqual(events, [['lock', 'same', 'first']], 'NX: the first item wins')
      assert.equal(await server.get(keyOf(name, 'same')), 'first')
      events.length = 0
      await l.lock(
        [
          { resource: 'f', locker: 'one' },
          { resource: 'f', locker: 'two' },
        ],
        true,
      )
      assert.deepEqual(events, [
        ['lock', 'f', 'one'],
        ['lock', 'f', 'two'],
      ])
      assert.equal(await server.get(keyOf(name, 'f')), 'two', 'force: the last item wins')
      events.length = 0
      await l.unlock(['f', 'f'])
      assert.deepEqual(events, [['unlock', 'f']], 'the second DEL of the batch removes nothing')
    } finally {
      await done(l)
    }
  })
})

describe('fixes of issue 9', { timeout: 30000 }, () => {
  test('fix: lock() applies PX ttl (also with force)', async () => {
    const name = uname('px')
    const l = mk({ name, ttl: 60000 })
    try {
      await l.lock([{ resource: 'a', locker: 'x' }])
      await l.lock([{ resource: 'b', locker: 'y' }], true)
      for (const r of ['a', 'b']) {
        const pttl = await server.pttl(keyOf(name, r))
        assert.ok(pttl > 50000 && pttl <= 60000, `${r}: PTTL ${pttl} should be ~60000 ms`)
      }
    } finally {
      await done(l)
    }
  })

  test('fix: extend() without ttl returns a promise resolving undefined', async () => {
    const name = uname('extnottl')
    const l = mk({ name })
    try {
      await l.lock([{ resource: 'a', locker: 'x' }])
      const events = record(l)
      const p = l.extend(['a'])
      assert.ok(p instanceof Promise, 'extend() returns a promise')
      assert.equal(await p, undefined)
      assert.deepEqual(events, [])
      assert.equal(await server.pttl(keyOf(name, 'a')), -1)
    } finally {
      await done(l)
    }
  })

  test('fix: extend() uses PEXPIRE (ms), not EXPIRE (s)', async () => {
    const name = uname('pexpire')
    const l = mk({ name, ttl: 30000 })
    try {
      // a key taken by an old process, without expiry
      await server.cmd('SADD', setOf(name), keyOf(name, 'a'))
      await server.cmd('SET', keyOf(name, 'a'), 'old')
      const events = record(l)
      assert.equal(await l.extend(['a']), true)
      assert.deepEqual(events, [['extend', 'a']])
      const pttl = await server.pttl(keyOf(name, 'a'))
      assert.ok(pttl > 20000 && pttl <= 30000, `PTTL ${pttl} should be ~30000 ms (EXPIRE would give 30000000)`)
    } finally {
      await done(l)
    }
  })

  test('fix: a held key without expiry is never reported expired (watcher and expireLocks)', async () => {
    const name = uname('held')
    const ttl = 100
    const l = mk({ name, ttl })
    try {
      const events = record(l)
      // as an old fast-locky would leave it: SADD + SETNX, no expiry
      await server.cmd('SADD', setOf(name), keyOf(name, 'old'))
      await server.cmd('SETNX', keyOf(name, 'old'), 'legacy')
      await l.expireLocks([keyOf(name, 'old')])
      await sleep(10 * ttl) // ~20 watcher rounds (and time for a late event of the call above)
      assert.deepEqual(events, [], 'no expire for a key that is still there')
      assert.deepEqual(await members(setOf(name)), [keyOf(name, 'old')], 'and it stays in the set')
      assert.equal(await server.get(keyOf(name, 'old')), 'legacy')
    } finally {
      await done(l)
    }
  })

  test('fix: expireLocks(keys) emits expire only for keys really gone and removes them from the set', async (t) => {
    const name = uname('expirelocks')
    const l = mk({ name, ttl: 60000 }) // watcher every 30 s: only our call acts here
    try {
      const events = record(l)
      await server.cmd('SADD', setOf(name), keyOf(name, 'gone'), keyOf(name, 'held'), keyOf(name, 'held-px'))
      await server.cmd('SET', keyOf(name, 'held'), 'h')
      await server.cmd('SET', keyOf(name, 'held-px'), 'h', 'PX', '60000')
      await l.expireLocks([keyOf(name, 'gone'), keyOf(name, 'held'), keyOf(name, 'held-px')])
      if (events.length === 0) t.diagnostic('expireLocks() resolved before its expire event was emitted (upstream emitted first)')
      await eventually(async () => events.length >= 1, 5000, 'the expire event')
      await sleep(300)
      assert.deepEqual(events, [['expire', 'gone']])
      assert.deepEqual(await members(setOf(name)), [keyOf(name, 'held'), keyOf(name, 'held-px')])
      await l.expireLocks([keyOf(name, 'gone')])
      await sleep(300)
      assert.deepEqual(events, [['expire', 'gone']], 'a second pass does not report it again')
    } finally {
      await done(l)
    }
  })

  test('fix: several instances sharing a set emit each real expiry once in total', async () => {
    const name = uname('shared')
    const ttl = 200
    const ls = [mk({ name, ttl }), mk({ name, ttl }), mk({ name, ttl })]
    try {
      const all = []
      ls.forEach((l, i) => l.on('expire', (r) => all.push([i, r])))
      await ls[0].lock([
        { resource: 'x', locker: 'a' },
        { resource: 'y', locker: 'b' },
      ])
      await ls[1].lock([{ resource: 'z', locker: 'c' }])
      await eventually(async () => all.length >= 3, 10000, '3 expire events in total')
      await sleep(4 * ttl)
      assert.deepEqual(all.map((e) => e[1]).sort(), ['x', 'y', 'z'], `each expiry once in total, got ${JSON.stringify(all)}`)
    } finally {
      await done(...ls)
    }
  })

  test('fix: concurrent expireLocks() of one gone key on 3 instances: one expire in total', async () => {
    const name = uname('srem')
    const ls = [mk({ name, ttl: 60000 }), mk({ name, ttl: 60000 }), mk({ name, ttl: 60000 })]
    try {
      const all = []
      ls.forEach((l, i) => l.on('expire', (r) => all.push([i, r])))
      for (let round = 0; round < 5; round++) {
        const k = keyOf(name, `g${round}`)
        await server.cmd('SADD', setOf(name), k)
        await Promise.all(ls.map((l) => l.expireLocks([k])))
      }
      await eventually(async () => all.length >= 5, 5000, '5 expire events')
      await sleep(300)
      assert.deepEqual(all.map((e) => e[1]).sort(), ['g0', 'g1', 'g2', 'g3', 'g4'], JSON.stringify(all))
    } finally {
      await done(...ls)
    }
  })

  test('fix: several processes sharing a set emit each real expiry once in total', { timeout: 40000 }, async () => {
    const name = uname('procs')
    const ttl = 300
    const childLines = []
    let ready = 0
    const runs = [0, 1].map(() =>
      runNode([WATCH, String(server.port), name, String(ttl)], {
        killAfter: 30000,
        onLine: (o) => {
          if (o.ev === 'ready') ready++
          childLines.push(o)
        },
      }),
    )
    const l = mk({ name, ttl })
    try {
      const mine = []
      l.on('expire', (r) => mine.push(r))
      await eventually(async () => ready === 2, 15000, 'both watcher processes to be ready')
      await l.lock([
        { resource: 'p1', locker: 'a' },
        { resource: 'p2', locker: 'b' },
      ])
      const total = () => mine.length + childLines.filter((o) => o.ev === 'expire').length
      await eventually(async () => total() >= 2, 10000, '2 expire events across the processes')
      await sleep(4 * ttl)
      await server.cmd('SET', `${name}:stop`, '1')
      const results = await Promise.all(runs)
      for (const r of results) assert.equal(r.code, 0, `watcher exited with ${r.code} ${r.signal}:\n${r.stderr}`)
      const all = [...mine, ...childLines.filter((o) => o.ev === 'expire').map((o) => o.resource)].sort()
      assert.deepEqual(all, ['p1', 'p2'], `each expiry once in total (this process: ${JSON.stringify(mine)}, children: ${JSON.stringify(childLines)})`)
      assert.deepEqual(childLines.filter((o) => o.ev === 'error'), [])
    } finally {
      await server.cmd('SET', `${name}:stop`, '1')
      await Promise.all(runs)
      await done(l)
    }
  })

  test('fix: with ttl null there is no polling at all', async () => {
    const l = mk({ redis: quiet.options, name: 'idle' })
    try {
      await l.getLocks() // connected
      await sleep(100)
      const count = async () => Number(/total_commands_processed:(\d+)/.exec(await quiet.cmd('INFO', 'stats'))[1])
      const c0 = await count()
      await sleep(1000)
      const c1 = await count()
      // c1 - c0 counts our first INFO; upstream's 1 ms poll would be ~1000 SMEMBERS
      assert.ok(c1 - c0 <= 5, `${c1 - c0} commands reached the server in 1 s of idleness`)
      const stats = await quiet.cmd('INFO', 'commandstats')
      assert.doesNotMatch(stats, /cmdstat_(smembers|pttl|ttl):calls=([6-9]|\d{2,})/, 'no SMEMBERS / TTL polling')
    } finally {
      await done(l)
    }
  })

  test('fix: close() resolves and the process then exits by itself (options object and factory)', { timeout: 40000 }, async () => {
    for (const mode of ['options', 'factory']) {
      const r = await runNode([CLOSE_CHILD, String(server.port), mode], { killAfter: 20000 })
      const closed = r.lines.find((o) => o.ev === 'closed')
      assert.ok(closed, `${mode}: no 'closed' line:\n${r.stdout}\n${r.stderr}`)
      assert.equal(closed.locked, true, mode)
      assert.deepEqual(closed.lockers, ['me'], mode)
      assert.equal(r.signal, null, `${mode}: the child had to be killed: something kept it alive after close()`)
      assert.equal(r.code, 0, `${mode}: exit code ${r.code}:\n${r.stderr}`)
      assert.ok(r.exitedAt - closed.at < 2000, `${mode}: exited ${r.exitedAt - closed.at} ms after close()`)
      assert.deepEqual(r.lines.filter((o) => o.ev === 'error'), [], mode)
    }
  })
})

describe('errors: emitted, never rejected', { timeout: 40000 }, () => {
  test('lock(): a Redis error reply (WRONGTYPE set) emits error and resolves undefined', async () => {
    const name = uname('wrongtype')
    const set = `${name}:badset`
    await server.cmd('SET', set, 'not a set')
    const l = mk({ name, set })
    try {
      const res = await withTimeout(l.lock([{ resource: 'a', locker: 'x' }]), 10000, 'lock() did not settle')
      assert.equal(res, undefined)
      assert.ok(l.errors.length >= 1, 'an error event')
      assert.ok(l.errors[0] instanceof Error, 'the error event carries an Error')
    } finally {
      await done(l)
    }
  })

  test('§6.2: no method rejects on a Redis error (WRONGTYPE): error event, resolves undefined', async () => {
    const name = uname('wrongtype2')
    const set = `${name}:badset`
    await server.cmd('SET', set, 'not a set')
    // resource keys of the wrong type too
    await server.cmd('SADD', keyOf(name, 'g'), 'member')
    const l = mk({ name, set, ttl: 60000 })
    try {
      const calls = {
        unlock: () => l.unlock(['a']),
        getLockers: () => l.getLockers(['g']),
        getLocks: () => l.getLocks(),
      }
      for (const [what, call] of Object.entries(calls)) {
        const before = l.errors.length
        let res
        try {
          res = await withTimeout(call(), 10000, `${what}() did not settle`)
        } catch (e) {
          assert.fail(`${what}() rejected: ${e && e.message}`)
        }
        assert.equal(res, undefined, `${what}() resolves undefined on an error`)
        assert.ok(l.errors.length > before, `${what}() emitted error`)
      }
    } finally {
      await done(l)
    }
  })

  test('lock() on a server that is down: error event, resolves undefined (never rejects)', async () => {
    const port = await freePort()
    const l = mk({ redis: { host: '127.0.0.1', port } })
    try {
      let res = 'pending'
      try {
        res = await withTimeout(l.lock([{ resource: 'a', locker: 'x' }]), 30000, 'lock() did not settle against a dead server')
      } catch (e) {
        if (e instanceof assert.AssertionError) throw e
        assert.fail(`lock() rejected: ${e && e.message}`)
      }
      assert.equal(res, undefined)
      assert.ok(l.errors.length >= 1 && l.errors[0] instanceof Error, 'an error event with an Error')
    } finally {
      await done(l)
    }
  })
})

describe('README examples (fast-locky.txt), run unchanged but for the port', { timeout: 30000 }, () => {
  test('README: lock / extend / unlock / getLockers of article:12', async () => {
    await server.flush()
    // var locky = new Locky();  (default localhost:6379 replaced by the test server)
    var locky = new Locky({ redis: { port: server.port, host: '127.0.0.1' } })
    open.add(locky)
    locky.on('error', () => {})
    try {
      const seen = []
      await locky.lock([{ resource: 'article:12', locker: 20 }]).then((v) => seen.push(['lock', v]))
      assert.equal(await server.get('lock:resource:article:12'), '20')
      await locky.extend(['article:12']).then((v) => seen.push(['extend', v]))
      await locky.getLockers(['article:12']).then((v) => seen.push(['getLockers', v]))
      await locky.unlock(['article:12']).then((v) => seen.push(['unlock', v]))
      await locky.getLockers(['article:12']).then((v) => seen.push(['getLockers', v]))
      assert.deepEqual(seen, [
        ['lock', true],
        ['extend', undefined],
        ['getLockers', ['20']],
        ['unlock', true],
        ['getLockers', [null]],
      ])
    } finally {
      await done(locky)
    }
  })

  test('README: redis options object with connect_timeout', async () => {
    const locky = new Locky({
      redis: {
        port: server.port,
        host: '127.0.0.1',
        connect_timeout: 200,
      },
    })
    open.add(locky)
    locky.on('error', () => {})
    try {
      assert.equal(await locky.lock([{ resource: 'article:1', locker: 'x' }], true), true)
      assert.deepEqual(await locky.getLockers(['article:1']), ['x'])
      await locky.unlock(['article:1'])
    } finally {
      await done(locky)
    }
  })

  test('README: redis factory (then-redis replaced by ioredis; client.select(1))', async (t) => {
    await server.flush()
    let calls = 0
    function createClient() {
      calls++
      var client = new Redis({ port: server.port, host: '127.0.0.1' }) // redis.createClient()
      clients.add(client)
      client.select(1) // Choose a custom database.
      return client
    }
    const locky = new Locky({ redis: createClient })
    open.add(locky)
    locky.on('error', () => {})
    const db1 = plain({ db: 1 })
    try {
      assert.equal(await locky.lock([{ resource: 'article:7', locker: 'r' }]), true)
      assert.deepEqual(await locky.getLockers(['article:7']), ['r'])
      assert.equal(calls, 1)
      const where = (await db1.get('lock:resource:article:7')) !== null ? 'db 1' : (await server.get('lock:resource:article:7')) !== null ? 'db 0' : 'nowhere'
      // client.select(1) does not change ioredis' client.options.db, which is what oxlock reads
      t.diagnostic(`README factory with client.select(1): the lock landed in ${where}`)
      assert.notEqual(where, 'nowhere')
      await locky.unlock(['article:7'])
    } finally {
      await done(locky)
      await quitPlain(db1)
    }
  })

  test('README: new Locky({ ttl: 2000 }) and lock(..., true) resolves true', async () => {
    const locky = new Locky({ redis: server.options, ttl: 2000 })
    open.add(locky)
    locky.on('error', () => {})
    try {
      const logged = []
      await locky
        .lock(
          [
            {
              resource: 'article:23',
              locker: 20,
            },
          ],
          true,
        )
        .then((locked) => logged.push(locked)) // true the lock has been taken
      assert.deepEqual(logged, [true])
      const pttl = await server.pttl('lock:resource:article:23')
      assert.ok(pttl > 0 && pttl <= 2000, `PTTL ${pttl}`)
      // Refresh the resource "article:23".
      assert.equal(await locky.extend(['article:23']).then((v) => v), true)
      // Return the locker of the resource "article:23".
      assert.deepEqual(await locky.getLocker(['article:23']).then((v) => v), ['20'])
      // Unlock the resource "article:23".
      assert.equal(await locky.unlock(['article:23']).then((v) => v), true)
      assert.equal(await server.get('lock:resource:article:23'), null)
    } finally {
      await done(locky)
    }
  })

  test('README: the lock / unlock / expire / error events', async () => {
    await server.flush()
    const locky = new Locky({ redis: server.options, ttl: 200 })
    open.add(locky)
    const seen = []
    locky.on('lock', (resource, locker) => seen.push(['lock', resource, String(locker)]))
    locky.on('unlock', (resource) => seen.push(['unlock', resource]))
    locky.on('expire', (resource) => seen.push(['expire', resource]))
    locky.on('error', (error) => seen.push(['error', error]))
    try {
      await locky.lock([{ resource: 'article:1', locker: 1 }, { resource: 'article:2', locker: 2 }])
      await locky.unlock(['article:1'])
      await eventually(async () => seen.some((e) => e[0] === 'expire'), 10000, 'the expire event')
      await sleep(600)
      assert.deepEqual(seen, [
        ['lock', 'article:1', '1'],
        ['lock', 'article:2', '2'],
        ['unlock', 'article:1'],
        ['expire', 'article:2'],
      ])
      // error: the public error(err) method emits 'error'
      const e = new Error('boom')
      locky.error(e)
      assert.deepEqual(seen.at(-1), ['error', e])
    } finally {
      await done(locky)
    }
  })
})

describe('interop with old fast-locky processes (a plain client writing the same keys)', { timeout: 30000 }, () => {
  test('interop: a key written as old fast-locky would (SADD + SETNX) is held: getLockers sees it, lock is blocked', async () => {
    const name = uname('old')
    const old = plain()
    const l = mk({ name })
    try {
      await old.sadd(setOf(name), keyOf(name, 'doc'))
      assert.equal(await old.setnx(keyOf(name, 'doc'), 'old-locker'), 1)
      assert.deepEqual(await l.getLockers(['doc']), ['old-locker'])
      assert.deepEqual(await l.getLocks(), [keyOf(name, 'doc')])
      const events = record(l)
      assert.equal(await l.lock([{ resource: 'doc', locker: 'new' }]), true)
      assert.deepEqual(events, [], 'no lock event: the old process holds it')
      assert.equal(await old.get(keyOf(name, 'doc')), 'old-locker')
      // the old process unlocks (SREM + DEL): we can take it
      await old.multi().srem(setOf(name), keyOf(name, 'doc')).del(keyOf(name, 'doc')).exec()
      assert.deepEqual(await l.getLockers(['doc']), [null])
      await l.lock([{ resource: 'doc', locker: 'new' }])
      assert.deepEqual(events, [['lock', 'doc', 'new']])
    } finally {
      await done(l)
      await quitPlain(old)
    }
  })

  test('interop: a lock taken by us is read by a plain GET / SMEMBERS; the old process can unlock it; we unlock its keys', async () => {
    const old = plain()
    const l = mk({ ttl: 30000 }) // no name: lock:resource:<r>, lock:currents
    try {
      await server.flush()
      await l.lock([
        { resource: 'article:5', locker: 42 },
        { resource: 'b', locker: 'bob' },
      ])
      assert.equal(await old.get('lock:resource:article:5'), '42')
      assert.equal(await old.get('lock:resource:b'), 'bob')
      assert.deepEqual((await old.smembers('lock:currents')).sort(), ['lock:resource:article:5', 'lock:resource:b'])
      const pttl = await old.pttl('lock:resource:b')
      assert.ok(pttl > 20000 && pttl <= 30000, `PTTL ${pttl}`)
      // an old process's SETNX is refused
      assert.equal(await old.setnx('lock:resource:b', 'old'), 0)
      // the old process unlocks b
      await old.multi().srem('lock:currents', 'lock:resource:b').del('lock:resource:b').exec()
      assert.deepEqual(await l.getLockers(['article:5', 'b']), ['42', null])
      // we unlock a key the old process took
      await old.sadd('lock:currents', 'lock:resource:legacy')
      await old.setnx('lock:resource:legacy', 'old')
      const events = record(l)
      assert.equal(await l.unlock(['legacy', 'article:5']), true)
      assert.deepEqual(events, [
        ['unlock', 'legacy'],
        ['unlock', 'article:5'],
      ])
      assert.deepEqual(await old.smembers('lock:currents'), [])
    } finally {
      await done(l)
      await quitPlain(old)
    }
  })
})

// A TCP proxy in front of a server that measures round trips: while armed, the server's replies
// are held until the client has been silent for `quietMs`, then released at once (one
// "round"). A pipelined batch is one round; a client that waits for each reply before sending
// the next command makes one round per command (capped: after 4 rounds it passes through).
async function roundTripProxy(targetPort, quietMs = 150) {
  const stats = { armed: false, rounds: 0, connections: 0, quietMs }
  const conns = new Set()
  const proxy = net.createServer((c) => {
    stats.connections++
    const u = net.connect({ port: targetPort, host: '127.0.0.1' })
    const st = { held: [], last: Date.now(), timer: null, c, u }
    conns.add(st)
    const check = () => {
      st.timer = null
      if (st.held.length === 0) return
      const idle = Date.now() - st.last
      if (stats.armed && stats.rounds < 4 && idle < quietMs) {
        st.timer = setTimeout(check, quietMs - idle)
        return
      }
      if (stats.armed) stats.rounds++
      c.write(Buffer.concat(st.held))
      st.held = []
    }
    st.flush = () => {
      clearTimeout(st.timer)
      st.timer = null
      if (st.held.length) c.write(Buffer.concat(st.held))
      st.held = []
    }
    c.on('data', (d) => {
      st.last = Date.now()
      u.write(d)
    })
    u.on('data', (d) => {
      if (!stats.armed || stats.rounds >= 4) return c.write(d)
      st.held.push(d)
      if (!st.timer) st.timer = setTimeout(check, quietMs)
    })
    const end = () => {
      clearTimeout(st.timer)
      c.destroy()
      u.destroy()
      conns.delete(st)
    }
    c.on('error', end)
    u.on('error', end)
    c.on('close', end)
    u.on('close', end)
  })
  await new Promise((r) => proxy.listen(0, '127.0.0.1', r))
  return {
    port: proxy.address().port,
    stats,
    arm() {
      stats.rounds = 0
      stats.armed = true
    },
    disarm() {
      stats.armed = false
      for (const st of conns) st.flush()
    },
    async close() {
      for (const st of conns) {
        st.c.destroy()
        st.u.destroy()
      }
      await new Promise((r) => proxy.close(r))
    },
  }
}

describe('pipelining', { timeout: 40000 }, () => {
  test('a batch of 100 items is one round trip on one connection', async (t) => {
    const proxy = await roundTripProxy(server.port)
    const name = uname('batch')
    const l = mk({ name, redis: { host: '127.0.0.1', port: proxy.port } })
    try {
      await l.getLocks() // connected (handshake outside the measure)
      const items = Array.from({ length: 100 }, (_, i) => ({ resource: `r${i}`, locker: `l${i}` }))
      const events = record(l)

      proxy.arm()
      const res = await withTimeout(l.lock(items), 20000, 'lock() of 100 items')
      const lockRounds = proxy.stats.rounds
      proxy.disarm()
      assert.equal(res, true)
      assert.equal(events.length, 100)
      assert.deepEqual(events.map((e) => e[1]), items.map((i) => i.resource), 'lock events in input order')
      assert.equal(lockRounds, 1, `lock() of 100 items took ${lockRounds} round trips${lockRounds >= 4 ? ' or more' : ''}`)
      assert.equal((await members(setOf(name))).length, 100)

      // getLockers and unlock of 100: reported, not asserted (the contract names lock() only)
      proxy.arm()
      const lockers = await withTimeout(l.getLockers(items.map((i) => i.resource)), 20000, 'getLockers() of 100')
      const getRounds = proxy.stats.rounds
      proxy.disarm()
      assert.deepEqual(lockers, items.map((i) => i.locker))
      proxy.arm()
      await withTimeout(l.unlock(items.map((i) => i.resource)), 20000, 'unlock() of 100')
      const unlockRounds = proxy.stats.rounds
      proxy.disarm()
      t.diagnostic(`round trips: lock ${lockRounds}, getLockers ${getRounds}, unlock ${unlockRounds}`)
      assert.equal(events.filter((e) => e[0] === 'unlock').length, 100)
      assert.equal(proxy.stats.connections, 1, `Locky opened ${proxy.stats.connections} connections`)
    } finally {
      proxy.disarm()
      await done(l)
      await proxy.close()
    }
  })
})

describe('contention between processes', { timeout: 60000 }, () => {
  test('3 processes × 20 locks of one resource: never two holders, no lost update', async () => {
    const name = uname('contend')
    const target = 20
    const runs = await Promise.all(
      [0, 1, 2].map(() => runNode([CONTEND, String(server.port), name, String(target), '3'], { killAfter: 45000 })),
    )
    let contended = 0
    for (const r of runs) {
      assert.equal(r.code, 0, `a contending process failed (code ${r.code}, signal ${r.signal}):\n${r.stderr}`)
      const d = r.lines.find((o) => o.ev === 'done')
      assert.ok(d, `no 'done' line:\n${r.stdout}\n${r.stderr}`)
      assert.deepEqual(d.violations, [], 'two holders at once')
      assert.deepEqual(d.errors, [])
      assert.equal(d.got, target, `pid ${d.pid} took the lock ${d.got} times in ${d.attempts} attempts`)
      contended += d.contended
    }
    assert.equal(await server.get(`${name}:counter`), String(3 * target), 'lost update: two holders at once')
    assert.equal(await server.get(keyOf(name, 'r')), null, 'the lock is free at the end')
    assert.ok(contended > 0, 'the processes never contended')
  })
})
