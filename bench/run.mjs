// Benchmark runner: node bench/run.mjs [--rounds N] [--quick] [--scenarios S1,S2] [--libs a,b] [--out file]
//
// Every (scenario, library) measurement runs in a fresh child process (bench/worker.mjs),
// one at a time. The whole set is repeated in rounds, libraries interleaved
// (round 1: oxlock, async-lock, async-mutex; round 2: the same; ...), so that all libraries
// see the same machine conditions within one run. Reports medians over rounds and the
// oxlock/peer ratio per round (median and range). See bench/README.md.

import { spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const here = path.dirname(fileURLToPath(import.meta.url))
const WORKER = path.join(here, 'worker.mjs')
const SUBJECT = 'oxlock'

// Scenario catalogue: title and description for the report; the code is in worker.mjs.
// Redis scenarios (S3...) go here with group 'redis' (results go to results-<group>.json);
// `libs: [...]` limits a scenario to the libraries that have its backend.
const SCENARIOS = {
  S1: {
    group: 'memory',
    title: 'S1: lock + unlock on distinct keys, sequential',
    what: 'one at a time over keys k0..k1023; ops/s = lock+unlock cycles per second; latency = one whole cycle',
  },
  S2: {
    group: 'memory',
    title: 'S2: 256 concurrent tasks on one key',
    what: 'each task loops lock -> critical section (holder check, one await) -> unlock; ops/s = critical sections per second; latency = wait from the lock call to acquisition',
  },
}
const LIBS = ['oxlock', 'async-lock', 'async-mutex']

const PROFILES = {
  full: { rounds: 5, worker: { 'warmup-ms': 400, 'batch-ms': 250, batches: 10, 'lat-ops': 20000, 'lat-batches': 3 } },
  quick: { rounds: 3, worker: { 'warmup-ms': 200, 'batch-ms': 120, batches: 5, 'lat-ops': 10000, 'lat-batches': 1 } },
}

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string' },
    quick: { type: 'boolean', default: false },
    scenarios: { type: 'string', default: 'S1,S2' },
    libs: { type: 'string', default: LIBS.join(',') },
    out: { type: 'string' },
  },
})

function usage(msg) {
  console.error(`${msg}\nusage: node bench/run.mjs [--rounds N] [--quick] [--scenarios ${Object.keys(SCENARIOS).join(',')}] [--libs ${LIBS.join(',')}] [--out file]`)
  process.exit(2)
}

const profile = PROFILES[args.quick ? 'quick' : 'full']
const rounds = args.rounds === undefined ? profile.rounds : Number(args.rounds)
if (!(Number.isInteger(rounds) && rounds > 0)) usage(`--rounds must be a positive integer, got ${args.rounds}`)
const scenarioIds = args.scenarios.split(',').map((s) => s.trim())
for (const s of scenarioIds) if (!SCENARIOS[s]) usage(`unknown scenario ${s}`)
const libs = args.libs.split(',').map((s) => s.trim())
const groups = [...new Set(scenarioIds.map((s) => SCENARIOS[s].group))]
const command = ['node', path.relative(process.cwd(), process.argv[1]) || process.argv[1], ...process.argv.slice(2)].join(' ')
const workerFlags = Object.entries(profile.worker).flatMap(([k, v]) => [`--${k}`, String(v)])

function runWorker(lib, scenario) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--expose-gc', WORKER, lib, scenario, ...workerFlags], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000)
    child.on('error', reject)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
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
// mutual-exclusion violation.
async function measure(lib, scenario) {
  try {
    return await runWorker(lib, scenario)
  } catch (e) {
    if (e.violation) throw e
    process.stderr.write(`  ! ${e.message.split('\n').slice(0, 3).join(' | ')}\n  ! retrying once\n`)
    return runWorker(lib, scenario)
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
const libsFor = (s) => libs.filter((l) => !SCENARIOS[s].libs || SCENARIOS[s].libs.includes(l))
for (const s of scenarioIds) results[s] = Object.fromEntries(libsFor(s).map((l) => [l, []]))

process.stderr.write(`${command}: ${rounds} rounds x ${scenarioIds.join(',')} x ${libs.join(',')}, load ${loadBefore}\n`)
for (let r = 1; r <= rounds; r++) {
  for (const s of scenarioIds) {
    for (const lib of libsFor(s)) {
      const res = await measure(lib, s)
      res.round = r
      res.loadavg1 = load1()
      results[s][lib].push(res)
      process.stderr.write(
        `round ${r}/${rounds} ${s} ${lib.padEnd(12)} ${fmtInt(res.opsPerSec).padStart(10)} ops/s  ` +
          `p50 ${fmtUs(res.latencyUs.p50)} µs  p99 ${fmtUs(res.latencyUs.p99)} µs  (${(res.elapsedMs / 1000).toFixed(1)} s)\n`,
      )
    }
  }
}
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
  return { id: s, ...SCENARIOS[s], rows }
}

function table(sum) {
  const lines = [
    `### ${sum.title}`,
    '',
    `_${sum.what}._`,
    '',
    `| library | ops/s (median of ${rounds} round${rounds === 1 ? '' : 's'}) | p50 µs | p99 µs | ratio, ops/s (median of per-round ratios; min–max) |`,
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
  return lines.join('\n')
}

const summaries = scenarioIds.map(summarise)
const meta = {
  date: started.toISOString(),
  command,
  node: process.version,
  v8: process.versions.v8,
  platform: `${os.platform()} ${os.release()} ${os.arch()}`,
  cpus: `${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}`,
  loadavg1Before: loadBefore,
  loadavg1After: loadAfter,
  rounds,
  profile: args.quick ? 'quick' : 'full',
  workerFlags: profile.worker,
  elapsedS: Number(elapsedS.toFixed(1)),
}

const header = [
  `## oxlock benchmark (${groups.join(', ')})`,
  '',
  `- command: \`${command}\``,
  `- node ${meta.node}, ${meta.platform}, ${meta.cpus}`,
  `- load average (1 min): ${loadBefore} before, ${loadAfter} after; ${rounds} round${rounds === 1 ? '' : 's'}, ${elapsedS.toFixed(0)} s`,
  `- ops/s: median over rounds of each child's median batch; p50/p99: median over rounds; ratio > 1× means oxlock is faster`,
].join('\n')
console.log([header, ...summaries.map(table)].join('\n\n'))

for (const g of groups) {
  const file = args.out ?? path.join(here, `results-${g}.json`)
  const scenarios = Object.fromEntries(summaries.filter((s) => s.group === g).map((s) => [s.id, s]))
  writeFileSync(file, JSON.stringify({ meta, scenarios }, null, 2) + '\n')
  process.stderr.write(`wrote ${path.relative(process.cwd(), file)}\n`)
}
