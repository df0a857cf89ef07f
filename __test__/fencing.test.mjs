// Fencing tokens: `handle.fence` strictly increases for a key across processes, on one Redis
// node and over three (Redlock), also when the counter is lost (deleted, a node flushed as by
// a restart without persistence); a protected resource that refuses smaller fences never
// refuses one (3 processes × 1000 acquisitions). node-redlock's key and value are unchanged
// (redis-interop.test.mjs). In memory, fences increase per key too.
import { test, describe, after } from 'node:test'
import assert from 'node:assert/strict'
import { fileURLToPath } from 'node:url'

import { create } from '../index.mjs'
import { runNode } from './helpers.mjs'
import { useRedis, valuesOn } from './redis-harness.mjs'

const WORKER = fileURLToPath(new URL('./fixtures/redis-fence-worker.mjs', import.meta.url))
const servers = await useRedis(3)
const [one] = servers
const managers = []
after(() => Promise.allSettled(managers.map((m) => m.destroy())))
const mk = (nodes, options = {}) => {
  const m = create({ type: 'redis', connection: nodes.map((s) => s.options), ...options })
  managers.push(m)
  return m
}
let n = 0
const key = (what) => `oxlock:fence:${what}:${++n}`

async function fences(m, k, count) {
  const out = []
  for (let i = 0; i < count; i++) {
    const h = await m.lock(k, 5000)
    out.push(h.fence)
    await h.unlock()
  }
  return out
}

// A lock of `k` on `m` and the one it hands the key to on unlock (a second lock() queued
// in the same manager).
async function handoff(m, k) {
  const h1 = await m.lock(k, 5000)
  const p = m.lock(k, 5000)
  await new Promise((r) => setTimeout(r, 20))
  await h1.unlock()
  return [h1, await p]
}

function assertIncreasing(xs, what) {
  for (const [i, x] of xs.entries()) {
    assert.ok(Number.isSafeInteger(x) && x > 0, `${what}: fence ${i} is ${x}`)
    if (i > 0) assert.ok(x > xs[i - 1], `${what}: fence ${i} (${x}) is not above ${xs[i - 1]}`)
  }
}

describe('fencing tokens on Redis', { timeout: 60000 }, () => {
  test('one node: fences increase; the counter sits in the key\'s hash slot and outlives the lock by an hour', async () => {
    const m = mk([one])
    const k = key('one')
    const fs = await fences(m, k, 20)
    assertIncreasing(fs, 'one node')
    assert.equal(await one.get(`{${k}}:fence`), String(fs.at(-1)))
    const pttl = Number(await one.cmd('PTTL', `{${k}}:fence`))
    assert.ok(pttl > 3_600_000 && pttl <= 3_605_000, `PTTL ${pttl}`)
    // A key with its own hash tag keeps it.
    const tagged = `{${k}}:job`
    const h = await m.lock(tagged, 1000)
    assert.equal(await one.get(`${tagged}:fence`), String(h.fence))
    await h.unlock()
  })

  test('the counter deleted (or a node flushed) between acquisitions: the next fence is still larger', async () => {
    const m = mk([one])
    const k = key('lost-counter')
    const a = (await fences(m, k, 20)).at(-1)
    await one.cmd('DEL', `{${k}}:fence`)
    const [b] = await fences(m, k, 1)
    assert.ok(b > a, `${b} after ${a}`)
    const r = mk(servers)
    const k3 = key('flushed')
    const before = await fences(r, k3, 3)
    await servers[1].cmd('FLUSHALL')
    await servers[2].cmd('DEL', `{${k3}}:fence`)
    const later = await fences(r, k3, 3)
    assertIncreasing([...before, ...later], 'Redlock with lost counters')
  })

  test('the server clock is read for a new counter only; an existing one is incremented', async () => {
    const m = mk([one])
    const k = key('clock-once')
    const times = async () => Number(/cmdstat_time:calls=(\d+)/.exec(await one.cmd('INFO', 'commandstats'))?.[1] ?? 0)
    const before = await times()
    const [first, ...rest] = await fences(m, k, 10)
    assert.equal(await times(), before + 1, 'TIME calls over 10 acquisitions of one key')
    // A new counter starts from the clock in µs; later draws add one each.
    assert.ok(first > 1e15, `first fence ${first}`)
    assert.deepEqual(rest, rest.map((_, i) => first + i + 1))
    // A handoff increments it too.
    const [h1, h2] = await handoff(m, k)
    assert.equal(h2.fence, h1.fence + 1)
    await h2.unlock()
  })

  test('the acquire script\'s source goes once per socket, then by hash; after SCRIPT FLUSH one attempt fails and the retry carries it again', async () => {
    const m = mk([one], { lockOptions: { retryCount: 3, retryDelay: 20, retryJitter: 0 } })
    const stat = async (cmd) => Number(new RegExp(`cmdstat_${cmd}:calls=(\\d+)`).exec(await one.cmd('INFO', 'commandstats'))?.[1] ?? 0)
    const k = key('by-hash')
    await (await m.lock(k, 5000)).unlock() // the socket opens; the source goes with it
    const [eval0, sha0] = [await stat('eval'), await stat('evalsha')]
    const fs = await fences(m, k, 10)
    assert.equal(await stat('eval'), eval0, 'EVAL calls after the first acquisition')
    assert.ok((await stat('evalsha')) >= sha0 + 10, 'EVALSHA calls over 10 acquisitions')
    // The server forgets its scripts: the next acquisition's EVALSHA gets NOSCRIPT, fails
    // (no load and resend behind the caller's back), and its retry sends the source.
    await one.cmd('SCRIPT', 'FLUSH')
    const h = await m.lock(k, 5000)
    assert.ok(h.fence > fs[fs.length - 1])
    assert.ok(h.attempts >= 2, `attempts ${h.attempts}`)
    assert.equal(await one.get(k), h.value)
    await h.unlock()
    assert.equal(await one.get(k), null)
  })

  test('three nodes: once their counters agree, a node that drew the fence is not told it again', async () => {
    const m = mk(servers)
    const k = key('agree')
    const evalshas = async () => {
      let n = 0
      for (const s of servers) n += Number(/cmdstat_evalsha:calls=(\d+)/.exec(await s.cmd('INFO', 'commandstats'))?.[1] ?? 0)
      return n
    }
    await fences(m, k, 3) // the sockets open, the counters are raised
    // Raises are sent without waiting: let them land before each count.
    const settled = async () => {
      await new Promise((resolve) => setTimeout(resolve, 50))
      return evalshas()
    }
    const before = await settled()
    const fs = await fences(m, k, 10)
    assert.ok(fs.every((f, i) => i === 0 || f > fs[i - 1]), `fences ${fs}`)
    // Per cycle: 3 acquisitions and 3 releases, and the fence for the node not heard before
    // the round was decided, and for a heard one only while its counter lags (the counters
    // start from each server's clock): at most 8 calls, where every node was told (9).
    const calls = (await settled()) - before
    assert.ok(calls <= 10 * 8, `${calls} script calls over 10 cycles`)
    assert.deepEqual(await valuesOn(servers, k), servers.map(() => null))
  })

  test('a local handoff draws a new fence too', async () => {
    const m = mk([one])
    const k = key('handoff')
    const [h1, h2] = await handoff(m, k)
    assert.ok(h2.fence > h1.fence, `${h2.fence} after ${h1.fence}`)
    await h2.unlock()
  })

  for (const [name, nodes, count] of [
    ['one node, 3 processes × 1000 acquisitions', [one], 1000],
    ['three nodes (Redlock), 3 processes × 300 acquisitions', servers, 300],
  ]) {
    test(`${name}: a resource that refuses smaller fences accepts every write`, async () => {
      const k = key('procs')
      const ports = nodes.map((s) => s.port).join(',')
      const runs = await Promise.all(Array.from({ length: 3 }, () => runNode([WORKER, ports, k, String(count), '3'], { killAfter: 50000 })))
      let accepted = 0
      for (const r of runs) {
        assert.equal(r.code, 0, `a worker failed (code ${r.code}, signal ${r.signal}):\n${r.stderr}`)
        const done = r.lines.find((l) => l.ev === 'done')
        assert.ok(done, r.stdout)
        assert.equal(done.rejected, 0, `a fence was refused by the resource: ${JSON.stringify(done)}`)
        accepted += done.accepted
      }
      assert.equal(accepted, 3 * count)
      assert.equal(await one.get(`${k}:accepted`), String(3 * count))
      assert.deepEqual(await valuesOn(nodes, k), nodes.map(() => null))
    })
  }
})

describe('lockOptions.fencing: false on Redis', { timeout: 60000 }, () => {
  const plain = (nodes, options = {}) => mk(nodes, { lockOptions: { fencing: false, ...options } })
  const evals = async (s) => Number(/cmdstat_eval:calls=(\d+)/.exec(await s.cmd('INFO', 'commandstats'))?.[1] ?? 0)

  test('one key: a plain SET NX PX, no script, no counter, fence undefined', async () => {
    const m = plain([one])
    const k = key('plain')
    const before = await evals(one)
    const h = await m.lock(k, 5000)
    assert.equal(await evals(one), before, 'the acquisition ran a script')
    assert.equal(h.fence, undefined)
    assert.equal(await one.get(k), h.value)
    const pttl = Number(await one.cmd('PTTL', k))
    assert.ok(pttl > 4000 && pttl <= 5000, `PTTL ${pttl}`)
    assert.equal(await one.get(`{${k}}:fence`), null)
    await h.unlock()
    assert.equal(await one.get(k), null)
  })

  test('a held key: busy, and the failed attempt marks that someone waits, as the script does', async () => {
    const holder = mk([one])
    const m = plain([one], { retryCount: 0 })
    const k = key('plain-held')
    const h = await holder.lock(k, 5000)
    await assert.rejects(m.lock(k, 5000), (e) => e.code === 'E_LOCK_BUSY')
    // The mark is sent without waiting for its reply: give it a moment.
    let mark
    for (let i = 0; i < 50 && mark == null; i++) {
      mark = await one.get(`{${k}}:waiting`)
      if (mark == null) await new Promise((r) => setTimeout(r, 10))
    }
    assert.equal(mark, '1')
    const pttl = Number(await one.cmd('PTTL', `{${k}}:waiting`))
    assert.ok(pttl > 0 && pttl <= 2000, `PTTL ${pttl}`)
    await h.unlock()
  })

  test('a local handoff and a multi-resource lock: no fence; three nodes: the quorum holds the value', async () => {
    const m = plain([one])
    const k = key('plain-handoff')
    const [, h2] = await handoff(m, k)
    assert.equal(h2.fence, undefined)
    assert.equal(await one.get(k), h2.value)
    await h2.unlock()
    const both = await m.lock([`${k}:a`, `${k}:b`], 5000)
    assert.equal(both.fence, undefined)
    assert.deepEqual([await one.get(`${k}:a`), await one.get(`${k}:b`)], [both.value, both.value])
    await both.unlock()
    const r = plain(servers)
    const h3 = await r.lock(k, 5000)
    assert.equal(h3.fence, undefined)
    assert.deepEqual(await valuesOn(servers, k), servers.map(() => h3.value))
    await h3.unlock()
    assert.deepEqual(await valuesOn(servers, k), servers.map(() => null))
  })

  test('with and without fences, one key still has one holder', async () => {
    const fenced = mk([one], { lockOptions: { retryCount: -1, retryDelay: 5, retryJitter: 0 } })
    const bare = plain([one], { retryCount: -1, retryDelay: 5, retryJitter: 0 })
    const k = key('mixed')
    let holders = 0
    let most = 0
    const worker = async (m) => {
      for (let i = 0; i < 30; i++) {
        const h = await m.lock(k, 5000)
        most = Math.max(most, ++holders)
        await new Promise((r) => setTimeout(r, 1))
        holders--
        await h.unlock()
      }
    }
    await Promise.all([worker(fenced), worker(bare), worker(fenced), worker(bare)])
    assert.equal(most, 1)
  })

  test('fencing must be a boolean; in memory it is accepted (one lockOptions for every type) and fences stay', async () => {
    assert.throws(() => create({ type: 'redis', lockOptions: { fencing: 'no' } }), (e) => e instanceof TypeError && /lockOptions\.fencing/.test(e.message))
    assert.throws(() => create({ lockOptions: { fencing: 1 } }), (e) => e instanceof TypeError && /lockOptions\.fencing/.test(e.message))
    const m = create({ lockOptions: { fencing: false } })
    const h = await m.lock('fencing:memory', 1000)
    assert.ok(Number.isSafeInteger(h.fence))
    await m.destroy()
    assert.throws(() => create({ type: 'postgres', lockOptions: { fencing: false } }), (e) => /fencing/.test(e.message) && e.code === 'E_CONFIG')
  })
})

describe('fencing tokens in memory', () => {
  test('fences increase per key, across managers of the process table', async () => {
    const a = create({ scope: 'process' })
    const b = create({ scope: 'process' })
    const k = key('memory')
    const seen = []
    for (let i = 0; i < 10; i++) {
      const h = await (i % 2 ? a : b).lock(k, 1000)
      seen.push(h.fence)
      await h.unlock()
    }
    // A waiter's fence is above its predecessor's too.
    const h1 = await a.lock(k, 1000)
    const p = b.lock(k, 1000)
    await h1.unlock()
    const h2 = await p
    seen.push(h1.fence, h2.fence)
    await h2.unlock()
    assertIncreasing(seen, 'in memory')
    await Promise.all([a.destroy(), b.destroy()])
  })
})
