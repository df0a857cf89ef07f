// destroy(), and what keeps the process alive: a queued lock() does (like a timer); an idle
// manager, held locks, or a destroyed manager do not.
import { test, describe, after } from 'node:test'
import assert from 'node:assert/strict'
import { getEventListeners } from 'node:events'
import { fileURLToPath } from 'node:url'

import { create, DestroyedError, LockError, AbortError } from '../index.mjs'
import { rejectsWith, rejectsAtOnce, checkError, runNode, settle } from './helpers.mjs'

const CHILD = fileURLToPath(new URL('./fixtures/lifecycle-child.mjs', import.meta.url))

const managers = []
function mk(options) {
  const m = create(options)
  managers.push(m)
  return m
}
after(() => Promise.all(managers.map((m) => m.destroy())))

describe('destroy()', () => {
  test('rejects every queued lock() with DestroyedError, then refuses new ones', async () => {
    const m = mk({ retry: -1, namespace: 'ns' })
    const h1 = await m.lock('a')
    const h2 = await m.lock('b')
    const queued = [m.lock('a'), m.lock('a', { ttl: 100 }), m.lock('b'), m.lockNs('x').then(() => m.lockNs('x'))]
    const q2 = m.lockNs('x')
    queued.push(q2)
    const r = m.destroy()
    assert.ok(r instanceof Promise)
    assert.equal(await r, undefined)
    for (const p of queued) {
      const e = await rejectsWith(p, DestroyedError, 'E_DESTROYED')
      assert.equal(e.name, 'DestroyedError')
    }
    await rejectsWith(m.lock('c'), DestroyedError, 'E_DESTROYED')
    await rejectsWith(m.lock('a', 100), DestroyedError, 'E_DESTROYED')
    await rejectsWith(m.lockNs('c'), DestroyedError, 'E_DESTROYED')
    // Handles of a destroyed manager: unlock resolves, extend rejects, nothing is held.
    assert.equal(await h1.unlock(), undefined)
    await rejectsWith(h2.extend(1000), DestroyedError, 'E_DESTROYED')
    assert.equal(h2.expiration, 0)
    await h2[Symbol.asyncDispose]()
    assert.equal(m.isLocked('a'), false)
    assert.equal(m.isLocked('b'), false)
    assert.equal(m.size, 0)
  })

  test('destroy() queued rejections are immediate, not at the wait budget', async () => {
    const m = mk({ retry: 10, delay: 1000 })
    await m.lock('k')
    const p = m.lock('k')
    m.destroy()
    const e = await rejectsAtOnce(p)
    checkError(e, DestroyedError, 'E_DESTROYED')
  })

  test('is idempotent', async () => {
    const m = mk()
    await m.lock('k')
    await m.destroy()
    await m.destroy()
    const again = m.destroy()
    assert.ok(again instanceof Promise)
    await again
    await rejectsWith(m.lock('k'), DestroyedError, 'E_DESTROYED')
  })

  test('does not affect other managers', async () => {
    const a = mk({ retry: -1 })
    const b = mk({ retry: 0 })
    const hb = await b.lock('k')
    await a.lock('k')
    const qa = a.lock('k')
    await a.destroy()
    await rejectsWith(qa, DestroyedError, 'E_DESTROYED')
    assert.equal(b.isLocked('k'), true)
    await rejectsWith(b.lock('k'), LockError, 'E_LOCK_BUSY')
    await hb.unlock()
    const again = await b.lock('k')
    await again.unlock()
  })

  test('a signal of a queued lock() is released by destroy(); aborting later does nothing', async () => {
    const m = mk({ retry: -1 })
    await m.lock('k')
    const ac = new AbortController()
    const p = m.lock('k', { signal: ac.signal })
    assert.equal(getEventListeners(ac.signal, 'abort').length, 1)
    await m.destroy()
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0)
    ac.abort()
    const e = await rejectsWith(p, DestroyedError, 'E_DESTROYED')
    assert.ok(!(e instanceof AbortError))
  })

  test('after destroy() the timer thread delivers nothing (ttl expiries, budgets)', async () => {
    const m = mk({ retry: 2, delay: 20 })
    // One synchronous block: lock() takes or queues at call time, so both waiters are
    // queued behind live holders, whatever the scheduler does.
    const held = [m.lock('ttl', 50), m.lock('budget', 60000)]
    const a = m.lock('ttl')
    const b = m.lock('budget')
    const destroyed = m.destroy()
    await Promise.all(held)
    await destroyed
    await rejectsWith(a, DestroyedError, 'E_DESTROYED')
    await rejectsWith(b, DestroyedError, 'E_DESTROYED')
    await settle(80) // past the ttl and the budget: no late grant or timeout may surface
    assert.equal(m.size, 0)
  })

  test('bad arguments after destroy() are still argument errors', async () => {
    const m = mk()
    await m.destroy()
    await rejectsWith(m.lock(5), TypeError, 'E_INVALID_ARG')
    await rejectsWith(m.lock('k', 0), RangeError, 'E_OUT_OF_RANGE')
  })
})

/** Runs the fixture child; arms a 2 s kill timer when it reports `armOn`. */
async function runChild(variant, { armOn, execArgv = [], within = 2000 } = {}) {
  let armedAt
  let killTimer
  const r = await runNode([...execArgv, CHILD, variant], {
    killAfter: 10000,
    onLine: (obj, child) => {
      if (armOn && obj.ev === armOn && killTimer === undefined) {
        armedAt = obj.at
        killTimer = setTimeout(() => child.kill('SIGKILL'), within)
      }
    },
  })
  clearTimeout(killTimer)
  const evs = r.lines.map((l) => l.ev)
  assert.equal(r.signal, null, `child "${variant}" was killed (did not exit by itself); stdout:\n${r.stdout}\nstderr:\n${r.stderr}`)
  assert.equal(r.code, 0, `child "${variant}" exit code; stderr:\n${r.stderr}`)
  assert.equal(r.stderr, '', 'no warnings or errors on stderr')
  if (armOn) {
    assert.ok(armedAt !== undefined, `child never reported "${armOn}": ${evs.join(',')}`)
    assert.ok(r.exitedAt - armedAt < within, `exited ${r.exitedAt - armedAt} ms after "${armOn}"`)
  }
  return { ...r, evs, get: (ev) => r.lines.find((l) => l.ev === ev) }
}

describe('process lifetime (child processes)', () => {
  test('idle manager: destroy() and the process exits by itself', async () => {
    const r = await runChild('destroy-idle', { armOn: 'destroying' })
    assert.deepEqual(r.evs, ['destroying', 'destroyed'])
  })

  test('manager holding a lock: destroy() and the process exits by itself', async () => {
    const r = await runChild('destroy-holding', { armOn: 'destroying' })
    assert.deepEqual(r.evs, ['locked', 'destroying', 'destroyed'])
  })

  test('holding a lock with a second lock() queued (retry -1): destroy() rejects it E_DESTROYED and the process exits', async () => {
    const r = await runChild('destroy-queued', { armOn: 'destroying' })
    assert.equal(r.get('queued').size, 1)
    const rej = r.get('rejected')
    assert.ok(rej, `queued lock() did not reject: ${r.evs}`)
    assert.equal(rej.code, 'E_DESTROYED')
    assert.equal(rej.name, 'DestroyedError')
    assert.equal(r.get('granted'), undefined)
    assert.ok(r.evs.includes('destroyed'))
  })

  test('process scope: destroying the manager with the queued lock() lets the process exit, another manager still holding', async () => {
    const r = await runChild('destroy-queued-process', { armOn: 'destroying' })
    assert.equal(r.get('rejected')?.code, 'E_DESTROYED')
    assert.equal(r.get('granted'), undefined)
  })

  test('holding locks without destroy() does not keep the process alive', async () => {
    const r = await runChild('holding', { armOn: 'locked' })
    assert.deepEqual(r.evs, ['locked'])
  })

  test('a queued lock() behind a 300 ms ttl (no destroy) keeps the process alive until granted, then it exits', async () => {
    const r = await runChild('waiter', { armOn: 'queued' })
    const g = r.get('granted')
    assert.ok(g, `waiter was not granted before exit: ${r.evs}`)
    assert.equal(g.resource, 'k')
    assert.ok(g.elapsed >= 295, `granted after ${g.elapsed} ms, before the 300 ms ttl`)
    assert.ok(g.elapsed < 1500, `granted after ${g.elapsed} ms`)
    assert.ok(r.exitedAt - g.at < 1500, 'exited soon after the grant')
  })

  test('a queued lock() keeps the process alive until its wait budget runs out', async () => {
    const r = await runChild('timeout', { armOn: 'queued' })
    const e = r.get('rejected')
    assert.ok(e, `waiter never timed out: ${r.evs}`)
    assert.equal(e.code, 'E_LOCK_BUSY')
    assert.ok(e.elapsed >= 190, `timed out after ${e.elapsed} ms (budget 2 x 100 ms)`)
  })

  test('a queued lock() keeps the process alive until its signal aborts it', async () => {
    const r = await runChild('abort', { armOn: 'queued' })
    const e = r.get('rejected')
    assert.ok(e, `waiter never aborted: ${r.evs}`)
    assert.equal(e.code, 'E_ABORTED')
    assert.ok(e.elapsed >= 140, `aborted after ${e.elapsed} ms (AbortSignal.timeout(150))`)
  })

  test('a process-scope manager dropped without destroy() gives its locks back once collected', async () => {
    const r = await runChild('finalizer', { execArgv: ['--expose-gc'], armOn: 'granted', within: 3000 })
    assert.ok(r.get('granted'), `the collected manager's lock was never released: ${r.evs}`)
  })
})
