// The PostgreSQL backend across processes (children: fixtures/pg-child.mjs): a waiter in
// another process is woken by NOTIFY (retryDelay 1000, it gets the key tens of ms after the
// unlock), three processes increment one counter under the lock without a lost update and
// with fences strictly increasing in acquisition order, and processes that used a manager
// exit by themselves after destroy().
import { test, describe, after } from 'node:test'
import assert from 'node:assert/strict'
import { fileURLToPath } from 'node:url'

import { create } from '../index.mjs'
import { runNode } from './helpers.mjs'
import { usePostgres, freePort } from './pg-harness.mjs'

const CHILD = fileURLToPath(new URL('./fixtures/pg-child.mjs', import.meta.url))
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

const pg = await usePostgres()

const managers = []
after(() => Promise.allSettled(managers.map((m) => m.destroy())))
function mk(lockOptions = {}) {
  const m = create({ type: 'postgres', connection: pg.url, lockOptions })
  managers.push(m)
  return m
}

/** The JSON lines of a child as a queue: `await q.next('ev')` is the next line with that ev. */
function lineQueue() {
  const lines = []
  let cursor = 0
  let wake = () => {}
  return {
    lines,
    push(obj) {
      lines.push(obj)
      wake()
    },
    async next(ev, ms = 15000) {
      const end = Date.now() + ms
      for (;;) {
        const i = lines.findIndex((l, j) => j >= cursor && l.ev === ev)
        if (i >= 0) {
          cursor = i + 1
          return lines[i]
        }
        const err = lines.find((l) => l.ev === 'error')
        if (err) assert.fail(`the child failed: ${JSON.stringify(err)}`)
        if (Date.now() > end) assert.fail(`the child did not print '${ev}' within ${ms} ms; it printed ${JSON.stringify(lines)}`)
        await new Promise((r) => {
          const t = setTimeout(r, 20)
          wake = () => {
            clearTimeout(t)
            r()
          }
        })
      }
    },
  }
}

describe('NOTIFY across processes', { timeout: 60000 }, () => {
  test('a waiter in another process (retryDelay 1000) gets the key within a few tens of ms of the unlock, 3 rounds', async () => {
    const holder = mk()
    const k = 'oxlock:pg:proc:notify'
    const q = lineQueue()
    let child
    const run = runNode([CHILD, 'waiter', pg.url, k, '3'], {
      killAfter: 50000,
      onLine: (obj, c) => {
        child = c
        q.push(obj)
      },
    })
    let ok = false
    try {
      await q.next('ready', 20000)
      const delays = []
      for (let round = 0; round < 3; round++) {
        const h = await holder.lock(k, 10000)
        child.kill('SIGUSR2')
        const waiting = await q.next('waiting')
        assert.equal(waiting.round, round)
        // its first attempt finds the key held; a retry by the timer would come ~1000 ms after it
        await sleep(300)
        const t0 = Date.now()
        await h.unlock()
        const locked = await q.next('locked', 10000)
        assert.equal(locked.round, round)
        assert.ok(locked.fence > h.fence, `the child's fence ${locked.fence} follows ours ${h.fence}`)
        delays.push(locked.at - t0)
      }
      for (const [round, d] of delays.entries()) {
        assert.ok(d < 300, `round ${round}: the other process got the key ${d} ms after the unlock (all: ${delays.join(', ')} ms): it waited for its 1000 ms retry timer instead of a NOTIFY`)
      }
      await q.next('destroyed', 10000)
      ok = true
    } finally {
      if (!ok && child) child.kill('SIGKILL')
      const r = await run
      if (ok) {
        assert.equal(r.signal, null, `the waiter did not exit by itself after destroy():\n${r.stdout}\n${r.stderr}`)
        assert.equal(r.code, 0, `the waiter failed:\n${r.stderr}`)
      }
    }
  })
})

describe('three processes, one counter', { timeout: 120000 }, () => {
  test('3 processes × 2 workers × 30 increments: the counter ends at 90, fences strictly increase in acquisition order', async () => {
    const k = 'oxlock:pg:proc:counter'
    await pg.query('create table if not exists pg_test_ready (key text not null, pid int not null)')
    await pg.query('create table if not exists pg_test_counter (name text primary key, n int not null)')
    await pg.query('create table if not exists pg_test_fences (id bigserial primary key, key text not null, fence bigint not null, pid int not null)')
    await pg.query('insert into pg_test_counter (name, n) values ($1, 0) on conflict (name) do update set n = 0', [k])
    const PROCS = 3
    const INC = 30
    const runs = await Promise.all(
      Array.from({ length: PROCS }, () => runNode([CHILD, 'counter', pg.url, k, String(INC), String(PROCS), '2'], { killAfter: 90000 })),
    )
    for (const r of runs) {
      assert.equal(r.signal, null, `a counter process was killed (hung, or kept alive after destroy()):\n${r.stdout}\n${r.stderr}`)
      assert.equal(r.code, 0, `a counter process failed:\n${r.stderr}`)
      const done = r.lines.find((l) => l.ev === 'done')
      assert.ok(done, `no 'done' line:\n${r.stdout}`)
      assert.equal(done.done, INC)
    }
    const [{ n }] = await pg.query('select n from pg_test_counter where name = $1', [k])
    assert.equal(n, PROCS * INC, 'lost update: two processes held the lock at once')
    const log = await pg.query('select fence, pid from pg_test_fences where key = $1 order by id', [k])
    assert.equal(log.length, PROCS * INC)
    const fences = log.map((r) => BigInt(r.fence))
    for (let i = 1; i < fences.length; i++) {
      assert.ok(fences[i] > fences[i - 1], `fence #${i} (${fences[i]}, pid ${log[i].pid}) is not above the previous holder's (${fences[i - 1]}, pid ${log[i - 1].pid})`)
    }
    assert.ok(fences.every((f) => f > 0n && f <= BigInt(Number.MAX_SAFE_INTEGER)))
    assert.equal(new Set(log.map((r) => r.pid)).size, PROCS, 'every process held the lock')
    // the processes did contend through the database: some lock() found the key held by another
    // process (a waiter behind a holder of its own process is handed the key, in one attempt)
    assert.ok(runs.some((r) => r.lines.find((l) => l.ev === 'done').maxAttempts >= 2), 'no lock() ever had to retry: no contention')
    assert.equal(await pg.lockRow(k), null, 'the key is free at the end')
  })
})

describe('process lifetime', { timeout: 60000 }, () => {
  async function child(variant, args, killAfter = 10000) {
    const r = await runNode([CHILD, variant, ...args], { killAfter })
    const ev = (name) => r.lines.find((l) => l.ev === name)
    assert.equal(r.signal, null, `the '${variant}' child did not exit by itself within ${killAfter} ms; it printed:\n${r.stdout}\n${r.stderr}`)
    assert.equal(r.code, 0, `the '${variant}' child failed:\n${r.stderr}`)
    return { ...r, ev }
  }

  test('create, lock, unlock, destroy: the process exits by itself soon after, leaving no connection open', async () => {
    const before = new Set((await pg.backends()).map((b) => b.pid))
    const r = await child('lifecycle', [pg.url, 'oxlock:pg:life:1'])
    assert.ok(r.ev('locked'), r.stdout)
    const destroyed = r.ev('destroyed')
    assert.ok(destroyed, r.stdout)
    assert.ok(r.exitedAt - destroyed.at < 3000, `exited ${r.exitedAt - destroyed.at} ms after destroy()`)
    // its connections are gone from the server (a backend ends when its client disconnects)
    const end = Date.now() + 5000
    let left
    do {
      left = (await pg.backends()).filter((b) => !before.has(b.pid))
      if (left.length === 0) break
      await sleep(50)
    } while (Date.now() < end)
    assert.deepEqual(left, [], "the child's connections should be closed")
  })

  test('destroy() with held and queued locks: the queued one rejects E_DESTROYED, the rows are deleted, the process exits', async () => {
    const k = 'oxlock:pg:life:2'
    const r = await child('destroy-held-and-queued', [pg.url, k])
    assert.equal(r.ev('destroying').size, 2)
    assert.deepEqual({ name: r.ev('rejected').name, code: r.ev('rejected').code }, { name: 'DestroyedError', code: 'E_DESTROYED' })
    assert.equal(r.ev('granted'), undefined)
    assert.ok(r.exitedAt - r.ev('destroying').at < 3000, `exited ${r.exitedAt - r.ev('destroying').at} ms after destroy()`)
    assert.equal(await pg.lockRow(`${k}:held`), null, 'destroy() deletes the held rows')
    assert.equal(await pg.lockRow(`${k}:other`), null)
  })

  test('a refused connection does not keep the process alive', async () => {
    const port = await freePort()
    const r = await child('refused', [`postgres://postgres@127.0.0.1:${port}/postgres`])
    assert.equal(r.ev('rejected').code, 'E_UNAVAILABLE')
    assert.ok(r.ev('destroyed'))
  })
})
