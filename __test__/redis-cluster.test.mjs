// Redis Cluster (`connection: { cluster: [seeds] }`) against a real 3-master cluster
// (cluster-harness.mjs): keys spread over the masters, fences, multi-resource locks that share a
// hash tag and E_CROSSSLOT for those that do not, wake-ups across nodes (pub/sub is
// cluster-wide), a slot migrated in the middle of a run with no exclusion violation,
// `fencing: false` (plain SETs and waiting marks on each key's master), and the
// configuration errors (db, host beside cluster).
import { test, describe, after } from 'node:test'
import assert from 'node:assert/strict'

import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

import { create, ConfigError, LockError } from '../index.mjs'
import { withTimeout, rejectsWith } from './helpers.mjs'
import { useCluster } from './cluster-harness.mjs'

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const CLI = fileURLToPath(new URL('../cli/main.js', import.meta.url))
const cli = (...args) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, LOCK_CONFIG: JSON.stringify({ type: 'redis', connection: { cluster: c.seeds } }) } })

const managers = []
after(() => withTimeout(Promise.all(managers.map((m) => m.destroy())), 20000, 'destroying the cluster test managers'))
function mk(lockOptions = {}) {
  const m = create({ type: 'redis', connection: { cluster: c.seeds }, lockOptions })
  managers.push(m)
  return m
}

const c = await useCluster()

describe('configuration', () => {
  test('db is refused on a cluster; host or sentinels beside cluster; an empty seed list: E_CONFIG naming the field', () => {
    const cases = [
      [{ cluster: c.seeds, db: 1 }, /connection\.db: a Redis Cluster has only database 0/],
      [{ cluster: c.seeds, host: '127.0.0.1' }, /connection\.host is not used with cluster/],
      [{ cluster: [] }, /connection\.cluster must list at least one seed node/],
      [{ cluster: c.seeds, sentinels: [c.seeds[0]], name: 'm' }, /connection\.cluster: a connection is a cluster or a Sentinel-found master, not both/],
      [{ cluster: [`redis://127.0.0.1:${c.nodes[0].port}`], password: 'x' }, /connection\.cluster\[0\]: give credentials and tls in the seed URLs or in the object/],
    ]
    for (const [connection, message] of cases) {
      assert.throws(() => create({ type: 'redis', connection }), (e) => e instanceof ConfigError && message.test(e.message), JSON.stringify(connection))
    }
    assert.throws(() => create({ type: 'redis', connection: { cluster: [{ host: '127.0.0.1', port: c.nodes[0].port, db: 2 }] } }), (e) => e.code === 'E_CONFIG' && /cluster\[0\]\.db/.test(e.message))
  })
})

describe('on a 3-master cluster', { timeout: 90000 }, () => {
  test('locks on keys of every master: the token on the owning node, fences increasing, unlock deletes', async () => {
    const m = mk({ retryCount: 0 })
    const owners = new Set()
    for (let i = 0; i < 24; i++) {
      const k = `cluster:spread:${i}`
      const h = await m.lock(k, 10000)
      const owner = await c.owner(k)
      owners.add(owner.port)
      assert.equal(await owner.get(k), h.value)
      const again = await m.lock(`${k}:x`, 1000)
      await again.unlock()
      await h.unlock()
      assert.equal(await owner.get(k), null)
      const h2 = await m.lock(k, 1000)
      assert.ok(h2.fence > h.fence, `fence ${h2.fence} > ${h.fence}`)
      await h2.unlock()
    }
    assert.equal(owners.size, 3, 'the keys were spread over the three masters')
  })

  test('fencing: false: plain SET NX PX on each key\'s master, a refused attempt marks the key\'s waiting key there, a handoff', async () => {
    const m = mk({ retryCount: 0, fencing: false })
    const other = mk({ retryCount: 0 })
    const owners = new Set()
    for (let i = 0; i < 12; i++) {
      const k = `cluster:plain:${i}`
      const h = await m.lock(k, 10000)
      const owner = await c.owner(k)
      owners.add(owner.port)
      assert.equal(h.fence, undefined)
      assert.equal(await owner.get(k), h.value)
      assert.equal(await owner.get(`{${k}}:fence`), null)
      await h.unlock()
      assert.equal(await owner.get(k), null)
    }
    assert.equal(owners.size, 3, 'the keys were spread over the three masters')
    const k = 'cluster:plain:held'
    const held = await other.lock(k, 10000)
    await rejectsWith(m.lock(k, 1000), LockError, 'E_LOCK_BUSY')
    const owner = await c.owner(k)
    let mark
    for (let i = 0; i < 50 && mark == null; i++) {
      mark = await owner.get(`{${k}}:waiting`)
      if (mark == null) await sleep(10)
    }
    assert.equal(mark, '1')
    await held.unlock()
    const w = mk({ retryCount: -1, fencing: false })
    const h1 = await w.lock(k, 10000)
    const next = w.lock(k, 10000)
    await sleep(20)
    await h1.unlock()
    const h2 = await next
    assert.equal(await owner.get(k), h2.value)
    await h2.unlock()
  })

  test('multi-resource: keys with one hash tag lock together; keys in different slots are E_CROSSSLOT at once', async () => {
    const m = mk({ retryCount: 5, retryDelay: 200 })
    const h = await m.lock(['{order:7}:items', '{order:7}:payment'], 5000)
    assert.equal(await c.get('{order:7}:items'), h.value)
    assert.equal(await c.get('{order:7}:payment'), h.value)
    await h.unlock()
    let a = 'cluster:x:0'
    let b = 'cluster:y:0'
    for (let i = 1; (await c.slot(a)) === (await c.slot(b)); i++) b = `cluster:y:${i}`
    const t0 = Date.now()
    const err = await rejectsWith(m.lock([a, b], 5000), LockError, 'E_CROSSSLOT')
    assert.ok(Date.now() - t0 < 1000, 'not retried: it would be refused again')
    assert.match(err.message, /hash tag/)
    assert.equal(await c.get(a), null)
    a = null
  })

  test('a waiter on one manager is woken by an unlock on another (pub/sub reaches every node)', async () => {
    const holder = mk()
    const waiter = mk({ retryCount: -1, retryDelay: 10000 })
    for (const k of ['cluster:wake:a', 'cluster:wake:b', 'cluster:wake:c']) {
      const h = await holder.lock(k, 20000)
      const w = waiter.lock(k, 5000)
      await sleep(300)
      const t0 = Date.now()
      await h.unlock()
      const got = await withTimeout(w, 8000, `the waiter of ${k}`)
      assert.ok(Date.now() - t0 < 3000, `woken by the unlock, not its 10 s retry (${Date.now() - t0} ms)`)
      await got.unlock()
    }
  })

  test('a slot migrated in the middle of a run: every task goes on (MOVED / ASK followed), no two holders at once', async () => {
    const ms = [mk({ retryCount: -1, retryDelay: 20 }), mk({ retryCount: -1, retryDelay: 20 })]
    const key = '{mig}:job'
    const slot = await c.slot(key)
    let holders = 0
    let violations = 0
    let done = 0
    let stop = false
    const errors = []
    const task = async (m) => {
      while (!stop) {
        try {
          const h = await m.lock(key, 3000)
          if (holders++ > 0) violations++
          await sleep(1)
          holders--
          done++
          await h.unlock()
        } catch (e) {
          errors.push(e.code)
          await sleep(20)
        }
      }
    }
    const tasks = ms.flatMap((m) => [task(m), task(m), task(m)])
    await sleep(400)
    const before = done
    const from = await c.owner(key)
    const to = c.nodes.find((n) => n !== from)
    await c.migrate(slot, to)
    assert.equal((await c.owner(key)).port, to.port, 'the slot moved')
    await sleep(800)
    stop = true
    await withTimeout(Promise.all(tasks), 20000, 'the tasks after the migration')
    assert.equal(violations, 0, 'two holders at once')
    assert.ok(before > 10 && done - before > 10, `sections before ${before}, after ${done - before}`)
    assert.deepEqual(errors.filter((e) => e !== 'E_UNAVAILABLE'), [], 'only transient unavailability')
    const h = await ms[0].lock(key, 5000)
    assert.equal(await to.get(key), h.value, 'the key is on the new owner')
    await h.unlock()
  })

  test('the CLI: list covers every master (a cluster is one node), inspect shows the owner, unlock --force deletes there', async () => {
    const m = mk()
    const hs = []
    for (let i = 0; i < 12; i++) hs.push(await m.lock(`cluster:cli:${i}`, 20000))
    const r = cli('list', 'cluster:cli:*', '--json')
    assert.equal(r.status, 0, r.stderr)
    const { locks, failures } = JSON.parse(r.stdout)
    assert.deepEqual(failures, [])
    assert.deepEqual(locks.map((l) => l.key).sort(), hs.map((h) => h.resource).sort())
    for (const l of locks) assert.deepEqual([l.heldOn, l.nodes], [1, 1])
    const k = hs[5].resource
    const owner = await c.owner(k)
    const i = cli('inspect', k, '--json')
    assert.equal(i.status, 0, i.stderr)
    assert.deepEqual(JSON.parse(i.stdout).nodes.map((n) => [n.node, n.token]), [[owner.label, hs[5].value]])
    const u = cli('unlock', k, '--force', '--yes')
    assert.equal(u.status, 0, u.stderr)
    assert.equal(await owner.get(k), null)
    assert.equal(cli('inspect', k).status, 3)
    for (const h of hs) await h.unlock()
  })
})
