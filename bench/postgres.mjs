// oxlock's PostgreSQL backend against distributed-locks-postgresql's algorithm on the same server:
//   P1 sequential lock + unlock over distinct keys: cycles/s, p50/p99 of one cycle
//   P2 64 contenders on one key (4 processes x 16): critical sections/s, wait p50/p99
// Starts its own PostgreSQL (../__test__/pg-harness.mjs) on a free loopback port. Each
// (library, round) runs in its own child process (P2: 4 at once), rounds interleaved; medians
// and per-round ratios. --burn measures everything a second time with one CPU-burning process
// per core running (bench/pressure.mjs). Results: bench/results-postgres.json.
//
//   node bench/postgres.mjs [--rounds 3] [--ms 2000] [--burn] [--scenarios P1,P2] [--out file]
import { spawn, execFileSync } from 'node:child_process'
import { createHash, randomUUID } from 'node:crypto'
import { createRequire } from 'node:module'
import { readFileSync, readdirSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { PRESSURE_TEXT, startPressure } from './pressure.mjs'

const require = createRequire(import.meta.url)
const here = path.dirname(fileURLToPath(import.meta.url))
const ROOT = path.dirname(here)

const P1_KEYS = 1024
const P2_PROCS = 4
const P2_CONTENDERS = 16
const P2_KEY = 'contended'
const POLL_MS = 10 // distributed-locks-style's retry interval in P2 (upstream's minimum is 1 s)
const TTL_MS = 10000

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

// ---------------------------------------------------------------- the libraries (children)

// distributed-locks-postgresql 1.0.x's storage, as it is: the `postgres` package with its
// defaults (a pool of up to 10, prepared statements), set = INSERT ... ON CONFLICT DO UPDATE
// ... WHERE expired, unSet = DELETE by key and value, each in a REPEATABLE READ transaction
// (BEGIN, the statement, COMMIT: three round trips). Table and statements as upstream's.
function dlStyle(url) {
  const postgres = require('postgres')
  const u = new URL(url)
  const sql = postgres({ host: u.hostname, port: Number(u.port), database: u.pathname.slice(1), username: u.username, onnotice: () => {} })
  const prefix = 'distributed-locks'
  const table = 'locks'
  return {
    sql,
    init: () => sql`
        CREATE TABLE IF NOT EXISTS ${sql(table)} (
            key varchar(50),
            value varchar(100) NOT NULL,
            ttl integer NOT NULL,
            obtained_at timestamp DEFAULT current_timestamp,
            CONSTRAINT ${sql(`${table}_pkey`)} PRIMARY KEY (key)
          );`,
    async set(key, value, ttl) {
      const rows = await sql.begin('ISOLATION LEVEL REPEATABLE READ', (tx) => tx`
        INSERT INTO ${tx(table)} (key, value, ttl, obtained_at)
        VALUES (${`${prefix}:${key}`}, ${value}, ${ttl}, current_timestamp)
        ON CONFLICT ON CONSTRAINT ${tx(`${table}_pkey`)}
        DO
            UPDATE SET value = ${value}, ttl = ${ttl.toString()}
            WHERE locks.obtained_at + interval '1' second * locks.ttl  < current_timestamp
        returning *
        `)
      return rows.length !== 0
    },
    async unSet(key, value) {
      await sql.begin('ISOLATION LEVEL REPEATABLE READ', async (tx) => tx`
        DELETE FROM ${tx(table)}
        where key = ${`${prefix}:${key}`} AND value = ${value};
        `)
      return true
    },
    close: () => sql.end({ timeout: 5 }),
  }
}

function oxlockManager(url, lockOptions) {
  const Lock = require('../index.js')
  return Lock.create({ type: 'postgres', connection: url, lockOptions })
}

async function oxlockFace(url) {
  const { LocksFactory, PostgresqlStorage } = require('../compat/distributed-locks.js')
  const u = new URL(url)
  const factory = new LocksFactory(new PostgresqlStorage({ host: u.hostname, port: Number(u.port), database: u.pathname.slice(1), username: u.username }))
  await factory.init()
  return factory
}

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]
}

// ---- P1: one cycle at a time over k0..k1023, for `ms`; every cycle timed

async function childP1(lib, url, ms) {
  let cycle
  let close
  if (lib === 'oxlock') {
    const m = oxlockManager(url, {})
    cycle = async (k) => {
      const h = await m.lock(k, TTL_MS)
      await h.unlock()
    }
    close = () => m.destroy()
  } else if (lib === 'oxlock-face') {
    const factory = await oxlockFace(url)
    cycle = async (k) => {
      const l = factory.createLock(k)
      await l.lock({ ttl: TTL_MS / 1000, retries: 1 })
      await l.unlock()
    }
    close = () => factory.close()
  } else if (lib === 'dl-style') {
    const dl = dlStyle(url)
    await dl.init()
    cycle = async (k) => {
      const value = `${k}-1-${randomUUID()}` // upstream's Lock: `${key}-${machineId}-${uuid}`
      if (!(await dl.set(k, value, TTL_MS / 1000))) throw new Error(`dl-style: ${k} not obtained`)
      await dl.unSet(k, value)
    }
    close = () => dl.close()
  } else throw new Error(`unknown library ${lib}`)
  const keys = Array.from({ length: P1_KEYS }, (_, i) => `k${i}`)
  for (let i = 0; i < 300; i++) await cycle(keys[i % P1_KEYS]) // warm-up: connections, statements, JIT
  const times = []
  let i = 0
  const t0 = performance.now()
  const end = t0 + ms
  for (;;) {
    const t = performance.now()
    if (t >= end) break
    await cycle(keys[i++ % P1_KEYS])
    times.push(performance.now() - t)
  }
  const elapsed = performance.now() - t0
  await close()
  times.sort((a, b) => a - b)
  return { rate: (times.length * 1000) / elapsed, cycles: times.length, elapsedMs: elapsed, p50Us: percentile(times, 0.5) * 1000, p99Us: percentile(times, 0.99) * 1000 }
}

// ---- P2: 16 contenders in this process on one key, with 3 other processes doing the same

// The critical section: a read-modify-write of the shared counter row through this process's
// own connection (not the lock's): claim the row (holder is null -> us) returning n, then write
// n + 1 and clear the holder. A second holder anywhere finds the row claimed (a violation); a
// lost update shows as a wrong final count (the runner checks it).
function criticalSection(url, proc) {
  const postgres = require('postgres')
  const u = new URL(url)
  const cs = postgres({ host: u.hostname, port: Number(u.port), database: u.pathname.slice(1), username: u.username, max: 1, onnotice: () => {} })
  let holding = 0
  const state = { violations: [], increments: 0 }
  return {
    state,
    warm: () => cs`select n from bench_counter where id = 1`,
    async run(who) {
      if (++holding !== 1) state.violations.push(`process ${proc}: ${holding} holders in this process`)
      const me = `${proc}:${who}`
      const [row] = await cs`update bench_counter set holder = ${me} where id = 1 and holder is null returning n, holder`
      if (!row) {
        const [now] = await cs`select holder from bench_counter where id = 1`
        state.violations.push(`${me} holds the lock but the counter row is claimed by ${now && now.holder}`)
      } else {
        const done = await cs`update bench_counter set n = ${row.n + 1}, holder = null where id = 1 and holder = ${me}`
        if (done.count !== 1) state.violations.push(`${me}: the counter row was taken from us inside the critical section`)
        else state.increments++
      }
      holding--
    },
    close: () => cs.end({ timeout: 5 }),
  }
}

async function childP2(lib, url, ms, proc) {
  const cs = criticalSection(url, proc)
  await cs.warm() // connects (no claim: the other processes are warming up too)
  let lock // () => Promise<release>
  let close
  const errors = {}
  const countError = (where, e) => {
    const k = `${where}: ${e.code || ''} ${String(e.message).slice(0, 80)}`.trim()
    errors[k] = (errors[k] || 0) + 1
  }
  if (lib === 'oxlock') {
    const m = oxlockManager(url, { retryCount: -1, retryDelay: 1000 })
    lock = async (k) => {
      const h = await m.lock(k, TTL_MS)
      return () => h.unlock()
    }
    close = () => m.destroy()
  } else if (lib === 'oxlock-face') {
    // upstream's API on oxlock's storage, polling as dl-style does (interval 10 ms, no limit)
    const factory = await oxlockFace(url)
    lock = async (k) => {
      const l = factory.createLock(k)
      await l.lock({ ttl: TTL_MS / 1000, retries: -1, interval: POLL_MS / 1000 })
      return () => l.unlock()
    }
    close = () => factory.close()
  } else if (lib === 'dl-style') {
    const dl = dlStyle(url)
    await dl.init()
    lock = async (k) => {
      const value = `${k}-1-${randomUUID()}`
      // upstream's Lock.lock: an attempt, then `interval` between attempts; here 10 ms and no limit.
      // A statement that throws (a serialization failure) counts as a failed attempt.
      for (let attempt = 0; ; attempt++) {
        if (attempt > 0) await sleep(POLL_MS)
        let ok = false
        try {
          ok = await dl.set(k, value, TTL_MS / 1000)
        } catch (e) {
          countError('set', e)
        }
        if (ok) break
      }
      return async () => {
        for (;;) {
          try {
            return await dl.unSet(k, value)
          } catch (e) {
            countError('unSet', e)
          }
        }
      }
    }
    close = () => dl.close()
  } else throw new Error(`unknown library ${lib}`)
  // warm-up on a key of this process only (the contended key stays untouched until "go")
  for (let i = 0; i < 50; i++) await (await lock(`warm-${proc}`))()

  process.stdout.write('ready\n')
  const go = createInterface({ input: process.stdin })
  await new Promise((resolve) => go.once('line', resolve))
  go.close()
  process.stdin.destroy()

  const t0 = performance.now()
  const end = t0 + ms
  const waits = [] // ms from the lock call to acquisition, for every lock call made before `end`
  let inWindow = 0 // sections completed (unlocked) before `end`
  let total = 0
  const contender = async (c) => {
    while (performance.now() < end) {
      const t = performance.now()
      const release = await lock(P2_KEY)
      waits.push(performance.now() - t)
      await cs.run(c)
      await release()
      total++
      if (performance.now() <= end) inWindow++
    }
  }
  await Promise.all(Array.from({ length: P2_CONTENDERS }, (_, c) => contender(c)))
  const drainMs = performance.now() - end
  await close()
  await cs.close()
  return {
    proc,
    windowMs: ms,
    inWindow,
    total,
    increments: cs.state.increments,
    drainMs,
    violations: cs.state.violations,
    errors,
    waitsMs: waits.map((w) => Math.round(w * 1000) / 1000),
  }
}

async function child(argv) {
  const [scenario, lib, url, ms, proc] = argv
  const res = scenario === 'P1' ? await childP1(lib, url, Number(ms)) : await childP2(lib, url, Number(ms), Number(proc))
  process.stdout.write(JSON.stringify(res) + '\n')
}

// ---------------------------------------------------------------- the runner

const LIBS = {
  P1: ['oxlock', 'oxlock-face', 'dl-style'],
  P2: ['oxlock', 'oxlock-face', 'dl-style'],
}
const PEER = 'dl-style'
const NAMES = {
  oxlock: "oxlock `type: 'postgres'`",
  'oxlock-face': 'oxlock `PostgresqlStorage` (distributed-locks face)',
  'dl-style': 'distributed-locks-style (`postgres` package, upstream SQL)',
}

const median = (xs) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b)
  if (s.length === 0) return NaN
  const m = Math.floor(s.length / 2)
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}
const load1 = () => Number(os.loadavg()[0].toFixed(2))

/** Spawns `node bench/postgres.mjs child ...args`; resolves the child object (lines on stdout). */
function spawnChild(args, timeoutMs) {
  const c = spawn(process.execPath, [fileURLToPath(import.meta.url), 'child', ...args], { stdio: ['pipe', 'pipe', 'inherit'], cwd: ROOT })
  const lines = []
  let waiting = null
  const rl = createInterface({ input: c.stdout })
  rl.on('line', (l) => {
    lines.push(l)
    if (waiting && l === waiting.line) {
      waiting.resolve()
      waiting = null
    }
  })
  const timer = setTimeout(() => c.kill('SIGKILL'), timeoutMs)
  const exited = new Promise((resolve, reject) => {
    c.on('exit', (code, signal) => {
      clearTimeout(timer)
      if (waiting) waiting.reject(new Error(`child ${args.join(' ')} exited (${code ?? signal}) before '${waiting.line}'`))
      if (code !== 0) return reject(new Error(`child ${args.join(' ')} exited ${code ?? signal}`))
      rl.close()
      resolve(JSON.parse(lines[lines.length - 1]))
    })
  })
  exited.catch(() => {})
  return {
    proc: c,
    exited,
    until: (line) => (lines.includes(line) ? Promise.resolve() : new Promise((resolve, reject) => (waiting = { line, resolve, reject }))),
    send: (s) => c.stdin.write(s + '\n'),
  }
}

async function main() {
  const { values } = parseArgs({
    options: {
      rounds: { type: 'string', default: '3' },
      ms: { type: 'string', default: '2000' },
      burn: { type: 'boolean', default: false },
      scenarios: { type: 'string', default: 'P1,P2' },
      out: { type: 'string', default: path.join(here, 'results-postgres.json') },
    },
  })
  const rounds = Number(values.rounds)
  const ms = Number(values.ms)
  const scenarios = values.scenarios.split(',').map((s) => s.trim().toUpperCase())
  for (const s of scenarios) if (!LIBS[s]) throw new Error(`unknown scenario ${s} (P1, P2)`)
  const command = `node bench/postgres.mjs --rounds ${rounds} --ms ${ms}${values.burn ? ' --burn' : ''}${values.scenarios !== 'P1,P2' ? ` --scenarios ${values.scenarios}` : ''}`
  const childTimeout = ms * 10 + 120000

  const { startPostgres, stopAll, PG_VERSION } = await import('../__test__/pg-harness.mjs')
  const loadBefore = load1()
  process.stderr.write(`starting PostgreSQL (${PG_VERSION})...\n`)
  const pg = await startPostgres()
  let burn = null
  const stopBurners = () => burn?.stop()
  process.on('exit', stopBurners)
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.once(sig, () => (stopBurners(), process.exit(130)))

  const meta = {
    command,
    node: process.version,
    postgres: PG_VERSION,
    platform: `${os.platform()} ${os.arch()}`,
    cpus: `${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}`,
    oxlock: gitVersion(),
    addon: addonSha1(),
    server: pg.label,
    rounds,
    ms,
    p2: { processes: P2_PROCS, contendersPerProcess: P2_CONTENDERS, pollMs: POLL_MS },
    loadavg1Before: loadBefore,
  }

  // Before each child: empty lock tables and a fresh counter; after it: locks left behind.
  const sweep = async () => {
    let left = 0
    for (const t of ['oxlock_locks', 'locks']) {
      try {
        left += Number((await pg.query(`select count(*)::int as n from ${t}`))[0].n)
        await pg.query(`truncate ${t}`)
      } catch (e) {
        if (e.code !== '42P01') throw e
      }
    }
    return left
  }
  await pg.query('create table if not exists bench_counter (id int primary key, n int not null, holder text)')
  const resetCounter = async () => {
    await pg.query('delete from bench_counter')
    await pg.query('insert into bench_counter (id, n, holder) values (1, 0, null)')
  }
  await resetCounter()

  const phases = values.burn ? ['idle', 'burn'] : ['idle']
  const results = {}
  for (const phase of phases) {
    if (phase === 'burn') {
      burn = await startPressure('burn')
      process.stderr.write(`${PRESSURE_TEXT.burn}\n`)
    }
    results[phase] = {}
    for (const sc of scenarios) {
      const runs = Object.fromEntries(LIBS[sc].map((l) => [l, []]))
      for (let r = 0; r < rounds; r++) {
        const order = r % 2 === 0 ? LIBS[sc] : [...LIBS[sc]].reverse()
        for (const lib of order) {
          await sweep()
          const loadAt = load1()
          let res
          if (sc === 'P1') {
            res = await spawnChild([sc, lib, pg.url, String(ms)], childTimeout).exited
            process.stderr.write(`[${phase}] ${sc} round ${r + 1} ${lib}: ${res.rate.toFixed(0)} cycles/s, p50 ${res.p50Us.toFixed(0)} µs, p99 ${res.p99Us.toFixed(0)} µs (load ${loadAt})\n`)
          } else {
            res = await runP2(pg, lib, ms, childTimeout, resetCounter)
            process.stderr.write(
              `[${phase}] ${sc} round ${r + 1} ${lib}: ${res.rate.toFixed(0)} sections/s, wait p50 ${res.waitP50Ms.toFixed(2)} ms, p99 ${res.waitP99Ms.toFixed(1)} ms, ` +
                `share ${res.shares.map((s) => (s * 100).toFixed(0) + '%').join('/')}, drain ${res.drainMs.toFixed(0)} ms, errors ${res.errorCount} (load ${loadAt})\n`,
            )
          }
          res.round = r + 1
          res.loadavg1 = loadAt
          res.locksLeft = await sweep()
          if (res.locksLeft !== 0) process.stderr.write(`  ! ${res.locksLeft} lock rows left behind\n`)
          runs[lib].push(res)
        }
      }
      results[phase][sc] = summarize(sc, runs)
    }
    stopBurners()
  }
  meta.loadavg1After = load1()
  const addonAfter = addonSha1()
  if (addonAfter.sha1 !== meta.addon.sha1) meta.addonRebuiltDuringRun = addonAfter
  await pg.stop()
  await stopAll()

  const out = report(meta, results)
  process.stdout.write(out)
  writeFileSync(values.out, JSON.stringify({ meta, results }, null, 2) + '\n')
  process.stderr.write(`results written to ${path.relative(process.cwd(), values.out)}\n`)
}

/** One P2 run: 4 children, started together once all are ready; their sections checked. */
async function runP2(pg, lib, ms, timeoutMs, resetCounter) {
  const kids = Array.from({ length: P2_PROCS }, (_, p) => spawnChild(['P2', lib, pg.url, String(ms), String(p)], timeoutMs))
  try {
    await Promise.all(kids.map((k) => k.until('ready')))
  } catch (e) {
    for (const k of kids) k.proc.kill('SIGKILL')
    throw e
  }
  await resetCounter()
  for (const k of kids) k.send('go')
  const per = await Promise.all(kids.map((k) => k.exited))
  const [counter] = await pg.query('select n, holder from bench_counter where id = 1')
  const sections = per.reduce((a, p) => a + p.total, 0)
  const violations = per.flatMap((p) => p.violations)
  if (Number(counter.n) !== sections) violations.push(`the counter is ${counter.n} after ${sections} critical sections`)
  if (counter.holder !== null) violations.push(`the counter row is still claimed by ${counter.holder}`)
  if (violations.length > 0) throw new Error(`P2 ${lib}: exclusion violated:\n  ${violations.slice(0, 10).join('\n  ')}`)
  const waits = per.flatMap((p) => p.waitsMs).sort((a, b) => a - b)
  const inWindow = per.reduce((a, p) => a + p.inWindow, 0)
  const errors = {}
  for (const p of per) for (const [k, v] of Object.entries(p.errors)) errors[k] = (errors[k] || 0) + v
  return {
    rate: (inWindow * 1000) / ms,
    sectionsInWindow: inWindow,
    sectionsChecked: sections,
    counter: Number(counter.n),
    violations: 0,
    waitP50Ms: percentile(waits, 0.5),
    waitP99Ms: percentile(waits, 0.99),
    waitMaxMs: waits[waits.length - 1],
    waits: waits.length,
    shares: per.map((p) => (inWindow ? p.inWindow / inWindow : 0)),
    drainMs: Math.max(...per.map((p) => p.drainMs)),
    errors,
    errorCount: Object.values(errors).reduce((a, b) => a + b, 0),
    perProcess: per.map(({ waitsMs, ...rest }) => rest),
  }
}

const ratioStats = (xs) => ({ median: median(xs), min: Math.min(...xs), max: Math.max(...xs), perRound: xs })

function summarize(sc, runs) {
  const libs = {}
  for (const [lib, rs] of Object.entries(runs)) {
    const s = { runs: rs, rate: median(rs.map((r) => r.rate)) }
    if (sc === 'P1') {
      s.p50Us = median(rs.map((r) => r.p50Us))
      s.p99Us = median(rs.map((r) => r.p99Us))
    } else {
      s.waitP50Ms = median(rs.map((r) => r.waitP50Ms))
      s.waitP99Ms = median(rs.map((r) => r.waitP99Ms))
      s.drainMs = median(rs.map((r) => r.drainMs))
      s.minShare = Math.min(...rs.flatMap((r) => r.shares))
      s.maxShare = Math.max(...rs.flatMap((r) => r.shares))
      s.errors = rs.reduce((a, r) => a + r.errorCount, 0)
      s.sectionsChecked = rs.reduce((a, r) => a + r.sectionsChecked, 0)
    }
    if (lib !== PEER) {
      const peer = runs[PEER]
      s.ratio = ratioStats(rs.map((r, i) => r.rate / peer[i].rate))
      if (sc === 'P2') s.waitP99Ratio = ratioStats(rs.map((r, i) => r.waitP99Ms / peer[i].waitP99Ms))
    }
    libs[lib] = s
  }
  return libs
}

const fx = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : '–')
const fr = (r) => `${fx(r.median)}× (${fx(r.min)}–${fx(r.max)})`

function report(meta, results) {
  const L = []
  L.push(`\`${meta.command}\`; node ${meta.node}, ${meta.postgres}, ${meta.cpus}; oxlock ${meta.oxlock.commit ?? '?'}${meta.oxlock.dirty ? ' (+ changes)' : ''}, addon ${meta.addon.sha1}`)
  L.push(`load ${meta.loadavg1Before} before, ${meta.loadavg1After} after${meta.addonRebuiltDuringRun ? '; ! the addon was rebuilt during the run' : ''}`, '')
  for (const [phase, scs] of Object.entries(results)) {
    const cond = phase === 'idle' ? 'no burners' : PRESSURE_TEXT.burn
    for (const [sc, libs] of Object.entries(scs)) {
      const loads = Object.values(libs).flatMap((l) => l.runs.map((r) => r.loadavg1))
      const where = `${cond}; load ${Math.min(...loads)}–${Math.max(...loads)}`
      if (sc === 'P1') {
        L.push(`### P1: sequential lock + unlock, distinct keys (${where})`, '')
        L.push('| library | cycles/s | p50 µs | p99 µs | ratio oxlock / dl-style (median; min–max) |', '|---|---:|---:|---:|---|')
        for (const [lib, s] of Object.entries(libs)) L.push(`| ${NAMES[lib]} | ${fx(s.rate, 0)} | ${fx(s.p50Us, 0)} | ${fx(s.p99Us, 0)} | ${s.ratio ? fr(s.ratio) : ''} |`)
      } else {
        L.push(`### P2: ${P2_PROCS * P2_CONTENDERS} contenders on one key, ${P2_PROCS} processes × ${P2_CONTENDERS} (${where})`, '')
        L.push(
          '| library | sections/s | wait p50 ms | wait p99 ms | ratio sections/s oxlock / dl-style | ratio wait p99 oxlock / dl-style | share per process (min–max) | drain ms | errors |',
          '|---|---:|---:|---:|---|---|---|---:|---:|',
        )
        for (const [lib, s] of Object.entries(libs)) {
          L.push(
            `| ${NAMES[lib]} | ${fx(s.rate, 0)} | ${fx(s.waitP50Ms)} | ${fx(s.waitP99Ms, 1)} | ${s.ratio ? fr(s.ratio) : ''} | ${s.waitP99Ratio ? fr(s.waitP99Ratio) : ''} | ` +
              `${fx(s.minShare * 100, 0)}–${fx(s.maxShare * 100, 0)}% | ${fx(s.drainMs, 0)} | ${s.errors} |`,
          )
        }
        const checked = Object.values(libs).reduce((a, s) => a + s.sectionsChecked, 0)
        L.push(
          '',
          `oxlock waits on NOTIFY (retryCount -1, retryDelay 1000 ms); the face and dl-style poll every ${POLL_MS} ms with no limit. ` +
            'errors: statements that threw (dl-style: serialization failures, retried as a failed attempt). ' +
            `violations: 0; ${checked} critical sections checked (the counter row equals the sections, no second holder).`,
        )
      }
      L.push('')
    }
  }
  return L.join('\n') + '\n'
}

function gitVersion() {
  const v = {}
  try {
    v.commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
    v.dirty = execFileSync('git', ['status', '--porcelain', '--', 'src', 'index.js', 'lib', 'compat', 'Cargo.toml'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() !== ''
  } catch {}
  return v
}

function addonSha1() {
  const files = readdirSync(ROOT).filter((f) => f.endsWith('.node')).sort()
  if (files.length === 0) return { sha1: '?' }
  const h = createHash('sha1')
  for (const f of files) h.update(readFileSync(path.join(ROOT, f)))
  return { sha1: h.digest('hex').slice(0, 12), files }
}

if (process.argv[2] === 'child') await child(process.argv.slice(3))
else await main()
