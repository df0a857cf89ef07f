// One measurement in its own process: node bench/worker.mjs <lib> <scenario> [--flags]
// Warms up (and sizes the batches from the warm-up rate), runs timed throughput batches
// without per-op timing, then latency batches that time every op. Prints one JSON line.
//
// Adding a scenario: write a function (adapter, n, out) below that runs n ops, register it
// in SCENARIOS with its backend (the adapter factory it needs, e.g. 'memory' or 'redis'),
// and give each adapter in bench/adapters/ the method it calls.

import { parseArgs } from 'node:util'
import { pathToFileURL } from 'node:url'

export const S1_KEYS = Array.from({ length: 1024 }, (_, i) => `k${i}`)
export const S2_KEY = 'hot'
export const S2_TASKS = 256

// S1: n sequential lock+unlock cycles on distinct keys k0..k1023 (cycling).
function s1(a, n, out) {
  return a.s1(S1_KEYS, n, out)
}

// S2: S2_TASKS concurrent tasks on one key, n critical sections in all. The critical
// section yields once (await) while held, so the other tasks run meanwhile and a broken
// lock would show as two holders.
async function s2(a, n, out) {
  const st = {
    n,
    started: 0,
    done: 0,
    holders: 0,
    async section() {
      if (++st.holders > 1) throw new ExclusionViolation(st.holders)
      await null
      st.holders--
      st.done++
    },
  }
  const tasks = []
  for (let i = 0; i < S2_TASKS; i++) tasks.push(a.s2Task(S2_KEY, st, out))
  await Promise.all(tasks)
  if (st.done !== n || st.holders !== 0) throw new Error(`S2 accounting: done ${st.done}/${n}, holders ${st.holders}`)
  return { checked: st.done, violations: 0 }
}

export const SCENARIOS = {
  S1: { backend: 'memory', run: s1, minOps: 1000 },
  S2: { backend: 'memory', run: s2, minOps: 4 * S2_TASKS },
}

export class ExclusionViolation extends Error {
  constructor(holders) {
    super(`mutual exclusion violated: ${holders} holders at once`)
    this.name = 'ExclusionViolation'
  }
}

const gc = globalThis.gc ?? (() => {})

async function measure(sc, a, o) {
  let checked = 0
  let violations = 0
  const run = async (n, out) => {
    const r = await sc.run(a, n, out)
    if (r) {
      checked += r.checked
      violations += r.violations
    }
  }

  // Warm-up: doubling batches until warmupMs is spent; the last rate sizes the batches.
  let n = sc.minOps
  let spent = 0
  let rate // ops per ms
  for (;;) {
    gc()
    const t = performance.now()
    await run(n, null)
    const dt = performance.now() - t
    spent += dt
    rate = n / Math.max(dt, 0.001)
    if (spent >= o.warmupMs) break
    if (dt < o.batchMs / 2) n *= 2
  }
  await run(Math.min(o.latOps, 5000), new Float64Array(Math.min(o.latOps, 5000))) // warm the timed path too

  const batchOps = Math.max(sc.minOps, Math.round(rate * o.batchMs))
  const batches = []
  for (let b = 0; b < o.batches; b++) {
    gc()
    const t = performance.now()
    await run(batchOps, null)
    batches.push((batchOps * 1000) / (performance.now() - t))
  }

  const lat = new Float64Array(o.latOps * o.latBatches)
  const timedRates = []
  for (let b = 0; b < o.latBatches; b++) {
    gc()
    const out = lat.subarray(b * o.latOps, (b + 1) * o.latOps)
    const t = performance.now()
    await run(o.latOps, out)
    timedRates.push((o.latOps * 1000) / (performance.now() - t))
  }
  for (let i = 0; i < lat.length; i++) lat[i] *= 1000 // ms -> µs
  lat.sort()
  const q = (p) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))]

  return {
    opsPerSec: median(batches),
    batches: batches.map(Math.round),
    batchOps,
    latencyUs: { samples: lat.length, p50: q(0.5), p90: q(0.9), p99: q(0.99), p999: q(0.999), max: lat[lat.length - 1] },
    timedOpsPerSec: median(timedRates), // with per-op timing: for reference only
    ...(sc.run === s2 ? { checked, violations } : {}),
  }
}

export function median(xs) {
  const s = [...xs].sort((x, y) => x - y)
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}

async function main() {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      'warmup-ms': { type: 'string', default: '400' },
      'batch-ms': { type: 'string', default: '250' },
      batches: { type: 'string', default: '8' },
      'lat-ops': { type: 'string', default: '20000' },
      'lat-batches': { type: 'string', default: '3' },
    },
  })
  const [lib, scenario] = positionals
  const sc = SCENARIOS[scenario]
  if (!lib || !sc) throw new Error(`usage: node bench/worker.mjs <lib> <${Object.keys(SCENARIOS).join('|')}> [flags]`)
  const o = {
    warmupMs: Number(values['warmup-ms']),
    batchMs: Number(values['batch-ms']),
    batches: Number(values.batches),
    latOps: Number(values['lat-ops']),
    latBatches: Number(values['lat-batches']),
  }
  const mod = await import(`./adapters/${lib}.mjs`)
  if (typeof mod[sc.backend] !== 'function') throw new Error(`adapter ${lib} has no '${sc.backend}' backend`)
  const a = await mod[sc.backend]()
  const t0 = performance.now()
  const res = await measure(sc, a, o)
  const leftover = a.stateSize?.()
  await a.close?.()
  process.stdout.write(
    JSON.stringify({ lib, scenario, ...res, leftoverKeys: leftover, elapsedMs: Math.round(performance.now() - t0) }) + '\n',
  )
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((e) => {
    console.error(e)
    process.exit(e instanceof ExclusionViolation ? 3 : 1)
  })
}
