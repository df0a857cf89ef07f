// Benchmark runner: node bench/run.mjs [--rounds N] [--quick] [--scenarios S1,S2|memory|redis|all] [--libs a,b] [--window-ms ms] [--out file]
//
// Every (scenario, library) measurement runs in a fresh child process (bench/worker.mjs),
// one at a time. The whole set is repeated in rounds, libraries interleaved
// (round 1: oxlock, async-lock, async-mutex; round 2: the same; ...), so that all libraries
// see the same machine conditions within one run. Reports medians over rounds and the
// oxlock/peer ratio per round (median and range). See bench/README.md.
//
// Redis scenarios: the runner starts its own redis-server processes (3, or 1 without S6) on
// free loopback ports, without persistence, once per run; it sends FLUSHALL and SCRIPT FLUSH
// before every (library, scenario) child and stops the servers at the end, on error and on
// Ctrl-C / SIGTERM.
//
// S5x runs 4 children of one library at once (runGroup): they warm up, say 'ready', get 'go'
// together and contend for one key; the runner merges their results (mergeGroup) and checks
// the critical sections' counter in Redis.

import { spawn, execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { copyFileSync, cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { REDIS_SETTINGS, S5X_CHECK, S5X_PROCS, S5X_SETTINGS, S5X_TASKS } from './worker.mjs'
import { PRESSURES, PRESSURE_TEXT, startPressure } from './pressure.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))
const WORKER = path.join(here, 'worker.mjs')
const SUBJECT = 'oxlock'

// Scenario catalogue: title and description for the report; the code is in worker.mjs.
// `group` picks the profile and the results file (results-<group>.json; `results` names
// another); `libs` are the libraries that have the scenario's backend (an adapters/<lib>.mjs each).
// OXLOCK_BENCH_BASE=<a built oxlock checkout> adds it as 'oxlock-base' (before/after in one run).
const BASE = process.env.OXLOCK_BENCH_BASE ? ['oxlock-base'] : []
const MEMORY_LIBS = ['oxlock', ...BASE, 'async-lock', 'async-mutex']
const USING_LIBS = ['oxlock', ...BASE, 'async-lock'] // S1u, S2u
// oxlock-iothread: oxlock with OXLOCK_IO=thread (its Redis requests through the I/O thread).
// oxlock-nofence: oxlock with lockOptions.fencing: false (no fence counter, a plain SET NX PX).
const REDIS_LIBS = ['oxlock', 'oxlock-nofence', 'oxlock-iothread', ...BASE, 'redlock-v4', 'sesamecare-redlock', 'redis-semaphore', 'ioredis-raw', 'ioredis-raw-ap']
const REDLOCK_LIBS = ['oxlock', 'oxlock-nofence', 'oxlock-iothread', ...BASE, 'redlock-v4', 'sesamecare-redlock', 'redis-semaphore'] // the raw baseline is single-node only
// S5x: oxlock also at retryDelay 1000 ms (woken by the unlock's publish, not by polling)
const S5X_LIBS = ['oxlock', 'oxlock-rd1000', ...BASE, 'redlock-v4', 'sesamecare-redlock', 'redis-semaphore', 'ioredis-raw']
const SCENARIOS = {
  S1: {
    group: 'memory',
    libs: MEMORY_LIBS,
    title: 'S1: lock + unlock on distinct keys, sequential',
    what: 'one at a time over keys k0..k1023; ops/s = lock+unlock cycles per second; latency = one whole cycle',
  },
  S2: {
    group: 'memory',
    libs: MEMORY_LIBS,
    title: 'S2: 256 concurrent tasks on one key',
    what: 'each task loops lock -> critical section (holder check, one await) -> unlock; ops/s = critical sections per second; latency = wait from the lock call to acquisition',
  },
  S1u: {
    group: 'memory',
    libs: USING_LIBS,
    title: 'S1u: S1 through the function-scoped call (oxlock using(key, fn), async-lock acquire(key, fn))',
    what: 'one at a time over keys k0..k1023; ops/s = calls per second; latency = one whole call',
  },
  S2u: {
    group: 'memory',
    libs: USING_LIBS,
    title: 'S2u: S2 through the function-scoped call',
    what: 'as S2, the critical section being the function; ops/s = critical sections per second; latency = wait from the call to the function',
  },
  S3: {
    group: 'redis',
    nodes: 1,
    libs: REDIS_LIBS,
    title: 'S3: Redis, lock + unlock on distinct keys, sequential, 1 node',
    what: 'one at a time over keys k0..k1023; ops/s = lock+unlock cycles per second; latency = one whole cycle',
  },
  S4: {
    group: 'redis',
    nodes: 1,
    libs: REDIS_LIBS,
    title: 'S4: Redis, 256 concurrent tasks each on its own key, 1 node',
    what: 'each task loops lock+unlock on its key; ops/s = lock+unlock cycles per second (all tasks); latency = one whole cycle',
  },
  S5: {
    group: 'redis',
    nodes: 1,
    libs: REDIS_LIBS,
    title: 'S5: Redis, 64 concurrent tasks on one key, 1 node',
    what: 'each task loops lock -> critical section (holder check, one await) -> unlock; retries every 10 ms for all (±5 ms jitter where the library has it); ops/s = critical sections per second, steady state (drain excluded); latency = wait from the first lock call to acquisition',
  },
  S5x: {
    group: 'redis',
    nodes: 1,
    multi: true, // S5X_PROCS children at once per library (runGroup)
    results: 's5x', // bench/results-s5x.json
    libs: S5X_LIBS,
    title: `S5x: Redis, ${S5X_PROCS} processes × ${S5X_TASKS} tasks on one key, 1 node (cross-process contention)`,
    what:
      `each task loops lock -> critical section -> unlock; the section checks for a second holder in any process through Redis ` +
      `(INCR/DECR of a holder count, read-modify-write of a counter); the ${S5X_PROCS} processes of a library run at once; ` +
      'sections/s = sections completed in the window over the window; wait = lock call -> acquired, merged over the processes',
  },
  S6a: {
    group: 'redis',
    nodes: 3,
    libs: REDLOCK_LIBS,
    title: 'S6a: Redlock over 3 nodes, lock + unlock on distinct keys, sequential (S3 on 3 nodes)',
    what: 'one at a time over keys k0..k1023; ops/s = lock+unlock cycles per second; latency = one whole cycle',
  },
  S6b: {
    group: 'redis',
    nodes: 3,
    libs: REDLOCK_LIBS,
    title: 'S6b: Redlock over 3 nodes, 256 concurrent tasks each on its own key (S4 on 3 nodes)',
    what: 'each task loops lock+unlock on its key; ops/s = lock+unlock cycles per second (all tasks); latency = one whole cycle',
  },
}
const ALIASES = {
  memory: ['S1', 'S2', 'S1u', 'S2u'],
  redis: ['S3', 'S4', 'S5', 'S6a', 'S6b'],
  all: ['S1', 'S2', 'S1u', 'S2u', 'S3', 'S4', 'S5', 'S6a', 'S6b', 'S5x'],
  S6: ['S6a', 'S6b'],
}

// Per group: rounds and the worker's flags. Redis children size their latency batches by
// time (--lat-ms), since rates range from ~1k to ~100k ops/s.
const PROFILES = {
  full: {
    memory: { rounds: 5, worker: { 'warmup-ms': 400, 'batch-ms': 250, batches: 10, 'lat-ops': 20000, 'lat-batches': 3 } },
    redis: {
      rounds: 3,
      worker: { 'warmup-ms': 300, 'batch-ms': 250, batches: 6, 'lat-ops': 20000, 'lat-ms': 300, 'lat-batches': 2 },
      // S5x: private warm-up cycles, then contention on the key for contended-warmup-ms (not timed) and the window
      multi: { 'warm-cycles': 200, 'contended-warmup-ms': 500, 'window-ms': 2000 },
    },
  },
  quick: {
    memory: { rounds: 3, worker: { 'warmup-ms': 200, 'batch-ms': 120, batches: 5, 'lat-ops': 10000, 'lat-batches': 1 } },
    redis: {
      rounds: 2,
      worker: { 'warmup-ms': 100, 'batch-ms': 120, batches: 3, 'lat-ops': 10000, 'lat-ms': 150, 'lat-batches': 1 },
      multi: { 'warm-cycles': 100, 'contended-warmup-ms': 250, 'window-ms': 1000 },
    },
  },
}

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string' },
    quick: { type: 'boolean', default: false },
    scenarios: { type: 'string', default: 'S1,S2' },
    libs: { type: 'string' },
    out: { type: 'string' },
    'window-ms': { type: 'string' }, // S5x: the timed window of each round (default: the profile's)
    pressure: { type: 'string', default: 'none' }, // none | burn | pin (bench/pressure.mjs)
  },
})

function usage(msg) {
  console.error(
    `${msg}\nusage: node bench/run.mjs [--rounds N] [--quick] [--scenarios ${Object.keys(SCENARIOS).join(',')} | ${Object.keys(ALIASES).join(' | ')}] ` +
      `[--libs ${[...new Set([...MEMORY_LIBS, ...REDIS_LIBS, ...S5X_LIBS])].join(',')}] [--window-ms ms (S5x)] [--pressure ${PRESSURES.join('|')}] [--out file]`,
  )
  process.exit(2)
}

const profileName = args.quick ? 'quick' : 'full'
const profile = PROFILES[profileName]
if (args.rounds !== undefined && !(Number.isInteger(Number(args.rounds)) && Number(args.rounds) > 0)) {
  usage(`--rounds must be a positive integer, got ${args.rounds}`)
}
const requested = [...new Set(args.scenarios.split(',').flatMap((s) => ALIASES[s.trim()] ?? [s.trim()]))]
for (const s of requested) if (!SCENARIOS[s]) usage(`unknown scenario ${s}`)
const knownLibs = new Set(requested.flatMap((s) => SCENARIOS[s].libs))
const libs = args.libs === undefined ? null : args.libs.split(',').map((s) => s.trim())
for (const l of libs ?? []) if (!knownLibs.has(l)) usage(`library ${l} has no selected scenario (known: ${[...knownLibs].join(', ')})`)
const libsFor = (s) => SCENARIOS[s].libs.filter((l) => libs === null || libs.includes(l))
// A scenario none of the --libs runs (e.g. S6 with only the raw baseline) is left out.
const scenarioIds = requested.filter((s) => libsFor(s).length > 0)
if (scenarioIds.length === 0) usage(`none of ${libs} runs ${requested.join(',')}`)
const groups = [...new Set(scenarioIds.map((s) => SCENARIOS[s].group))]
const roundsOf = (g) => (args.rounds === undefined ? profile[g].rounds : Number(args.rounds))
const rounds = Math.max(...groups.map(roundsOf))
const command = ['node', path.relative(process.cwd(), process.argv[1]) || process.argv[1], ...process.argv.slice(2)].join(' ')
const flagsOf = (o) => Object.entries(o).flatMap(([k, v]) => [`--${k}`, String(v)])
if (args['window-ms'] !== undefined) {
  if (!(Number(args['window-ms']) > 0)) usage(`--window-ms must be a positive number, got ${args['window-ms']}`)
  profile.redis.multi = { ...profile.redis.multi, 'window-ms': Number(args['window-ms']) }
}
const workerFlags = (g) => flagsOf(profile[g].worker)
if (!PRESSURES.includes(args.pressure)) usage(`--pressure must be one of ${PRESSURES.join(', ')}, got ${args.pressure}`)

// ---- the oxlock under test -------------------------------------------------------------
// The children load a copy of oxlock taken at the start (index.js, errors.js, binding.js,
// package.json, the addon), through OXLOCK_BENCH_SUBJECT: a rebuild in the tree during the
// run (another session building) cannot mix two builds into one set of results.
const ROOT = path.join(here, '..')
let subjectDir = null

function snapshotSubject() {
  subjectDir = mkdtempSync(path.join(os.tmpdir(), 'oxlock-bench-subject-'))
  for (const f of readdirSync(ROOT)) {
    if (/^(index\.js|errors\.js|binding\.js|package\.json|.*\.node)$/.test(f)) copyFileSync(path.join(ROOT, f), path.join(subjectDir, f))
  }
  if (existsSync(path.join(ROOT, 'lib'))) cpSync(path.join(ROOT, 'lib'), path.join(subjectDir, 'lib'), { recursive: true })
  return path.join(subjectDir, 'index.js')
}

// sha1 of the addon(s) in `dir`, and the mtime of the first one in `timeDir` (the tree's:
// the copy's mtime is the time of the copy)
function addonStamp(dir, timeDir = dir) {
  const files = readdirSync(dir).filter((f) => f.endsWith('.node')).sort()
  if (files.length === 0) return { sha1: '?', built: '?' }
  const h = createHash('sha1')
  for (const f of files) h.update(readFileSync(path.join(dir, f)))
  return { sha1: h.digest('hex').slice(0, 12), built: statSync(path.join(timeDir, files[0])).mtime.toISOString() }
}

// ---- redis-server processes ------------------------------------------------------------
const REDIS_BIN = process.env.REDIS_SERVER_BIN || 'redis-server'
const servers = [] // { port, proc, log }
let redisDir = null
const currentChildren = new Set()

function stopEverything() {
  pressure?.stop()
  for (const c of currentChildren) c.kill('SIGKILL')
  for (const s of servers) if (s.proc.exitCode === null && s.proc.signalCode === null) s.proc.kill('SIGKILL')
  if (redisDir) rmSync(redisDir, { recursive: true, force: true })
  redisDir = null
  if (subjectDir) rmSync(subjectDir, { recursive: true, force: true })
  subjectDir = null
}
process.on('exit', stopEverything)
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    process.stderr.write(`\n${sig}: stopping the worker and the redis servers\n`)
    stopEverything()
    process.exit(130)
  })
}

async function freePort() {
  for (;;) {
    const port = await new Promise((resolve, reject) => {
      const srv = net.createServer()
      srv.on('error', reject)
      srv.listen(0, '127.0.0.1', () => {
        const { port } = srv.address()
        srv.close(() => resolve(port))
      })
    })
    if (port !== 6379) return port
  }
}

// One command over a fresh connection; resolves the reply (simple string, integer, bulk
// string) or rejects with a Redis error.
function redisCmd(port, ...argv) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1')
    let buf = ''
    const fail = (e) => {
      sock.destroy()
      reject(e)
    }
    sock.setTimeout(5000, () => fail(new Error(`redis :${port} ${argv[0]}: timeout`)))
    sock.on('error', fail)
    sock.on('connect', () => sock.write(`*${argv.length}\r\n` + argv.map((a) => `$${Buffer.byteLength(String(a))}\r\n${a}\r\n`).join('')))
    sock.on('data', (d) => {
      buf += d
      const eol = buf.indexOf('\r\n')
      if (eol < 0) return
      const line = buf.slice(1, eol)
      let value
      if (buf[0] === '+') value = line
      else if (buf[0] === ':') value = Number(line)
      else if (buf[0] === '-') return fail(new Error(`redis :${port} ${argv[0]}: ${line}`))
      else if (buf[0] === '$') {
        const len = Number(line)
        if (len < 0) value = null
        else if (buf.length < eol + 2 + len + 2) return
        else value = buf.slice(eol + 2, eol + 2 + len)
      } else return fail(new Error(`redis :${port} ${argv[0]}: unexpected reply ${JSON.stringify(buf.slice(0, 80))}`))
      sock.end()
      resolve(value)
    })
  })
}

async function startServer() {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort()
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', redisDir]
    const proc = spawn(REDIS_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    const s = { port, proc, log: '' }
    const keep = (d) => (s.log = (s.log + d).slice(-4000))
    proc.stdout.on('data', keep)
    proc.stderr.on('data', keep)
    let spawnError = null
    proc.on('error', (e) => (spawnError = e))
    servers.push(s)
    for (let i = 0; i < 100; i++) {
      if (spawnError) throw new Error(`cannot run ${REDIS_BIN} (set REDIS_SERVER_BIN or put redis-server on PATH): ${spawnError.message}`)
      if (proc.exitCode !== null) break
      try {
        if ((await redisCmd(port, 'PING')) === 'PONG') return s
      } catch {}
      await new Promise((r) => setTimeout(r, 50))
    }
    proc.kill('SIGKILL')
    servers.splice(servers.indexOf(s), 1)
    if (attempt === 3) throw new Error(`redis-server on port ${port} did not start:\n${s.log}`)
  }
}

async function startServers(n) {
  redisDir = mkdtempSync(path.join(os.tmpdir(), 'oxlock-bench-redis-'))
  const version = execFileSync(REDIS_BIN, ['--version'], { encoding: 'utf8' }).trim()
  for (let i = 0; i < n; i++) await startServer()
  return version
}

async function resetServers() {
  for (const s of servers) {
    await redisCmd(s.port, 'FLUSHALL')
    await redisCmd(s.port, 'SCRIPT', 'FLUSH')
  }
}

async function stopServers() {
  await Promise.all(
    servers.map(
      (s) =>
        new Promise((resolve) => {
          if (s.proc.exitCode !== null || s.proc.signalCode !== null) return resolve()
          const t = setTimeout(() => s.proc.kill('SIGKILL'), 3000)
          s.proc.on('exit', () => {
            clearTimeout(t)
            resolve()
          })
          s.proc.kill('SIGTERM')
        }),
    ),
  )
  stopEverything()
}

// Keys left on each server after a child, other than oxlock's fence counters (`…:fence`, kept
// an hour on purpose) and "someone waits" marks (`…:waiting`, 2 s): locks not released.
const LEFT_KEYS = `local n = 0
for _, k in ipairs(redis.call('keys', '*')) do
  if not (string.find(k, ':fence$') or string.find(k, ':waiting$')) then n = n + 1 end
end
return n`
const dbsizes = () => Promise.all(servers.map((s) => redisCmd(s.port, 'EVAL', LEFT_KEYS, '0')))

function runWorker(lib, scenario) {
  const sc = SCENARIOS[scenario]
  const extra = sc.group === 'redis' ? ['--redis', servers.map((s) => `127.0.0.1:${s.port}`).join(',')] : []
  return new Promise((resolve, reject) => {
    const child = spawn(...pressure.wrap(process.execPath, ['--expose-gc', WORKER, lib, scenario, ...workerFlags(sc.group), ...extra]), {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, OXLOCK_BENCH_SUBJECT: subjectEntry },
    })
    currentChildren.add(child)
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000)
    child.on('error', reject)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      currentChildren.delete(child)
      if (code === 0) {
        try {
          return resolve(JSON.parse(stdout.trim().split('\n').pop()))
        } catch (e) {
          return reject(new Error(`${lib} ${scenario}: bad worker output: ${stdout}\n${stderr}`))
        }
      }
      const err = new Error(`${lib} ${scenario}: worker exited with ${code ?? signal}\n${stderr.trim()}`)
      err.violation = code === 3
      reject(err)
    })
  })
}

// S5x: S5X_PROCS children of one library at once. Each warms up on a key of its own, says
// 'ready'; once all have, each gets 'go' on stdin. Resolves their results (one JSON line each).
function runGroup(lib, scenario) {
  const sc = SCENARIOS[scenario]
  const extra = ['--redis', servers.map((s) => `127.0.0.1:${s.port}`).join(','), ...flagsOf(profile[sc.group].multi)]
  const kids = Array.from({ length: S5X_PROCS }, (_, p) => {
    const child = spawn(...pressure.wrap(process.execPath, ['--expose-gc', WORKER, lib, scenario, '--proc', String(p), ...extra]), {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, OXLOCK_BENCH_SUBJECT: subjectEntry },
    })
    currentChildren.add(child)
    const k = { child, stdout: '', stderr: '' }
    k.ready = new Promise((resolve, reject) => {
      child.stdout.on('data', (d) => {
        k.stdout += d
        if (/^ready$/m.test(k.stdout)) resolve()
      })
      child.on('close', () => reject(new Error(`${lib} ${scenario} process ${p} exited before 'ready'\n${k.stderr.trim()}`)))
    })
    k.ready.catch(() => {})
    child.stderr.on('data', (d) => (k.stderr += d))
    k.done = new Promise((resolve, reject) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), 120_000)
      child.on('error', reject)
      child.on('close', (code, signal) => {
        clearTimeout(timer)
        currentChildren.delete(child)
        if (code === 0) {
          try {
            return resolve(JSON.parse(k.stdout.trim().split('\n').pop()))
          } catch (e) {
            return reject(new Error(`${lib} ${scenario} process ${p}: bad worker output: ${k.stdout}\n${k.stderr}`))
          }
        }
        const err = new Error(`${lib} ${scenario} process ${p}: worker exited with ${code ?? signal}\n${k.stderr.trim()}`)
        err.violation = code === 3
        reject(err)
      })
    })
    k.done.catch(() => {})
    return k
  })
  const killAll = () => kids.forEach((k) => k.child.exitCode === null && k.child.signalCode === null && k.child.kill('SIGKILL'))
  return (async () => {
    try {
      await Promise.all(kids.map((k) => k.ready))
      const t = performance.now()
      for (const k of kids) k.child.stdin.end('go\n')
      // the first failure (a violation in one process) stops the others
      const per = await Promise.all(kids.map((k) => k.done.catch((e) => (killAll(), Promise.reject(e)))))
      return { per, elapsedMs: performance.now() - t }
    } catch (e) {
      killAll()
      // a violation anywhere wins over the others' kills
      const all = await Promise.allSettled(kids.map((k) => k.done))
      throw all.find((r) => r.status === 'rejected' && r.reason.violation)?.reason ?? e
    }
  })()
}

// S5x: one library's processes merged into one round's result (the shape summarise() reads:
// opsPerSec, latencyUs, checked/violations, giveUps), plus the shares and runs per process.
async function mergeGroup(lib, scenario, { per, elapsedMs }) {
  const port = servers[0].port
  const counter = Number((await redisCmd(port, 'GET', S5X_CHECK.counter)) ?? 0)
  const holders = await redisCmd(port, 'GET', S5X_CHECK.holders)
  const sections = per.reduce((a, p) => a + p.total, 0)
  const problems = []
  if (counter !== sections) problems.push(`${S5X_CHECK.counter} is ${counter} after ${sections} critical sections (a lost update)`)
  if (holders !== null && Number(holders) !== 0) problems.push(`${S5X_CHECK.holders} is ${holders} at the end`)
  if (problems.length) {
    const err = new Error(`${lib} ${scenario}: mutual exclusion violated: ${problems.join('; ')}`)
    err.violation = true
    throw err
  }
  const windowMs = per[0].windowMs
  const inWindow = per.reduce((a, p) => a + p.inWindow, 0)
  const waits = Float64Array.from(per.flatMap((p) => p.waitsMs)).sort()
  const q = (x) => waits[Math.min(waits.length - 1, Math.floor(x * waits.length))] * 1000 // µs
  // the order of the sections in the window: runs of one process in a row
  // and the time from one section's entry to the next's: within a process, and when the key
  // went from one process to another
  const order = per.flatMap((p) => p.seqs.map((s, i) => [s, p.proc, p.times[i]])).sort((a, b) => a[0] - b[0])
  let runs = 0
  let maxRun = 0
  const stepSame = []
  const stepCross = []
  for (let i = 0, len = 0; i < order.length; i++) {
    const same = i > 0 && order[i][1] === order[i - 1][1]
    len = same ? len + 1 : 1
    if (len === 1) runs++
    if (len > maxRun) maxRun = len
    if (i > 0 && order[i][0] === order[i - 1][0] + 1) (same ? stepSame : stepCross).push(order[i][2] - order[i - 1][2])
  }
  const stepStats = (xs) => {
    if (xs.length === 0) return { count: 0 }
    const sorted = Float64Array.from(xs).sort()
    const at = (x) => Number(sorted[Math.min(sorted.length - 1, Math.floor(x * sorted.length))].toFixed(3))
    const sum = xs.reduce((a, b) => a + b, 0)
    return { count: xs.length, mean: Number((sum / xs.length).toFixed(3)), p50: at(0.5), p90: at(0.9), p99: at(0.99), max: at(1), sumMs: Number(sum.toFixed(1)) }
  }
  const giveUpErrors = {}
  for (const p of per) for (const [k, v] of Object.entries(p.giveUpErrors)) giveUpErrors[k] = (giveUpErrors[k] ?? 0) + v
  return {
    lib,
    scenario,
    settings: per[0].settings,
    opsPerSec: (inWindow * 1000) / windowMs,
    sectionsInWindow: inWindow,
    latencyUs: { samples: waits.length, p50: q(0.5), p90: q(0.9), p99: q(0.99), p999: q(0.999), max: waits[waits.length - 1] * 1000 },
    shares: per.map((p) => (inWindow ? p.inWindow / inWindow : 0)),
    runs: { count: runs, maxRun, meanRun: runs ? order.length / runs : 0 },
    // ms from a section's entry to the next one's (median), same process / another process
    stepMs: { sameProcess: stepStats(stepSame), crossProcess: stepStats(stepCross) },
    drainMs: Math.max(...per.map((p) => p.drainMs)),
    checked: sections,
    violations: 0,
    giveUps: per.reduce((a, p) => a + p.giveUps, 0),
    giveUpErrors,
    elapsedMs,
    perProcess: per.map(({ waitsMs, seqs, times, settings, lib: _l, scenario: _s, ...rest }) => rest),
  }
}

// A failing child is retried once (e.g. the addon was being rebuilt), never for a
// mutual-exclusion violation. Redis servers are flushed before each child, and their key
// count is recorded after it (locks left behind).
async function measure(lib, scenario) {
  const redis = SCENARIOS[scenario].group === 'redis'
  const once = async () => {
    if (redis) await resetServers()
    if (SCENARIOS[scenario].multi) {
      const res = await mergeGroup(lib, scenario, await runGroup(lib, scenario))
      await redisCmd(servers[0].port, 'DEL', S5X_CHECK.counter, S5X_CHECK.holders) // not locks
      res.redisKeysAfter = await dbsizes()
      return res
    }
    const res = await runWorker(lib, scenario)
    if (redis) res.redisKeysAfter = await dbsizes()
    return res
  }
  try {
    return await once()
  } catch (e) {
    if (e.violation) throw e
    process.stderr.write(`  ! ${e.message.split('\n').slice(0, 3).join(' | ')}\n  ! retrying once\n`)
    const res = await once()
    res.retried = e.message.split('\n').slice(0, 3).join(' | ')
    return res
  }
}

const median = (xs) => {
  const s = [...xs].sort((x, y) => x - y)
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}
const fmtInt = (x) => Math.round(x).toLocaleString('en-US')
const fmtUs = (x) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2))
const fmtX = (x) => `${x.toFixed(2)}×`
const load1 = () => Number(os.loadavg()[0].toFixed(2))

// ---- run -------------------------------------------------------------------------------
const started = new Date()
const loadBefore = load1()
const t0 = performance.now()
const results = {} // results[scenario][lib] = [per-round worker result]
for (const s of scenarioIds) results[s] = Object.fromEntries(libsFor(s).map((l) => [l, []]))
const roundLoads = [] // 1-min load average at the start of each round
const oxlockVersion = gitVersion() // at the start
const subjectEntry = snapshotSubject()
const subjectAddon = addonStamp(subjectDir, ROOT) // what the children load
let treeRebuilt = null // the tree's addon, if it changed during the run
const redisNodes = Math.max(0, ...scenarioIds.map((s) => SCENARIOS[s].nodes ?? 0))
let redisInfo = null
let pressure = null

process.stderr.write(
  `${command}: ${groups.map((g) => `${g} ${roundsOf(g)} rounds`).join(', ')}; ${scenarioIds.map((s) => `${s} x ${libsFor(s).join(',')}`).join('; ')}; load ${loadBefore}\n`,
)
try {
  if (redisNodes > 0) {
    const version = await startServers(redisNodes)
    redisInfo = {
      version,
      servers: servers.map((s) => `127.0.0.1:${s.port}`),
      serverArgs: '--bind 127.0.0.1 --save "" --appendonly no',
      settings: REDIS_SETTINGS,
      s5xSettings: S5X_SETTINGS,
    }
    process.stderr.write(`${version}: ${redisInfo.servers.join(', ')}\n`)
  }
  // After the servers: they start unpressed (burners are stopped by stopEverything()).
  pressure = await startPressure(args.pressure)
  if (args.pressure !== 'none') process.stderr.write(`pressure: ${PRESSURE_TEXT[args.pressure]}\n`)
  for (let r = 1; r <= rounds; r++) {
    roundLoads.push(load1())
    for (const s of scenarioIds) {
      if (r > roundsOf(SCENARIOS[s].group)) continue
      for (const lib of libsFor(s)) {
        if (!treeRebuilt) {
          const now = addonStamp(ROOT)
          if (now.sha1 !== subjectAddon.sha1) {
            treeRebuilt = now
            process.stderr.write(`  ! the addon in the tree was rebuilt (${now.sha1}, ${now.built}); this run goes on with its copy from the start\n`)
          }
        }
        const res = await measure(lib, s)
        res.round = r
        res.loadavg1 = load1()
        results[s][lib].push(res)
        const extra =
          (res.shares
            ? `  share ${res.shares.map((x) => (x * 100).toFixed(0) + '%').join('/')}, run mean ${res.runs.meanRun.toFixed(1)} max ${res.runs.maxRun}, ` +
              `step mean ${res.stepMs.sameProcess.mean} / ${res.stepMs.crossProcess.mean} ms (p99 ${res.stepMs.sameProcess.p99} / ${res.stepMs.crossProcess.p99}; ` +
              `cross ${res.stepMs.crossProcess.sumMs} ms in all), drain ${res.drainMs.toFixed(0)} ms`
            : '') +
          (res.giveUps !== undefined ? `  give-ups ${res.giveUps}` : '') +
          (res.redisKeysAfter?.some((n) => n > 0) ? `  redis keys left ${res.redisKeysAfter.join('/')}` : '')
        process.stderr.write(
          `round ${r}/${roundsOf(SCENARIOS[s].group)} ${s.padEnd(3)} ${lib.padEnd(18)} ${fmtInt(res.opsPerSec).padStart(10)} ops/s  ` +
            `p50 ${fmtUs(res.latencyUs.p50)} µs  p99 ${fmtUs(res.latencyUs.p99)} µs${extra}  (${(res.elapsedMs / 1000).toFixed(1)} s, load ${res.loadavg1})\n`,
        )
      }
    }
  }
} catch (e) {
  process.stderr.write(`${e.stack ?? e}\n`)
  stopEverything()
  process.exit(e.violation ? 3 : 1)
}
pressure.stop()
await stopServers()
const loadAfter = load1()
const elapsedS = (performance.now() - t0) / 1000

// ---- summarise -------------------------------------------------------------------------
function summarise(s) {
  const rows = libsFor(s).map((lib) => {
    const rs = results[s][lib]
    const ops = rs.map((x) => x.opsPerSec)
    const row = {
      lib,
      opsPerSec: median(ops),
      opsPerSecMin: Math.min(...ops),
      opsPerSecMax: Math.max(...ops),
      p50Us: median(rs.map((x) => x.latencyUs.p50)),
      p99Us: median(rs.map((x) => x.latencyUs.p99)),
      rounds: rs,
    }
    if (rs[0].memory !== undefined) {
      row.peakRssMB = median(rs.map((x) => x.memory.peakRssMB))
      row.rssDriftPct = median(rs.map((x) => x.memory.driftPct))
      row.rssCycles = median(rs.map((x) => x.memory.cycles))
    }
    if (rs[0].violations !== undefined) {
      row.violations = rs.reduce((a, x) => a + x.violations, 0)
      row.checked = rs.reduce((a, x) => a + x.checked, 0)
    }
    if (rs[0].giveUps !== undefined) {
      row.giveUps = rs.reduce((a, x) => a + x.giveUps, 0)
      row.giveUpErrors = {}
      for (const x of rs) for (const [k, v] of Object.entries(x.giveUpErrors)) row.giveUpErrors[k] = (row.giveUpErrors[k] ?? 0) + v
    }
    if (rs[0].redisKeysAfter !== undefined) row.redisKeysLeft = rs.reduce((a, x) => a + x.redisKeysAfter.reduce((p, q) => p + q, 0), 0)
    if (rs[0].shares !== undefined) {
      row.minShare = Math.min(...rs.flatMap((x) => x.shares))
      row.maxShare = Math.max(...rs.flatMap((x) => x.shares))
      row.maxRun = Math.max(...rs.map((x) => x.runs.maxRun))
      row.meanRun = median(rs.map((x) => x.runs.meanRun))
      row.drainMs = median(rs.map((x) => x.drainMs))
      // mean step from a section to the next (ms), median over the rounds
      row.stepSameMs = median(rs.map((x) => x.stepMs.sameProcess.mean ?? NaN).filter(Number.isFinite))
      row.stepCrossMs = median(rs.map((x) => x.stepMs.crossProcess.mean ?? NaN).filter(Number.isFinite))
      // the share of the window spent between sections of two different processes
      row.crossShare = median(rs.map((x) => (x.stepMs.crossProcess.sumMs ?? 0) / x.perProcess[0].windowMs))
      row.settings = rs[0].settings
    }
    return row
  })
  const subject = rows.find((r) => r.lib === SUBJECT)
  if (subject) {
    for (const row of rows) {
      if (row === subject) continue
      // Paired per round: oxlock and the peer ran minutes apart at most, same conditions.
      const perRound = subject.rounds.map((x, i) => x.opsPerSec / row.rounds[i].opsPerSec)
      row.ratio = {
        label: `${SUBJECT} / ${row.lib}`,
        median: median(perRound),
        min: Math.min(...perRound),
        max: Math.max(...perRound),
        perRound,
        ofMedians: subject.opsPerSec / row.opsPerSec,
      }
      if (SCENARIOS[s].multi) {
        // how many times shorter oxlock's wait p99 is, per round
        const p99 = subject.rounds.map((x, i) => row.rounds[i].latencyUs.p99 / x.latencyUs.p99)
        row.p99Ratio = { label: `${row.lib} / ${SUBJECT}`, median: median(p99), min: Math.min(...p99), max: Math.max(...p99), perRound: p99 }
      }
    }
  }
  return { id: s, ...SCENARIOS[s], rounds: roundsOf(SCENARIOS[s].group), rows }
}

const fmtMs = (us) => {
  const x = us / 1000
  return x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2)
}

const fmtStep = (x) => (Number.isFinite(x) ? x.toFixed(2) : '–')

// S5x: sections/s, waits in ms, the ratios both ways, and how the sections were shared out.
function tableMulti(sum) {
  const n = sum.rounds
  const lines = [
    `### ${sum.title}`,
    '',
    `_${sum.what}._`,
    '',
    `| library | retryDelay ms | sections/s (median of ${n} round${n === 1 ? '' : 's'}) | wait p50 ms | wait p99 ms | ratio sections/s oxlock / peer (median; min–max) | ratio wait p99 peer / oxlock (median; min–max) | share per process (min–max) | sections in a row in one process (mean; max) | section to next, mean ms: same process / other process | time in process switches | drain ms |`,
    '|---|---:|---:|---:|---:|---|---|---|---|---|---:|---:|',
  ]
  for (const r of sum.rows) {
    const ratio = r.ratio ? `${fmtX(r.ratio.median)} (${fmtX(r.ratio.min)}–${fmtX(r.ratio.max)})` : '—'
    const p99 = r.p99Ratio ? `${fmtX(r.p99Ratio.median)} (${fmtX(r.p99Ratio.min)}–${fmtX(r.p99Ratio.max)})` : '—'
    lines.push(
      `| ${r.lib} | ${r.settings.retryDelay} | ${fmtInt(r.opsPerSec)} | ${fmtMs(r.p50Us)} | ${fmtMs(r.p99Us)} | ${ratio} | ${p99} | ` +
        `${(r.minShare * 100).toFixed(0)}–${(r.maxShare * 100).toFixed(0)}% | ${r.meanRun.toFixed(1)}; ${r.maxRun} | ` +
        `${fmtStep(r.stepSameMs)} / ${fmtStep(r.stepCrossMs)} | ${(r.crossShare * 100).toFixed(0)}% | ${r.drainMs.toFixed(0)} |`,
    )
  }
  const peers = sum.rows.filter((r) => r.ratio && !r.lib.startsWith('oxlock'))
  if (peers.length) {
    const best = peers.reduce((a, r) => (r.opsPerSec > a.opsPerSec ? r : a))
    const bestP99 = peers.reduce((a, r) => (r.p99Us < a.p99Us ? r : a))
    lines.push(
      '',
      `best peer: ${best.lib} by sections/s (oxlock / it = ${fmtX(best.ratio.median)}), ${bestP99.lib} by wait p99 ` +
        `(it / oxlock = ${fmtX(bestP99.p99Ratio.median)}); issue 11's target: ≥ 3× and ≥ 10×`,
    )
  }
  lines.push(
    '',
    `violations: ${sum.rows.reduce((a, r) => a + r.violations, 0)} (${sum.rows.map((r) => `${r.lib} ${fmtInt(r.checked)}`).join(', ')} critical sections checked, ` +
      `the window's and the warm-up's and drain's; the counter equals the sections)`,
    '',
    `give-ups (lock calls that rejected): ${sum.rows.reduce((a, r) => a + r.giveUps, 0)} (${sum.rows.map((r) => `${r.lib} ${r.giveUps}`).join(', ')})`,
  )
  for (const r of sum.rows) for (const [k, v] of Object.entries(r.giveUpErrors)) lines.push(`- ${r.lib}: ${v} × ${k}`)
  const left = sum.rows.filter((r) => r.redisKeysLeft > 0)
  if (left.length) lines.push('', `lock keys left after the children (locks not released): ${left.map((r) => `${r.lib} ${r.redisKeysLeft}`).join(', ')}`)
  return lines.join('\n')
}

function table(sum) {
  if (sum.multi) return tableMulti(sum)
  const n = sum.rounds
  const lines = [
    `### ${sum.title}`,
    '',
    `_${sum.what}._`,
    '',
    `| library | ops/s (median of ${n} round${n === 1 ? '' : 's'}) | p50 µs | p99 µs | ratio, ops/s (median of per-round ratios; min–max) |`,
    '|---|---:|---:|---:|---|',
  ]
  for (const r of sum.rows) {
    const ratio = r.ratio
      ? `${r.ratio.label} = ${fmtX(r.ratio.median)} (${fmtX(r.ratio.min)}–${fmtX(r.ratio.max)})`
      : '—'
    lines.push(`| ${r.lib} | ${fmtInt(r.opsPerSec)} | ${fmtUs(r.p50Us)} | ${fmtUs(r.p99Us)} | ${ratio} |`)
  }
  const mem = sum.rows.filter((r) => r.peakRssMB !== undefined)
  if (mem.length) {
    lines.push(
      '',
      `memory (medians over rounds): ${mem
        .map((r) => `${r.lib} peak RSS ${r.peakRssMB.toFixed(0)} MB, RSS ${r.rssDriftPct >= 0 ? '+' : ''}${r.rssDriftPct.toFixed(1)}% over ${fmtInt(r.rssCycles)} ops after warm-up`)
        .join('; ')}`,
    )
  }
  const checked = sum.rows.filter((r) => r.violations !== undefined)
  if (checked.length) {
    lines.push(
      '',
      `violations: ${checked.reduce((a, r) => a + r.violations, 0)} ` +
        `(${checked.map((r) => `${r.lib} ${fmtInt(r.checked)}`).join(', ')} critical sections checked)`,
    )
  }
  const gave = sum.rows.filter((r) => r.giveUps !== undefined)
  if (gave.length) {
    lines.push(
      '',
      `give-ups (lock calls that rejected): ${gave.reduce((a, r) => a + r.giveUps, 0)} (${gave.map((r) => `${r.lib} ${r.giveUps}`).join(', ')})`,
    )
    for (const r of gave) for (const [k, v] of Object.entries(r.giveUpErrors)) lines.push(`- ${r.lib}: ${v} × ${k}`)
  }
  const left = sum.rows.filter((r) => r.redisKeysLeft > 0)
  if (left.length) lines.push('', `Redis keys left after the children (locks not released): ${left.map((r) => `${r.lib} ${r.redisKeysLeft}`).join(', ')}`)
  return lines.join('\n')
}

const summaries = scenarioIds.map(summarise)
// Which oxlock was measured: the commit (and whether the tree had changes) at the start.
function gitVersion() {
  const v = {}
  try {
    v.commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
    v.dirty = execFileSync('git', ['status', '--porcelain', '--', 'src', 'index.js', 'lib', 'Cargo.toml'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() !== ''
  } catch {}
  return v
}

const meta = {
  date: started.toISOString(),
  command,
  oxlock: { ...oxlockVersion, addon: subjectAddon, ...(treeRebuilt ? { treeAddonRebuiltDuringRun: treeRebuilt } : {}) },
  node: process.version,
  v8: process.versions.v8,
  platform: `${os.platform()} ${os.release()} ${os.arch()}`,
  cpus: `${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}`,
  loadavg1Before: loadBefore,
  loadavg1After: loadAfter,
  loadavg1PerRound: roundLoads,
  profile: profileName,
  pressure: args.pressure,
  elapsedS: Number(elapsedS.toFixed(1)),
}

const header = [
  `## oxlock benchmark (${groups.join(', ')})`,
  '',
  `- command: \`${command}\``,
  `- node ${meta.node}, ${meta.platform}, ${meta.cpus}; oxlock ${meta.oxlock.commit ?? '?'}${meta.oxlock.dirty ? ' (+ uncommitted changes)' : ''}, ` +
    `addon ${subjectAddon.sha1} (built ${subjectAddon.built}; copied at the start` +
    (treeRebuilt ? `; the tree's was rebuilt during the run: ${treeRebuilt.sha1})` : ')'),
  `- load average (1 min): ${loadBefore} before, ${loadAfter} after, ${roundLoads.join(' / ')} at the start of each round; ` +
    `${groups.map((g) => `${g} ${roundsOf(g)} round${roundsOf(g) === 1 ? '' : 's'}`).join(', ')}, ${elapsedS.toFixed(0)} s`,
  ...(redisInfo
    ? [
        `- ${redisInfo.version}; ${redisInfo.servers.length} server${redisInfo.servers.length === 1 ? '' : 's'} started by the runner ` +
          `(${redisInfo.serverArgs}), FLUSHALL + SCRIPT FLUSH before each child; every library: ttl ${REDIS_SETTINGS.ttl} ms, ` +
          `retryCount ${REDIS_SETTINGS.retryCount}, retryDelay ${REDIS_SETTINGS.retryDelay} ms, jitter ±${REDIS_SETTINGS.retryJitter} ms` +
          (scenarioIds.some((s) => SCENARIOS[s].multi) ? ` (S5x's oxlock-rd1000: retryDelay ${S5X_SETTINGS['oxlock-rd1000'].retryDelay} ms)` : ''),
      ]
    : []),
  `- CPU pressure: ${PRESSURE_TEXT[args.pressure]} (\`--pressure ${args.pressure}\`)`,
  `- ops/s: median over rounds of each child's median batch (S5x: sections in the window, all 4 processes); p50/p99: median over rounds; ratio > 1× means oxlock is faster`,
].join('\n')
console.log([header, ...summaries.map(table)].join('\n\n'))

// One file per results name: the group's, or the scenario's own (S5x: results-s5x.json, so a
// run of S5x alone does not replace the S3-S6b results, nor they S5x's).
const resultsOf = (s) => SCENARIOS[s].results ?? SCENARIOS[s].group
const files = [...new Set(scenarioIds.map(resultsOf))]
for (const f of files) {
  // --out with several files: results.json -> results-memory.json, results-redis.json, ...
  const file = args.out
    ? files.length === 1
      ? args.out
      : args.out.replace(/(\.json)?$/, `-${f}$1`)
    : path.join(here, `results-${f}${args.pressure === 'none' ? '' : `-${args.pressure}`}.json`)
  const sums = summaries.filter((s) => resultsOf(s.id) === f)
  const g = sums[0].group
  const scenarios = Object.fromEntries(sums.map((s) => [s.id, s]))
  const groupMeta = {
    ...meta,
    rounds: roundsOf(g),
    workerFlags: sums.some((s) => s.multi) ? profile[g].multi : profile[g].worker,
    ...(g === 'redis' ? { redis: redisInfo } : {}),
  }
  writeFileSync(file, JSON.stringify({ meta: groupMeta, scenarios }, null, 2) + '\n')
  process.stderr.write(`wrote ${path.relative(process.cwd(), file)}\n`)
}
