// Redis requests on sockets the JS thread drives (src/core/js_io.rs, src/redis/js_conn.rs,
// lib/sockets.js): a request is written and its reply read on the JS thread, so no other
// thread has to wake it; a timeout on a socket silent all along gives it up, one on a socket
// not yet answering keeps it; a killed server fails what waited on it and a new socket serves
// the next calls; calls made together in one job are sent early in groups and each settles.
import { test, describe, after } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import net from 'node:net'

import { create, LockError } from '../index.mjs'
import { rejectsWith, withTimeout, runNode, since } from './helpers.mjs'
import { useRedis } from './redis-harness.mjs'

const { native } = createRequire(import.meta.url)('../lib/native.js')
const CHILD = fileURLToPath(new URL('./fixtures/redis-io-child.mjs', import.meta.url))

const [server] = await useRedis(1)
const managers = []
after(() => withTimeout(Promise.all(managers.map((m) => m.destroy())), 15000, 'destroying the managers'))

function mk(lockOptions = {}, connection = { host: '127.0.0.1', port: server.port }) {
  const m = create({ type: 'redis', connection, lockOptions })
  managers.push(m)
  return m
}

let n = 0
const key = (what) => `oxlock:io:${what}:${++n}`

describe('Redis I/O on the JS thread', { timeout: 60000 }, () => {
  test('a: 200 sequential lock + unlock cycles wake the JS thread from no other thread', async () => {
    const m = mk()
    for (let i = 0; i < 5; i++) await (await m.lock(key('warm'), 5000)).unlock()
    const before = native.wakeCount()
    for (let i = 0; i < 200; i++) await (await m.lock(key('seq'), 5000)).unlock()
    const wakes = native.wakeCount() - before
    // A stray timer may fire; one wake-up per request would be 400.
    assert.ok(wakes <= 10, `${wakes} wake-ups for 400 requests`)
  })

  test('b: the same cycles with OXLOCK_IO=thread wake it on every request (so a above can fail)', async () => {
    const r = await runNode([CHILD, String(server.port)], { env: { ...process.env, OXLOCK_IO: 'thread' }, killAfter: 20000 })
    assert.equal(r.code, 0, r.stderr)
    const wakes = r.lines.find((l) => l.ev === 'wakes')
    assert.ok(wakes && wakes.n >= 200, `${JSON.stringify(wakes)}\n${r.stderr}`)
  })

  test('c: 512 concurrent locks (replies split over many reads) each get their own answer', async () => {
    const m = mk()
    const keys = Array.from({ length: 512 }, (_, i) => key(`burst${i}`))
    const handles = await withTimeout(Promise.all(keys.map((k) => m.lock(k, 5000))), 10000, '512 locks')
    const values = await Promise.all(keys.map((k) => server.get(k)))
    assert.deepEqual(values, handles.map((h) => h.value), 'every key holds the token of its own handle')
    await Promise.all(handles.map((h) => h.unlock()))
    assert.deepEqual(await Promise.all(keys.map((k) => server.get(k))), keys.map(() => null))
  })

  test('d: a paused server: the call times out and its socket is given up; the next calls, after the pause, get their own replies', async () => {
    const m = mk({ retryCount: 0, nodeTimeout: 200 })
    const held = await m.lock(key('before-pause'), 5000)
    server.pause()
    let err
    try {
      err = await withTimeout(rejectsWith(m.lock(key('paused'), 5000), LockError, 'E_UNAVAILABLE'), 5000, 'lock() on a paused server')
    } finally {
      server.resume()
    }
    assert.equal(err.failures[0].kind, 'timeout')
    // The paused attempt's reply (and its take-back) arrive now; they must not answer these.
    const k = key('after-pause')
    const h = await withTimeout(m.lock(k, 5000), 5000, 'lock() after the pause')
    assert.equal(await server.get(k), h.value)
    await h.unlock()
    assert.equal(await server.get(k), null)
    await held.unlock()
    assert.equal(await server.get(held.resource), null)
  })

  test('e: a killed server fails the calls that needed it, and a restarted one serves the next calls on a new socket', async () => {
    const m = mk({ retryCount: 0, nodeTimeout: 500 })
    const h = await m.lock(key('before-kill'), 5000)
    await server.kill()
    const t0 = Date.now()
    const err = await withTimeout(rejectsWith(m.lock(key('killed'), 5000), LockError, 'E_UNAVAILABLE'), 5000, 'lock() on a killed server')
    assert.ok(['closed', 'refused'].includes(err.failures[0].kind), JSON.stringify(err.failures))
    assert.ok(since(t0) < 2000, `took ${since(t0)} ms`)
    await server.restart()
    const k = key('after-restart')
    const h2 = await withTimeout(m.lock(k, 5000), 5000, 'lock() after the restart')
    assert.equal(await server.get(k), h2.value)
    await h2.unlock()
    await h.unlock() // its key went with the server: nothing to delete, and no error
  })

  test('f: a connection that stops answering while the server still does is given up at its timeout: the next call gets a new one', async () => {
    // A proxy whose connections can go silent one at a time (a half-dead route, a stuck
    // load balancer): the socket stays open, the server behind it is fine.
    const links = []
    const proxy = net.createServer((c) => {
      const link = { silent: false, c, up: net.connect(server.port, '127.0.0.1') }
      c.on('data', (b) => link.silent || link.up.write(b))
      link.up.on('data', (b) => link.silent || c.write(b))
      for (const s of [c, link.up]) {
        s.on('error', () => {})
        s.on('close', () => (c.destroy(), link.up.destroy()))
      }
      links.push(link)
    })
    await new Promise((resolve) => proxy.listen(0, '127.0.0.1', resolve))
    try {
      const m = mk({ retryCount: 0, nodeTimeout: 200 }, { host: '127.0.0.1', port: proxy.address().port })
      await (await m.lock(key('via-proxy'), 5000)).unlock()
      assert.equal(links.length, 1)
      links[0].silent = true
      const err = await withTimeout(rejectsWith(m.lock(key('silent'), 5000), LockError, 'E_UNAVAILABLE'), 5000, 'lock() on a silent connection')
      assert.equal(err.failures[0].kind, 'timeout')
      const k = key('after-silence')
      const h = await withTimeout(m.lock(k, 5000), 5000, 'lock() after the silent connection')
      assert.equal(await server.get(k), h.value)
      await h.unlock()
      assert.equal(links.length, 2, 'the next call opened a new connection')
    } finally {
      for (const l of links) l.c.destroy()
      proxy.close()
    }
  })

  test('g: 200 calls in one job, sent in several early writes, refusals among them: each gets its own answer', async () => {
    const m = mk({ retryCount: 0 })
    const k = key('held')
    const held = await m.lock(k, 5000)
    const calls = []
    for (let i = 0; i < 100; i++) {
      calls.push(m.lock(k, 5000)) // busy: refused without a retry
      calls.push(m.lock(key(`free${i}`), 5000))
    }
    const results = await withTimeout(Promise.allSettled(calls), 10000, 'every call of the job settles')
    const busy = results.filter((r, i) => i % 2 === 0)
    assert.ok(busy.every((r) => r.status === 'rejected' && r.reason.code === 'E_LOCK_BUSY'), JSON.stringify(busy.find((r) => r.status !== 'rejected' || r.reason.code !== 'E_LOCK_BUSY')))
    const free = results.filter((r, i) => i % 2 === 1)
    assert.ok(free.every((r) => r.status === 'fulfilled'))
    await Promise.all(free.map((r) => r.value.unlock()))
    await held.unlock()
  })

  test('h: 40 destroy() calls in one job (one of them sent early, decided at once): every one resolves', async () => {
    const ms = Array.from({ length: 40 }, () => create({ type: 'redis', connection: { host: '127.0.0.1', port: server.port } }))
    await new Promise((resolve) => setImmediate(resolve))
    await withTimeout(Promise.all(ms.map((m) => m.destroy())), 5000, 'every destroy() resolves')
  })

  test('i: a socket that has not answered yet (slow to come up) is kept when a request on it times out: the next call uses it', async () => {
    // The server's first bytes reach the client 700 ms late (a slow route or handshake),
    // past the node timeout (300 ms) but within the connect timeout.
    const links = []
    const proxy = net.createServer((c) => {
      const up = net.connect(server.port, '127.0.0.1')
      const opened = Date.now()
      c.on('data', (b) => up.write(b))
      up.on('data', (b) => setTimeout(() => c.write(b), Math.max(0, opened + 700 - Date.now())))
      for (const s of [c, up]) {
        s.on('error', () => {})
        s.on('close', () => (c.destroy(), up.destroy()))
      }
      links.push(c)
    })
    await new Promise((resolve) => proxy.listen(0, '127.0.0.1', resolve))
    try {
      const m = mk({ retryCount: 0, nodeTimeout: 300, connectTimeout: 2000 }, { host: '127.0.0.1', port: proxy.address().port })
      await withTimeout(rejectsWith(m.lock(key('slow-first'), 5000), LockError, 'E_UNAVAILABLE'), 5000, 'the first lock() times out')
      await new Promise((resolve) => setTimeout(resolve, 600))
      const k = key('after-slow-start')
      const h = await withTimeout(m.lock(k, 5000), 5000, 'lock() once the socket answers')
      assert.equal(await server.get(k), h.value)
      await h.unlock()
      assert.equal(links.length, 1, 'the socket that was slow to answer was kept')
    } finally {
      for (const l of links) l.destroy()
      proxy.close()
    }
  })

  test('j: isLocked() is false right after unlock() is called, before the release has gone out', async () => {
    const m = mk()
    const k = key('is-locked')
    const h = await m.lock(k, 5000)
    assert.equal(m.isLocked(k), true)
    const p = h.unlock()
    assert.equal(m.isLocked(k), false, 'unlock() was called: no longer held')
    await p
    assert.equal(m.isLocked(k), false)
  })
})
