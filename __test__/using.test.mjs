// lock.using(key, fn, { ttl, maxHoldMs, maxExtensions, signal }): the lock is held while fn
// runs (extended automatically), released when fn settles, fn's result or error passed on;
// the signal given to fn aborts with E_LOCK_LOST before the validity ends when the lock is
// lost or a bound is reached. On real Redis and in memory.
import { test, describe, after } from 'node:test'
import assert from 'node:assert/strict'

import { create, LockError } from '../index.mjs'
import { useRedis } from './redis-harness.mjs'

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const [server] = await useRedis(1)
const managers = []
after(() => Promise.allSettled(managers.map((m) => m.destroy())))
let n = 0
const key = (what) => `oxlock:using:${what}:${++n}`

for (const [name, make] of [
  ['redis', () => create({ type: 'redis', connection: server.options, namespace: 'ns' })],
  ['inMemory', () => create({ namespace: 'ns' })],
]) {
  describe(`using() (${name})`, { timeout: 30000 }, () => {
    const mk = () => {
      const m = make()
      managers.push(m)
      return m
    }

    test('resolves fn\'s result and releases the key; usingNs namespaces it', async () => {
      const m = mk()
      const k = key('result')
      const out = await m.using(k, async (signal, h) => {
        assert.equal(signal.aborted, false)
        assert.equal(h.resource, k)
        assert.equal(m.isLocked(k), true)
        return 42
      })
      assert.equal(out, 42)
      assert.equal(m.isLocked(k), false)
      await m.usingNs(k, async (_, h) => assert.equal(h.resource, `ns:${k}`))
    })

    test('fn\'s error is passed on, and the key is released', async () => {
      const m = mk()
      const k = key('throws')
      const boom = new Error('boom')
      await assert.rejects(m.using(k, async () => { throw boom }), (e) => e === boom)
      assert.equal(m.isLocked(k), false)
      const h = await m.lock(k, { ttl: 1000, signal: AbortSignal.timeout(500) })
      await h.unlock()
    })

    test('a 600 ms ttl is kept for 2 s by extensions while fn runs', async () => {
      const m = mk()
      const k = key('keep')
      let seenAbort = false
      await m.using(
        k,
        async (signal, h) => {
          signal.addEventListener('abort', () => (seenAbort = true))
          const t0 = Date.now()
          while (Date.now() - t0 < 2000) {
            await sleep(50)
            assert.ok(h.expiration > Date.now(), 'the lock expired while fn ran')
            if (name === 'redis') assert.equal(await server.get(k), h.value)
          }
        },
        { ttl: 600 },
      )
      assert.equal(seenAbort, false)
    })

    test('maxHoldMs: the signal aborts with E_LOCK_LOST before the lock\'s validity ends', async () => {
      const m = mk()
      const k = key('max-hold')
      const t0 = Date.now()
      await m.using(
        k,
        async (signal, h) => {
          await new Promise((r) => signal.addEventListener('abort', r))
          const at = Date.now() - t0
          assert.ok(signal.reason instanceof LockError && signal.reason.code === 'E_LOCK_LOST', String(signal.reason))
          assert.match(signal.reason.message, /maxHoldMs/)
          assert.ok(at <= 900, `aborted after ${at} ms (maxHoldMs 700)`)
          assert.ok(h.expiration > Date.now(), 'aborted only after the validity ended')
        },
        { ttl: 300, maxHoldMs: 700 },
      )
    })

    test('maxExtensions: two extensions, then the signal aborts before the validity ends', async () => {
      const m = mk()
      const k = key('max-ext')
      const t0 = Date.now()
      await m.using(
        k,
        async (signal, h) => {
          await new Promise((r) => signal.addEventListener('abort', r))
          assert.equal(signal.reason.code, 'E_LOCK_LOST')
          assert.match(signal.reason.message, /maxExtensions \(2\)/)
          const at = Date.now() - t0
          assert.ok(at >= 450 && at < 1300, `aborted after ${at} ms (about 3 × 300 ms less the margin)`)
          assert.ok(h.expiration > Date.now())
        },
        { ttl: 300, maxExtensions: 2 },
      )
    })

    test('the caller\'s signal aborts fn\'s signal too; bad arguments are rejected', async () => {
      const m = mk()
      const ac = new AbortController()
      const k = key('caller')
      const p = m.using(k, (signal) => new Promise((r) => signal.addEventListener('abort', () => r(signal.reason))), { signal: ac.signal })
      await sleep(20)
      ac.abort('stop')
      assert.equal(await p, 'stop')
      await assert.rejects(m.using(k, 'not a function'), TypeError)
      await assert.rejects(m.using(k, async () => {}, { maxHoldMs: -1 }), RangeError)
    })
  })
}

test('redis: the key deleted behind its back aborts the signal with E_LOCK_LOST at the next extension', async () => {
  const m = create({ type: 'redis', connection: server.options })
  managers.push(m)
  const k = key('deleted')
  const t0 = Date.now()
  await m.using(
    k,
    async (signal) => {
      await sleep(100)
      await server.cmd('DEL', k)
      await new Promise((r) => signal.addEventListener('abort', r))
      assert.equal(signal.reason.code, 'E_LOCK_LOST')
      assert.match(signal.reason.message, /lost/)
      assert.ok(Date.now() - t0 < 1500, `noticed after ${Date.now() - t0} ms (ttl 400)`)
    },
    { ttl: 400 },
  )
})
