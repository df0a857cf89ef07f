// The JS lock table of `scope: 'instance'` (lib/table.js): the hot path makes no native call
// (scope 'process' still uses the shared native table), and using() with no bound holds the
// lock while its function runs without timers, also past the ttl and across an extend().
// Fences across managers, waiter unlinking, abort between keys, destroy() of a pinned lock,
// and a random workload checked for exclusion and FIFO order.
import { test, describe, after } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'

import { create } from '../index.mjs'
import { state, rejectsWith } from './helpers.mjs'
import { AbortError } from '../index.mjs'

const require = createRequire(import.meta.url)
const { native } = require('../lib/native.js')
const { LockTable } = require('../lib/table.js')
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const managers = []
after(() => Promise.all(managers.map((m) => m.destroy())))
const mk = (options) => {
  const m = create(options)
  managers.push(m)
  return m
}

// Counts the calls of the native in-memory functions while `fn` runs.
async function nativeCalls(fn) {
  const names = ['acquire', 'release', 'extend', 'expiration', 'isLocked', 'size', 'cancel']
  const saved = names.map((n) => native[n])
  let calls = 0
  names.forEach((n, i) => {
    native[n] = (...a) => (calls++, saved[i](...a))
  })
  try {
    await fn()
  } finally {
    names.forEach((n, i) => (native[n] = saved[i]))
  }
  return calls
}

async function cycles(m) {
  const h = await m.lock('table:k', 1000)
  const waiter = m.lock('table:k', 1000)
  await h.extend(2000)
  assert.ok(h.expiration > Date.now() && m.isLocked('table:k') && m.size === 1)
  await h.unlock()
  await (await waiter).unlock()
}

describe('the in-memory table of scope "instance"', () => {
  test('lock, queue, extend, unlock: no native call; scope "process" uses the native table', async () => {
    assert.equal(await nativeCalls(() => cycles(mk())), 0)
    assert.ok((await nativeCalls(() => cycles(mk({ scope: 'process' })))) > 0)
  })

  test('using() with no bound keeps the lock past its ttl while fn runs, also across extend()', async () => {
    const m = mk({ retry: -1 })
    let fnDone = 0
    const run = m.using('table:pin', async (signal, h) => {
      await sleep(60) // well past the 20 ms ttl
      assert.ok(h.expiration > Date.now(), 'shown as extended')
      await h.extend(10) // a short extend does not end the hold
      await sleep(60)
      assert.equal(signal.aborted, false)
      assert.equal(m.isLocked('table:pin'), true)
      fnDone = performance.now()
    }, { ttl: 20 })
    await sleep(5)
    const next = m.lock('table:pin', 1000)
    assert.equal(await state(next), 'pending')
    await run
    const h = await next
    assert.ok(fnDone > 0, 'the waiter got the key once fn was done')
    await h.unlock()
    assert.equal(m.size, 0)
  })

  test('using() with a bound still ends at it (no pinning)', async () => {
    const m = mk({ retry: -1 })
    let aborted
    await m.using('table:bounded', async (signal) => {
      await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }))
      aborted = signal.reason
    }, { ttl: 100, maxHoldMs: 150 })
    assert.equal(aborted.code, 'E_LOCK_LOST')
  })

  test('fences keep increasing across managers (one made again never starts lower)', async () => {
    const m1 = mk()
    const f1 = (await m1.lock('table:fence', 1000)).fence
    await m1.destroy()
    const m2 = mk()
    const f2 = (await m2.lock('table:fence', 1000)).fence
    assert.ok(Number.isSafeInteger(f2) && f2 > f1, `${f2} after ${f1}`)
  })

  test('waiters that give up leave the queue at once; the others keep their order', () => {
    const t = new LockTable(-1)
    assert.ok(t.take('k', 1000) > 0)
    const got = []
    const w = (name) => ({ name, key: 'k', ttl: 1000, prev: null, next: null, gone: false, deadline: undefined, granted: () => got.push(name) })
    const [a, b, c] = [w('a'), w('b'), w('c')]
    for (const x of [a, b, c]) t.enqueue('k', x)
    assert.equal(t.cancel(b), true)
    assert.equal(t.cancel(b), false)
    const st = t.keys.get('k')
    assert.equal(st.waiting, 2)
    assert.ok(st.head === a && a.next === c && c.prev === a && st.tail === c, 'b unlinked')
    const holder = [...t.keys.values()][0].holder
    t.release('k', holder)
    assert.deepEqual(got, ['a'])
    t.cancel(c)
    assert.equal(t.keys.get('k').head, null)
    t.destroy(() => {})
  })

  test('a multi-resource lock aborted between two keys rejects and holds nothing', async () => {
    const m = mk({ retry: -1 })
    const h = await m.lock('table:m1', 1000)
    const ac = new AbortController()
    const p = m.lock(['table:m1', 'table:m2'], { ttl: 1000, signal: ac.signal })
    const blocker = await m.lock('table:m2', 1000)
    await h.unlock() // m1 passes to the multi lock, which then waits for m2
    ac.abort('stop')
    const err = await rejectsWith(p, AbortError, 'E_ABORTED')
    assert.deepEqual(err.resources, ['table:m1', 'table:m2'])
    await blocker.unlock()
    assert.equal(m.isLocked('table:m1'), false)
    assert.equal(m.size, 0)
  })

  test('destroy() aborts the signal of a pinned using() with E_LOCK_LOST', async () => {
    const m = create()
    let reason
    const run = m.using('table:destroy', async (signal) => {
      await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }))
      reason = signal.reason
    })
    await sleep(10)
    await m.destroy()
    await run
    assert.equal(reason.code, 'E_LOCK_LOST')
  })

  test('random workload: one holder per key at a time, waiters served in call order', { timeout: 30000 }, async () => {
    const m = create({ retry: -1 })
    managers.push(m)
    const keys = ['r:a', 'r:b', 'r:c']
    const held = new Map(keys.map((k) => [k, new Set()])) // handles not released yet
    const waiting = new Map(keys.map((k) => [k, []])) // { seq } in call order, still waiting
    let seq = 0
    let grants = 0
    let rnd = 12345
    const rand = (n) => ((rnd = (rnd * 1103515245 + 12345) % 2147483648) % n)
    const task = async () => {
      for (let i = 0; i < 40; i++) {
        const key = keys[rand(keys.length)]
        const ttl = 5 + rand(40)
        const ac = rand(5) === 0 ? new AbortController() : undefined
        const me = { seq: ++seq }
        waiting.get(key).push(me)
        if (ac) {
          setTimeout(() => {
            me.aborting = true // it leaves the queue now; its rejection is seen a bit later
            ac.abort()
          }, rand(20))
        }
        let h
        try {
          h = await m.lock(key, { ttl, signal: ac?.signal })
        } catch (e) {
          assert.equal(e.code, 'E_ABORTED')
          waiting.set(key, waiting.get(key).filter((w) => w !== me))
          continue
        }
        const q = waiting.get(key)
        // Nobody who called earlier on this key (and did not give up) is still waiting.
        const earlier = q.filter((w) => w.seq < me.seq && !w.aborting)
        assert.deepEqual(earlier, [], `FIFO on ${key}: ${me.seq} served before ${earlier.map((w) => w.seq)}`)
        waiting.set(key, q.filter((w) => w !== me))
        // Every other unreleased holder of the key has expired.
        for (const other of held.get(key)) {
          const exp = other.expiration
          assert.ok(exp === 0 || exp <= Date.now() + 1, `two holders of ${key}`)
        }
        held.get(key).add(h)
        grants++
        const hold = rand(30)
        // (On a loaded machine the ttl may have run out already: then extend() says so.)
        if (rand(4) === 0) await h.extend(ttl + 10).catch((e) => assert.equal(e.code, 'E_LOCK_EXPIRED'))
        await sleep(hold)
        held.get(key).delete(h)
        await h.unlock()
      }
    }
    await Promise.all(Array.from({ length: 12 }, task))
    assert.ok(grants > 300, `${grants} grants`)
    assert.equal(m.size, 0)
  })

  test('using() with an argument-less arrow: fn runs after using() returns, holds the key, releases it', async () => {
    const m = mk({ retry: -1 })
    const order = []
    const p = m.using('table:free', () => {
      order.push('fn')
      assert.equal(m.isLocked('table:free'), true)
      return 7
    })
    order.push('after call')
    assert.equal(await p, 7)
    assert.deepEqual(order, ['after call', 'fn'])
    assert.equal(m.isLocked('table:free'), false)
    await rejectsWith(m.using('table:free', async () => { throw new RangeError('boom') }), RangeError)
    assert.equal(m.isLocked('table:free'), false)
    // Held: it waits its turn like any other call.
    const h = await m.lock('table:free', 1000)
    let ran = false
    const q = m.using('table:free', () => { ran = true })
    await sleep(10)
    assert.equal(ran, false)
    await h.unlock()
    await q
    assert.equal(ran, true)
    assert.equal(m.size, 0)
  })

  test('argument-less using() calls on a held key queue in FIFO order with lock() calls, run one at a time, and a throw releases', async () => {
    const m = mk({ retry: -1 })
    const k = 'table:bare-queue'
    const order = []
    let holders = 0
    const section = async (name) => {
      assert.equal(++holders, 1, `${name} ran while another held the key`)
      order.push(name)
      await sleep(1)
      holders--
    }
    const h = await m.lock(k, 1000)
    const calls = [
      m.using(k, () => section('u1')),
      m.lock(k, 1000).then(async (l) => { await section('l2'); await l.unlock() }),
      m.using(k, async () => { await section('u3'); throw new TypeError('u3 failed') }),
      m.using(k, () => section('u4')),
    ]
    await sleep(5)
    assert.deepEqual(order, [])
    await h.unlock()
    const results = await Promise.allSettled(calls)
    assert.deepEqual(order, ['u1', 'l2', 'u3', 'u4'])
    assert.equal(results[2].reason.constructor, TypeError)
    // usingNs() with no namespace is refused, as lockNs() is (it ran on "undefined:k").
    const e = await rejectsWith(m.usingNs(k, () => 'not this key'), Error, 'E_CONFIG')
    assert.match(e.message, /namespace/)
    assert.equal(m.isLocked(k), false)
    assert.equal(m.size, 0)
  })

  test('argument-less using() handed on along a long queue: no nesting, a thenable holds the key until it settles, never run inside unlock()', { timeout: 20000 }, async () => {
    const m = mk({ retry: -1 })
    const k = 'table:bare-chain'
    const h = await m.lock(k, 1000)
    // 20 000 calls whose functions return at once: each runs after the one before ends,
    // in call order, and none inside another's stack (a nested run would overflow it).
    const seen = []
    let depth = 0
    const calls = Array.from({ length: 20000 }, (_, i) => m.using(k, () => {
      depth++
      assert.equal(depth, 1)
      seen.push(i)
      depth--
      return i
    }))
    let inUnlock = true
    const afterUnlock = m.using(k, () => assert.equal(inUnlock, false))
    h.unlock()
    inUnlock = false
    const results = await Promise.all(calls)
    assert.deepEqual(results, seen)
    assert.equal(seen.length, 20000)
    assert.ok(seen.every((v, i) => v === i))
    await afterUnlock
    // A thenable (not a native promise) keeps the key until it settles.
    let settle
    const thenable = { then: (ok) => { settle = ok } }
    const held = m.using(k, () => thenable)
    await sleep(5)
    assert.equal(m.isLocked(k), true)
    settle('done')
    assert.equal(await held, 'done')
    assert.equal(m.isLocked(k), false)
    // A function that throws at once, or returns an object whose `then` throws, rejects
    // with that error and releases the key; a plain object is a result like any other.
    await rejectsWith(m.using(k, () => { throw new TypeError('at once') }), TypeError)
    const trap = { get then() { throw new RangeError('then') } }
    await rejectsWith(m.using(k, () => trap), RangeError)
    const plain = { then: 1 }
    assert.equal(await m.using(k, () => plain), plain)
    assert.equal(m.isLocked(k), false)
    assert.equal(m.size, 0)
  })

  test('argument-less using() on a held key: E_LOCK_BUSY when its wait budget ends, E_DESTROYED on destroy(), the key given on to the next', async () => {
    const busy = mk({ retry: 1, delay: 10 }) // waitMs 10 + jitter bound
    const k = 'table:bare-busy'
    const h = await busy.lock(k, 1000)
    let ran = false
    await rejectsWith(busy.using(k, () => { ran = true }), Error, 'E_LOCK_BUSY')
    assert.equal(ran, false)
    await h.unlock()
    assert.equal(await busy.using(k, () => 'free again'), 'free again')
    const none = mk({ retry: 0 })
    const h0 = await none.lock(k, 1000)
    await rejectsWith(none.using(k, () => 1), Error, 'E_LOCK_BUSY')
    await h0.unlock()
    const d = mk({ retry: -1 })
    const hd = await d.lock(k, 1000)
    const q = d.using(k, () => { ran = true })
    await sleep(5)
    await d.destroy()
    await rejectsWith(q, Error, 'E_DESTROYED')
    assert.equal(ran, false)
    await hd.unlock()
  })

  test('argument-less usingNs() takes the namespaced key', async () => {
    const m = mk({ namespace: 'ns' })
    let inside
    await m.usingNs('k', () => { inside = [m.isLocked('ns:k'), m.isLocked('k')] })
    assert.deepEqual(inside, [true, false])
  })

  test('a function that may read its arguments still gets the signal and the handle', async () => {
    const m = mk()
    const seen = []
    await m.using('table:args', function () { seen.push(arguments[0] instanceof AbortSignal, typeof arguments[1]) })
    await m.using('table:args', (...a) => { seen.push(a[0] instanceof AbortSignal, typeof a[1]) })
    await m.using('table:args', (signal = null) => { seen.push(signal instanceof AbortSignal) })
    assert.deepEqual(seen, [true, 'object', true, 'object', true])
  })

  test('the argument-less forms (async, spaces, line breaks) make no signal; any parameter does', async () => {
    const m = mk()
    const Real = globalThis.AbortController
    let made = 0
    globalThis.AbortController = class extends Real {
      constructor() {
        super()
        made++
      }
    }
    try {
      const count = async (fn) => {
        made = 0
        await m.using('table:forms', fn)
        return made
      }
      const bare = [() => 1, async () => 1, ( ) => 1, async( )=>1, (
        ) => 1, async	() => 1]
      for (const fn of bare) assert.equal(await count(fn), 0, String(fn))
      const seeing = [(a) => a, (...a) => a, (a = 1) => a, function () { return 1 }, async function () { return 1 }]
      for (const fn of seeing) assert.equal(await count(fn), 1, String(fn))
    } finally {
      globalThis.AbortController = Real
    }
  })

  test('a caller behind waiters of an expired holder queues after them; the first gets the key at the expiry', async () => {
    const m = mk({ retry: -1 })
    const k = 'table:expired-queue'
    await m.lock(k, 30) // never unlocked
    const order = []
    const first = m.lock(k, 1000).then((h) => (order.push('first'), h))
    const until = Date.now() + 60
    while (Date.now() < until); // the holder's ttl runs out before its timer can run
    const second = m.lock(k, 1000).then((h) => (order.push('second'), h))
    const h1 = await first
    assert.deepEqual(order, ['first'])
    assert.equal(m.isLocked(k), true)
    await h1.unlock()
    await (await second).unlock()
    assert.deepEqual(order, ['first', 'second'])
  })

  test('an argument-less using() handed the key by a release holds it past its ttl while fn runs', async () => {
    const m = mk({ retry: -1 })
    const k = 'table:bare-handoff'
    const h = await m.lock(k, 1000)
    let during
    const q = m.using(k, async () => {
      await sleep(80) // four times its ttl
      const ac = new AbortController()
      setTimeout(() => ac.abort(), 20)
      during = [m.isLocked(k), await m.lock(k, { signal: ac.signal }).then(() => 'taken', (e) => e.code)]
    }, { ttl: 20 })
    await sleep(5)
    await h.unlock()
    await q
    assert.deepEqual(during, [true, 'E_ABORTED'])
    assert.equal(m.isLocked(k), false)
  })

  test('an argument-less using() on a free key reads no clock and holds the key past its ttl while fn runs', async () => {
    const m = mk({ retry: -1 })
    const k = 'table:bare-free'
    const { performance } = await import('node:perf_hooks')
    const real = performance.now
    let reads = 0
    performance.now = function () {
      reads++
      return real.call(this)
    }
    let during
    let q
    try {
      q = m.using(k, async () => {
        await sleep(80) // four times its ttl
        const ac = new AbortController()
        setTimeout(() => ac.abort(), 20)
        during = [m.isLocked(k), await m.lock(k, { signal: ac.signal }).then(() => 'taken', (e) => e.code)]
      }, { ttl: 20 })
      assert.equal(reads, 0, 'using() read the clock')
      const h = m.lock('table:bare-free:other', 1000)
      assert.equal(reads, 1, 'lock() reads the clock once')
      await (await h).unlock()
    } finally {
      performance.now = real
    }
    await q
    assert.deepEqual(during, [true, 'E_ABORTED'])
    assert.equal(m.isLocked(k), false)
  })
})
