// Redis Sentinel (`connection: { sentinels, name }`) against a real deployment
// (sentinel-harness.mjs: a master, a replica, three sentinels): the master is found through
// the sentinels; after a failover in the middle of a run (the master killed), calls in flight
// reject with E_UNAVAILABLE, later ones work against the new master, and no two holders of one
// key overlap; the CLI lists the locks through the sentinels; bad configs name the field.
import { test, describe, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

import { create, ConfigError, LockError } from '../index.mjs'
import { withTimeout, rejectsWith } from './helpers.mjs'
import { useSentinel } from './sentinel-harness.mjs'

const CLI = fileURLToPath(new URL('../cli/main.js', import.meta.url))
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

const managers = []
after(() => withTimeout(Promise.all(managers.map((m) => m.destroy())), 20000, 'destroying the sentinel test managers'))
function mk(connection, lockOptions = {}) {
  const m = create({ type: 'redis', connection, lockOptions })
  managers.push(m)
  return m
}

const d = await useSentinel()

describe('configuration', () => {
  test('sentinels without a name, a name without sentinels, host beside sentinels, an empty list: E_CONFIG naming the field', () => {
    const s = d.connection.sentinels
    const cases = [
      [{ sentinels: s }, /connection\.name: sentinels need the master's name/],
      [{ name: 'x' }, /connection\.sentinels: a master name needs the sentinels/],
      [{ sentinels: s, name: 'x', host: '127.0.0.1' }, /connection\.host is not used with sentinels/],
      [{ sentinels: [], name: 'x' }, /connection\.sentinels must list at least one sentinel/],
      [{ sentinels: [{ sentinels: s, name: 'x' }], name: 'x' }, /connection\.sentinels\[0\]: a sentinel is reached directly/],
    ]
    for (const [connection, message] of cases) {
      assert.throws(() => create({ type: 'redis', connection }), (e) => e instanceof ConfigError && e.code === 'E_CONFIG' && message.test(e.message), JSON.stringify(connection))
    }
    assert.throws(() => create({ type: 'redis', connection: { sentinels: s, name: 7 } }), (e) => e instanceof TypeError && /connection\.name/.test(e.message))
  })

  test('a name no sentinel knows: E_UNAVAILABLE that says so', async () => {
    const m = mk({ sentinels: d.connection.sentinels, name: 'nobody' }, { retryCount: 0 })
    const err = await rejectsWith(m.lock('sentinel:unknown', 1000), LockError, 'E_UNAVAILABLE')
    assert.match(err.causes.join(';'), /^nobody: .*no sentinel knows a master named nobody/)
  })
})

describe('a failover in the middle of a run', { timeout: 90000 }, () => {
  test('the master found through the sentinels: lock, the key on the master and its replica, unlock', async () => {
    const m = mk(d.connection, { retryCount: 0 })
    const h = await m.lock('sentinel:plain', 10000)
    assert.equal(await d.master.get('sentinel:plain'), h.value)
    for (let i = 0; i < 50 && (await d.replica.get('sentinel:plain')) !== h.value; i++) await sleep(20)
    assert.equal(await d.replica.get('sentinel:plain'), h.value, 'replicated')
    await h.unlock()
    assert.equal(await d.master.get('sentinel:plain'), null)
  })

  test('2 managers × 4 tasks on 2 keys while the master is killed: only E_UNAVAILABLE in between, no overlap, locks on the new master after', async () => {
    const ms = [mk(d.connection, { retryCount: 2, retryDelay: 100, nodeTimeout: 300 }), mk(d.connection, { retryCount: 2, retryDelay: 100, nodeTimeout: 300 })]
    const holders = new Map()
    const errors = new Map()
    let violations = 0
    let stop = false
    let failedOverAt = Infinity
    let after = 0
    const task = async (m, key) => {
      while (!stop) {
        let h
        try {
          h = await m.lock(key, 2000)
        } catch (e) {
          errors.set(e.code, (errors.get(e.code) || 0) + 1)
          await sleep(50)
          continue
        }
        if (holders.get(key)) violations++
        holders.set(key, true)
        await sleep(5)
        holders.set(key, false)
        if (Date.now() > failedOverAt) after++
        await h.unlock()
      }
    }
    const tasks = ms.flatMap((m) => ['sentinel:run:a', 'sentinel:run:b', 'sentinel:run:a', 'sentinel:run:b'].map((k) => task(m, k)))
    await sleep(500)
    const oldMaster = d.master.port
    await d.failover()
    failedOverAt = Date.now()
    assert.notEqual(d.master.port, oldMaster)
    await sleep(3000)
    stop = true
    await withTimeout(Promise.all(tasks), 20000, 'the tasks, after the failover')
    assert.equal(violations, 0, 'two holders of one key at once')
    for (const code of errors.keys()) assert.ok(['E_UNAVAILABLE', 'E_LOCK_BUSY'].includes(code), `only unavailability or a busy key in between, got ${code}`)
    assert.ok(after > 10, `locks taken after the failover: ${after}`)
    const h = await ms[0].lock('sentinel:after', 10000)
    assert.equal(await d.master.get('sentinel:after'), h.value, 'the key is on the new master')
    await h.unlock()
  })

  test('a master that stops answering (SIGSTOP, connections left open): the next calls find the new master', async () => {
    // A deployment of its own: the one above has no replica left after its failover.
    const d2 = await useSentinel()
    const m = mk(d2.connection, { retryCount: 40, retryDelay: 100, nodeTimeout: 300 })
    const h = await m.lock('sentinel:paused:a', 5000)
    await h.unlock()
    const paused = d2.master
    await d2.failover({ pause: true })
    try {
      const t0 = Date.now()
      const h2 = await withTimeout(m.lock('sentinel:paused:b', 5000), 15000, 'lock() after the paused master was replaced')
      assert.ok(Date.now() - t0 < 6000, `found the new master in ${Date.now() - t0} ms`)
      assert.equal(await d2.master.get('sentinel:paused:b'), h2.value)
      await h2.unlock()
    } finally {
      await paused.kill()
    }
  })

  test('the CLI lists through the sentinels', async () => {
    const m = mk(d.connection)
    const h = await m.lock('sentinel:cli', 10000)
    const r = spawnSync(process.execPath, [CLI, 'list', 'sentinel:cli', '--json'], { encoding: 'utf8', env: { ...process.env, LOCK_CONFIG: JSON.stringify({ type: 'redis', connection: d.connection }) } })
    assert.equal(r.status, 0, r.stderr)
    const { locks } = JSON.parse(r.stdout)
    assert.deepEqual(locks.map((l) => [l.key, l.token]), [['sentinel:cli', h.value]])
    await h.unlock()
  })
})
