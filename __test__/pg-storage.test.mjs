// `PostgresqlStorage` for `oxlock/distributed-locks` (compat/distributed-locks-postgresql.js)
// against real PostgreSQL servers (pg-harness.mjs): upstream's six storage cases (target-apis
// §5.5), the exact schema init() creates (§5.3), a table shared with processes still on
// distributed-locks-postgresql (rows written with upstream's own statements through the
// `postgres` package, on servers whose default zone is UTC, America/New_York and Asia/Kolkata),
// the fixes (takeover refreshes obtained_at, any tableName, fractional ttl, over-long keys and
// values are a RangeError, parallel set() never raises a serialization failure), three
// processes contending for one key, and a server stopped mid-run.
import { test, describe, after } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import postgres from 'postgres'

import { withTimeout, runNode, since } from './helpers.mjs'
import { usePostgres, startPostgres } from './pg-harness.mjs'

const require = createRequire(import.meta.url)
const LocksFactory = require('../compat/distributed-locks.js')
const PgModule = require('../compat/distributed-locks-postgresql.js')
const { PostgresqlStorage } = PgModule
const { FailedToObtainKey } = LocksFactory

const WORKER = fileURLToPath(new URL('./fixtures/pg-storage-worker.mjs', import.meta.url))
const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}'
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const busyMessage = (k) => `Failed to obtain lock for key ${k}, metaData:[object Object]`

const pg = await usePostgres() // default zone UTC
const zoned = {
  'America/New_York': await usePostgres({ timezone: 'America/New_York' }),
  'Asia/Kolkata': await usePostgres({ timezone: 'Asia/Kolkata' }),
}

// Every factory and upstream client is closed after the file, whatever happened.
const closers = []
after(async () => {
  await Promise.allSettled(closers.map((c) => c()))
})

let n = 0
/** A key no other test uses. */
const key = (what) => `${what}-${++n}`

const storageOptions = (server, extra = {}) => ({ host: '127.0.0.1', port: server.port, database: 'postgres', username: 'postgres', ...extra })

/** A factory over a PostgresqlStorage on `server` (closed after the file). */
function pgFactory(server = pg, storageExtra = {}, factoryOptions) {
  const storage = new PostgresqlStorage(storageOptions(server, storageExtra))
  const f = new LocksFactory(storage, factoryOptions)
  closers.push(() => f.close())
  return f
}

async function initedFactory(...args) {
  const f = pgFactory(...args)
  await withTimeout(f.init(), 10000, 'init()')
  return f
}

/**
 * A process still on distributed-locks-postgresql 1.0.x: the `postgres` package with the
 * server's default session zone, and upstream's statements as they are (REPEATABLE READ,
 * the WHERE naming `locks`, obtained_at not refreshed on takeover).
 */
function upstreamClient(server) {
  const sql = postgres({ host: '127.0.0.1', port: server.port, database: 'postgres', username: 'postgres', max: 2, onnotice: () => {} })
  closers.push(() => sql.end({ timeout: 0 }))
  const prefix = 'distributed-locks'
  return {
    sql,
    async init(table = 'locks') {
      await sql`
        CREATE TABLE IF NOT EXISTS ${sql(table)} (
            key varchar(50),
            value varchar(100) NOT NULL,
            ttl integer NOT NULL,
            obtained_at timestamp DEFAULT current_timestamp,
            CONSTRAINT ${sql(`${table}_pkey`)} PRIMARY KEY (key)
          );`
    },
    async set(k, value, ttl) {
      const rows = await sql.begin('ISOLATION LEVEL REPEATABLE READ', (tx) => tx`
        INSERT INTO ${tx('locks')} (key, value, ttl, obtained_at)
        VALUES (${`${prefix}:${k}`}, ${value}, ${ttl}, current_timestamp)
        ON CONFLICT ON CONSTRAINT ${tx('locks_pkey')}
        DO
            UPDATE SET value = ${value}, ttl = ${ttl.toString()}
            WHERE locks.obtained_at + interval '1' second * locks.ttl  < current_timestamp
        returning *
        `)
      return rows.length !== 0
    },
    async unSet(k, value) {
      await sql.begin('ISOLATION LEVEL REPEATABLE READ', async (tx) => tx`
        DELETE FROM ${tx('locks')}
        where key = ${`${prefix}:${k}`} AND value = ${value};
        `)
      return true
    },
    /** The row of `k` with its age by the session's clock (seconds since obtained_at). */
    async row(k, table = 'locks', p = prefix) {
      const [r] = await sql`select value, ttl, extract(epoch from (current_timestamp::timestamp - obtained_at))::float8 as age from ${sql(table)} where key = ${`${p}:${k}`}`
      return r ?? null
    },
  }
}

/** Asserts `promise` rejects with a FailedToObtainKey for `k`; returns the error. */
async function rejectsBusy(promise, k, ms = 20000) {
  let err
  await withTimeout(
    assert.rejects(promise, (e) => {
      err = e
      return true
    }),
    ms,
    `lock(${k}) should reject with FailedToObtainKey`,
  )
  assert.ok(err instanceof FailedToObtainKey, `expected FailedToObtainKey, got ${err && err.name}: ${err && err.message}`)
  assert.equal(err.message, busyMessage(k))
  return err
}

/** The time (ms after t0) at which `fn()` first resolves true, polling every `every` ms up to `ms`. */
async function firstTrue(fn, t0, ms = 10000, every = 100) {
  for (;;) {
    if (await fn()) return since(t0)
    if (since(t0) > ms) assert.fail(`still not obtained ${ms} ms later`)
    await sleep(every)
  }
}

// ---------------------------------------------------------------------------------------------

describe('module shape', () => {
  test('distributed-locks-postgresql exports { PostgresqlStorage }, also LocksFactory.PostgresqlStorage', () => {
    assert.equal(typeof PgModule.PostgresqlStorage, 'function')
    assert.equal(LocksFactory.PostgresqlStorage, PgModule.PostgresqlStorage)
    const s = new PostgresqlStorage(storageOptions(pg))
    for (const m of ['init', 'set', 'unSet', 'close']) assert.equal(typeof s[m], 'function', m)
    return s.close()
  })
})

// ---------------------------------------------------------------------------------------------
// The six upstream cases (target-apis §5.5).

describe('upstream cases: PostgresqlStorage', { timeout: 60000 }, () => {
  test('upstream 1: obtains a lock with defaults and unlocks', async () => {
    const f = await initedFactory()
    const l = f.createLock(key('u1'))
    assert.equal(await l.lock(), true)
    assert.equal(await l.unlock(), true)
  })

  test('upstream 2: a second Lock on the same key fails with FailedToObtainKey (retries 3, interval 0.5) while the first (ttl 10) is held', async () => {
    const f = await initedFactory()
    const k = key('u2')
    const l1 = f.createLock(k)
    assert.equal(await l1.lock({ ttl: 10 }), true)
    const t0 = Date.now()
    await rejectsBusy(f.createLock(k).lock({ retries: 3, interval: 0.5 }), k)
    assert.ok(since(t0) >= 950, `3 attempts 0.5 s apart take at least 1 s, took ${since(t0)} ms`)
    assert.equal(await l1.unlock(), true)
  })

  test('upstream 3: after unlock() a new Lock obtains the key', async () => {
    const f = await initedFactory()
    const k = key('u3')
    const l1 = f.createLock(k)
    assert.equal(await l1.lock({ ttl: 10 }), true)
    assert.equal(await l1.unlock(), true)
    const l2 = f.createLock(k)
    assert.equal(await l2.lock({ retries: 1 }), true, 'obtained on the first attempt')
    assert.equal(await l2.unlock(), true)
  })

  test('upstream 4: after the ttl (2 s) elapses a new Lock obtains the key', async () => {
    const f = await initedFactory()
    const k = key('u4')
    assert.equal(await f.createLock(k).lock({ ttl: 2 }), true)
    await rejectsBusy(f.createLock(k).lock({ retries: 1 }), k)
    await sleep(3000)
    const l2 = f.createLock(k)
    assert.equal(await l2.lock({ retries: 1 }), true, 'the expired key is free on the first attempt')
    assert.equal(await l2.unlock(), true)
  })

  test('upstream 5: a new Lock with retries 10 / interval 1 obtains the key once the 2 s ttl runs out', async () => {
    const f = await initedFactory()
    const k = key('u5')
    assert.equal(await f.createLock(k).lock({ ttl: 2 }), true)
    const t0 = Date.now()
    const l2 = f.createLock(k)
    assert.equal(await withTimeout(l2.lock({ retries: 10, interval: 1 }), 30000, 'l2.lock()'), true)
    assert.ok(since(t0) >= 1000, `it had to wait for the ttl, took only ${since(t0)} ms`)
    assert.equal(await l2.unlock(), true)
  })

  test('upstream 6: a stale unlock is harmless', async () => {
    const f = await initedFactory()
    const k = key('u6')
    const l1 = f.createLock(k)
    assert.equal(await l1.lock({ ttl: 1 }), true)
    await sleep(3000)
    const l2 = f.createLock(k)
    assert.equal(await l2.lock({ ttl: 10, retries: 1 }), true)
    assert.equal(await l1.unlock(), true, 'the stale unlock resolves true')
    await rejectsBusy(f.createLock(k).lock({ retries: 3, interval: 0.5 }), k)
    assert.equal(await l2.unlock(), true)
    const l4 = f.createLock(k)
    assert.equal(await l4.lock({ ttl: 10, retries: 1 }), true)
    assert.equal(await l4.unlock(), true)
  })
})

// ---------------------------------------------------------------------------------------------

describe('init(): upstream\'s exact schema', { timeout: 30000 }, () => {
  async function schema(server, table) {
    const cols = await server.query(
      'select column_name, data_type, character_maximum_length as len, is_nullable, column_default from information_schema.columns where table_name = $1 order by ordinal_position',
      [table],
    )
    const cons = await server.query('select conname, contype, pg_get_constraintdef(oid) as def from pg_constraint where conrelid = $1::regclass order by conname', [table])
    return { cols: cols.map((c) => ({ ...c, column_default: c.column_default && c.column_default.toLowerCase() })), cons: cons.map((c) => ({ ...c })) }
  }
  const expected = (table) => ({
    cols: [
      { column_name: 'key', data_type: 'character varying', len: 50, is_nullable: 'NO', column_default: null },
      { column_name: 'value', data_type: 'character varying', len: 100, is_nullable: 'NO', column_default: null },
      { column_name: 'ttl', data_type: 'integer', len: null, is_nullable: 'NO', column_default: null },
      { column_name: 'obtained_at', data_type: 'timestamp without time zone', len: null, is_nullable: 'YES', column_default: 'current_timestamp' },
    ],
    cons: [{ conname: `${table}_pkey`, contype: 'p', def: 'PRIMARY KEY (key)' }],
  })

  test('init() creates `locks` (the default) and a custom tableName with upstream\'s columns and <table>_pkey', async () => {
    const f = await initedFactory()
    assert.deepEqual(await schema(pg, 'locks'), expected('locks'))
    const table = 'schema_locks'
    assert.deepEqual((await pg.query('select to_regclass($1) as t', [table]))[0], { t: null })
    await initedFactory(pg, { tableName: table })
    assert.deepEqual(await schema(pg, table), expected(table))
    // the same as upstream's own CREATE TABLE gives
    const old = upstreamClient(pg)
    await old.init('upstream_made')
    assert.deepEqual((await schema(pg, 'upstream_made')).cols, expected(table).cols)
    const l = f.createLock(key('schema'))
    assert.equal(await l.lock(), true)
    await l.unlock()
  })

  test('init() on an existing table (made by upstream, with rows) is fine and keeps the rows; init() twice too', async () => {
    const old = upstreamClient(pg)
    await old.init()
    const k = key('pre')
    assert.equal(await old.set(k, 'old-value', 10), true)
    const f = pgFactory()
    await f.init()
    await f.init()
    assert.equal((await old.row(k)).value, 'old-value')
    await rejectsBusy(f.createLock(k).lock({ retries: 1 }), k)
    await old.unSet(k, 'old-value')
  })
})

// ---------------------------------------------------------------------------------------------
// One table shared with processes still on distributed-locks-postgresql, on servers whose
// default zone is UTC and two that are not (one behind UTC, one ahead of it, by a fraction of
// an hour too): a comparison in the wrong zone is off by hours either way.

for (const [zone, server] of [['UTC', pg], ...Object.entries(zoned)]) {
  describe(`interop with upstream's statements, server default zone ${zone}`, { timeout: 60000 }, () => {
    test('a row upstream holds blocks us; our unlock leaves it; after upstream\'s delete we obtain it', async () => {
      const old = upstreamClient(server)
      const f = await initedFactory(server)
      const k = key('old-holder')
      assert.equal(await old.set(k, 'old-value', 10), true)
      const l = f.createLock(k)
      await rejectsBusy(l.lock({ retries: 2, interval: 0.1 }), k)
      assert.equal(await l.unlock(), true)
      assert.equal((await old.row(k)).value, 'old-value', "our unlock() left the old process's lock in place")
      await old.unSet(k, 'old-value')
      assert.equal(await l.lock({ retries: 1 }), true)
      assert.equal(await l.unlock(), true)
    })

    test('a row we hold blocks upstream\'s insert; it sees our value and ttl; after our unlock upstream obtains it', async () => {
      const old = upstreamClient(server)
      const f = await initedFactory(server, {}, { machineId: 'm9' })
      const k = key('new-holder')
      const l = f.createLock(k)
      assert.equal(await l.lock({ ttl: 10 }), true)
      const row = await old.row(k)
      assert.match(row.value, new RegExp(`^${k}-m9-${UUID}$`))
      assert.equal(row.ttl, 10)
      assert.ok(row.age > -1 && row.age < 2, `obtained_at should be now in the session's zone; it is ${row.age} s old`)
      assert.equal(await old.set(k, 'old-value', 10), false, 'upstream fails while we hold it')
      assert.equal(await l.unlock(), true)
      assert.equal(await old.row(k), null)
      assert.equal(await old.set(k, 'old-value', 10), true)
      await old.unSet(k, 'old-value')
    })

    test('a row upstream wrote with ttl 2 expires for us after ~2 s (not at once, not hours later)', async () => {
      const old = upstreamClient(server)
      const f = await initedFactory(server)
      const k = key('old-expiry')
      const t0 = Date.now()
      assert.equal(await old.set(k, 'old-value', 2), true)
      const l = f.createLock(k)
      const at = await firstTrue(() => l.lock({ retries: 1 }).then(() => true, (e) => (e instanceof FailedToObtainKey ? false : Promise.reject(e))), t0, 8000)
      assert.ok(at >= 1500 && at <= 4500, `obtained ${at} ms after upstream's 2 s lock`)
      assert.equal(await l.unlock(), true)
    })

    test('a row we wrote with ttl 2 expires for upstream after ~2 s', async () => {
      const old = upstreamClient(server)
      const f = await initedFactory(server)
      const k = key('new-expiry')
      const t0 = Date.now()
      assert.equal(await f.createLock(k).lock({ ttl: 2 }), true)
      const at = await firstTrue(() => old.set(k, 'old-value', 10), t0, 8000)
      assert.ok(at >= 1500 && at <= 4500, `upstream obtained it ${at} ms after our 2 s lock`)
      await old.unSet(k, 'old-value')
    })

    test('fix: taking over an expired upstream row refreshes obtained_at, so the takeover lasts its own ttl', async () => {
      const old = upstreamClient(server)
      const f = await initedFactory(server)
      const k = key('takeover')
      assert.equal(await old.set(k, 'old-value', 1), true)
      await sleep(1500)
      const l = f.createLock(k)
      assert.equal(await l.lock({ ttl: 3, retries: 1 }), true, 'the expired row is taken over')
      const row = await old.row(k)
      assert.equal(row.ttl, 3)
      assert.ok(row.age > -1 && row.age < 1, `obtained_at was not refreshed on takeover: ${row.age} s old`)
      // 1.8 s after the takeover: expired if obtained_at had stayed at the old 1.5 s-old value
      await sleep(1800)
      assert.equal(await old.set(k, 'old-value-2', 10), false, 'upstream still sees our takeover held')
      await rejectsBusy(f.createLock(k).lock({ retries: 1 }), k)
      assert.equal(await l.unlock(), true)
    })
  })
}

// ---------------------------------------------------------------------------------------------

describe('fixes', { timeout: 60000 }, () => {
  test('tableName other than `locks`: init, busy, unlock and takeover after expiry all use it; nothing goes to `locks`', async () => {
    const table = 'other_locks'
    const f = await initedFactory(pg, { tableName: table, keyPrefix: 'pfx' })
    const old = upstreamClient(pg)
    const k = key('table')
    const l1 = f.createLock(k)
    assert.equal(await l1.lock({ ttl: 1 }), true)
    assert.match((await old.row(k, table, 'pfx')).value, new RegExp(`^${k}-1-${UUID}$`))
    await rejectsBusy(f.createLock(k).lock({ retries: 1 }), k)
    await sleep(1500)
    const l2 = f.createLock(k)
    assert.equal(await withTimeout(l2.lock({ ttl: 10, retries: 1 }), 10000, 'takeover on another table'), true, 'the takeover works on another table (upstream named `locks` here)')
    assert.equal(await l1.unlock(), true)
    await rejectsBusy(f.createLock(k).lock({ retries: 1 }), k)
    assert.equal(await l2.unlock(), true)
    assert.equal(await old.row(k, table, 'pfx'), null)
    const inLocks = await pg.query("select count(*)::int as c from information_schema.tables where table_name = 'locks'")
    if (inLocks[0].c > 0) assert.equal((await pg.query("select key from locks where key like 'pfx:%'")).length, 0, 'a row went to `locks`')
  })

  test('keyPrefix: the row key is <keyPrefix>:<key>', async () => {
    const f = await initedFactory(pg, { keyPrefix: 'my-locks' })
    const old = upstreamClient(pg)
    const k = key('prefix')
    const l = f.createLock(k)
    assert.equal(await l.lock(), true)
    assert.ok(await old.row(k, 'locks', 'my-locks'))
    assert.equal(await old.row(k), null)
    assert.equal(await l.unlock(), true)
    assert.equal(await old.row(k, 'locks', 'my-locks'), null)
  })

  test('a url works like { host, port, database, username }', async () => {
    const f = new LocksFactory(new PostgresqlStorage({ url: pg.url }))
    closers.push(() => f.close())
    await f.init()
    const l = f.createLock(key('url'))
    assert.equal(await l.lock(), true)
    assert.equal(await l.unlock(), true)
  })

  test('fractional ttl (0.5 s) works and expires within about a second', async () => {
    const f = await initedFactory()
    const k = key('fraction')
    const t0 = Date.now()
    assert.equal(await withTimeout(f.createLock(k).lock({ ttl: 0.5 }), 5000, 'lock({ ttl: 0.5 })'), true)
    const row = await upstreamClient(pg).row(k)
    assert.ok(Number.isInteger(row.ttl) && row.ttl >= 0 && row.ttl <= 1, `ttl column ${row.ttl}`)
    const l2 = f.createLock(k)
    assert.equal(await withTimeout(l2.lock({ retries: 100, interval: 0.05 }), 10000, 'l2.lock()'), true)
    assert.ok(since(t0) >= 400 && since(t0) < 3000, `obtained again ${since(t0)} ms after a 0.5 s lock`)
    await l2.unlock()
  })

  test('a key longer than the column (50 characters with the prefix) or a value longer than 100 is a RangeError, not a hang', async () => {
    const f = await initedFactory()
    const prefix = 'distributed-locks:'
    const fits = 'k'.repeat(50 - prefix.length)
    const l = f.createLock(fits)
    assert.equal(await withTimeout(l.lock(), 5000, 'a 50-character key'), true)
    await l.unlock()
    // characters, not bytes: 50 characters of 2-byte UTF-8 fit varchar(50)
    const wide = f.createLock('é'.repeat(50 - prefix.length))
    assert.equal(await withTimeout(wide.lock(), 5000, 'a 50-character non-ASCII key'), true)
    await wide.unlock()
    const long = 'k'.repeat(50 - prefix.length + 1)
    const err = await withTimeout(f.createLock(long).lock().then(() => null, (e) => e), 5000, 'a 51-character key must reject, not hang')
    assert.ok(err instanceof RangeError, `expected a RangeError, got ${err && err.name}: ${err && err.message}`)
    // a value over 100: <key>-<machineId>-<uuid> with a long machineId
    const fm = await initedFactory(pg, {}, { machineId: 'm'.repeat(80) })
    const verr = await withTimeout(fm.createLock('v').lock().then(() => null, (e) => e), 5000, 'a 100+ value must reject, not hang')
    assert.ok(verr instanceof RangeError, `expected a RangeError, got ${verr && verr.name}: ${verr && verr.message}`)
    // and set() itself
    const s = new PostgresqlStorage(storageOptions(pg))
    closers.push(() => s.close())
    await s.init()
    await assert.rejects(s.set(long, 'v', { ttl: 1 }), RangeError)
    await assert.rejects(s.set('k', 'v'.repeat(101), { ttl: 1 }), RangeError)
  })

  test('50 parallel set() on one key from 5 storages: exactly one true, never a serialization error (free key and expired row)', async () => {
    const storages = Array.from({ length: 5 }, () => new PostgresqlStorage(storageOptions(pg)))
    for (const s of storages) closers.push(() => s.close())
    await Promise.all(storages.map((s) => s.init()))
    const old = upstreamClient(pg)
    for (const round of ['free', 'expired', 'free again']) {
      const k = key('parallel')
      if (round === 'expired') {
        assert.equal(await old.set(k, 'old-value', 1), true)
        await sleep(1300)
      }
      const results = await Promise.allSettled(Array.from({ length: 50 }, (_, i) => storages[i % 5].set(k, `v-${i}`, { ttl: 10 })))
      const errors = results.filter((r) => r.status === 'rejected').map((r) => `${r.reason.code ?? ''} ${r.reason.message}`)
      assert.deepEqual(errors, [], `${round}: set() raised errors`)
      const won = results.map((r, i) => (r.value === true ? i : -1)).filter((i) => i >= 0)
      assert.equal(won.length, 1, `${round}: exactly one set() should win, got ${won.length}`)
      assert.equal((await old.row(k)).value, `v-${won[0]}`)
      await storages[won[0] % 5].unSet(k, `v-${won[0]}`)
    }
  })
})

// ---------------------------------------------------------------------------------------------

describe('contention between processes', { timeout: 120000 }, () => {
  test('3 processes loop lock / critical section / unlock on one key (retries -1, interval 0.01): never two holders, no lost update', async () => {
    const k = key('contend')
    await pg.query('create table if not exists pg_test_ready (key text not null, pid int not null)')
    await pg.query('create table if not exists pg_test_counter (name text primary key, n int not null)')
    await pg.query('create table if not exists pg_test_inside (name text primary key, n int not null)')
    await pg.query('insert into pg_test_counter (name, n) values ($1, 0)', [k])
    await pg.query('insert into pg_test_inside (name, n) values ($1, 0)', [k])
    const PROCS = 3
    const ITER = 30
    const runs = await Promise.all(Array.from({ length: PROCS }, () => runNode([WORKER, pg.url, k, String(ITER), String(PROCS)], { killAfter: 100000 })))
    for (const r of runs) {
      assert.equal(r.signal, null, `a worker was killed (hung, or kept alive after close()): ${r.stderr}`)
      assert.equal(r.code, 0, `a worker failed: ${r.stderr}`)
      const done = r.lines.find((x) => x.ev === 'done')
      assert.ok(done, `a worker did not finish: ${r.stdout}`)
      assert.equal(done.done, ITER)
      assert.equal(done.violations, 0, 'two holders at once')
    }
    assert.equal((await pg.query('select n from pg_test_counter where name = $1', [k]))[0].n, PROCS * ITER, 'lost update under the lock')
    assert.equal(await upstreamClient(pg).row(k), null, 'the key is free at the end')
  })
})

describe('the server stopped mid-run', { timeout: 90000 }, () => {
  test('lock() rejects (no hang) while it is down, unlock() and close() settle; after a start the same factory works', async () => {
    const srv = await startPostgres()
    try {
      const f = await initedFactory(srv)
      const k = key('down')
      const l1 = f.createLock(k)
      assert.equal(await l1.lock({ ttl: 30 }), true)
      await srv.stop()
      const t0 = Date.now()
      const err = await withTimeout(f.createLock(key('down2')).lock({ retries: 2, interval: 0.1 }).then(() => null, (e) => e), 20000, 'lock() while the server is down hung')
      assert.ok(err instanceof Error, 'lock() rejects')
      assert.ok(!(err instanceof FailedToObtainKey), `an unreachable database is not a busy key: ${err.name}: ${err.message}`)
      assert.equal(err.code, 'E_UNAVAILABLE', `${err.name}: ${err.message}`)
      assert.ok(since(t0) < 15000, `took ${since(t0)} ms`)
      await withTimeout(l1.unlock().catch(() => true), 20000, 'unlock() while the server is down hung')
      await srv.start()
      const l2 = f.createLock(key('back'))
      const t1 = Date.now()
      let ok = false
      while (!ok && since(t1) < 15000) ok = await l2.lock({ retries: 1 }).catch(() => sleep(200).then(() => false))
      assert.equal(ok, true, 'the same factory works once the server is back')
      assert.equal(await l2.unlock(), true)
      await withTimeout(f.close(), 10000, 'close()')
    } finally {
      await srv.kill()
    }
  })

  test('close() while the server is down settles', async () => {
    const srv = await startPostgres()
    try {
      const f = await initedFactory(srv)
      const l = f.createLock(key('close-down'))
      assert.equal(await l.lock(), true)
      await srv.kill()
      await withTimeout(f.close().catch(() => {}), 15000, 'close() with the server gone hung')
    } finally {
      await srv.kill()
    }
  })
})
