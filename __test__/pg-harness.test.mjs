// The PostgreSQL test harness by itself (pg-harness.mjs), with plain queries: the server it
// starts is real and ours, its default zone is the one asked for, and stop / start / kill /
// pause do what the other suites rely on.
import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import net from 'node:net'
import fs from 'node:fs'

import { since } from './helpers.mjs'
import { usePostgres, startPostgres, PG_VERSION, PG_BIN } from './pg-harness.mjs'

const pg = await usePostgres()

/** Resolves 'refused', 'open' or 'silent' (accepted, no answer to a startup message in `ms`). */
function probe(port, ms = 500) {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' })
    let done = false
    const finish = (v) => {
      if (done) return
      done = true
      clearTimeout(t)
      s.destroy()
      resolve(v)
    }
    const t = setTimeout(() => finish('silent'), ms)
    s.on('connect', () => {
      // an SSLRequest: a live server answers one byte ('S' or 'N') at once
      const b = Buffer.alloc(8)
      b.writeInt32BE(8, 0)
      b.writeInt32BE(80877103, 4)
      s.write(b)
    })
    s.on('data', () => finish('open'))
    s.on('error', (e) => finish(e.code === 'ECONNREFUSED' ? 'refused' : `error ${e.code}`))
  })
}

describe('pg-harness', { timeout: 120000 }, () => {
  test('a real PostgreSQL on a free loopback port, not 5432, as a non-root user, with the asked settings', async () => {
    assert.match(PG_VERSION, /PostgreSQL\) \d+/)
    assert.ok(fs.existsSync(`${PG_BIN}/postgres`))
    assert.notEqual(pg.port, 5432)
    assert.equal(pg.url, `postgres://postgres@127.0.0.1:${pg.port}/postgres`)
    assert.deepEqual(pg.options, { host: '127.0.0.1', port: pg.port, user: 'postgres', database: 'postgres' })
    const [row] = await pg.query(
      "select current_setting('port') as port, current_setting('listen_addresses') as listen, current_setting('fsync') as fsync, " +
        "current_setting('synchronous_commit') as sc, current_setting('max_connections') as maxc, current_setting('TimeZone') as tz, " +
        "current_setting('unix_socket_directories') as sock, inet_server_addr()::text as addr, $1::int + 1 as n",
      [41],
    )
    assert.deepEqual(
      { ...row, sock: undefined },
      { port: String(pg.port), listen: '127.0.0.1', fsync: 'off', sc: 'off', maxc: '200', tz: 'UTC', sock: undefined, addr: '127.0.0.1/32', n: 42 },
    )
    assert.ok(fs.existsSync(`${row.sock}/.s.PGSQL.${pg.port}`), `unix socket in ${row.sock}`)
    // the postmaster runs as a non-root user
    const status = fs.readFileSync(`/proc/${pg.pid}/status`, 'utf8')
    const uid = Number(/^Uid:\s+(\d+)/m.exec(status)[1])
    assert.notEqual(uid, 0, 'the server must not run as root')
  })

  test('stop() then start(): same port, same data; refused while down', async () => {
    await pg.query('create table if not exists harness_t (v int)')
    await pg.query('insert into harness_t values (7)')
    const pid = pg.pid
    await pg.stop()
    assert.equal(pg.running, false)
    assert.equal(await probe(pg.port), 'refused')
    await assert.rejects(() => pg.query('select 1'), /not running/)
    await pg.start()
    assert.notEqual(pg.pid, pid)
    const rows = await pg.query('select v from harness_t')
    assert.deepEqual(rows.map((r) => r.v), [7], 'the data survived the restart')
  })

  test('kill(): the postmaster and its backends are gone, connections break, the port is refused; start() recovers the data', async () => {
    const c = pg.client()
    try {
      await c`select 1`
      const [{ pid: backend }] = await c`select pg_backend_pid() as pid`
      const postmaster = pg.pid
      await pg.kill()
      assert.equal(pg.running, false)
      assert.throws(() => process.kill(postmaster, 0), /ESRCH/)
      assert.throws(() => process.kill(backend, 0), /ESRCH/, 'the backend died with the postmaster')
      assert.equal(await probe(pg.port), 'refused')
      await assert.rejects(c`select 1`)
    } finally {
      await c.end({ timeout: 0 })
    }
    await pg.start()
    const rows = await pg.query('select v from harness_t')
    assert.deepEqual(rows.map((r) => r.v), [7], 'crash recovery kept the data written before a checkpoint-free crash')
  })

  test('pause(): connections are accepted but nothing answers, queries hang; resume() answers again', async () => {
    const c = pg.client()
    try {
      await c`select 1`
      pg.pause()
      try {
        assert.equal(await probe(pg.port, 500), 'silent', 'a paused server accepts (kernel backlog) but does not answer')
        const q = c`select 1 as one`.then((r) => r[0].one)
        const r = await Promise.race([q, new Promise((res) => setTimeout(() => res('hung'), 500))])
        assert.equal(r, 'hung', 'a query on an open connection hangs')
        pg.resume()
        assert.equal(await q, 1, 'and is answered after resume()')
      } finally {
        pg.resume()
      }
      assert.equal(await probe(pg.port), 'open')
      const [{ n }] = await pg.query('select 2 as n')
      assert.equal(n, 2)
    } finally {
      await c.end({ timeout: 0 })
    }
  })

  test('query() gives up after its timeout on a paused server, and works again after resume()', async () => {
    pg.pause()
    const t0 = Date.now()
    try {
      await assert.rejects(() => pg.query('select 1', [], { timeout: 300 }), /no answer/)
      assert.ok(since(t0) < 2000)
    } finally {
      pg.resume()
    }
    assert.deepEqual((await pg.query('select 3 as n')).map((r) => r.n), [3])
  })

  test('a server whose default zone is not UTC: the zone is in postgresql.conf, so every session starts in it', async () => {
    const ny = await startPostgres({ timezone: 'America/New_York' })
    try {
      const c = ny.client()
      try {
        const [{ tz }] = await c`select current_setting('TimeZone') as tz`
        assert.equal(tz, 'America/New_York')
        // a timestamp without zone written with current_timestamp is local time, hours off UTC in New York
        const [{ off }] = await c`select extract(epoch from (current_timestamp::timestamp - (current_timestamp at time zone 'UTC'))) as off`
        assert.ok(Number(off) === -4 * 3600 || Number(off) === -5 * 3600, `offset ${off}`)
      } finally {
        await c.end({ timeout: 0 })
      }
    } finally {
      await ny.kill()
    }
  })

  test('createRole(): a password role; a wrong password is refused, the right one works', async () => {
    const role = await pg.createRole('harness_pw', 'right-pw')
    const good = (await import('postgres')).default(role.url, { max: 1, connect_timeout: 5, onnotice: () => {} })
    const bad = (await import('postgres')).default(pg.urlFor('harness_pw', 'wrong-pw'), { max: 1, connect_timeout: 5, onnotice: () => {} })
    try {
      const [{ u }] = await good`select current_user as u`
      assert.equal(u, 'harness_pw')
      await assert.rejects(bad`select 1`, (e) => e.code === '28P01', 'password authentication failed')
    } finally {
      await good.end({ timeout: 0 })
      await bad.end({ timeout: 0 })
    }
  })
})
