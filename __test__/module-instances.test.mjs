// Several instances of the JS module on one thread (jest-style per-file module registries,
// vm contexts): each instance works on its own, and in process scope they share one table.
import { test, describe, after } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { setImmediate as immediate } from 'node:timers/promises'
import fs from 'node:fs'
import path from 'node:path'
import vm from 'node:vm'

import Main from '../index.mjs'
import { since, state, assertPending, rejectsWith, assertExpiresIn } from './helpers.mjs'

const ROOT = path.dirname(fileURLToPath(new URL('../index.js', import.meta.url)))
const require = createRequire(path.join(ROOT, 'index.js'))
const OWN_JS = ['index.js', 'errors.js', 'binding.js'].map((f) => path.join(ROOT, f))

/**
 * A fresh instance of the module through Node's own loader, as a per-file module registry
 * would make it. `native: false` keeps the cached addon (jest reuses native modules);
 * `native: true` loads the addon again too.
 */
function freshRequire({ native = false } = {}) {
  const saved = new Map()
  for (const k of Object.keys(require.cache)) {
    if (OWN_JS.includes(k) || (native && k.startsWith(ROOT + path.sep) && k.endsWith('.node'))) {
      saved.set(k, require.cache[k])
      delete require.cache[k]
    }
  }
  try {
    return require('./index.js')
  } finally {
    // Put the original instance back for whoever requires it next.
    for (const [k, v] of saved) require.cache[k] = v
  }
}

/** The module loaded in a new vm context with a minimal CommonJS loader (as jest does). */
function loadInVmContext() {
  const ctx = vm.createContext({
    setInterval,
    clearInterval,
    setTimeout,
    clearTimeout,
    setImmediate,
    clearImmediate,
    queueMicrotask,
    process,
    console,
    AbortController,
    AbortSignal,
    EventTarget,
  })
  const cache = new Map()
  const load = (file) => {
    if (cache.has(file)) return cache.get(file).exports
    const module = { exports: {} }
    cache.set(file, module)
    const src = fs.readFileSync(file, 'utf8')
    const fn = vm.runInContext(`(function (exports, require, module, __filename, __dirname) {${src}\n})`, ctx, { filename: file })
    const req = (id) => {
      if (id.startsWith('.')) {
        const p = require.resolve(path.resolve(path.dirname(file), id))
        return p.endsWith('.js') ? load(p) : require(p) // the addon itself: Node's loader
      }
      return require(id)
    }
    fn(module.exports, req, module, file, path.dirname(file))
    return module.exports
  }
  return load(path.join(ROOT, 'index.js'))
}

const managers = []
after(() => Promise.all(managers.map((m) => m.destroy())))
function mk(Lib, options) {
  const m = Lib.create(options)
  managers.push(m)
  return m
}

const variants = [
  ['fresh module registry (addon cached)', () => freshRequire()],
  ['fresh module registry (addon loaded again)', () => freshRequire({ native: true })],
  ['vm context', () => loadInVmContext()],
]

for (const [name, load] of variants) {
  describe(`a second module instance on the main thread: ${name}`, () => {
    test('is a distinct instance that works on its own', async () => {
      const B = load()
      assert.notEqual(B, Main)
      assert.notEqual(B.create, Main.create)
      const m = mk(B, { retry: 0, namespace: 'mi' })
      const t0 = Date.now()
      const h = await m.lockNs('k', 700)
      assert.equal(h.resource, 'mi:k')
      assert.match(h.value, /^[0-9a-f]{32}$/)
      assertExpiresIn(h, 700, t0)
      const busy = await m.lockNs('k').catch((e) => e)
      assert.equal(busy.code, 'E_LOCK_BUSY')
      assert.equal(busy.attempts, 1)
      await h.unlock()
      assert.equal(m.isLocked('mi:k'), false)
      assert.equal(m.size, 0)
    })

    test('interleaved calls through both instances use their own ttl and manager', async () => {
      const B = load()
      const a = mk(Main, { retry: 0 })
      const b = mk(B, { retry: 0 })
      // Alternate instances call by call: each call must see its own arguments.
      const hs = []
      const t0 = Date.now()
      for (let i = 0; i < 20; i++) {
        const ttl = 1000 + i * 100
        const m = i % 2 ? b : a
        hs.push([await m.lock(`mi:inter-${i}`, ttl), ttl, m])
      }
      for (const [h, ttl, m] of hs) {
        assertExpiresIn(h, ttl, t0)
        assert.equal(m.isLocked(h.resource), true)
        assert.equal((m === a ? b : a).isLocked(h.resource), false, 'instance scope: the other manager does not see it')
      }
      assert.equal(a.size, 10)
      assert.equal(b.size, 10)
      for (const [h] of hs) await h.unlock()
      assert.equal(a.size + b.size, 0)
    })

    test('process scope: the instances exclude each other and hand off on unlock and on ttl', async () => {
      const B = load()
      const a = mk(Main, { scope: 'process', retry: 10, delay: 2000 })
      const b = mk(B, { scope: 'process', retry: 10, delay: 2000 })
      const ha = await a.lock('mi:ps', 60000)
      assert.equal(b.isLocked('mi:ps'), true)
      const pb = b.lock('mi:ps', 120)
      await assertPending(pb, 'instance B waiter')
      const t0 = Date.now()
      await ha.unlock()
      const hb = await pb
      assert.ok(since(t0) < 1000, `B got it ${since(t0)} ms after A's unlock`)
      assertExpiresIn(hb, 120, t0, "B's lock (ttl 120, granted by A's unlock)")
      // Nobody unlocks B's lock: A's waiter gets it when B's ttl runs out.
      const t1 = Date.now()
      const ha2 = await a.lock('mi:ps', 5000)
      assert.ok(since(t1) < 1500, `A got it ${since(t1)} ms later, at B's ttl (not at the 2000 ms delay)`)
      assert.equal(hb.expiration, 0)
      await hb.unlock() // stale
      assert.equal(b.isLocked('mi:ps'), true)
      await ha2.unlock()
      assert.equal(b.isLocked('mi:ps'), false)
    })

    test('process scope: mutual exclusion and FIFO across instances', async () => {
      const B = load()
      const C = load()
      const ms = [Main, B, C].map((L) => mk(L, { scope: 'process', retry: -1 }))
      let inside = 0
      const order = []
      const holder = await ms[0].lock('mi:fifo')
      const all = Array.from({ length: 90 }, (_, i) =>
        ms[i % 3].lock('mi:fifo').then(async (h) => {
          order.push(i)
          assert.equal(++inside, 1, 'two holders at once')
          await immediate()
          inside--
          await h.unlock()
        }),
      )
      await holder.unlock()
      await Promise.all(all)
      assert.deepEqual(order, Array.from({ length: 90 }, (_, i) => i))
      assert.equal(ms[1].isLocked('mi:fifo'), false)
    })

    test('destroy() in one instance leaves the other working and passes its keys on', async () => {
      const B = load()
      const a = mk(Main, { scope: 'process', retry: -1 })
      const b = B.create({ scope: 'process', retry: -1 })
      await b.lock('mi:destroy', 60000)
      const queuedB = b.lock('mi:destroy')
      const pa = a.lock('mi:destroy')
      await b.destroy()
      const e = await queuedB.catch((x) => x)
      assert.equal(e.code, 'E_DESTROYED')
      const s = await state(pa)
      assert.ok(s !== 'pending' && 'ok' in s, "A's waiter got B's key")
      await s.ok.unlock()
      await rejectsWith(a.lock('mi:destroy', 0), RangeError, 'E_OUT_OF_RANGE')
      const again = await a.lock('mi:destroy')
      await again.unlock()
    })
  })
}

describe('module instances in a worker thread', () => {
  test('a worker with two module instances that exits frees the locks of both', async () => {
    const { Worker } = await import('node:worker_threads')
    const { once } = await import('node:events')
    const w = new Worker(
      `
      const { parentPort } = require('node:worker_threads')
      const path = require('node:path')
      const root = ${JSON.stringify(ROOT)}
      const A = require(path.join(root, 'index.js'))
      for (const f of ['index.js', 'errors.js', 'binding.js']) delete require.cache[path.join(root, f)]
      const B = require(path.join(root, 'index.js'))
      const a = A.create({ scope: 'process' })
      const b = B.create({ scope: 'process' })
      Promise.all([a.lock('mi:w-a', 60000), b.lock('mi:w-b', 60000)]).then(() => parentPort.postMessage(A !== B))
      parentPort.on('message', () => process.exit(0))
      `,
      { eval: true },
    )
    const [distinct] = await once(w, 'message')
    assert.equal(distinct, true)
    const m = mk(Main, { scope: 'process', retry: -1 })
    assert.equal(m.isLocked('mi:w-a'), true)
    assert.equal(m.isLocked('mi:w-b'), true)
    const pa = m.lock('mi:w-a', 1000)
    const pb = m.lock('mi:w-b', 1000)
    w.postMessage('exit')
    await once(w, 'exit')
    const [ha, hb] = await Promise.all([pa, pb])
    await ha.unlock()
    await hb.unlock()
    assert.equal(m.isLocked('mi:w-a'), false)
    assert.equal(m.isLocked('mi:w-b'), false)
  })
})
