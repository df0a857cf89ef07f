// Benchmark runner: node bench/run.mjs [--rounds N] [--quick] [--scenarios S1,S2|memory|redis|all] [--libs a,b] [--out file]
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

import { spawn, execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { copyFileSync, cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { REDIS_SETTINGS } from './worker.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))
const WORKER = path.join(here, 'worker.mjs')
const SUBJECT = 'oxlock'

// Scenario catalogue: title and description for the report; the code is in worker.mjs.
// `group` picks the profile and the results file (results-<group>.json); `libs` are the
// libraries that have the scenario's backend (an adapters/<lib>.mjs each).
// OXLOCK_BENCH_BASE=<a built oxlock checkout> adds it as 'oxlock-base' (before/after in one run).
const BASE = process.env.OXLOCK_BENCH_BASE ? ['oxlock-base'] : []
const MEMORY_LIBS = ['oxlock', ...BASE, 'async-lock', 'async-mutex']
const REDIS_LIBS = ['oxlock', ...BASE, 'redlock-v4', 'sesamecare-redlock', 'redis-semaphore', 'ioredis-raw', 'ioredis-raw-ap']
const REDLOCK_LIBS = ['oxlock', ...BASE, 'redlock-v4', 'sesamecare-redlock', 'redis-semaphore'] // the raw baseline is single-node only
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
  memory: ['S1', 'S2'],
  redis: ['S3', 'S4', 'S5', 'S6a', 'S6b'],
  all: ['S1', 'S2', 'S3', 'S4', 'S5', 'S6a', 'S6b'],
  S6: ['S6a', 'S6b'],
}

// Per group: rounds and the worker's flags. Redis children size their latency batches by
// time (--lat-ms), since rates range from ~1k to ~100k ops/s.
const PROFILES = {
  full: {
    memory: { rounds: 5, worker: { 'warmup-ms': 400, 'batch-ms': 250, batches: 10, 'lat-ops': 20000, 'lat-batches': 3 } },
    redis: { rounds: 3, worker: { 'warmup-ms': 300, 'batch-ms': 250, batches: 6, 'lat-ops': 20000, 'lat-ms': 300, 'lat-batches': 2 } },
  },
  quick: {
    memory: { rounds: 3, worker: { 'warmup-ms': 200, 'batch-ms': 120, batches: 5, 'lat-ops': 10000, 'lat-batches': 1 } },
    redis: { rounds: 2, worker: { 'warmup-ms': 100, 'batch-ms': 120, batches: 3, 'lat-ops': 10000, 'lat-ms': 150, 'lat-batches': 1 } },
  },
}

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string' },
    quick: { type: 'boolean', default: false },
    scenarios: { type: 'string', default: 'S1,S2' },
    libs: { type: 'string' },
    out: { type: 'string' },
  },
})

function usage(msg) {
  console.error(
    `${msg}\nusage: node bench/run.mjs [--rounds N] [--quick] [--scenarios ${Object.keys(SCENARIOS).join(',')} | ${Object.keys(ALIASES).join(' | ')}] ` +
      `[--libs ${[...new Set([...MEMORY_LIBS, ...REDIS_LIBS])].join(',')}] [--out file]`,
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
const workerFlags = (g) => Object.entries(profile[g].worker).flatMap(([k, v]) => [`--${k}`, String(v)])

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
let currentChild = null

function stopEverything() {
  if (currentChild) currentChild.kill('SIGKILL')
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

const dbsizes = () => Promise.all(servers.map((s) => redisCmd(s.port, 'DBSIZE')))

function runWorker(lib, scenario) {
  const sc = SCENARIOS[scenario]
  const extra = sc.group === 'redis' ? ['--redis', servers.map((s) => `127.0.0.1:${s.port}`).join(',')] : []
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--expose-gc', WORKER, lib, scenario, ...workerFlags(sc.group), ...extra], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, OXLOCK_BENCH_SUBJECT: subjectEntry },
    })
    currentChild = child
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000)
    child.on('error', reject)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      currentChild = null
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

// A failing child is retried once (e.g. the addon was being rebuilt), never for a
// mutual-exclusion violation. Redis servers are flushed before each child, and their key
// count is recorded after it (locks left behind).
async function measure(lib, scenario) {
  const redis = SCENARIOS[scenario].group === 'redis'
  const once = async () => {
    if (redis) await resetServers()
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
    }
    process.stderr.write(`${version}: ${redisInfo.servers.join(', ')}\n`)
  }
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
    }
  }
  return { id: s, ...SCENARIOS[s], rounds: roundsOf(SCENARIOS[s].group), rows }
}

function table(sum) {
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
          `retryCount ${REDIS_SETTINGS.retryCount}, retryDelay ${REDIS_SETTINGS.retryDelay} ms, jitter ±${REDIS_SETTINGS.retryJitter} ms`,
      ]
    : []),
  `- ops/s: median over rounds of each child's median batch; p50/p99: median over rounds; ratio > 1× means oxlock is faster`,
].join('\n')
console.log([header, ...summaries.map(table)].join('\n\n'))

for (const g of groups) {
  // --out with several groups: results.json -> results-memory.json, results-redis.json
  const file = args.out
    ? groups.length === 1
      ? args.out
      : args.out.replace(/(\.json)?$/, `-${g}$1`)
    : path.join(here, `results-${g}.json`)
  const scenarios = Object.fromEntries(summaries.filter((s) => s.group === g).map((s) => [s.id, s]))
  const groupMeta = { ...meta, rounds: roundsOf(g), workerFlags: profile[g].worker, ...(g === 'redis' ? { redis: redisInfo } : {}) }
  writeFileSync(file, JSON.stringify({ meta: groupMeta, scenarios }, null, 2) + '\n')
  process.stderr.write(`wrote ${path.relative(process.cwd(), file)}\n`)
}
