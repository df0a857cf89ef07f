// In-memory semantics: mutual exclusion, FIFO, wait budgets, ttl handoff, extend, abort.
import { test, describe, after } from 'node:test'
import assert from 'node:assert/strict'
import { getEventListeners } from 'node:events'
import { setImmediate as immediate } from 'node:timers/promises'

import { create, wait, LockError, AbortError } from '../index.mjs'
import { since, state, rejectsWith, rejectsAtOnce, assertPending, checkError, spinUntil, settle, assertExpiresIn } from './helpers.mjs'

const managers = []
function mk(options) {
  const m = create(options)
  managers.push(m)
  return m
}
after(() => Promise.all(managers.map((m) => m.destroy())))

// A budget so long that a test never reaches it: waiters get the key by handoff only.
const PATIENT = { retry: 10, delay: 2000 }

describe('mutual exclusion', () => {
  test('300 contenders x 5 rounds on one key: never two holders, across awaits', async () => {
    const m = mk({ retry: -1 })
    let inside = 0
    let maxInside = 0
    let done = 0
    const TASKS = 300
    const ROUNDS = 5
    await Promise.all(
      Array.from({ length: TASKS }, async (_, i) => {
        for (let r = 0; r < ROUNDS; r++) {
          const h = await m.lock('mem:mutex')
          inside++
          maxInside = Math.max(maxInside, inside)
          assert.equal(inside, 1, 'two holders at once')
          // Yield inside the critical section in a few different ways.
          await null
          if ((i + r) % 7 === 0) await immediate()
          else if ((i + r) % 5 === 0) await Promise.resolve()
          assert.equal(inside, 1, 'two holders at once (after await)')
          assert.equal(m.isLocked('mem:mutex'), true)
          done++
          inside--
          await h.unlock()
        }
      }),
    )
    assert.equal(maxInside, 1)
    assert.equal(done, TASKS * ROUNDS)
    assert.equal(m.isLocked('mem:mutex'), false)
    assert.equal(m.size, 0)
  })

  test('400 contenders spread over 8 keys: exclusion per key, keys independent', async () => {
    const m = mk({ retry: -1 })
    const KEYS = 8
    const inside = new Array(KEYS).fill(0)
    let maxTotal = 0
    let total = 0
    await Promise.all(
      Array.from({ length: 400 }, async (_, i) => {
        const k = i % KEYS
        for (let r = 0; r < 3; r++) {
          const h = await m.lock(`mem:multi-${k}`)
          inside[k]++
          assert.equal(inside[k], 1, `two holders of key ${k}`)
          const now = inside.reduce((a, b) => a + b, 0)
          maxTotal = Math.max(maxTotal, now)
          await immediate()
          assert.equal(inside[k], 1)
          inside[k]--
          total++
          await h.unlock()
        }
      }),
    )
    assert.equal(total, 1200)
    assert.ok(maxTotal > 1, 'different keys were held at the same time')
    assert.equal(m.size, 0)
  })

  test('mixed unlock styles (unlock, asyncDispose, ttl expiry) keep exclusion', async () => {
    const m = mk({ retry: -1 })
    let inside = 0
    let expired = 0
    await Promise.all(
      Array.from({ length: 60 }, async (_, i) => {
        const short = i % 20 === 0
        const h = await m.lock('mem:mixed', short ? 30 : 10000)
        inside++
        assert.equal(inside, 1, 'two holders at once')
        if (short) {
          // Let the lock expire: the next waiter gets it by ttl handoff.
          inside--
          expired++
          return
        }
        await immediate()
        inside--
        if (i % 2) await h.unlock()
        else await h[Symbol.asyncDispose]()
      }),
    )
    assert.equal(expired, 3)
    assert.equal(inside, 0)
  })
})

describe('FIFO', () => {
  test('waiters get the key in the order they called lock()', async () => {
    const m = mk({ retry: -1 })
    const h = await m.lock('mem:fifo')
    const order = []
    const all = Array.from({ length: 50 }, (_, i) =>
      m.lock('mem:fifo').then(async (w) => {
        order.push(i)
        await immediate()
        await w.unlock()
      }),
    )
    await h.unlock()
    await Promise.all(all)
    assert.deepEqual(order, Array.from({ length: 50 }, (_, i) => i))
    assert.equal(m.size, 0)
  })

  test('unlock hands the key to the next waiter at once (before any timer)', async () => {
    const m = mk(PATIENT)
    const h = await m.lock('mem:handoff')
    const p = m.lock('mem:handoff')
    await assertPending(p, 'waiter')
    await h.unlock()
    const s = await state(p)
    assert.ok(s !== 'pending' && 'ok' in s, 'waiter should hold the key right after unlock()')
    assert.equal(m.isLocked('mem:handoff'), true)
    await s.ok.unlock()
    assert.equal(m.isLocked('mem:handoff'), false)
  })

  test('a newcomer does not jump the queue when the holder expires', async () => {
    const m = mk({ retry: -1 })
    const hp = m.lock('mem:no-jump', 30)
    const first = m.lock('mem:no-jump', 10000) // queued at call time, behind a live holder
    const h = await hp
    // Block the JS thread until the holder's ttl ran out and the timer thread handed the
    // key to `first`: the newcomer arrives before this thread has seen that grant.
    assert.ok(spinUntil(() => h.expiration === 0, 3000), 'timer thread did not hand the key on')
    const newcomer = m.lock('mem:no-jump', 10000)
    const f = await first
    await assertPending(newcomer, 'newcomer')
    await f.unlock()
    const n = await newcomer
    await n.unlock()
    assert.equal(m.size, 0)
  })

  test('ttl handoffs follow the queue order too', async () => {
    const m = mk({ retry: -1 })
    const t0 = Date.now()
    const h = await m.lock('mem:fifo-ttl', 40)
    const got = []
    // Nobody unlocks: every waiter gets the key when the previous holder's ttl runs out.
    await Promise.all(
      [0, 1, 2].map((i) =>
        m.lock('mem:fifo-ttl', 40).then(() => {
          got.push({ i, at: since(t0) })
        }),
      ),
    )
    assert.deepEqual(
      got.map((g) => g.i),
      [0, 1, 2],
    )
    assert.ok(got[0].at >= 35, `first after ${got[0].at} ms`)
    assert.ok(got[2].at >= 115, `third after ${got[2].at} ms (3 x 40 ms ttl)`)
    assert.ok(got[2].at < 1500, `third after ${got[2].at} ms`)
    assert.equal(h.expiration, 0)
  })
})

describe('retry / delay budget', () => {
  test('retry 0 rejects at once with attempts 1 when the key is held', async () => {
    const m = mk({ retry: 0 })
    const h = await m.lock('k')
    const err = await rejectsAtOnce(m.lock('k'))
    checkError(err, LockError, 'E_LOCK_BUSY', 'Exceeded 0 attempts to lock the resource "k".')
    assert.equal(err.name, 'LockError')
    assert.equal(err.attempts, 1)
    assert.equal(err.resource, 'k')
    assert.equal(m.size, 1, 'nothing was queued')
    await h.unlock()
    assert.equal(m.size, 0)
    const again = await m.lock('k')
    await again.unlock()
  })

  test('retry 3, delay 20 rejects after about 60 ms with attempts 4', async () => {
    const m = mk({ retry: 3, delay: 20 })
    const h = await m.lock('k')
    const t0 = Date.now()
    const err = await rejectsWith(m.lock('k'), LockError, 'E_LOCK_BUSY', 'Exceeded 3 attempts to lock the resource "k".')
    const took = since(t0)
    assert.equal(err.attempts, 4)
    assert.equal(err.resource, 'k')
    assert.ok(took >= 50, `gave up after ${took} ms, expected >= 50`)
    assert.ok(took < 1000, `gave up after ${took} ms, expected < 1000`)
    // The waiter left the queue: unlocking frees the key.
    assert.equal(m.isLocked('k'), true)
    await h.unlock()
    assert.equal(m.isLocked('k'), false)
    assert.equal(m.size, 0)
  })

  test('the default retry count (10) is in the message and attempts', async () => {
    const m = mk({ delay: 5 })
    const h = await m.lock('k')
    const t0 = Date.now()
    const err = await rejectsWith(m.lock('k'), LockError, 'E_LOCK_BUSY', 'Exceeded 10 attempts to lock the resource "k".')
    assert.equal(err.attempts, 11)
    assert.ok(since(t0) >= 40 && since(t0) < 1000, `10 x 5 ms budget, gave up after ${since(t0)} ms`)
    await h.unlock()
  })

  test('delay 0 makes a contended lock() fail at once', async () => {
    const m = mk({ retry: 5, delay: 0 })
    const h = await m.lock('k')
    const err = await rejectsAtOnce(m.lock('k'))
    checkError(err, LockError, 'E_LOCK_BUSY', 'Exceeded 5 attempts to lock the resource "k".')
    assert.equal(err.attempts, 6)
    await h.unlock()
  })

  test('an uncontended lock() succeeds even with retry 0', async () => {
    const m = mk({ retry: 0 })
    const h = await m.lock('k')
    await h.unlock()
    const h2 = await m.lock('k')
    await h2.unlock()
  })

  test('a waiter released within its budget gets the key', async () => {
    const m = mk({ retry: 10, delay: 50 })
    const h = await m.lock('k')
    const p = m.lock('k')
    setTimeout(() => h.unlock(), 50)
    const w = await p
    assert.equal(w.resource, 'k')
    await w.unlock()
  })

  test('negative retry waits without limit, until release', async () => {
    const m = mk({ retry: -1, delay: 1 })
    const h = await m.lock('k')
    const t0 = Date.now()
    setTimeout(() => h.unlock(), 250)
    const w = await m.lock('k')
    assert.ok(since(t0) >= 240, `got it after ${since(t0)} ms, expected after the 250 ms release`)
    await w.unlock()
    assert.equal(m.size, 0)
  })

  test('every waiter times out on its own budget; a later holder is not disturbed', async () => {
    const m = mk({ retry: 2, delay: 20 })
    const h = await m.lock('k')
    const errs = await Promise.all(Array.from({ length: 20 }, () => m.lock('k').catch((e) => e)))
    for (const e of errs) checkError(e, LockError, 'E_LOCK_BUSY', 'Exceeded 2 attempts to lock the resource "k".')
    assert.equal(m.size, 1)
    await h.unlock()
    assert.equal(m.size, 0)
  })

  test('waiters with different budgets on one key (process scope): each times out on its own, FIFO for the rest', async () => {
    const patient = mk({ scope: 'process', retry: -1 })
    const quick = mk({ scope: 'process', retry: 2, delay: 20 })
    const holder = await patient.lock('mem:budgets')
    // Out of deadline order: no-deadline waiter first, then a 40 ms one, then another patient.
    const order = []
    const p1 = patient.lock('mem:budgets').then((h) => (order.push('p1'), h.unlock()))
    const q = quick.lock('mem:budgets')
    const p2 = patient.lock('mem:budgets').then((h) => (order.push('p2'), h.unlock()))
    const t0 = Date.now()
    const err = await rejectsWith(q, LockError, 'E_LOCK_BUSY', 'Exceeded 2 attempts to lock the resource "mem:budgets".')
    assert.ok(since(t0) >= 30 && since(t0) < 1000, `quick waiter gave up after ${since(t0)} ms`)
    assert.equal(err.attempts, 3)
    await assertPending(p1, 'patient waiter 1')
    await holder.unlock()
    await Promise.all([p1, p2])
    assert.deepEqual(order, ['p1', 'p2'])
    assert.equal(patient.isLocked('mem:budgets'), false)
  })
})

describe('ttl', () => {
  test('a waiter gets the key right after the holder ttl, not at a retry interval', async () => {
    const m = mk(PATIENT) // delay 2000: a polling implementation would grant at 2000 ms
    const t0 = Date.now()
    const stale = await m.lock('mem:ttl', 100)
    const w = await m.lock('mem:ttl', 5000)
    const took = since(t0)
    assert.ok(took >= 95, `handoff after ${took} ms, before the 100 ms ttl`)
    assert.ok(took < 1500, `handoff after ${took} ms: should follow the ttl, not the 2000 ms delay`)
    assert.equal(stale.expiration, 0, 'stale handle: taken over')
    assert.ok(w.expiration > Date.now() + 4000)

    // The stale handle's unlock resolves and does NOT free the new holder.
    assert.equal(await stale.unlock(), undefined)
    assert.equal(m.isLocked('mem:ttl'), true)
    const probe = await state(m.lock('mem:ttl', { ttl: 100 }))
    assert.equal(probe, 'pending', 'still held by the new holder')

    // A stale extend rejects and takes nothing.
    await rejectsWith(
      stale.extend(1000),
      LockError,
      'E_LOCK_EXPIRED',
      'Cannot extend lock on resource "mem:ttl" because the lock has already expired.',
    )
    assert.ok(w.expiration > 0)
    const e = await w.extend(5000)
    assert.equal(e, w)
    await w.unlock()
    // the probe waiter now holds it
    await eventuallyLocked(m, 'mem:ttl')
  })

  test('an expired lock with nobody waiting: next lock() gets it at once; stale extend rejects and takes nothing', async () => {
    const m = mk({ retry: 0 })
    const h = await m.lock('mem:ttl-idle', 30)
    await wait(60)
    assert.equal(m.isLocked('mem:ttl-idle'), false)
    const err = await rejectsWith(h.extend(1000), LockError, 'E_LOCK_EXPIRED', 'Cannot extend lock on resource "mem:ttl-idle" because the lock has already expired.')
    assert.equal(err.attempts, 0)
    assert.equal(err.resource, 'mem:ttl-idle')
    assert.equal(m.isLocked('mem:ttl-idle'), false, 'a failed extend takes nothing')
    const h2 = await m.lock('mem:ttl-idle')
    assert.equal(h.expiration, 0)
    await h.unlock() // stale
    assert.equal(m.isLocked('mem:ttl-idle'), true)
    await h2.unlock()
    assert.equal(m.size, 0)
  })

  test('extend pushes the expiry: the waiter does not get the key at the old ttl', async () => {
    const m = mk(PATIENT)
    const h = await m.lock('mem:extend', 600)
    const p = m.lock('mem:extend', 1000)
    const tExt = Date.now()
    const e = await h.extend(1000)
    assert.equal(e, h, 'extend resolves the same handle')
    await wait(800) // well past the old expiry (600 ms)
    await assertPending(p, 'waiter after the old ttl')
    assert.ok(h.expiration > 0)
    const w = await p
    const took = since(tExt)
    assert.ok(took >= 995, `waiter got it ${took} ms after extend(1000)`)
    assert.ok(took < 2500, `waiter got it ${took} ms after extend(1000)`)
    assert.equal(h.expiration, 0)
    await w.unlock()
  })

  test('extend with a shorter ttl makes the waiter get the key sooner', async () => {
    const m = mk(PATIENT)
    const h = await m.lock('mem:shorten', 5000)
    const p = m.lock('mem:shorten', 1000)
    await assertPending(p, 'waiter')
    const t0 = Date.now()
    await h.extend(60)
    const w = await p
    const took = since(t0)
    assert.ok(took >= 55, `waiter got it ${took} ms after extend(60)`)
    assert.ok(took < 1000, `waiter got it ${took} ms after extend(60), not at the old 5000 ms ttl`)
    await w.unlock()
  })

  test('expiration tracks extend and is about Date.now() + ttl', async () => {
    const m = mk()
    let t0 = Date.now()
    const h = await m.lock('mem:expiration', 3000)
    assertExpiresIn(h, 3000, t0)
    t0 = Date.now()
    await h.extend(2000)
    assertExpiresIn(h, 2000, t0)
    t0 = Date.now()
    await h.extend(100)
    assertExpiresIn(h, 100, t0)
    await h.unlock()
    assert.equal(h.expiration, 0)
  })

  test('a waiter times out on its budget even when the holder expires later', async () => {
    const m = mk({ retry: 1, delay: 50 })
    const h = await m.lock('mem:budget-vs-ttl', 2000)
    const t0 = Date.now()
    await rejectsWith(m.lock('mem:budget-vs-ttl'), LockError, 'E_LOCK_BUSY')
    assert.ok(since(t0) >= 45 && since(t0) < 1500, `timed out after ${since(t0)} ms: at the 50 ms budget, before the 2000 ms ttl`)
    assert.equal(m.isLocked('mem:budget-vs-ttl'), true)
    await h.unlock()
  })

  test('a waiter whose budget outlasts the holder ttl gets the key at the ttl', async () => {
    const m = mk({ retry: 20, delay: 100 }) // 2000 ms budget
    const t0 = Date.now()
    await m.lock('mem:ttl-in-budget', 80)
    const w = await m.lock('mem:ttl-in-budget')
    assert.ok(since(t0) >= 75 && since(t0) < 1500, `got it after ${since(t0)} ms: at the 80 ms ttl`)
    await w.unlock()
  })
})

describe('abort', () => {
  test('aborting a queued waiter rejects AbortError at once and leaves the queue', async () => {
    const m = mk({ retry: -1 })
    const h = await m.lock('mem:abort')
    const ac = new AbortController()
    const aborted = m.lock('mem:abort', { signal: ac.signal })
    const next = m.lock('mem:abort')
    await assertPending(aborted, 'waiter')
    const reason = new Error('stop waiting')
    ac.abort(reason)
    const err = await rejectsAtOnce(aborted)
    checkError(err, AbortError, 'E_ABORTED', 'The wait for the lock on resource "mem:abort" was aborted.')
    assert.equal(err.name, 'AbortError')
    assert.equal(err.cause, reason)
    assert.equal(err.resource, 'mem:abort')
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0, 'listener removed')
    // The next live waiter gets the key on unlock.
    await h.unlock()
    const s = await state(next)
    assert.ok(s !== 'pending' && 'ok' in s, 'next waiter holds the key right after unlock')
    await s.ok.unlock()
    assert.equal(m.isLocked('mem:abort'), false)
    assert.equal(m.size, 0)
  })

  test('an aborted sole waiter: unlock right after frees the key', async () => {
    const m = mk({ retry: -1 })
    const h = await m.lock('mem:abort-sole')
    const ac = new AbortController()
    const p = m.lock('mem:abort-sole', { ttl: 5000, signal: ac.signal })
    ac.abort()
    await h.unlock()
    assert.equal(m.isLocked('mem:abort-sole'), false)
    assert.equal(m.size, 0)
    const err = await rejectsWith(p, AbortError, 'E_ABORTED')
    assert.ok(err.cause instanceof Error && err.cause.name === 'AbortError', 'default reason is a DOMException AbortError')
  })

  test('aborting in the middle of the queue keeps the others in order', async () => {
    const m = mk({ retry: -1 })
    const h = await m.lock('mem:abort-mid')
    const order = []
    const acs = []
    const ps = Array.from({ length: 10 }, (_, i) => {
      const ac = new AbortController()
      acs.push(ac)
      return m.lock('mem:abort-mid', { signal: ac.signal }).then(
        async (w) => {
          order.push(i)
          await immediate()
          await w.unlock()
        },
        (e) => {
          checkError(e, AbortError, 'E_ABORTED')
          order.push(`x${i}`)
        },
      )
    })
    for (const i of [1, 4, 5, 9]) acs[i].abort()
    await immediate()
    await h.unlock()
    await Promise.all(ps)
    assert.deepEqual(order, ['x1', 'x4', 'x5', 'x9', 0, 2, 3, 6, 7, 8])
    assert.equal(m.size, 0)
  })

  test('abort after the grant is a no-op: the lock stays held', async () => {
    const m = mk({ retry: -1 })
    const h = await m.lock('mem:abort-late')
    const ac = new AbortController()
    const p = m.lock('mem:abort-late', { signal: ac.signal })
    await h.unlock()
    const w = await p
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0, 'listener removed on grant')
    ac.abort()
    assert.equal(m.isLocked('mem:abort-late'), true)
    assert.ok(w.expiration > 0)
    await w.unlock()
    assert.equal(m.isLocked('mem:abort-late'), false)
  })

  test('abort racing a grant already decided by the timer thread: rejected, and the key is given back', async () => {
    const m = mk({ retry: -1 })
    const ac = new AbortController()
    // One synchronous block: both waiters are queued behind a live holder.
    const hp = m.lock('mem:abort-race', 30)
    const racer = m.lock('mem:abort-race', { ttl: 60000, signal: ac.signal })
    const after = m.lock('mem:abort-race', 5000)
    const h = await hp
    // Block this thread until the timer thread has handed the key to `racer` (the stale
    // holder's expiration reads 0): the grant now sits undelivered in this thread's inbox.
    assert.ok(
      spinUntil(() => h.expiration === 0, 3000),
      'timer thread did not hand the key on',
    )
    ac.abort('late')
    const err = await rejectsWith(racer, AbortError, 'E_ABORTED')
    assert.equal(err.cause, 'late')
    // The grant arrives, the aborted waiter gives the key straight to the next one.
    const a = await after
    assert.equal(m.isLocked('mem:abort-race'), true)
    await a.unlock()
    assert.equal(m.isLocked('mem:abort-race'), false)
    assert.equal(m.size, 0)
  })

  test('abort racing a grant with nobody behind: the key ends up free', async () => {
    const m = mk({ retry: -1 })
    const ac = new AbortController()
    const hp = m.lock('mem:abort-race2', 30)
    const racer = m.lock('mem:abort-race2', { ttl: 60000, signal: ac.signal })
    const h = await hp
    assert.ok(spinUntil(() => h.expiration === 0, 3000), 'timer thread did not hand the key on')
    ac.abort()
    await rejectsWith(racer, AbortError, 'E_ABORTED')
    await settle(30)
    assert.equal(m.isLocked('mem:abort-race2'), false)
    assert.equal(m.size, 0)
  })

  test('a pre-aborted signal rejects at once, even on a free key, and takes nothing', async () => {
    const m = mk({ retry: -1 })
    const err = await rejectsAtOnce(m.lock('mem:pre', { signal: AbortSignal.abort('already') }))
    checkError(err, AbortError, 'E_ABORTED')
    assert.equal(err.cause, 'already')
    assert.equal(m.isLocked('mem:pre'), false)
    assert.equal(m.size, 0)
    const h = await m.lock('mem:pre')
    const e2 = await rejectsAtOnce(m.lock('mem:pre', { ttl: 100, signal: AbortSignal.abort() }))
    checkError(e2, AbortError, 'E_ABORTED')
    await h.unlock()
    assert.equal(m.size, 0)
  })

  test('AbortSignal.timeout() bounds a wait', async () => {
    const m = mk({ retry: -1 })
    const h = await m.lock('mem:abort-timeout')
    const t0 = Date.now()
    const err = await rejectsWith(m.lock('mem:abort-timeout', { signal: AbortSignal.timeout(50) }), AbortError, 'E_ABORTED')
    assert.ok(since(t0) >= 40 && since(t0) < 1500, `aborted after ${since(t0)} ms`)
    assert.equal(err.cause && err.cause.name, 'TimeoutError')
    await h.unlock()
    assert.equal(m.size, 0)
  })

  test('one signal shared by many waiters: listeners are removed on grant and on timeout', async () => {
    const m = mk({ retry: 1, delay: 30 })
    const ac = new AbortController()
    const h = await m.lock('mem:abort-shared')
    const timedOut = m.lock('mem:abort-shared', { signal: ac.signal })
    assert.equal(getEventListeners(ac.signal, 'abort').length, 1)
    await rejectsWith(timedOut, LockError, 'E_LOCK_BUSY')
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0, 'removed on timeout')
    const free = await m.lock('mem:abort-other', { signal: ac.signal })
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0, 'none added for an immediate grant')
    await free.unlock()
    await h.unlock()
  })
})

async function eventuallyLocked(m, key) {
  for (let i = 0; i < 100 && !m.isLocked(key); i++) await settle(5)
  assert.equal(m.isLocked(key), true)
}
