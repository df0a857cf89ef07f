// The JS lock table of `scope: 'instance'` (lib/table.js): the hot path makes no native call
// (scope 'process' still uses the shared native table), and using() with no bound holds the
// lock while its function runs without timers, also past the ttl and across an extend().
import { test, describe, after } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'

import { create } from '../index.mjs'
import { state } from './helpers.mjs'

const require = createRequire(import.meta.url)
const { native } = require('../lib/native.js')
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
})
