// scope: 'process': one lock table for every manager of the process, worker threads included.
import { test, describe, after } from 'node:test'
import assert from 'node:assert/strict'
import { Worker } from 'node:worker_threads'
import { once } from 'node:events'
import { setImmediate as immediate } from 'node:timers/promises'

import { create, LockError, DestroyedError } from '../index.mjs'
import { since, state, rejectsWith, assertPending, withTimeout } from './helpers.mjs'

const WORKER = new URL('./fixtures/lock-worker.mjs', import.meta.url)

const managers = []
function mk(options) {
  const m = create(options)
  managers.push(m)
  return m
}
const workers = []
after(async () => {
  await Promise.all(workers.map((w) => w.terminate()))
  await Promise.all(managers.map((m) => m.destroy()))
})

/** A worker thread with a lock manager, driven by messages. */
class LockWorker {
  constructor(options) {
    this.w = new Worker(WORKER, { workerData: { options } })
    workers.push(this.w)
    this.log = []
    this.waiters = []
    this.exited = once(this.w, 'exit')
    this.w.on('message', (msg) => {
      this.log.push(msg)
      this.waiters = this.waiters.filter(({ pred, resolve }) => {
        if (pred(msg)) {
          resolve(msg)
          return false
        }
        return true
      })
    })
    this.w.on('error', (e) => {
      for (const { reject } of this.waiters) reject(e)
      this.waiters = []
    })
    this.ids = 0
  }

  /** Resolves with the first message (logged already or future) matching `pred`. */
  next(pred) {
    const seen = this.log.find(pred)
    if (seen) return Promise.resolve(seen)
    return new Promise((resolve, reject) => this.waiters.push({ pred, resolve, reject }))
  }

  ready() {
    return this.next((m) => m.ev === 'ready')
  }

  /** Calls lock() in the worker; resolves once the call is made (queued or granted). */
  async lock(key, ttl) {
    const id = ++this.ids
    this.w.postMessage({ cmd: 'lock', key, ttl, id })
    await this.next((m) => m.ev === 'called' && m.id === id)
    return {
      id,
      granted: this.next((m) => (m.ev === 'granted' || m.ev === 'rejected') && m.id === id),
    }
  }

  async unlock(id) {
    this.w.postMessage({ cmd: 'unlock', id })
    await this.next((m) => m.ev === 'unlocked' && m.id === id)
  }

  async isLocked(key) {
    const before = this.log.length
    this.w.postMessage({ cmd: 'isLocked', key })
    const msg = await this.next((m) => m.ev === 'isLocked' && m.key === key && this.log.indexOf(m) >= before)
    return msg.value
  }

  send(cmd) {
    this.w.postMessage({ cmd })
  }
}

async function startWorker(options) {
  const w = new LockWorker(options)
  await w.ready()
  return w
}

describe('process scope within one thread', () => {
  test('two process-scope managers exclude each other; instance-scope ones are separate', async () => {
    const a = mk({ scope: 'process', retry: 0 })
    const b = mk({ scope: 'process', retry: 0 })
    const c = mk({ retry: 0 })
    const h = await a.lock('ps:pair')
    assert.equal(b.isLocked('ps:pair'), true)
    assert.equal(c.isLocked('ps:pair'), false)
    await rejectsWith(b.lock('ps:pair'), LockError, 'E_LOCK_BUSY', 'Exceeded 0 attempts to lock the resource "ps:pair".')
    const hc = await c.lock('ps:pair')
    await hc.unlock()
    await h.unlock()
    const hb = await b.lock('ps:pair')
    assert.equal(a.isLocked('ps:pair'), true)
    await hb.unlock()
    assert.equal(a.isLocked('ps:pair'), false)
  })

  test('mutual exclusion across 3 managers sharing the process table', async () => {
    const ms = [0, 1, 2].map(() => mk({ scope: 'process', retry: -1 }))
    let inside = 0
    let n = 0
    await Promise.all(
      Array.from({ length: 150 }, async (_, i) => {
        for (let r = 0; r < 3; r++) {
          const h = await ms[(i + r) % 3].lock('ps:three')
          assert.equal(++inside, 1, 'two holders at once')
          await immediate()
          inside--
          n++
          await h.unlock()
        }
      }),
    )
    assert.equal(n, 450)
    assert.equal(ms[0].isLocked('ps:three'), false)
  })

  test('FIFO across managers, and a stale handle of one manager cannot free another', async () => {
    const a = mk({ scope: 'process', retry: -1 })
    const b = mk({ scope: 'process', retry: -1 })
    const stale = await a.lock('ps:fifo', 40)
    const order = []
    const ps = [b, a, b, a].map((m, i) =>
      m.lock('ps:fifo').then(async (h) => {
        order.push(i)
        if (i === 0) {
          await stale.unlock() // stale (expired and taken over): must not free b's lock
          assert.equal(a.isLocked('ps:fifo'), true)
        }
        await immediate()
        await h.unlock()
      }),
    )
    await Promise.all(ps)
    assert.deepEqual(order, [0, 1, 2, 3])
  })

  test('destroy() of one manager passes its keys to the waiters of another and drops its own waiters', async () => {
    const a = mk({ scope: 'process', retry: -1 })
    const b = mk({ scope: 'process', retry: -1 })
    await a.lock('ps:destroy-held', 60000)
    const hb = await b.lock('ps:destroy-q', 60000)
    const aWaits = a.lock('ps:destroy-q')
    const bWaits = b.lock('ps:destroy-held')
    await assertPending(bWaits, 'b waiting on a')
    const t0 = Date.now()
    await a.destroy()
    await rejectsWith(aWaits, DestroyedError, 'E_DESTROYED')
    const got = await bWaits
    assert.ok(since(t0) < 1000, `b got a's key ${since(t0)} ms after destroy`)
    await got.unlock()
    await hb.unlock()
    assert.equal(b.isLocked('ps:destroy-q'), false, "a's dropped waiter was not granted")
    assert.equal(b.isLocked('ps:destroy-held'), false)
    await rejectsWith(a.lock('ps:destroy-held'), DestroyedError, 'E_DESTROYED')
  })
})

describe('process scope across worker threads', () => {
  test('main thread and two workers: mutual exclusion on one key (SharedArrayBuffer counter)', async () => {
    const sab = new SharedArrayBuffer(16) // [inside, violations, total, (wait slot)]
    const a = new Int32Array(sab)
    const [w1, w2] = await Promise.all([startWorker(), startWorker()])
    const m = mk({ scope: 'process', retry: -1 })
    const TASKS = 20
    const ROUNDS = 10
    for (const w of [w1, w2]) w.w.postMessage({ cmd: 'contend', key: 'ps:threads', sab, tasks: TASKS, rounds: ROUNDS })
    const mainRun = Promise.all(
      Array.from({ length: TASKS }, async (_, t) => {
        for (let r = 0; r < ROUNDS; r++) {
          const h = await m.lock('ps:threads', 60000)
          if (Atomics.add(a, 0, 1) !== 0) Atomics.add(a, 1, 1)
          await ((t + r) % 3 === 0 ? immediate() : null)
          if (Atomics.load(a, 0) !== 1) Atomics.add(a, 1, 1)
          Atomics.sub(a, 0, 1)
          Atomics.add(a, 2, 1)
          await h.unlock()
        }
      }),
    )
    const [, r1, r2] = await Promise.all([mainRun, w1.next((x) => x.ev === 'contended'), w2.next((x) => x.ev === 'contended')])
    assert.equal(r1.count, TASKS * ROUNDS)
    assert.equal(r2.count, TASKS * ROUNDS)
    assert.equal(Atomics.load(a, 1), 0, 'violations: two holders at once across threads')
    assert.equal(Atomics.load(a, 2), 3 * TASKS * ROUNDS)
    assert.equal(Atomics.load(a, 0), 0)
    assert.equal(m.isLocked('ps:threads'), false)
    w1.send('exit')
    w2.send('exit')
    await Promise.all([w1.exited, w2.exited])
  })

  test('handoff across threads: main -> worker -> main, at once on unlock', async () => {
    const w = await startWorker()
    const m = mk({ scope: 'process', retry: 10, delay: 2000 })
    const h = await m.lock('ps:handoff', 60000)
    const wl = await w.lock('ps:handoff')
    assert.equal(await w.isLocked('ps:handoff'), true)
    await assertPending(wl.granted, 'worker waiter')
    const t0 = Date.now()
    await h.unlock()
    const g = await wl.granted
    assert.equal(g.ev, 'granted')
    assert.ok(since(t0) < 1000, `worker got it ${since(t0)} ms after unlock`)
    assert.equal(m.isLocked('ps:handoff'), true)
    const mine = m.lock('ps:handoff')
    await assertPending(mine, 'main waiter behind the worker')
    const t1 = Date.now()
    await w.unlock(wl.id)
    const h2 = await mine
    assert.ok(since(t1) < 1000)
    await h2.unlock()
    assert.equal(await w.isLocked('ps:handoff'), false)
    w.send('exit')
    await w.exited
  })

  test('FIFO across threads', async () => {
    const [w1, w2] = await Promise.all([startWorker(), startWorker()])
    const m = mk({ scope: 'process', retry: -1 })
    const h = await m.lock('ps:fifo-threads')
    const l1 = await w1.lock('ps:fifo-threads')
    const l2 = await w2.lock('ps:fifo-threads')
    const mine = m.lock('ps:fifo-threads')
    await h.unlock()
    await l1.granted
    await assertPending(mine, 'main (3rd in line)')
    assert.equal(w2.log.some((x) => x.ev === 'granted'), false, 'w2 (2nd in line) not yet')
    await w1.unlock(l1.id)
    await l2.granted
    await assertPending(mine, 'main (3rd in line)')
    await w2.unlock(l2.id)
    const h3 = await mine
    await h3.unlock()
    w1.send('exit')
    w2.send('exit')
    await Promise.all([w1.exited, w2.exited])
  })

  test("a worker's lock expires by ttl and the main thread gets it right after", async () => {
    const w = await startWorker()
    const m = mk({ scope: 'process', retry: 10, delay: 2000 })
    const tCmd = Date.now() // the worker's lock is taken after this
    const wl = await w.lock('ps:ttl', 150)
    await wl.granted
    const t0 = Date.now()
    const h = await m.lock('ps:ttl', 5000)
    assert.ok(since(tCmd) >= 145, `main got it ${since(tCmd)} ms after the worker was told to lock for 150 ms`)
    assert.ok(since(t0) < 1500, `main got it after ${since(t0)} ms, not at the 2000 ms delay`)
    // The worker's stale unlock does not free main's lock.
    await w.unlock(wl.id)
    assert.equal(m.isLocked('ps:ttl'), true)
    await h.unlock()
    w.send('exit')
    await w.exited
  })

  for (const how of ['process.exit()', 'natural end', 'terminate()']) {
    test(`a worker that ends while holding locks (${how}) frees them for the others`, async () => {
      const w = await startWorker()
      const m = mk({ scope: 'process', retry: -1 })
      const keys = ['ps:exit-a', 'ps:exit-b', 'ps:exit-c']
      for (const k of keys) await (await w.lock(k, 60000)).granted
      for (const k of keys) assert.equal(m.isLocked(k), true)
      const t0 = Date.now()
      const waiting = m.lock('ps:exit-a', 5000)
      await assertPending(waiting, 'main waiter')
      if (how === 'process.exit()') w.send('exit')
      else if (how === 'natural end') w.send('close')
      else await w.w.terminate()
      await w.exited
      const h = await waiting
      assert.ok(since(t0) < 10000, 'well before the 60 s ttl')
      assert.equal(m.isLocked('ps:exit-b'), false)
      assert.equal(m.isLocked('ps:exit-c'), false)
      await h.unlock()
      assert.equal(m.isLocked('ps:exit-a'), false)
    })
  }

  test("a worker that ends while queued leaves the queue (its waiter is not granted)", async () => {
    const w = await startWorker()
    const m = mk({ scope: 'process', retry: -1 })
    const h = await m.lock('ps:exit-queued')
    const wl = await w.lock('ps:exit-queued', 60000)
    const behind = m.lock('ps:exit-queued')
    await w.w.terminate()
    await w.exited
    await h.unlock()
    // The next live waiter (main's) gets it, not the dead worker.
    const s = await state(behind)
    assert.ok(s !== 'pending' && 'ok' in s, 'main waiter behind the dead one holds the key at once')
    await s.ok.unlock()
    assert.equal(m.isLocked('ps:exit-queued'), false)
    void wl
  })

  test('a worker terminated while a grant is on its way to it: the key goes to the next waiter', async () => {
    const w = await startWorker()
    const m = mk({ scope: 'process', retry: -1 })
    const h = await m.lock('ps:exit-grant')
    await w.lock('ps:exit-grant', 60000)
    const behind = m.lock('ps:exit-grant', 5000)
    await h.unlock() // grants the worker ...
    const term = w.w.terminate() // ... which goes away at once
    await term
    const got = await withTimeout(behind, 4000, 'main waiter never got the key of the terminated worker')
    await got.unlock()
    assert.equal(m.isLocked('ps:exit-grant'), false)
  })

  test("destroy() in a worker hands its keys to the main thread's waiter", async () => {
    const w = await startWorker()
    const m = mk({ scope: 'process', retry: -1 })
    await (await w.lock('ps:w-destroy', 60000)).granted
    const queued = await w.lock('ps:w-destroy-2', 60000)
    await queued.granted
    const waiting = m.lock('ps:w-destroy')
    const t0 = Date.now()
    w.send('destroy')
    await w.next((x) => x.ev === 'destroyed')
    const h = await waiting
    assert.ok(since(t0) < 1000)
    assert.equal(m.isLocked('ps:w-destroy-2'), false)
    await h.unlock()
    w.send('exit')
    await w.exited
  })

  test('a worker with an instance-scope manager does not exclude the main thread', async () => {
    const w = await startWorker({ scope: 'instance', retry: 0 })
    const m = mk({ scope: 'process', retry: 0 })
    const wl = await w.lock('ps:instance-worker')
    assert.equal((await wl.granted).ev, 'granted')
    assert.equal(m.isLocked('ps:instance-worker'), false)
    const h = await m.lock('ps:instance-worker')
    await h.unlock()
    w.send('exit')
    await w.exited
  })

  test('a worker waiting on a key the main thread holds is granted when main destroys its manager', async () => {
    const w = await startWorker()
    const m = create({ scope: 'process', retry: -1 })
    await m.lock('ps:main-destroy', 60000)
    const wl = await w.lock('ps:main-destroy')
    await m.destroy()
    const g = await wl.granted
    assert.equal(g.ev, 'granted')
    w.send('exit')
    await w.exited
  })
})
