// Waking waiters across processes: our unlock publishes on `oxlock:freed:<key>`, and a
// manager with a waiter subscribes (one pub/sub connection per node) and tries again at
// once, far sooner than its retry timer. A node-redlock holder does not publish: the waiter
// still gets the key by its timer, or at once when the server has keyspace events on (`del`,
// `expired` on `__keyspace@0__:<key>`).
import { test, describe, after } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

import { create } from '../index.mjs'
import { runNode } from './helpers.mjs'
import { useRedis } from './redis-harness.mjs'

const require = createRequire(import.meta.url)
const Redlock = require('redlock')
const IORedis = require('ioredis')

const WAITER = fileURLToPath(new URL('./fixtures/redis-waiter.mjs', import.meta.url))
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const [server] = await useRedis(1)

const managers = []
const clients = []
after(async () => {
  await Promise.allSettled(managers.map((m) => m.destroy()))
  await Promise.allSettled(clients.map((c) => c.quit()))
})
let n = 0
const key = (what) => `oxlock:wake:${what}:${++n}`

/** Starts a waiter process on `k`; resolves `{ run }` (the child's result) once it has made
 *  its first attempt and subscribed. (In an object: a promise returned as such would be
 *  adopted, and the caller would wait for the child to end.) */
async function waiter(k, retryDelay) {
  let ready
  const started = new Promise((r) => (ready = r))
  const run = runNode([WAITER, String(server.port), k, String(retryDelay)], {
    killAfter: 30000,
    onLine: (o) => o.ev === 'waiting' && ready(),
  })
  await started
  // Its first attempt found the key held, and its subscription is up.
  await sleep(400)
  return { run }
}

function lockedAt(r) {
  assert.equal(r.code, 0, `the waiter failed:\n${r.stderr}`)
  const locked = r.lines.find((l) => l.ev === 'locked')
  assert.ok(locked, r.stdout)
  return locked
}

describe('cross-process wake-up on Redis', { timeout: 60000 }, () => {
  test('our unlock wakes a waiter in another process at once (retryDelay 5000)', async () => {
    const m = create({ type: 'redis', connection: server.options })
    managers.push(m)
    for (let round = 0; round < 3; round++) {
      const k = key('ours')
      const h = await m.lock(k, 10000)
      const { run } = await waiter(k, 5000)
      const r0 = await Promise.race([run, sleep(600).then(() => null)])
      assert.equal(r0, null, 'the waiter finished before the unlock')
      const t0 = Date.now()
      await h.unlock()
      const locked = lockedAt(await run)
      const took = locked.at - t0
      // Its timer would try again about 4000 ms after the unlock; the notice takes a few ms
      // (the bound is generous: a slow machine is not what this checks).
      assert.ok(took < 1500, `round ${round}: the other process got the key ${took} ms after the unlock; its timer would be 5000 ms after its first attempt`)
      // Its first attempt, one when its subscription came up (notices may have been missed
      // before), the one the notice woke: never a timer's.
      assert.ok(locked.attempts <= 4, `attempts: ${locked.attempts}`)
    }
  })

  test('a node-redlock holder does not publish: the waiter still gets the key by its timer', async () => {
    const c = new IORedis({ host: '127.0.0.1', port: server.port })
    clients.push(c)
    const rl = new Redlock([c], { retryCount: 0 })
    const k = key('redlock')
    const j = await rl.lock(k, 10000)
    const { run } = await waiter(k, 300)
    const t0 = Date.now()
    await j.unlock()
    const locked = lockedAt(await run)
    assert.ok(locked.at - t0 < 3000, `took ${locked.at - t0} ms`)
  })

  test('with keyspace events on, node-redlock\'s unlock and a plain expiry wake the waiter too', async () => {
    await server.cmd('CONFIG', 'SET', 'notify-keyspace-events', 'Kgx')
    try {
      const c = new IORedis({ host: '127.0.0.1', port: server.port })
      clients.push(c)
      const rl = new Redlock([c], { retryCount: 0 })
      const k = key('keyspace-del')
      const j = await rl.lock(k, 10000)
      const { run } = await waiter(k, 5000)
      const t0 = Date.now()
      await j.unlock()
      const took = lockedAt(await run).at - t0
      assert.ok(took < 1500, `woken ${took} ms after node-redlock's unlock; its timer would be about 4600 ms`)

      const k2 = key('keyspace-expired')
      await rl.lock(k2, 2500) // never unlocked: it expires (after the waiter started, even on a slow machine)
      const t1 = Date.now()
      const { run: run2 } = await waiter(k2, 5000)
      const took2 = lockedAt(await run2).at - t1
      assert.ok(took2 >= 2400 && took2 < 4800, `got an expired key after ${took2} ms (ttl 2500; its timer would be 5000 ms after its first attempt)`)
    } finally {
      await server.cmd('CONFIG', 'SET', 'notify-keyspace-events', '')
    }
  })
})
